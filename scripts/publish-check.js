#!/usr/bin/env node
// The publish guard: refuses `npm publish` unless prebuilds/ holds a linux-arm64 binary and a linux-x64
// binary built with the CUDA backend for every architecture of CMakeLists.txt's default list (SASS
// for sm_75 … sm_121 and PTX for the newest). The x64 binary carries that list as text (the
// NCSN_CUDA_ARCHS definition that `ncsn-cuda info` prints), so a development build for one
// architecture, or a CPU-only one, is told apart without a GPU or the CUDA toolkit.
// It runs at the end of `prepack`, after scripts/prebuilds.js has written the binaries that go into
// the tarball (npm runs prepublishOnly before prepack, so a check there would see the binaries of an
// earlier build), and only when npm's command is publish: `npm pack` on a development machine stays
// free to pack what it has.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The default CMAKE_CUDA_ARCHITECTURES of CMakeLists.txt, as the binary spells it (space-separated). */
export function requiredArchitectures(cmakeLists) {
  const m = /set\(CMAKE_CUDA_ARCHITECTURES\s+"([^"]+)"\)/.exec(cmakeLists);
  if (!m) throw new Error('CMakeLists.txt sets no default CMAKE_CUDA_ARCHITECTURES');
  return m[1].split(';').join(' ');
}

function binaries(dir) {
  try {
    return fs.readdirSync(dir).filter((f) => f.endsWith('.node')).map((f) => path.join(dir, f));
  } catch {
    return [];
  }
}

/** What stops a publish, one sentence each; none when the prebuilds are complete. */
export function publishProblems(root) {
  const problems = [];
  const prebuilds = path.join(root, 'prebuilds');
  if (binaries(path.join(prebuilds, 'linux-arm64')).length === 0) {
    problems.push('prebuilds/linux-arm64/ holds no binary (npm run prebuilds cross-compiles it where aarch64-linux-gnu-g++ is installed)');
  }
  const x64 = binaries(path.join(prebuilds, 'linux-x64'));
  if (x64.length === 0) {
    problems.push('prebuilds/linux-x64/ holds no binary (npm run prebuilds)');
  } else {
    const archs = requiredArchitectures(fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8'));
    for (const file of x64) {
      if (!fs.readFileSync(file).includes(Buffer.from(archs))) {
        problems.push(
          `${path.relative(root, file)} was not built for every CUDA architecture (${archs}): build it with nvcc on the PATH and no CMAKE_CUDA_ARCHITECTURES override`,
        );
      }
    }
  }
  return problems;
}

/** Whether npm runs this script for `npm publish` (npm names its command in the environment). */
export function publishing(env) {
  return env.npm_command === 'publish';
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && (publishing(process.env) || process.argv.includes('--always'))) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const problems = publishProblems(root);
  if (problems.length > 0) {
    console.error(`npm publish refused:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    process.exit(1);
  }
  console.error('prebuilds: linux-x64 (CPU and every CUDA architecture) and linux-arm64 present');
}
