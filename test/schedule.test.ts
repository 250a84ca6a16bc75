// NCSNv2's Techniques 2 and 4; reference values from mpmath at 40 digits.
import { describe, it, expect } from 'vitest';

import { geometricSigmas, levelsForOverlap, normalCdf, shellOverlap, stepLrForLevels } from '../src/schedule.js';

const rel = (x: number, y: number) => Math.abs(x - y) / Math.abs(y);

describe('Φ', () => {
  it('matches known values to ~1e-15, tails included', () => {
    const cases: [number, number][] = [
      [0, 0.5],
      [1, 0.84134474606854294859],
      [-3, 0.0013498980316300945267],
      [2, 0.9772498680518207928],
      [-1.5, 0.066807201268858066004],
      [0.3, 0.61791142218895263307],
      [6, 0.99999999901341235496],
    ];
    for (const [x, want] of cases) expect(Math.abs(normalCdf(x) - want)).toBeLessThan(2e-15);
    // far tails keep relative accuracy (continued fraction, not 1 − erf)
    expect(rel(normalCdf(-10), 7.619853024160526066e-24)).toBeLessThan(1e-13);
    expect(rel(normalCdf(-37), 5.7255712225245768227e-300)).toBeLessThan(1e-12);
    expect(normalCdf(-40)).toBe(0);
    expect(normalCdf(40)).toBe(1);
  });
});

describe('Technique 2: shell overlap and the number of levels', () => {
  it('computes C(γ) as the formula says', () => {
    const cases: [number, number, number][] = [
      [3072, 1, 0.99730020393673981],
      [3072, 1.0001, 0.99730204559940777],
      [3072, 1.01, 0.98758481147984449],
      [3072, 1.03, 0.76989155623756917],
      [3072, 1.04, 0.49387772450990682],
      [64, 1.2, 0.90943082897190467],
      [5, 2, 0.99772816554611356],
    ];
    for (const [d, g, want] of cases) expect(Math.abs(shellOverlap(d, g) - want)).toBeLessThan(1e-14);
  });

  it('C rises to a small peak and then falls monotonically when √(2D) > 3; only rises when √(2D) ≤ 3', () => {
    for (const d of [5, 64, 3072]) {
      const a = Math.sqrt(2 * d);
      const peak = (1 + Math.sqrt(1 + (4 * Math.log((a + 3) / (a - 3))) / (6 * a))) / 2;
      expect(shellOverlap(d, peak)).toBeGreaterThan(shellOverlap(d, 1));
      let prev = shellOverlap(d, peak);
      for (let g = peak; g < 1 + 4 * (a / (a - 3) - 1); g += (peak - 1 + 1e-3) / 7) {
        const c = shellOverlap(d, g);
        expect(c).toBeLessThanOrEqual(prev);
        prev = c;
      }
    }
    for (const d of [1, 2, 3, 4]) {
      let prev = shellOverlap(d, 1);
      for (const g of [1.01, 1.5, 3, 10, 100, 1e4]) {
        const c = shellOverlap(d, g);
        expect(c).toBeGreaterThanOrEqual(prev);
        prev = c;
      }
    }
  });

  it('sets no number of levels when D ≤ 4, and says why', () => {
    for (const d of [1, 2, 3, 4]) {
      const r = levelsForOverlap(d, 20, 1);
      expect(r.levels).toBeNull();
      if (r.levels === null) expect(r.reason).toMatch(new RegExp(`in ${d}-D .*sets no number of levels`));
    }
    expect(levelsForOverlap(5, 20, 1).levels).not.toBeNull();
  });

  it('finds γ* with C(γ*) = 0.5', () => {
    const cases: [number, number][] = [
      [5, 19.486832980505138],
      [10, 3.0378552604544307],
      [64, 1.3608497940920527],
      [100, 1.2692482035140957],
      [3072, 1.0397964165056566],
    ];
    for (const [d, want] of cases) {
      const r = levelsForOverlap(d, 1e6, 1e-6);
      if (r.levels === null) throw new Error(r.reason);
      expect(rel(r.gammaMax, want)).toBeLessThan(1e-13);
      expect(r.gamma).toBeLessThanOrEqual(r.gammaMax);
      expect(r.overlap).toBeGreaterThanOrEqual(0.5);
      // one level fewer would stretch the ratio past γ*
      expect(shellOverlap(d, Math.pow(1e12, 1 / (r.levels - 2)))).toBeLessThan(0.5);
    }
  });

  it('gives CIFAR-10 (D = 3072, σ 50 → 0.01) 220 levels; the released 232 overlap by 0.567', () => {
    const r = levelsForOverlap(3072, 50, 0.01);
    if (r.levels === null) throw new Error(r.reason);
    expect(r.levels).toBe(220);
    expect(r.gamma).toBeCloseTo(1.0396574595794742, 14);
    expect(r.overlap).toBeCloseTo(0.50417887718489945, 12);
    // the first-order asymptote 1 + 3/√(2D), and the v = 0 approximation √(2D)/(√(2D) − 3)
    const a = Math.sqrt(2 * 3072);
    expect(Math.abs(r.gammaMax - (1 + 3 / a))).toBeLessThan(2e-3);
    expect(Math.abs(r.gammaMax - a / (a - 3))).toBeLessThan(1e-9);
    expect(shellOverlap(3072, Math.pow(5000, 1 / 231))).toBeCloseTo(0.56696588153681243, 12);
  });

  it('honours another target overlap and needs at least 2 levels', () => {
    const loose = levelsForOverlap(3072, 50, 0.01, 0.3);
    const tight = levelsForOverlap(3072, 50, 0.01, 0.9);
    if (loose.levels === null || tight.levels === null) throw new Error('expected levels');
    expect(loose.levels).toBeLessThan(220);
    expect(tight.levels).toBeGreaterThan(220);
    expect(tight.overlap).toBeGreaterThanOrEqual(0.9);
    expect(levelsForOverlap(64, 1.01, 1).levels).toBe(2);
  });

  it('rejects bad input', () => {
    expect(() => shellOverlap(0, 1.1)).toThrow(RangeError);
    expect(() => shellOverlap(2.5, 1.1)).toThrow(/positive integer/);
    expect(() => shellOverlap(10, 0.9)).toThrow(/≥ 1/);
    expect(() => shellOverlap(10, NaN)).toThrow(RangeError);
    expect(() => levelsForOverlap(10, 1, 1)).toThrow(/sigma-begin > sigma-end > 0/);
    expect(() => levelsForOverlap(10, 1, 0)).toThrow(RangeError);
    expect(() => levelsForOverlap(10, Infinity, 1)).toThrow(RangeError);
    expect(() => levelsForOverlap(10, 20, 1, 0)).toThrow(/shell overlap/);
    expect(() => levelsForOverlap(10, 20, 1, 0.998)).toThrow(/shell overlap/);
  });
});

describe('Technique 4: the step size', () => {
  const f = (u: number, gamma: number, T: number) =>
    (1 - u) ** (2 * T) * (gamma ** 2 - 2 / (2 - u)) + 2 / (2 - u);

  it('reproduces NCSNv2 CIFAR-10 (L = 232, T = 5): ε_v2 ≈ 6.2e-6', () => {
    const sigmas = geometricSigmas(50, 0.01, 232);
    const r = stepLrForLevels(sigmas, 5);
    expect(rel(r.stepLrV2, 6.184024702160739e-6)).toBeLessThan(1e-9);
    expect(rel(r.stepLr, 1.2368049404321478e-5)).toBeLessThan(1e-9);
    expect(r.f).toBeCloseTo(1.055474514450296, 12);
  });

  it('gives W1 (σ 20 → 1, L = 10, T = 100) ε ≈ 0.0584 in our convention', () => {
    const sigmas = geometricSigmas(20, 1, 10);
    const r = stepLrForLevels(sigmas, 100);
    expect(rel(r.stepLr, 0.05836111978851739)).toBeLessThan(1e-9);
    expect(r.stepLr).toBeCloseTo(2 * r.stepLrV2, 15);
    expect(r.f).toBeCloseTo(1.0172990683426757, 12);
    // a minimum of f: 1% either way is worse, and f > 1 everywhere
    const gamma = sigmas[0] / sigmas[1];
    for (const s of [0.99, 1.01]) expect(f(r.stepLrV2 * s, gamma, 100)).toBeGreaterThan(r.f);
    for (let u = 1e-6; u < 1; u *= 1.5) expect(f(u, gamma, 100)).toBeGreaterThan(1);
  });

  it('scales with σ_L² and shrinks as T grows', () => {
    const a = stepLrForLevels(geometricSigmas(20, 1, 10), 100);
    const b = stepLrForLevels(geometricSigmas(40, 2, 10), 100);
    expect(rel(b.stepLr, 4 * a.stepLr)).toBeLessThan(1e-12);
    expect(stepLrForLevels(geometricSigmas(20, 1, 10), 1000).stepLr).toBeLessThan(a.stepLr);
  });

  it('rejects bad input', () => {
    expect(() => stepLrForLevels([1], 5)).toThrow(/at least 2 noise levels/);
    expect(() => stepLrForLevels([2, NaN], 5)).toThrow(/finite and positive/);
    expect(() => stepLrForLevels([2, 0], 5)).toThrow(/finite and positive/);
    expect(() => stepLrForLevels([2, 1, 1], 5)).toThrow(/decrease strictly/);
    expect(() => stepLrForLevels([1, 2], 5)).toThrow(/decrease strictly/);
    expect(() => stepLrForLevels([2, 1], 0)).toThrow(/integer ≥ 1/);
    expect(() => stepLrForLevels([2, 1], 2.5)).toThrow(RangeError);
  });
});
