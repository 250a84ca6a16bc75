// Nothing the project writes is ever half a file, and nothing is lost: full disks, kills during a
// save, a run directory that already holds a run, destinations that cannot take the result, and
// checkpoints over 2 GiB.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { readCheckpoint, writeCheckpoint } from '../../src/checkpoint.js';
import { csvPieces, parseCsv } from '../../src/data/csv.js';
import { writeNpy } from '../../src/data/npy.js';
import { writeFileAtomic } from '../../src/io/files.js';

const bin = path.resolve(__dirname, '..', '..', 'bin', 'ncsn-cuda.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-data-loss-'));
// Work no test here should ever reach: a refusal must come before it.
const FOREVER = ['--steps', '100000000'];
const SAMPLE_FOREVER = ['--n', '1000000', '--steps-per-level', '100000'];

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NCSN_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Refused with one line and a non-zero exit; a null code means it was still working at the timeout.
function expectRefused(r: ReturnType<typeof cli>, message: RegExp) {
  expect(r.code, 'still running at the timeout: the refusal came after the work').not.toBeNull();
  expect(r.code).not.toBe(0);
  const lastLine = r.stderr.trim().split('\n').pop() ?? '';
  expect(lastLine).toMatch(/^ncsn-cuda: /);
  expect(lastLine).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

const temporaryFiles = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith('.tmp'));

// Small file systems for full and read-only disks: tmpfs mounts, where this process may mount (root on Linux).
const mounted: string[] = [];
let mountProblem: string | null = null;
function mountTmpfs(name: string, options: string): string | null {
  const at = path.join(dir, name);
  fs.mkdirSync(at);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', at], { encoding: 'utf8' });
  if (r.status !== 0) {
    mountProblem = `cannot mount a tmpfs (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()})`;
    return null;
  }
  mounted.push(at);
  return at;
}
const fullTrain = mountTmpfs('full-train', 'size=600k');
const fullSample = mountTmpfs('full-sample', 'size=600k');
const fullLog = mountTmpfs('full-log', 'size=600k');
const readOnly = mountTmpfs('read-only', 'size=64k,ro');
if (mountProblem) console.warn(`skipping the full-disk and read-only tests: ${mountProblem}`);

afterAll(() => {
  for (const at of mounted) spawnSync('umount', [at]);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Fills the file system at `at` until about `leave` bytes are free. */
function fill(at: string, leave: number) {
  const { bavail, bsize } = fs.statfsSync(at);
  fs.writeFileSync(path.join(at, 'filler'), Buffer.alloc(Math.max(0, bavail * bsize - leave), 1));
}

function logLinesAreWhole(file: string) {
  const text = fs.readFileSync(file, 'utf8');
  expect(text === '' || text.endsWith('\n')).toBe(true);
  for (const line of text.split('\n').filter((l) => l !== '')) expect(() => JSON.parse(line)).not.toThrow();
  return text.split('\n').filter((l) => l !== '').length;
}

let checkpoint: string;
beforeAll(() => {
  expect(cli('train', '--steps', '20', '--out', 'small').code).toBe(0);
  checkpoint = path.join(dir, 'small', 'checkpoint.safetensors');
});

describe('a full disk', () => {
  it.skipIf(!fullTrain)('keeps the last good checkpoint, leaves no temporary file, and says why it stopped', () => {
    // a checkpoint is 312 KiB: the first fits on 600 KiB, the second cannot be written beside it
    const run = path.join(fullTrain!, 'run');
    const r = cli('train', '--steps', '400', '--checkpoint-every', '50', '--keep', '2', '--out', run);
    expectRefused(r, /cannot write .*run.checkpoint\.safetensors: no space left on device \(ENOSPC\)\. The last good checkpoint is .*checkpoint\.safetensors \(step (\d+)\)/);
    const step = /\(step (\d+)\)/.exec(r.stderr)![1];
    expect(readCheckpoint(path.join(run, 'checkpoint.safetensors')).metadata.step).toBe(step);
    for (const f of fs.readdirSync(run).filter((name) => name.startsWith('checkpoint-'))) {
      expect(readCheckpoint(path.join(run, f)).metadata.step).toBe(/\d+/.exec(f)![0]);
    }
    expect(temporaryFiles(run)).toEqual([]);
    logLinesAreWhole(path.join(run, 'log.jsonl'));
  });

  it.skipIf(!fullLog)('stops a run whose log cannot grow, with the log in whole lines and no checkpoint called good', () => {
    fill(fullLog!, 8192); // room for a few dozen log lines, not for 50
    const run = path.join(fullLog!, 'run');
    const r = cli('train', '--steps', '400', '--out', run);
    expectRefused(r, /cannot append to .*run.log\.jsonl: no space left on device \(ENOSPC\)/);
    expect(r.stderr).not.toMatch(/last good checkpoint/);
    expect(logLinesAreWhole(path.join(run, 'log.jsonl'))).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(run, 'checkpoint.safetensors'))).toBe(false);
  });

  it.skipIf(!fullSample)('makes sample exit non-zero and leave no output file, in every format', () => {
    // room for part of each file, so that a write that stops short is seen, not only one that fails outright
    fill(fullSample!, 8192);
    for (const name of ['x.npy', 'x.csv', 'x.png']) {
      const out = path.join(fullSample!, name);
      const r = cli('sample', '--checkpoint', checkpoint, '--n', '2000', '--steps-per-level', '2', '--out', out);
      expectRefused(r, new RegExp(`cannot write .*${name.replace('.', '\\.')}: no space left on device`));
      expect(fs.existsSync(out)).toBe(false);
    }
    const gif = path.join(fullSample!, 'x.gif');
    const r = cli('sample', '--checkpoint', checkpoint, '--n', '200', '--steps-per-level', '2', '--out', 'beside.npy', '--animate', gif, '--frames', '5');
    expectRefused(r, /cannot write .*x\.gif: no space left on device/);
    expect(fs.existsSync(gif)).toBe(false);
    expect(temporaryFiles(fullSample!)).toEqual([]);
  });
});

describe('a kill during a save', () => {
  it('leaves the old or the new checkpoint whole, never half of one, and the run resumes', async () => {
    // 4,096-dimensional points make 9 MB checkpoints: with one after every step, most of the time goes to saving
    const rows = 64;
    const points = new Float32Array(rows * 4096).map((_, i) => Math.sin(i * 0.37));
    fs.writeFileSync(path.join(dir, 'wide.npy'), writeNpy(points, [rows, 4096]));
    const run = path.join(dir, 'killed');
    const flags = ['--steps', '1000000', '--checkpoint-every', '1', '--keep', '2'];
    // a kill that lands in a save leaves its hidden temporary file; go on until two have
    let killsInASave = 0;
    for (let round = 0; round < 12 && killsInASave < 2; round++) {
      const args = round === 0 ? ['train', '--data', 'wide.npy', '--sigma-begin', '50', '--sigma-end', '1', ...flags, '--out', run] : ['train', '--resume', run, ...flags];
      const child = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: 'ignore' });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      const checkpointFile = path.join(run, 'checkpoint.safetensors');
      const before = fs.existsSync(checkpointFile) ? readCheckpoint(checkpointFile).metadata.step : null;
      for (let waited = 0; waited < 60_000; waited += 20) {
        if (fs.existsSync(checkpointFile) && readStep(checkpointFile) !== before) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await new Promise((resolve) => setTimeout(resolve, 50 + 97 * round));
      child.kill('SIGKILL');
      await exited;
      if (temporaryFiles(run).some((f) => f.includes(`.${child.pid}-`))) killsInASave++;
      for (const f of fs.readdirSync(run).filter((name) => name.endsWith('.safetensors'))) {
        const { metadata, tensors } = readCheckpoint(path.join(run, f));
        expect(tensors.length).toBeGreaterThan(0);
        if (f !== 'checkpoint.safetensors') expect(metadata.step).toBe(/\d+/.exec(f)![0]);
      }
    }
    expect(killsInASave, 'no kill landed in a save, so this run proves nothing').toBeGreaterThan(0);
  });
});

function readStep(file: string): string | null {
  try {
    return readCheckpoint(file).metadata.step;
  } catch {
    return null;
  }
}

describe('train --out DIR where DIR already holds a run', () => {
  it('refuses before training, naming --resume and --overwrite, and changes nothing', () => {
    expect(cli('train', '--steps', '20', '--checkpoint-every', '10', '--keep', '1', '--out', 'taken').code).toBe(0);
    const files = ['checkpoint.safetensors', 'checkpoint-10.safetensors', 'log.jsonl'];
    const bytes = files.map((f) => fs.readFileSync(path.join(dir, 'taken', f)));
    const r = cli('train', ...FOREVER, '--out', 'taken');
    expectRefused(r, /--out taken already holds a run's files \(checkpoint-10\.safetensors, checkpoint\.safetensors, log\.jsonl.*\); continue that run with --resume taken, or start afresh there with --overwrite/);
    files.forEach((f, i) => expect(fs.readFileSync(path.join(dir, 'taken', f))).toEqual(bytes[i]));
    expectRefused(cli('train', '--resume', 'taken', '--overwrite'), /--overwrite would delete the run that --resume taken continues/);
  });

  it('with --overwrite starts afresh: the old run\'s files go, other files stay', () => {
    fs.writeFileSync(path.join(dir, 'taken', 'notes.txt'), 'mine');
    const r = cli('train', '--steps', '30', '--out', 'taken', '--overwrite');
    expect(r.code).toBe(0);
    const names = fs.readdirSync(path.join(dir, 'taken'));
    expect(names).toContain('notes.txt');
    expect(names.filter((f) => f.startsWith('checkpoint'))).toEqual(['checkpoint.safetensors']);
    const steps = fs.readFileSync(path.join(dir, 'taken', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);
    expect(steps[0]).toBeLessThanOrEqual(10);
    expect(steps[steps.length - 1]).toBe(30);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
  });

  it('refuses a broken or foreign checkpoint up front, and never calls it the last good one', () => {
    const foreign = path.join(dir, 'foreign');
    fs.mkdirSync(foreign);
    fs.writeFileSync(path.join(foreign, 'checkpoint.safetensors'), 'not a checkpoint');
    expectRefused(cli('train', ...FOREVER, '--out', foreign), /already holds a run's files \(checkpoint\.safetensors\)/);
    // a run that fails before its first save has no good checkpoint to speak of
    const r = cli('train', '--lr', '1e30', '--steps', '50', '--out', foreign, '--overwrite');
    expectRefused(r, /training diverged/);
    expect(r.stderr).not.toMatch(/last good checkpoint/);
    expect(fs.existsSync(path.join(foreign, 'checkpoint.safetensors'))).toBe(false);
  });
});

describe('destinations that cannot take the result are refused before the work', () => {
  beforeAll(() => {
    fs.mkdirSync(path.join(dir, 'a-directory.npy'));
    fs.mkdirSync(path.join(dir, 'film.gif'));
    fs.writeFileSync(path.join(dir, 'a-file'), 'x');
  });

  it('sample: a directory, a parent that is a file, a wrong extension', () => {
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--out', 'a-directory.npy'), /--out a-directory\.npy: is a directory/);
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--out', 'a-file/x.npy'), /--out a-file\/x\.npy: .*a-file is not a directory/);
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--out', 'x.txt'), /--out x\.txt: the extension must be one of \.npy, \.csv, \.png/);
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--animate', 'film.gif'), /--animate film\.gif: is a directory/);
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--animate', 'film.mp4'), /--animate film\.mp4: the extension must be \.gif/);
    expect(fs.existsSync(path.join(dir, 'samples.npy'))).toBe(false);
  });

  it.skipIf(!readOnly)('sample and train: a read-only file system', () => {
    const ro = readOnly!;
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--out', path.join(ro, 'x.npy')), /--out .*x\.npy: cannot write in .*read-only: read-only file system \(EROFS\)/);
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--out', path.join(ro, 'new', 'x.npy')), /read-only file system/);
    expectRefused(cli('sample', '--checkpoint', checkpoint, ...SAMPLE_FOREVER, '--out', 'ok.npy', '--animate', path.join(ro, 'x.gif')), /--animate .*x\.gif: .*read-only file system/);
    expect(fs.existsSync(path.join(dir, 'ok.npy'))).toBe(false);
    expectRefused(cli('train', ...FOREVER, '--out', path.join(ro, 'run')), /--out .*run: cannot write in .*read-only file system/);
  });

  it('train: an --out that is a file', () => {
    expectRefused(cli('train', ...FOREVER, '--out', 'a-file'), /--out a-file: is not a directory/);
    expect(fs.readFileSync(path.join(dir, 'a-file'), 'utf8')).toBe('x');
  });
});

describe('atomic writes', () => {
  it('write everything when write(2) writes less than asked', () => {
    const file = path.join(dir, 'short-writes.bin');
    const content = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
    const realWrite = fs.writeSync;
    let calls = 0;
    const spy = vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buf: Uint8Array, offset: number, length: number) => {
      calls++;
      return realWrite(fd, buf, offset, Math.min(length, 777));
    }) as typeof fs.writeSync);
    try {
      writeFileAtomic(file, content);
    } finally {
      spy.mockRestore();
    }
    expect(calls).toBeGreaterThan(100);
    expect(fs.readFileSync(file)).toEqual(content);
  });

  it('keep the previous file and leave nothing behind when the writer fails half-way', () => {
    const file = path.join(dir, 'half.csv');
    fs.writeFileSync(file, 'old');
    function* failing() {
      yield 'x0,x1\n';
      throw new RangeError('the writer broke');
    }
    expect(() => writeFileAtomic(file, failing())).toThrow('the writer broke');
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.half.csv'))).toEqual([]);
  });

  it('write a CSV of many points in pieces, not one string', () => {
    const rows = 50_000;
    const data = new Float32Array(rows * 2).map((_, i) => i / 7);
    const pieces = [...csvPieces(data, rows, 2)];
    expect(pieces.length).toBeGreaterThan(5);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThan(1_000_000);
    expect(parseCsv(pieces.join(''), 'x.csv').data).toEqual(data);
  });
});

describe('checkpoints', () => {
  const tensors = [
    { name: 'fc1.weight', shape: [3, 2], data: Float32Array.from([0.5, -1, 2, 3.25, -4, 1e-3]) },
    { name: 'fc1.bias', shape: [3], data: Float32Array.from([1, 2, 3]) },
    { name: 'ema.out.bias', shape: [1, 1], data: Float32Array.from([-7]) },
  ];
  const metadata = { config: JSON.stringify({ width: 3, sigmas: [20, 1] }), step: '42' };

  it('are byte for byte what the one-Buffer encoder wrote', () => {
    const file = path.join(dir, 'golden.safetensors');
    writeCheckpoint(file, tensors, metadata);
    const bytes = fs.readFileSync(file);
    expect(bytes.length).toBe(344);
    // the sha256 of encodeSafetensors(tensors, metadata) before checkpoints were streamed
    expect(createHash('sha256').update(bytes).digest('hex')).toBe('1b04ce29fb96d173392d12cc1ddeac3e06e6b2eae5c579f18d6f12cdd1ee9518');
    const back = readCheckpoint(file);
    expect(back.tensors).toEqual(tensors);
    expect(back.metadata).toEqual({ format: 'ncsn-cuda/1', ...metadata });
  });

  // just over 2 GiB: on a tmpfs where one can be mounted (fsync of a disk file that size takes long), else on disk
  const bigBytes = 2 ** 31 + 2 ** 26;
  const bigDir = os.freemem() > 4 * bigBytes ? (mountTmpfs('big', `size=${Math.ceil((bigBytes + 2 ** 24) / 2 ** 20)}m`) ?? dir) : dir;
  const room = (() => {
    const { bavail, bsize } = fs.statfsSync(bigDir);
    if (os.freemem() < 2 * bigBytes) return `needs ${((2 * bigBytes) / 2 ** 30).toFixed(1)} GiB of free memory`;
    if (bavail * bsize < bigBytes + 2 ** 24) return `needs ${(bigBytes / 2 ** 30).toFixed(1)} GiB of free disk in ${bigDir}`;
    return null;
  })();
  if (room) console.warn(`skipping the checkpoint over 2 GiB: it ${room}`);

  it.skipIf(room !== null)('over 2 GiB are written and read back whole', () => {
    const file = path.join(bigDir, 'big.safetensors');
    const big = [0, 1].map((k) => {
      const data = new Float32Array(bigBytes / 8);
      // every MiB its own bit pattern, so that a piece written or read in the wrong place shows
      const words = new Uint32Array(data.buffer);
      for (let at = 0, block = 0; at < words.length; at += 2 ** 18, block++) words.fill(0x3f800000 + 2 * block + k, at, at + 2 ** 18);
      return { name: `t${k}`, shape: [data.length], data };
    });
    try {
      writeCheckpoint(file, big, metadata);
      expect(fs.statSync(file).size).toBeGreaterThan(2 ** 31);
      const back = readCheckpoint(file);
      expect(back.tensors.map((t) => t.name)).toEqual(['t0', 't1']);
      for (let k = 0; k < 2; k++) expect(Buffer.from(back.tensors[k].data.buffer).equals(Buffer.from(big[k].data.buffer))).toBe(true);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
