#!/usr/bin/env node
// prebuildify's node-gyp, for a cmake-js project. prebuildify runs it as
// `rebuild --target=… --devdir=… --arch=<arch> --release` in its --cwd, then strips the first
// .node in build/Release there and moves it to prebuilds/. The addon for this machine's
// architecture comes from the project's own build/ (cmake-js compile, which rebuilds nothing when
// `npm install` already built it, so CI compiles the CUDA kernels once); another architecture is
// cross-compiled into build-<arch>/, CPU only.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
const cross = { arm64: { toolchain: 'cmake/aarch64-linux-gnu.cmake', compiler: 'aarch64-linux-gnu-g++' } };

const archArg = process.argv.find((a) => a.startsWith('--arch='));
const arch = archArg ? archArg.slice('--arch='.length) : process.arch;

// cmake-js's output goes to stderr: `npm pack --json` prints its JSON on stdout after this runs.
function run(args) {
  const result = spawnSync(process.execPath, [cmakeJs, ...args], { cwd: root, stdio: ['ignore', process.stderr, process.stderr] });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

let buildDir;
if (arch === process.arch) {
  buildDir = 'build';
  run(['compile', '--log-level', 'warn']);
} else if (arch in cross) {
  const { toolchain, compiler } = cross[arch];
  if (spawnSync(compiler, ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.error(`prebuild: ${compiler} is needed to cross-compile for ${arch} (Debian: apt-get install g++-aarch64-linux-gnu)`);
    process.exit(1);
  }
  buildDir = `build-${arch}`;
  run(['compile', '--log-level', 'warn', '--out', buildDir, `--CDCMAKE_TOOLCHAIN_FILE=${path.join(root, toolchain)}`,
    '--CDNCSN_CUDA=OFF', '--CDNCSN_TESTS=OFF']);
} else {
  console.error(`prebuild: no way to build for ${arch} on ${process.arch}`);
  process.exit(1);
}

mkdirSync(path.join('build', 'Release'), { recursive: true });
copyFileSync(path.join(root, buildDir, 'Release', 'ncsn.node'), path.join('build', 'Release', 'ncsn.node'));
