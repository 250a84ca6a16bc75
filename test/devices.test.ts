// One addon everywhere: 'auto' takes a usable GPU or falls back to the CPU with a notice, 'cuda'
// without one is a clear error. (W1 on the GPU is in test/quality.test.ts.)
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it, expect } from 'vitest';

import { NcsnModel, info, geometricSigmas } from '../src/index.js';

const gpus = info().devices.filter((d) => d.usable);
const bin = path.resolve(__dirname, '..', 'bin', 'ncsn-cuda.js');
if (gpus.length === 0) console.log(`GPU tests skipped: ${info().cuda.problem}`);

describe('device selection', () => {
  it('auto picks the GPU when one is usable, else the CPU with the reason', () => {
    const model = NcsnModel.create({ sigmas: [2, 1], device: 'auto' });
    if (gpus.length > 0) {
      expect(model.backend).toBe(`cuda:${gpus[0].index}`);
      expect(model.backendNotice).toBeNull();
    } else {
      expect(model.backend).toBe('cpu');
      expect(model.backendNotice).toMatch(/using the CPU/);
    }
    expect(NcsnModel.create({ sigmas: [2, 1], device: 'cpu' }).backendNotice).toBeNull();
  });

  it.skipIf(gpus.length > 0)('refuses --device cuda without a usable GPU, saying why', () => {
    expect(() => NcsnModel.create({ sigmas: [2, 1], device: 'cuda' })).toThrow(/cuda/);
    const r = spawnSync(process.execPath, [bin, 'train', '--device', 'cuda', '--steps', '1'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^ncsn-cuda: --device cuda: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('names a GPU index that does not exist', () => {
    expect(() => NcsnModel.create({ sigmas: [2, 1], device: 'cuda:99' })).toThrow(/cuda/);
  });
});

describe('precision', () => {
  it('keeps bf16 for the U-Net, whose convolutions have BF16 kernels', () => {
    expect(() => NcsnModel.create({ sigmas: [2, 1], precision: 'bf16', device: 'cpu' })).toThrow(/bf16 is for the U-Net/);
  });
});

describe.skipIf(gpus.length === 0)('on the GPU', () => {
  it('reports out-of-memory as an error, not a crash', async () => {
    const model = NcsnModel.create({ sigmas: geometricSigmas(20, 1, 10), device: 'cuda' });
    await expect(model.sample({ n: 2_000_000_000, stepsPerLevel: 1 })).rejects.toThrow(/memory|too large|'n'/);
  });

  it('trains and samples the U-Net in every precision (native/tests/cuda_parity.cpp checks the numbers)', async () => {
    const image = { channels: 1, height: 8, width: 8, low: 0, high: 1 };
    const data = { data: new Float32Array(64 * 64).map((_, i) => (i % 64 < 32 === (Math.floor(i / 64) % 2 === 0) ? 1 : 0)), rows: 64, dim: 64 };
    for (const precision of ['fp32', 'tf32', 'bf16'] as const) {
      const model = NcsnModel.create({ model: 'unet', channels: 4, image, dataDim: 64, sigmas: geometricSigmas(1, 0.01, 3), device: 'cuda', precision });
      expect(model.backend).toBe('cuda:0');
      await model.train(data, { steps: 5, batchSize: 16 });
      const samples = await model.sample({ n: 4, stepsPerLevel: 2 });
      expect(samples.every(Number.isFinite)).toBe(true);
    }
  });
});
