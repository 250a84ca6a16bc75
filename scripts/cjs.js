#!/usr/bin/env node
// The CommonJS entry point, dist/index.cjs: the library bundled from src/index.ts, its npm
// dependencies left as require() calls. tsc cannot emit it from the same sources, which read their
// own location from import.meta.url; here that becomes the bundle's file URL, one folder below
// the package root as dist/*.js are. dist/index.d.cts gives require() callers the same types.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

await build({
  entryPoints: [path.join(root, 'src', 'index.ts')],
  outfile: path.join(root, 'dist', 'index.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  packages: 'external',
  define: { 'import.meta.url': '__ncsn_module_url' },
  banner: { js: "const __ncsn_module_url = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
writeFileSync(path.join(root, 'dist', 'index.d.cts'), "export * from './index.js';\n");
