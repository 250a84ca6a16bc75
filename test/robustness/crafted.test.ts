// Crafted and huge values: checkpoints whose config lies about the model, sizes whose arithmetic
// would wrap, and counts that would allocate without bound. Each is one clear error, found before
// anything large is allocated, and never a crash.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { NcsnModel, CheckpointError, geometricSigmas, LIMITS } from '../../src/index.js';
import { readCheckpoint, writeCheckpoint } from '../../src/checkpoint.js';
import { renderLines } from '../../src/render/lines.js';

const bin = path.resolve(__dirname, '..', '..', 'bin', 'ncsn-cuda.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-crafted-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NCSN_DEBUG: '' } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function expectRefused(r: ReturnType<typeof cli>, message: RegExp) {
  expect(r.signal, 'the process was killed (a crash, or still working at the timeout)').toBeNull();
  expect(r.code).toBe(1);
  const last = r.stderr.trim().split('\n').pop() ?? '';
  expect(last).toMatch(/^ncsn-cuda: /);
  expect(last).toMatch(message);
}

const small = { sigmas: [4, 2, 1], width: 8, depth: 1, device: 'cpu' as const, threads: 1 };

// A checkpoint of a small model whose config has `change` applied; tensors untouched.
function craft(name: string, change: (config: Record<string, unknown>) => void): string {
  const base = path.join(dir, 'base.safetensors');
  if (!fs.existsSync(base)) NcsnModel.create(small).save(base);
  const { tensors, metadata } = readCheckpoint(base);
  const config = JSON.parse(metadata.config) as Record<string, unknown>;
  change(config);
  const file = path.join(dir, `${name}.safetensors`);
  writeCheckpoint(file, tensors, { ...metadata, config: JSON.stringify(config) });
  return file;
}

describe('a crafted checkpoint config', () => {
  const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
    ['width 2^52', (c) => (c.width = 2 ** 52), /config\.width is 4503599627370496; it must be an integer from 1 to 65,536/],
    ['width 10,000 against width-8 tensors', (c) => (c.width = 10_000), /tensor 'fc1\.weight' is \[8, 2\] but the config \(width 10000, depth 1, dataDim 2, 3 levels\) needs \[10000, 2\]/],
    ['depth 1e9', (c) => (c.depth = 1e9), /config\.depth is 1000000000; it must be an integer from 1 to 1,000/],
    ['depth 2 against one hidden layer', (c) => (c.depth = 2), /needs a tensor 'fc2\.weight' that the file does not have/],
    ['an unknown first layer', (c) => (c.firstLayer = 'tanh'), /config\.firstLayer is "tanh"; it must be "softplus" or "sin"/],
    ['a sin first layer against softplus tensors', (c) => (c.firstLayer = 'sin'), /the config \(width 8, depth 1, sin first layer, dataDim 2\) needs a tensor 'sin1\.weight' that the file does not have/],
    ['one level fewer than the tensors', (c) => (c.sigmas = [4, 2]), /tensor 'fc1\.level_bias' is \[3, 8\] but the config .* needs \[2, 8\]/],
    ['stepsPerLevel 1e15', (c) => ((c.sampling as Record<string, unknown>).stepsPerLevel = 1e15), /config\.sampling\.stepsPerLevel is 1000000000000000; it must be an integer from 1 to 1,000,000/],
    ['a negative learning rate', (c) => (c.lr = -1), /config\.lr is -1; it must be a positive number/],
    ['increasing noise levels', (c) => (c.sigmas = [1, 2, 4]), /config\.sigmas\[1\] is 2; the noise levels must be finite, positive and strictly decreasing/],
    ['10,001 noise levels', (c) => (c.sigmas = Array.from({ length: 10_001 }, (_, i) => 10_001 - i)), /config\.sigmas is a list of 10001 values; it must be a list of 1 to 10,000 noise levels/],
    ['a dataDim that the image does not lay out', (c) => (c.image = { channels: 1, height: 3, width: 3, low: 0, high: 1 }), /config\.image 1×3×3 does not lay out dataDim = 2 values/],
    ['model "unet" without an image', (c) => (c.model = 'unet'), /config\.image is missing, and model "unet" needs it/],
    ['an unknown model kind', (c) => (c.model = 'gan'), /config\.model is "gan"; it must be "mlp", "unet" or "exact:mixture"/],
  ];
  for (const [what, change, message] of cases) {
    it(`is refused with the file named: ${what}`, () => {
      const file = craft(what.replace(/\W+/g, '-'), change);
      let error: unknown;
      try {
        NcsnModel.load(file, { device: 'cpu' });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as Error).message.startsWith(`${file}: `)).toBe(true);
      expect((error as Error).message).toMatch(message);
    });
  }

  it('is refused by the command line in one line, for sample and for plot', () => {
    const file = craft('cli-width', (c) => (c.width = 2 ** 52));
    expectRefused(cli('sample', '--checkpoint', file, '--device', 'cpu', '--out', 'x.npy'), /config\.width is 4503599627370496/);
    const run = path.join(dir, 'crafted-run');
    fs.mkdirSync(run, { recursive: true });
    fs.copyFileSync(file, path.join(run, 'checkpoint.safetensors'));
    fs.writeFileSync(path.join(run, 'log.jsonl'), `${JSON.stringify({ step: 1, loss: 1, level_loss: [1, 1, 1], steps_per_s: 1 })}\n`);
    expectRefused(cli('plot', run), /config\.width is 4503599627370496/);
  });

  it('still loads when it is the model it says', () => {
    const file = craft('honest', () => {});
    expect(NcsnModel.load(file, { device: 'cpu' }).paramCount).toBe(NcsnModel.create(small).paramCount);
  });
});

describe('NcsnModel.create with sizes past the limits', () => {
  it('refuses each before allocating, naming the size and its limit', () => {
    expect(() => NcsnModel.create({ ...small, width: 2 ** 52 })).toThrow('width is 4503599627370496; it must be an integer from 1 to 65,536');
    expect(() => NcsnModel.create({ ...small, depth: 1e9 })).toThrow('depth is 1000000000; it must be an integer from 1 to 1,000');
    expect(() => NcsnModel.create({ ...small, dataDim: 2 ** 40 })).toThrow('dataDim is 1099511627776; it must be an integer from 1 to 16,777,216');
    expect(() => NcsnModel.create({ ...small, width: 65_536, depth: 1_000 })).toThrow(/the model is too large/);
    expect(() => geometricSigmas(20, 1, 1e9)).toThrow('the number of noise levels must be an integer from 2 to 10,000 (got 1000000000)');
    expect(LIMITS.levels).toBe(10_000);
  });

  it('refuses a batch and a sample too large to address, before any step', async () => {
    const model = NcsnModel.create(small);
    const data = { data: new Float32Array([0, 0, 1, 1, 2, 2]), rows: 3, dim: 2 };
    await expect(model.train(data, { steps: 1, batchSize: 2 ** 40 })).rejects.toThrow(
      /a batch of 1099511627776 points of dimension 2 is too large/,
    );
    expect(model.step).toBe(0);
    await expect(model.sample({ n: 2 ** 31 })).rejects.toThrow(/2147483648 samples of dimension 2 is too large/);
    await expect(model.sample({ stepsPerLevel: 1e15 })).rejects.toThrow('stepsPerLevel is 1000000000000000; it must be an integer from 1 to 1,000,000');
  });
});

describe('huge counts on the command line', () => {
  it('refuses --levels, --steps-per-level, --batch-size and --n beyond the limits before any work', () => {
    // the option parser's refusals end with its "(run with --help for usage)"
    for (const [args, message] of [
      [['--levels', '1000000000'], /--levels <n>.*at most 10,000 levels/],
      [['--steps-per-level', '1000000000000000'], /--steps-per-level <n>.*from 1 to 1,000,000/],
    ] as const) {
      const r = cli('train', ...args, '--device', 'cpu');
      expect(r.signal).toBeNull();
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
    }
    expectRefused(
      cli('train', '--batch-size', '4000000000', '--steps', '100000000', '--device', 'cpu', '--out', 'big-batch'),
      /batchSize is 4000000000; it must be an integer from 1 to 2,147,483,647/,
    );
    const checkpoint = path.join(dir, 'base.safetensors');
    if (!fs.existsSync(checkpoint)) NcsnModel.create(small).save(checkpoint);
    expectRefused(cli('sample', '--checkpoint', checkpoint, '--n', '4000000000', '--device', 'cpu'), /4000000000 samples of dimension 2 is too large/);
  });
});

describe('the loss chart of a log whose lines all have one step', () => {
  it('draws, as the chart and as ncsn-cuda plot', () => {
    const png = renderLines({ series: [{ label: 'one', xs: [7, 7], ys: [1, 2], rgb: [0, 0, 0] }] });
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    const run = path.join(dir, 'one-step');
    fs.mkdirSync(run, { recursive: true });
    const line = JSON.stringify({ step: 1, loss: 0.5, level_loss: [0.5, null], steps_per_s: 10 });
    fs.writeFileSync(path.join(run, 'log.jsonl'), `${line}\n${line}\n`);
    const r = cli('plot', run);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(run, 'loss.png'))).toBe(true);
  });

  it('draws a long log without spreading it into Math.min', () => {
    const xs = Array.from({ length: 300_000 }, (_, i) => i);
    const png = renderLines({ series: [{ label: 'long', xs, ys: xs.map((x) => 1 + 1 / (x + 1)), rgb: [0, 0, 0] }] });
    expect(png.length).toBeGreaterThan(0);
  });

  it('ends a one-step training run with its pictures', () => {
    const r = cli('train', '--steps', '1', '--device', 'cpu', '--out', 'train-one-step');
    expect(r.signal).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, 'train-one-step', 'loss.png'))).toBe(true);
  });
});
