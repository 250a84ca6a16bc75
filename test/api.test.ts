// The library API: training, checkpoints, cancellation, validation.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';

import { NcsnModel, loadDataset, geometricSigmas, CheckpointError, info } from '../src/index.js';

const W1_SIGMAS = geometricSigmas(20, 1, 10);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-api-'));

describe('the library API', () => {
  it('reports the native core', () => {
    const i = info();
    expect(i.backends).toContain('cpu');
    expect(i.threads).toBeGreaterThan(0);
  });

  it('builds the W1 model with 19,714 parameters', () => {
    const model = NcsnModel.create({ sigmas: W1_SIGMAS });
    expect(model.paramCount).toBe(19_714);
    expect(model.backend).toBe('cpu');
    const names = model.tensors().map((t) => t.name);
    expect(names).toContain('fc1.level_bias');
    expect(names).toContain('ema.out.weight');
    expect(names).toContain('optimizer.exp_avg_sq.fc2.weight');
    const w2 = model.tensors().find((t) => t.name === 'fc2.weight')!;
    expect(w2.shape).toEqual([128, 128]);
    // PyTorch's default init: U(±1/√fan_in)
    const bound = 1 / Math.sqrt(128);
    expect(Math.max(...w2.data.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w2.data.map(Math.abs))).toBeGreaterThan(0.95 * bound);
    expect(model.tensors().find((t) => t.name === 'fc2.level_bias')!.data.every((v) => v === 0)).toBe(true);
  });

  it('trains with progress reports whose loss falls', async () => {
    const data = loadDataset('toy:mixture', { seed: 0, toySize: 10_000 });
    const model = NcsnModel.create({ sigmas: W1_SIGMAS, seed: 1 });
    const reports: { step: number; loss: number; levelLoss: (number | null)[] }[] = [];
    const r = await model.train(data, { steps: 600, batchSize: 128, reportEvery: 100, onProgress: (p) => reports.push(p) });
    expect(r).toEqual({ steps: 600, step: 600, cancelled: false });
    expect(reports.map((p) => p.step)).toEqual([100, 200, 300, 400, 500, 600]);
    expect(reports[0].levelLoss).toHaveLength(10);
    // with s ≡ 0 the loss is D/2 = 1; the learned score brings it well below
    expect(reports[5].loss).toBeLessThan(reports[0].loss);
    expect(reports[5].loss).toBeLessThan(0.9);
  });

  it('saves and loads a checkpoint that continues exactly', async () => {
    const dir = tmp();
    const data = loadDataset('toy:mixture', { seed: 0, toySize: 5_000 });
    const a = NcsnModel.create({ sigmas: W1_SIGMAS, seed: 2 });
    await a.train(data, { steps: 50 });
    a.save(path.join(dir, 'ck.safetensors'));
    const b = NcsnModel.load(path.join(dir, 'ck.safetensors'));
    expect(b.step).toBe(50);
    expect(b.config).toEqual(a.config);
    for (const [ta, tb] of a.tensors().map((t, i) => [t, b.tensors()[i]])) expect(tb.data).toEqual(ta.data);
    await a.train(data, { steps: 30 });
    await b.train(data, { steps: 30 });
    for (const [ta, tb] of a.tensors().map((t, i) => [t, b.tensors()[i]])) expect(tb.data).toEqual(ta.data);
    expect(await b.sample({ n: 100, stepsPerLevel: 5, seed: 1 })).toEqual(await a.sample({ n: 100, stepsPerLevel: 5, seed: 1 }));
  });

  it('saves and loads a model with a sin first layer, its tensors named for it', async () => {
    const dir = tmp();
    const data = loadDataset('toy:rings', { seed: 0, toySize: 5_000 });
    const a = NcsnModel.create({ sigmas: W1_SIGMAS, depth: 3, firstLayer: 'sin', seed: 3 });
    expect(a.tensors().map((t) => t.name).slice(0, 4)).toEqual(['sin1.weight', 'sin1.bias', 'sin1.level_bias', 'fc2.weight']);
    // frequencies from U(±3) per coordinate and phases from U(±π), not a linear layer's U(±1/√2)
    const w = a.tensors()[0].data;
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(2.5);
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(3);
    await a.train(data, { steps: 50 });
    a.save(path.join(dir, 'sin.safetensors'));
    const b = NcsnModel.load(path.join(dir, 'sin.safetensors'));
    expect(b.config.firstLayer).toBe('sin');
    expect(b.config).toEqual(a.config);
    const points = new Float32Array([0.5, -1, 2, 3]);
    expect(b.score(points, 9)).toEqual(a.score(points, 9));
    // W1's network keeps its softplus first layer unless asked
    expect(NcsnModel.create({ sigmas: W1_SIGMAS, depth: 3, seed: 3 }).config.firstLayer).toBe('softplus');
  });

  it('rejects broken checkpoints with the reason', () => {
    const dir = tmp();
    const file = path.join(dir, 'ck.safetensors');
    NcsnModel.create({ sigmas: W1_SIGMAS }).save(file);
    const whole = fs.readFileSync(file);
    fs.writeFileSync(file, whole.subarray(0, whole.length - 100));
    expect(() => NcsnModel.load(file)).toThrow(/truncated/);
    fs.writeFileSync(file, 'hello, this is not a checkpoint at all');
    expect(() => NcsnModel.load(file)).toThrow(CheckpointError);
    expect(() => NcsnModel.load(path.join(dir, 'missing.safetensors'))).toThrow(/no such file/);
    // a checkpoint of another shape: the config says width 64 but the tensors are width 128
    const header = whole.readBigUInt64LE(0);
    const json = whole.subarray(8, 8 + Number(header)).toString();
    const edited = json.replace('\\"width\\":128', '\\"width\\":64 ');
    fs.writeFileSync(file, Buffer.concat([whole.subarray(0, 8), Buffer.from(edited), whole.subarray(8 + Number(header))]));
    expect(() => NcsnModel.load(file)).toThrow(/tensor 'fc1\.weight' is \[128, 2\] but the config \(width 64, .*\) needs \[64, 2\]/);
  });

  it('stops training when aborted and keeps a usable model', async () => {
    const data = loadDataset('toy:mixture', { seed: 0, toySize: 5_000 });
    const model = NcsnModel.create({ sigmas: W1_SIGMAS });
    const ctl = new AbortController();
    const r = await model.train(data, {
      steps: 100_000,
      reportEvery: 10,
      signal: ctl.signal,
      onProgress: (p) => {
        if (p.step >= 30) ctl.abort();
      },
    });
    expect(r.cancelled).toBe(true);
    expect(r.step).toBeGreaterThanOrEqual(30);
    expect(r.step).toBeLessThan(100_000);
    expect((await model.sample({ n: 10, stepsPerLevel: 2 })).length).toBe(20);
  });

  it('rejects bad arguments with clear errors and never crashes', async () => {
    expect(() => NcsnModel.create({ sigmas: [1, 2] })).toThrow(/decreasing/);
    expect(() => NcsnModel.create({ sigmas: W1_SIGMAS, width: 0 })).toThrow(/width/);
    expect(() => NcsnModel.create({ sigmas: W1_SIGMAS, lr: -1 })).toThrow(/lr/);
    const image = { channels: 1, height: 3, width: 3, low: 0, high: 1 };
    expect(() => NcsnModel.create({ sigmas: W1_SIGMAS, image })).toThrow(/image 1×3×3 does not lay out dataDim = 2 values/);
    expect(() => NcsnModel.create({ sigmas: W1_SIGMAS, dataDim: 9, image: { ...image, low: 1 } })).toThrow(/low < high/);
    expect(NcsnModel.create({ sigmas: W1_SIGMAS, dataDim: 9, image }).config.image).toEqual(image);
    const model = NcsnModel.create({ sigmas: W1_SIGMAS });
    const data = loadDataset('toy:mixture', { seed: 0, toySize: 1000 });
    await expect(model.train({ data: new Float32Array(9), rows: 3, dim: 3 }, { steps: 1 })).rejects.toThrow(/dimension/);
    await expect(model.train(data, { steps: -1 })).rejects.toThrow(/steps/);
    await expect(model.sample({ n: 0 })).rejects.toThrow(/'n'/);
    const nan = new Float32Array(data.data);
    nan[7] = NaN;
    await expect(model.train({ data: nan, rows: data.rows, dim: 2 }, { steps: 1 })).rejects.toThrow(/non-finite value at row 3/);
    const running = model.train(data, { steps: 200 });
    await expect(model.sample({ n: 10 })).rejects.toThrow(/busy/);
    await running;
  });

  it('stops a diverging run with the step and level', async () => {
    const data = loadDataset('toy:mixture', { seed: 0, toySize: 1000 });
    const model = NcsnModel.create({ sigmas: W1_SIGMAS, lr: 1e30 });
    await expect(model.train(data, { steps: 100 })).rejects.toThrow(/diverged: non-finite loss at step \d+, noise level \d/);
  });
});
