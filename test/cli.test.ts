// The command line as a user runs it: outputs on disk, and one clear line for every bad input.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect, beforeAll } from 'vitest';
import { PNG } from 'pngjs';

import { parseNpy } from '../src/data/npy.js';
import { parseCsv } from '../src/data/csv.js';
import { writeNpy } from '../src/data/npy.js';
import { levelsForOverlap, stepLrForLevels } from '../src/schedule.js';

const bin = path.resolve(__dirname, '..', 'bin', 'ncsn-cuda.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-cli-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, NCSN_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readConfig(file: string) {
  const header = fs.readFileSync(file);
  const meta = JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString()).__metadata__;
  return JSON.parse(meta.config);
}

// The number of images in a GIF, walking its blocks: extensions and image data are chains of
// length-prefixed sub-blocks ending in a zero.
function gifFrameCount(gif: Buffer): number {
  let at = 13;
  if (gif[10] & 0x80) at += 3 * 2 ** ((gif[10] & 7) + 1);
  const skipSubBlocks = () => {
    while (gif[at] !== 0) at += gif[at] + 1;
    at += 1;
  };
  let frames = 0;
  while (at < gif.length && gif[at] !== 0x3b) {
    if (gif[at] === 0x21) {
      at += 2;
      skipSubBlocks();
    } else if (gif[at] === 0x2c) {
      frames += 1;
      const packed = gif[at + 9];
      at += 10;
      if (packed & 0x80) at += 3 * 2 ** ((packed & 7) + 1);
      at += 1; // LZW minimum code size
      skipSubBlocks();
    } else throw new Error(`not a GIF block at byte ${at}`);
  }
  return frames;
}

// A rejected input: non-zero exit, a message on stderr, and no stack trace.
function expectRejected(r: ReturnType<typeof cli>, message: RegExp) {
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('ncsn-cuda train and sample', () => {
  const run = path.join(dir, 'run');
  beforeAll(() => {
    const r = cli('train', '--steps', '300', '--out', run);
    expect(r.stderr).toMatch(/trained 300 steps/);
    expect(r.code).toBe(0);
  });

  it('writes a checkpoint, a log and a plot', () => {
    for (const f of ['checkpoint.safetensors', 'log.jsonl', 'samples.png', 'loss.png', 'score.png']) expect(fs.existsSync(path.join(run, f))).toBe(true);
    const lines = fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.at(-1).step).toBe(300);
    expect(lines[0]).toHaveProperty('loss');
    expect(lines[0].level_loss).toHaveLength(10);
    expect(lines[0]).toHaveProperty('steps_per_s');
    const png = PNG.sync.read(fs.readFileSync(path.join(run, 'samples.png')));
    expect([png.width, png.height]).toEqual([800, 800]);
  });

  it('plots the loss per level of a run', () => {
    fs.rmSync(path.join(run, 'loss.png'));
    const r = cli('plot', run);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([path.join(run, 'loss.png'), path.join(run, 'score.png')]);
    expect(PNG.sync.read(fs.readFileSync(path.join(run, 'loss.png'))).width).toBe(900);
    expectRejected(cli('plot', 'nowhere'), /cannot read nowhere.log\.jsonl: no such file/);
    const s = cli('plot', run, '--level', '3');
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/score\.png/);
    expectRejected(cli('plot', run, '--level', '11'), /--level must be between 1 and 10/);
  });

  it('samples to .npy, .csv and .png', () => {
    const ck = path.join(run, 'checkpoint.safetensors');
    expect(cli('sample', '--checkpoint', ck, '--n', '50', '--steps-per-level', '5', '--out', 'a.npy').code).toBe(0);
    expect(parseNpy(fs.readFileSync(path.join(dir, 'a.npy')), 'a.npy')).toMatchObject({ rows: 50, cols: 2 });
    expect(cli('sample', '--checkpoint', ck, '--n', '20', '--steps-per-level', '5', '--denoise', '--out', 'b.csv').code).toBe(0);
    expect(parseCsv(fs.readFileSync(path.join(dir, 'b.csv'), 'utf8'), 'b.csv')).toMatchObject({ rows: 20, cols: 2 });
    expect(cli('sample', '--checkpoint', ck, '--n', '200', '--steps-per-level', '5', '--out', 'c.png').code).toBe(0);
    expect(PNG.sync.read(fs.readFileSync(path.join(dir, 'c.png'))).width).toBe(800);
    // the same seed gives the same samples
    cli('sample', '--checkpoint', ck, '--n', '50', '--steps-per-level', '5', '--out', 'd.npy');
    expect(fs.readFileSync(path.join(dir, 'd.npy'))).toEqual(fs.readFileSync(path.join(dir, 'a.npy')));
    // --no-graphs changes how a GPU launches a step, never the samples (test/graphs.test.ts)
    expect(cli('sample', '--checkpoint', ck, '--n', '50', '--steps-per-level', '5', '--no-graphs', '--out', 'e.npy').code).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'e.npy'))).toEqual(fs.readFileSync(path.join(dir, 'a.npy')));
  });

  it('samples by predictor-corrector and records the particles as an animated GIF', () => {
    const ck = path.join(run, 'checkpoint.safetensors');
    const r = cli('sample', '--checkpoint', ck, '--n', '300', '--steps-per-level', '10', '--sampler', 'pc', '--snr', '0.2',
      '--out', 'pc.png', '--animate', 'anim/pc.gif', '--frames', '20');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['pc.png', 'anim/pc.gif']);
    const gif = fs.readFileSync(path.join(dir, 'anim', 'pc.gif'));
    expect(gif.subarray(0, 6).toString()).toBe('GIF89a');
    // 10 levels × 10 steps in frames of 5 steps, and the start: 21 frames
    expect(gifFrameCount(gif)).toBe(21);
    expect(PNG.sync.read(fs.readFileSync(path.join(dir, 'pc.png'))).width).toBe(800);
    const a = cli('sample', '--checkpoint', ck, '--n', '50', '--steps-per-level', '10', '--step-lr', 'auto', '--out', 'auto.npy');
    expect(a.code).toBe(0);
    expect(a.stderr).toMatch(/ε = 0\.\d+: ε for T = 10 steps per level \(NCSNv2 Technique 4\)/);
  });

  it('trains on a user .npy file of any dimension', () => {
    const data = new Float32Array(3 * 400).map((_, i) => Math.sin(i) * 3);
    fs.writeFileSync(path.join(dir, 'points.npy'), writeNpy(data, [400, 3]));
    const r = cli('train', '--data', 'points.npy', '--steps', '50', '--no-graphs', '--out', 'run3');
    expect(r.code).toBe(0);
    expect(parseNpy(fs.readFileSync(path.join(dir, 'run3', 'samples.npy')), 's.npy').cols).toBe(3);
  });

  it('takes an .npy of (H, W) arrays as images: denoised by default, drawn as a grid, filmed as one', () => {
    // 300 images of 8×8: one bright bar, a row for even images and a column for odd ones
    const bars = new Float32Array(300 * 64);
    for (let i = 0; i < 300; i++)
      for (let j = 0; j < 8; j++) bars[i * 64 + (i % 2 ? 8 * j + (i % 6) + 1 : 8 * ((i % 6) + 1) + j)] = 1;
    fs.writeFileSync(path.join(dir, 'bars.npy'), writeNpy(bars, [300, 8, 8]));
    const r = cli('train', '--data', 'bars.npy', '--steps', '50', '--out', 'runimg');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/300 images of 1×8×8, values 0 \(black\) to 1 \(white\)/);
    expect(r.stderr).toMatch(/denoised, as NCSNv2 does for images/);
    const ck = path.join(dir, 'runimg', 'checkpoint.safetensors');
    const config = readConfig(ck);
    expect(config.image).toEqual({ channels: 1, height: 8, width: 8, low: 0, high: 1 });
    expect(config.sampling.denoise).toBe(true);
    expect(parseNpy(fs.readFileSync(path.join(dir, 'runimg', 'samples.npy')), 's.npy')).toMatchObject({ rows: 64, shape: [8, 8] });
    // 64 images: 8 columns of 8·11 px with gaps of 6
    expect(PNG.sync.read(fs.readFileSync(path.join(dir, 'runimg', 'samples.png'))).width).toBe(80 + 8 * 88 + 7 * 6);

    const s = cli('sample', '--checkpoint', ck, '--n', '16', '--steps-per-level', '2', '--out', 'img.png', '--animate', 'img.gif', '--frames', '10');
    expect(s.code).toBe(0);
    // 16 images: 4 columns of 8·22 px with gaps of 11
    expect(PNG.sync.read(fs.readFileSync(path.join(dir, 'img.png'))).width).toBe(80 + 4 * 176 + 3 * 11);
    // 10 levels × 2 steps in frames of 2 steps, and the start
    expect(gifFrameCount(fs.readFileSync(path.join(dir, 'img.gif')))).toBe(11);
    expect(cli('sample', '--checkpoint', ck, '--n', '5', '--steps-per-level', '2', '--out', 'img.npy').code).toBe(0);
    expect(parseNpy(fs.readFileSync(path.join(dir, 'img.npy')), 'img.npy')).toMatchObject({ rows: 5, cols: 64, shape: [8, 8] });

    const plain = cli('train', '--data', 'bars.npy', '--steps', '10', '--no-denoise', '--out', 'runimg2');
    expect(plain.code).toBe(0);
    expect(plain.stderr).not.toMatch(/denoised/);
    expect(readConfig(path.join(dir, 'runimg2', 'checkpoint.safetensors')).sampling.denoise).toBe(false);
  });

  it('refuses an animation it cannot draw', () => {
    expectRejected(cli('sample', '--checkpoint', path.join(run, 'checkpoint.safetensors'), '--animate', 'a.mp4'), /--animate a\.mp4: the extension must be \.gif/);
    expectRejected(cli('sample', '--checkpoint', path.join(dir, 'run3', 'checkpoint.safetensors'), '--animate', 'a.gif'), /--animate draws 2-D particles or images, and this model's data is 3-D/);
    expectRejected(cli('sample', '--checkpoint', path.join(dir, 'run3', 'checkpoint.safetensors'), '--out', 'a.png'), /--out a\.png: a \.png draws 2-D points or images, and this model's data is 3-D/);
  });

  it('chooses σ_1 by NCSNv2 Technique 1 on request and says so', () => {
    const r = cli('train', '--sigma-begin', 'auto', '--steps', '10', '--ema', '0.9', '--out', 'auto');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/σ_1 is the largest distance between training points \(NCSNv2 Technique 1\)/);
    expect(r.stderr).toMatch(/EMA 0\.9 /);
    const config = readConfig(path.join(dir, 'auto', 'checkpoint.safetensors'));
    // two points of N((±5, ±5), I) lie about 14 apart, the farthest of 2,000 a few units more
    expect(config.sigmas[0]).toBeGreaterThan(15);
    expect(config.sigmas[0]).toBeLessThan(25);
    expect(config.emaDecay).toBe(0.9);
  });

  it('chooses L by Technique 2 and ε by Technique 4 on request and says why', () => {
    // in 2-D neighbouring shells overlap at any ratio, so Technique 2 keeps the default and says so
    const flat = cli('train', '--levels', 'auto', '--step-lr', 'auto', '--steps', '10', '--out', 'auto2');
    expect(flat.code).toBe(0);
    expect(flat.stderr).toMatch(/L = 10, the default: /);
    expect(flat.stderr).toMatch(/ε for T = 100 steps per level \(NCSNv2 Technique 4\)/);
    const config2 = readConfig(path.join(dir, 'auto2', 'checkpoint.safetensors'));
    expect(config2.sampling.stepLr).toBeCloseTo(stepLrForLevels(config2.sigmas, 100).stepLr, 12);
    // in 64-D it sets L
    const data = new Float32Array(64 * 300).map((_, i) => Math.sin(i * 0.37) * 2);
    fs.writeFileSync(path.join(dir, 'wide.npy'), writeNpy(data, [300, 64]));
    const wide = cli('train', '--data', 'wide.npy', '--levels', 'auto', '--steps', '10', '--steps-per-level', '5', '--out', 'auto64');
    expect(wide.code).toBe(0);
    const config = readConfig(path.join(dir, 'auto64', 'checkpoint.safetensors'));
    const t2 = levelsForOverlap(64, config.sigmas[0], config.sigmas.at(-1));
    expect(t2.levels).not.toBeNull();
    expect(config.sigmas).toHaveLength(t2.levels as number);
    expect(wide.stderr).toMatch(new RegExp(`L = ${t2.levels} keeps neighbouring levels' noise shells overlapping`));
  });

  it("prints a toy's measure after training and after sampling, with its defaults in the log", () => {
    const r = cli('train', '--data', 'toy:checkerboard', '--steps', '200', '--out', 'board');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/model: mlp \(width 128, 4 hidden layers: sin, then softplus\)/);
    expect(r.stderr).toMatch(/12 geometric levels from 8 to 0\.1; .*denoised, toy:checkerboard's default/);
    expect(r.stderr).toMatch(/\d+\.\d % of the samples in the dark squares; each dark square holds \d+\.\d %–\d+\.\d % of those \(truth 12\.5 %, worst \d+\.\d points off\)/);
    const s = cli('sample', '--checkpoint', path.join(dir, 'board', 'checkpoint.safetensors'), '--n', '500', '--out', 'board.csv');
    expect(s.code).toBe(0);
    expect(s.stderr).toMatch(/% of the samples in the dark squares/);
  });

  it('reproduces Figure 3 with the exact score and no training', () => {
    const r = cli('train', '--model', 'exact:mixture', '--out', 'exact');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\(5,5\) mode: 0\.7[5-9]\d/);
  });
});

describe('bad input', () => {
  it('rejects every invalid flag value with a clear message', () => {
    expectRejected(cli('train', '--steps', '-5'), /option '--steps <n>' argument '-5' is invalid\. It must be a positive integer/);
    expectRejected(cli('train', '--steps', 'many'), /--steps <n>.*It must be a positive integer/);
    expectRejected(cli('train', '--batch-size', '0'), /--batch-size <n>.*positive integer/);
    expectRejected(cli('train', '--lr', '0'), /--lr <x>.*positive number/);
    expectRejected(cli('train', '--levels', '1.5'), /--levels <n>.*positive integer/);
    expectRejected(cli('train', '--seed', '-1'), /--seed <n>.*integer ≥ 0/);
    expectRejected(cli('train', '--sigma-begin', 'abc'), /--sigma-begin <x>.*positive number/);
    expectRejected(cli('train', '--sigma-end', '30'), /--sigma-end \(30\) must be smaller than σ_1 \(20, toy:mixture's default\)/);
    expectRejected(cli('train', '--levels', '1'), /--levels <n>.*It must be an integer ≥ 2, or auto/);
    expectRejected(cli('train', '--ema', '1'), /--ema <decay>.*It must be a number in \[0, 1\)/);
    expectRejected(cli('train', '--lr', 'auto'), /--lr <x>.*this option has no auto/);
    expectRejected(cli('train', '--sampler', 'ode'), /argument 'ode' is invalid\. Allowed choices are ald, pc/);
    expectRejected(cli('sample', '--checkpoint', 'x.safetensors', '--snr', '0'), /--snr <x>.*positive number/);
    expectRejected(cli('sample', '--checkpoint', 'x.safetensors', '--frames', '0'), /--frames <n>.*positive integer/);
    expectRejected(cli('train', '--data', 'toy:nope'), /unknown toy dataset 'toy:nope'/);
    expectRejected(cli('train', '--data', 'missing.npy'), /cannot read missing\.npy: no such file/);
    expectRejected(cli('train', '--data', 'points.txt'), /unknown data 'points\.txt'/);
    expectRejected(cli('train', '--model', 'resnet'), /argument 'resnet' is invalid\. Allowed choices are mlp, unet, exact:mixture/);
    expectRejected(cli('train', '--device', 'gpu'), /--device <device>.*It must be auto, cpu, cuda or cuda:N/);
    expectRejected(cli('train', '--model', 'exact:mixture', '--data', 'toy:moons'), /exact score of toy:mixture/);
    expectRejected(cli('train', '--bogus'), /unknown option '--bogus'/);
    expectRejected(cli('sample', '--checkpoint', 'x.safetensors', '--no-graphs=yes'), /unknown option '--no-graphs=yes'/);
    expectRejected(cli('train', '--graphs'), /unknown option '--graphs'.*\n.*--no-graphs/);
    expectRejected(cli('sample'), /required option '--checkpoint <file>' not specified/);
    expectRejected(cli('sample', '--checkpoint', 'none.safetensors'), /cannot read checkpoint none\.safetensors: no such file/);
    fs.writeFileSync(path.join(dir, 'junk.safetensors'), 'junk');
    expectRejected(cli('sample', '--checkpoint', 'junk.safetensors'), /not a valid checkpoint/);
    expectRejected(cli('sample', '--checkpoint', 'x.safetensors', '--out', 'x.txt'), /extension must be one of \.npy, \.csv, \.png/);
    expectRejected(cli('sample', '--checkpoint', 'x.safetensors', '--step-lr', '-1'), /--step-lr <x>.*positive number/);
    expectRejected(cli('bench', '--workload', 'w9'), /Allowed choices are w1, w2/);
    expectRejected(cli('frobnicate'), /unknown command 'frobnicate'/);
  });

  it('rejects a broken data file with its line', () => {
    fs.writeFileSync(path.join(dir, 'bad.csv'), 'x,y\n1,2\n3\n');
    expectRejected(cli('train', '--data', 'bad.csv'), /bad\.csv:3: expected 2 fields but found 1/);
  });
});

describe('ncsn-cuda info and bench', () => {
  it('prints the version and backends', () => {
    const r = cli('info');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ncsn-cuda \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/backends: cpu/);
    expect(JSON.parse(cli('info', '--json').stdout).backends).toContain('cpu');
  });

  it('prints the W1 figures as one JSON line', () => {
    const r = cli('bench', '--workload', 'w1', '--device', 'cpu', '--repeats', '1');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ workload: 'w1', device: 'cpu', train_batch: 512, sample_batch: 10_000, forward_mflop_per_sample: 0.034 });
    expect(j.train_steps_per_s).toBeGreaterThan(0);
    expect(j.sample_particle_steps_per_s).toBeGreaterThan(0);
    // the arithmetic rate beside the measured FMA ceiling: a fraction, which a wrong count would push past 1
    expect(j.fma_peak_gflop_per_s).toBeGreaterThan(0);
    for (const f of [j.train_fraction_of_peak, j.sample_fraction_of_peak]) {
      expect(f).toBeGreaterThan(0);
      expect(f).toBeLessThan(1);
    }
  });
});
