#!/usr/bin/env node
// The CLI, or one line saying why the native addon cannot be loaded here.
let cli;
try {
  cli = await import('../dist/cli/index.js');
} catch (e) {
  if (e?.code !== 'ERR_NCSN_NATIVE_LOAD') throw e;
  process.stderr.write(`ncsn-cuda: ${e.message}\n`);
  process.exit(1);
}
await cli.main(process.argv);
