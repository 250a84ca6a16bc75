// The addon built from source, for a machine that no prebuilt binary fits: with cmake-js into the
// package's build/, where node-gyp-build looks first, once.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

/** The first line `command --version` prints, or null when it cannot be run. */
function version(command: string): string | null {
  const result = spawnSync(command, ['--version'], { encoding: 'utf8' });
  if (result.status !== 0) return null;
  return result.stdout.split('\n')[0].trim();
}

export interface Toolchain {
  cmake: string;
  compiler: string;
}

/** CMake and a C++ compiler on the PATH, or the names of the missing ones. */
export function findToolchain(): Toolchain | { missing: string[] } {
  const cmake = version('cmake');
  const compilers = [process.env.CXX, 'c++', 'g++', 'clang++'].filter((c): c is string => !!c);
  let compiler: string | null = null;
  for (const c of compilers) {
    compiler = version(c);
    if (compiler) break;
  }
  if (cmake && compiler) return { cmake, compiler };
  const missing = [];
  if (!cmake) missing.push('cmake');
  if (!compiler) missing.push(`a C++ compiler (${compilers.join(', ')})`);
  return { missing };
}

/**
 * Builds the addon into root/build with cmake-js, its output on stderr; the exit status. The
 * environment's NCSN_CUDA goes to CMake as it does for a clone's build: OFF builds the CPU backend
 * alone (minutes less where nvcc is on the PATH), REQUIRE fails without nvcc.
 */
export function buildFromSource(root: string): number {
  const cmakeJs = createRequire(import.meta.url).resolve('cmake-js/bin/cmake-js');
  const cuda = process.env.NCSN_CUDA ? [`--CDNCSN_CUDA=${process.env.NCSN_CUDA}`] : [];
  const result = spawnSync(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn', '--CDNCSN_TESTS=OFF', ...cuda], {
    cwd: root,
    stdio: ['ignore', process.stderr, process.stderr],
  });
  return result.status ?? 1;
}
