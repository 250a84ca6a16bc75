// One source of configuration (src/config.ts): NcsnModel.create fills its defaults, a checkpoint
// from before a setting existed loads with that setting's default, and the addon, which has no
// defaults of its own, refuses a value left out.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { NcsnModel, MODEL_DEFAULTS, SAMPLING_DEFAULTS, MIXTURE } from '../src/index.js';
import { readCheckpoint, writeCheckpoint } from '../src/checkpoint.js';
import { addon } from '../src/native.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-config-'));
const small = { sigmas: [4, 2, 1], width: 8, depth: 1, device: 'cpu' as const, threads: 1 };

describe('NcsnModel.create', () => {
  it('fills every value it is not given from the defaults', () => {
    const { config } = NcsnModel.create({ sigmas: [2, 1], device: 'cpu', threads: 1 });
    expect(config).toEqual({ ...MODEL_DEFAULTS, sigmas: [2, 1], data: null, sampling: SAMPLING_DEFAULTS, mixture: null, image: null });
  });

  it("gives exact:mixture W1's mixture unless told another, and no other model a mixture", () => {
    const exact = NcsnModel.create({ model: 'exact:mixture', sigmas: [2, 1], device: 'cpu', threads: 1 });
    expect(exact.config.mixture).toEqual({ means: MIXTURE.means, weights: MIXTURE.weights, variance: MIXTURE.variance });
    const mlp = NcsnModel.create({ ...small, mixture: { means: [[0, 0]], weights: [1], variance: 1 } });
    expect(mlp.config.mixture).toBeNull();
  });

  it('takes a partial sampling object over the defaults', () => {
    expect(NcsnModel.create({ ...small, sampling: { stepLr: 0.5 } }).config.sampling).toEqual({ ...SAMPLING_DEFAULTS, stepLr: 0.5 });
  });

  it('says which value is wrong and what it must be: a RangeError, or a TypeError for the wrong type', () => {
    expect(() => NcsnModel.create({ ...small, emaDecay: 1 })).toThrow(new RangeError('emaDecay is 1; it must be in [0, 1)'));
    expect(() => NcsnModel.create({ ...small, sampling: { initLow: 3, initHigh: 2 } })).toThrow(
      new RangeError('sampling.initHigh is 2; it must be above initLow (3)'),
    );
    expect(() => NcsnModel.create({ ...small, width: '8' as unknown as number })).toThrow(new TypeError('width is "8"; it must be an integer from 1 to 65,536'));
    expect(() => NcsnModel.create({ ...small, device: 'gpu' as 'cpu' })).toThrow(new RangeError('device is "gpu"; it must be auto, cpu, cuda or cuda:N'));
    expect(() => NcsnModel.create({ ...small, model: 'exact:mixture', mixture: { means: [[0, 0, 0]], weights: [1], variance: 1 } })).toThrow(
      'mixture.means[0] has 3 coordinates; every mean must have dataDim = 2',
    );
  });
});

describe('a checkpoint from before a setting existed', () => {
  it('loads with the defaults of the keys it lacks, checked like the rest', () => {
    const file = path.join(dir, 'old.safetensors');
    NcsnModel.create({ ...small, sampling: { stepsPerLevel: 7 } }).save(file);
    const { tensors, metadata } = readCheckpoint(file);
    const config = JSON.parse(metadata.config) as Record<string, unknown>;
    for (const key of ['channels', 'dequantize', 'batchSize', 'data', 'image', 'mixture']) delete config[key];
    config.sampling = { stepsPerLevel: 7 };
    writeCheckpoint(file, tensors, { ...metadata, config: JSON.stringify(config) });
    const model = NcsnModel.load(file, { device: 'cpu', threads: 1 });
    expect(model.config).toMatchObject({ channels: 32, dequantize: false, batchSize: 128, data: null, image: null, mixture: null });
    expect(model.config.sampling).toEqual({ ...SAMPLING_DEFAULTS, stepsPerLevel: 7 });
  });
});

describe('the addon', () => {
  const complete = {
    kind: 'mlp' as const,
    dataDim: 2,
    width: 8,
    depth: 1,
    firstLayer: 'softplus' as const,
    sigmas: [2, 1],
    seed: 0,
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    emaDecay: 0.999,
    device: 'cpu',
    threads: 1,
    precision: 'fp32' as const,
    fused: true,
    graphs: true,
    dequantize: false,
  };

  it('makes a model from explicit values and refuses each one left out', () => {
    expect(new addon.Model(complete).paramCount).toBeGreaterThan(0);
    for (const key of Object.keys(complete)) {
      const partial: Record<string, unknown> = { ...complete };
      delete partial[key];
      expect(() => new addon.Model(partial as typeof complete), key).toThrow(new TypeError(`'${key}' is required`));
    }
  });

  it('refuses a sample call without its sampler settings', async () => {
    const model = new addon.Model(complete);
    const request = { n: 1, sampler: 'ald' as const, stepsPerLevel: 1, stepLr: 0.1, snr: 0.16, denoise: false, frameEvery: 0, seed: 0, initLow: -1, initHigh: 1, useEma: true, fused: true };
    expect((await model.sample(request)).samples).toHaveLength(2);
    const { stepLr: _, ...withoutStepLr } = request;
    expect(() => model.sample(withoutStepLr as typeof request)).toThrow("'stepLr' is required");
  });
});
