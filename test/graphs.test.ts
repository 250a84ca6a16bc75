// The `graphs` backend option: a training step, and a sampling step of the op-by-op path, recorded
// once as a CUDA graph and replayed. It is a way of launching, not a part of the model: the
// results are the same bit for bit either way, checkpoints do not hold it, and model.graphReplays
// says which path ran. The CPU records nothing; the GPU half is skipped here with the reason.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { NcsnModel, geometricSigmas, info, readCheckpoint, type ModelOptions } from '../src/index.js';

const gpus = info().devices.filter((d) => d.usable);
if (gpus.length === 0) console.log(`GPU graph tests skipped: ${info().cuda.problem}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-graphs-'));
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

// 8×8 images: the top half bright for even rows, the bottom half for odd ones
function halves(n: number): Float32Array {
  const data = new Float32Array(n * 64);
  for (let i = 0; i < n; i++) for (let j = 0; j < 64; j++) data[i * 64 + j] = j < 32 === (i % 2 === 0) ? 1 : 0;
  return data;
}

const mlp: ModelOptions = { sigmas: geometricSigmas(4, 0.5, 3), width: 16, depth: 2, seed: 3 };
const unet: ModelOptions = {
  model: 'unet',
  channels: 4,
  image: { channels: 1, height: 8, width: 8, low: 0, high: 1 },
  dataDim: 64,
  sigmas: geometricSigmas(1, 0.01, 3),
  seed: 3,
};
const points = { data: new Float32Array(64 * 2).map((_, i) => Math.sin(i) * 3), rows: 64, dim: 2 };
const images = { data: halves(32), rows: 32, dim: 64 };

interface Run {
  replays: { train: number; ald: number; pc: number };
  weights: Float32Array[];
  ald: Float32Array;
  pc: Float32Array;
}

// Trains a few steps, then samples by ald op by op (fused: false, the path that records) and by pc,
// counting the replays each part adds.
async function run(options: ModelOptions, data: typeof points, graphs: boolean): Promise<Run> {
  const model = NcsnModel.create({ ...options, graphs });
  try {
    const start = model.graphReplays;
    await model.train(data, { steps: 5, batchSize: 16 });
    const trained = model.graphReplays;
    const ald = await model.sample({ n: 12, stepsPerLevel: 4, stepLr: 1e-3, denoise: true, fused: false, seed: 7 });
    const sampled = model.graphReplays;
    const pc = await model.sample({ n: 12, stepsPerLevel: 4, sampler: 'pc', denoise: true, seed: 7 });
    return {
      replays: { train: trained - start, ald: sampled - trained, pc: model.graphReplays - sampled },
      weights: model.tensors().map((t) => t.data),
      ald,
      pc,
    };
  } finally {
    model.dispose();
  }
}

function expectSameBits(on: Run, off: Run) {
  expect(on.weights.length).toBe(off.weights.length);
  on.weights.forEach((w, t) => expect(bytes(w).equals(bytes(off.weights[t])), `tensor ${t}`).toBe(true));
  expect(bytes(on.ald).equals(bytes(off.ald)), 'ald samples').toBe(true);
  expect(bytes(on.pc).equals(bytes(off.pc)), 'pc samples').toBe(true);
}

describe('the graphs option', () => {
  it('is true or false, said plainly otherwise', () => {
    expect(() => NcsnModel.create({ ...mlp, device: 'cpu', graphs: 'no' as unknown as boolean })).toThrow(
      new TypeError('graphs is "no"; it must be true or false'),
    );
    const file = path.join(dir, 'model.safetensors');
    NcsnModel.create({ ...mlp, device: 'cpu' }).save(file);
    expect(() => NcsnModel.load(file, { device: 'cpu', graphs: 1 as unknown as boolean })).toThrow(
      new TypeError('graphs is 1; it must be true or false'),
    );
  });

  it('is a backend option that checkpoints do not hold', () => {
    const on = path.join(dir, 'on.safetensors'), off = path.join(dir, 'off.safetensors');
    NcsnModel.create({ ...mlp, device: 'cpu', graphs: true }).save(on);
    NcsnModel.create({ ...mlp, device: 'cpu', graphs: false }).save(off);
    expect(JSON.parse(readCheckpoint(on).metadata.config)).not.toHaveProperty('graphs');
    expect(fs.readFileSync(off)).toEqual(fs.readFileSync(on));
    expect(NcsnModel.load(off, { device: 'cpu', graphs: false }).graphReplays).toBe(0);
  });

  // Both settings reach the addon (it requires the value: test/config.test.ts), and the CPU records
  // nothing, so both give the same results and no replays.
  it('records nothing on the CPU, where on and off give the same results', async () => {
    const cpu = { ...mlp, device: 'cpu' as const, threads: 2 };
    const on = await run(cpu, points, true), off = await run(cpu, points, false);
    expect(on.replays).toEqual({ train: 0, ald: 0, pc: 0 });
    expect(off.replays).toEqual({ train: 0, ald: 0, pc: 0 });
    expectSameBits(on, off);
  });
});

describe.skipIf(gpus.length === 0)('the graphs option on the GPU', () => {
  // Every step of training, of the op-by-op ald and of pc's correctors runs from a graph
  // (native/tests/cuda_parity.cpp holds the U-Net's to plain launches too).
  for (const [name, options, data] of [['the U-Net', unet, images], ['the MLP', mlp, points]] as const) {
    it(`gives ${name} the same weights and samples bit for bit with graphs on and off, and replays with them on`, async () => {
      const cuda = { ...options, device: 'cuda' as const };
      const on = await run(cuda, data, true), off = await run(cuda, data, false);
      expect(on.replays).toEqual({ train: 5, ald: 3 * 4, pc: 3 * 4 });
      expect(off.replays).toEqual({ train: 0, ald: 0, pc: 0 });
      expectSameBits(on, off);
    });
  }
});
