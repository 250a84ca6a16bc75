// The samplers checked apart from learning, with exact scores.
import { describe, it, expect } from 'vitest';

import { NcsnModel, geometricSigmas, mixtureReport } from '../src/index.js';

function moments(x: Float32Array, dim: number) {
  const n = x.length / dim;
  const mean = new Array(dim).fill(0);
  const variance = new Array(dim).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += x[i * dim + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) variance[j] += (x[i * dim + j] - mean[j]) ** 2 / (n - 1);
  return { mean, variance };
}

describe('Langevin dynamics with an exact score', () => {
  it('samples a Gaussian with the mean and variance of the discretised chain', async () => {
    // One component, σ = 0: plain Langevin on N(μ, v I). With step ε the chain is AR(1) with
    // stationary variance v / (1 − ε/(4v)), 0.5025 here; 10,000 samples give standard errors of
    // 0.007 for the mean and 0.007 for the variance.
    const v = 0.5;
    const eps = 0.01;
    const model = NcsnModel.create({
      model: 'exact:mixture',
      sigmas: [0],
      mixture: { means: [[1, -2]], weights: [1], variance: v },
    });
    const x = await model.sample({ n: 10_000, stepsPerLevel: 2000, stepLr: eps, seed: 3, initLow: -3, initHigh: 3 });
    const m = moments(x, 2);
    expect(Math.abs(m.mean[0] - 1)).toBeLessThan(0.03);
    expect(Math.abs(m.mean[1] + 2)).toBeLessThan(0.03);
    for (const s of m.variance) expect(Math.abs(s - v / (1 - eps / (4 * v)))).toBeLessThan(0.03);
  });

  it("reproduces the paper's Figure 3: plain Langevin misses the mode weights, annealed recovers them", async () => {
    // Plain Langevin on the W1 mixture (ε = 0.1, 1,000 steps) keeps the uniform start's split:
    // 0.502–0.514 over seeds 0–4. Annealed Langevin (σ 20 → 1, L = 10, T = 100, ε = 0.1):
    // 0.779–0.788 over seeds 0–4 at 10,000 particles (the sampler's own bias; truth 0.80), with
    // per-mode variances 1.97–2.10 and means within 0.05 of ±5.
    const plain = NcsnModel.create({ model: 'exact:mixture', sigmas: [0] });
    const xPlain = await plain.sample({ n: 10_000, stepsPerLevel: 1000, stepLr: 0.1, seed: 1 });
    expect(mixtureReport(xPlain).fraction).toBeLessThan(0.65);

    const annealed = NcsnModel.create({ model: 'exact:mixture', sigmas: geometricSigmas(20, 1, 10) });
    const xAnnealed = await annealed.sample({ n: 10_000, stepsPerLevel: 100, stepLr: 0.1, seed: 1 });
    const r = mixtureReport(xAnnealed);
    expect(Math.abs(r.fraction - 0.8)).toBeLessThan(0.04);
    // samples follow the data perturbed at σ_L = 1: each mode N(±5, 2 I)
    for (const [mode, centre] of [[r.positive, 5], [r.negative, -5]] as const) {
      for (const c of mode.mean) expect(Math.abs(c - centre)).toBeLessThan(0.15);
      expect(Math.abs(mode.covariance[0][0] - 2)).toBeLessThan(0.2);
      expect(Math.abs(mode.covariance[1][1] - 2)).toBeLessThan(0.2);
    }
  });

  it('the denoising step returns the posterior mean: each mode shrinks to about 0.5 I', async () => {
    // measured 0.500–0.521 over seeds 0–4
    const model = NcsnModel.create({ model: 'exact:mixture', sigmas: geometricSigmas(20, 1, 10) });
    const x = await model.sample({ n: 10_000, stepsPerLevel: 100, stepLr: 0.1, seed: 2, denoise: true });
    const r = mixtureReport(x);
    expect(Math.abs(r.positive.covariance[0][0] - 0.5)).toBeLessThan(0.06);
    expect(Math.abs(r.positive.covariance[1][1] - 0.5)).toBeLessThan(0.06);
  });

  it('evaluates the score at given points: the exact mixture score at σ_L = 1', () => {
    // at the origin both components sit at the same distance: 0.8·(5,5)/2 + 0.2·(−5,−5)/2
    const model = NcsnModel.create({ model: 'exact:mixture', sigmas: geometricSigmas(20, 1, 10) });
    const s = model.score(Float32Array.from([0, 0, 6, 5]), 9);
    expect(s[0]).toBeCloseTo(1.5, 5);
    expect(s[1]).toBeCloseTo(1.5, 5);
    expect(s[2]).toBeCloseTo(-0.5, 5);
    expect(() => model.score(Float32Array.from([0, 0]), 10)).toThrow(/level must be in \[0, 10\)/);
  });

  it('draws the same samples for the same seed and different ones for another', async () => {
    const model = NcsnModel.create({ model: 'exact:mixture', sigmas: geometricSigmas(20, 1, 10) });
    const a = await model.sample({ n: 500, stepsPerLevel: 10, seed: 5 });
    const b = await model.sample({ n: 500, stepsPerLevel: 10, seed: 5 });
    const c = await model.sample({ n: 500, stepsPerLevel: 10, seed: 6 });
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
  });
});

describe('the predictor-corrector sampler with an exact score', () => {
  const sigmas = geometricSigmas(20, 1, 10);

  it('recovers the mode weights; its last predictor step without noise is the denoising step', async () => {
    // Over seeds 0–4 at 10,000 particles: (5,5) fraction 0.791–0.799; per-mode variance 1.50–1.55
    // without denoising (the posterior mean's 0.5 plus the last predictor's noise σ_L² = 1) and
    // 0.506–0.527 with it; means within 0.06 of ±5.
    const model = NcsnModel.create({ model: 'exact:mixture', sigmas });
    const r = mixtureReport(await model.sample({ n: 10_000, sampler: 'pc', seed: 1 }));
    expect(Math.abs(r.fraction - 0.795)).toBeLessThan(0.02);
    for (const [mode, centre] of [[r.positive, 5], [r.negative, -5]] as const) {
      for (const c of mode.mean) expect(Math.abs(c - centre)).toBeLessThan(0.15);
    }
    for (const v of [r.positive.covariance[0][0], r.positive.covariance[1][1]]) expect(Math.abs(v - 1.5)).toBeLessThan(0.1);
    const d = mixtureReport(await model.sample({ n: 10_000, sampler: 'pc', seed: 1, denoise: true }));
    for (const v of [d.positive.covariance[0][0], d.positive.covariance[1][1]]) expect(Math.abs(v - 0.5)).toBeLessThan(0.06);
  });

  it('takes larger corrector steps for a larger snr', async () => {
    // snr sets the corrector's step, e = 2 (snr ‖z‖/‖s‖)²; at a tiny snr only the predictor moves
    // the particles, and the result differs from the default's.
    const model = NcsnModel.create({ model: 'exact:mixture', sigmas });
    const a = await model.sample({ n: 300, sampler: 'pc', stepsPerLevel: 5, seed: 2 });
    const b = await model.sample({ n: 300, sampler: 'pc', stepsPerLevel: 5, seed: 2, snr: 1e-6 });
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(false);
    await expect(model.sample({ n: 10, sampler: 'pc', snr: -1 })).rejects.toThrow(/snr/);
    await expect(model.sample({ n: 10, sampler: 'ode' as 'pc' })).rejects.toThrow(/sampler is "ode"; it must be "ald" or "pc"/);
  });
});

describe('frames of the sampler', () => {
  it('hands out the particles at the start, every frameEvery steps and at each level end, without changing the result', async () => {
    const model = NcsnModel.create({ model: 'exact:mixture', sigmas: geometricSigmas(20, 1, 4) });
    for (const sampler of ['ald', 'pc'] as const) {
      const plain = await model.sample({ n: 200, sampler, stepsPerLevel: 10, seed: 3 });
      const frames: Float32Array[] = [];
      const at: string[] = [];
      const levelsDone: number[] = [];
      const x = await model.sample({
        n: 200,
        sampler,
        stepsPerLevel: 10,
        seed: 3,
        frameEvery: 4,
        onFrame: (p, pos) => {
          frames.push(p);
          at.push(`${pos.level}:${pos.step}`);
        },
        onProgress: (done) => levelsDone.push(done),
      });
      expect(Buffer.from(x.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
      expect(at.slice(0, 5)).toEqual(['0:0', '0:4', '0:8', '0:10', '1:4']);
      expect(frames).toHaveLength(1 + 4 * 3);
      expect(levelsDone).toEqual([1, 2, 3, 4]);
      expect(Buffer.from(frames[frames.length - 1].buffer).equals(Buffer.from(x.buffer))).toBe(true);
      expect(frames[0].length).toBe(400);
    }
    await expect(model.sample({ n: 10, onFrame: () => {} })).rejects.toThrow(/frameEvery/);
  });
});

