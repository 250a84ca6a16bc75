// Noise levels: NCSN's geometric sequence σ_1 > … > σ_L.
import { LIMITS } from './limits.js';

export function geometricSigmas(sigmaBegin: number, sigmaEnd: number, levels: number): number[] {
  if (!(Number.isFinite(sigmaBegin) && Number.isFinite(sigmaEnd) && sigmaEnd > 0 && sigmaBegin > sigmaEnd)) {
    throw new RangeError(`noise levels need sigma-begin > sigma-end > 0 (got ${sigmaBegin} and ${sigmaEnd})`);
  }
  if (!Number.isInteger(levels) || levels < 2 || levels > LIMITS.levels) {
    throw new RangeError(`the number of noise levels must be an integer from 2 to ${LIMITS.levels.toLocaleString('en-US')} (got ${levels})`);
  }
  const a = Math.log(sigmaBegin);
  const b = Math.log(sigmaEnd);
  return Array.from({ length: levels }, (_, i) => Math.exp(a + ((b - a) * i) / (levels - 1)));
}

/** The Langevin step of level i in the paper's convention: α_i = ε σ_i² / σ_L². */
export function langevinStep(sigmas: readonly number[], i: number, stepLr: number): number {
  if (sigmas.length === 1) return stepLr;
  const r = sigmas[i] / sigmas[sigmas.length - 1];
  return stepLr * r * r;
}

// ---- NCSNv2 (Song & Ermon, 2020): Technique 2 (how many levels) and Technique 4 (which step). ----

/**
 * erfc(x), to about 1e-16 absolute. Below 2 a series of positive terms for erf
 * (no cancellation); from 2 on the Laplace continued fraction (modified Lentz),
 * which keeps erfc's relative accuracy far into the tail where 1 − erf would be 0.
 */
function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  const scale = Math.exp(-x * x) / Math.sqrt(Math.PI);
  if (x < 2) {
    // erf(x) = 2/√π e^{-x²} Σ 2ⁿ x^{2n+1} / (2n+1)!!
    let term = x;
    let sum = x;
    for (let n = 1; term > 1e-17 * sum; n++) {
      term *= (2 * x * x) / (2 * n + 1);
      sum += term;
    }
    return 1 - 2 * scale * sum;
  }
  if (scale === 0) return 0;
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    d = x + (k / 2) * d;
    c = x + k / 2 / c;
    d = 1 / (Math.abs(d) < tiny ? tiny : d);
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return scale / f;
}

/** The standard normal CDF Φ(x), to about 1e-16 absolute. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

function checkDim(dataDim: number): void {
  if (!Number.isInteger(dataDim) || dataDim < 1) {
    throw new RangeError(`the data dimension must be a positive integer (got ${dataDim})`);
  }
}

/**
 * NCSNv2's overlap of neighbouring noise shells, C(γ) = Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ),
 * for data dimension D and ratio γ = σ_{i−1}/σ_i. Noise of scale σ in D dimensions puts
 * x − x₀ near the shell of radius σ√D; C is the probability that a draw at σ_i lands within
 * 3σ_{i−1} of the shell of σ_{i−1}. Training and sampling need it large so that the score
 * learnt at one level is useful where the previous level left the samples.
 *
 * C(1) = Φ(3) − Φ(−3) ≈ 0.9973. For √(2D) > 3 C first rises a little, to a peak at
 * γ(γ−1) = ln((a+3)/(a−3))/(6a) with a = √(2D) (where the derivative changes sign), and
 * then falls monotonically to 0; for √(2D) ≤ 3 it only rises, towards 1.
 */
export function shellOverlap(dataDim: number, gamma: number): number {
  checkDim(dataDim);
  if (!(Number.isFinite(gamma) && gamma >= 1)) {
    throw new RangeError(`the ratio of neighbouring noise levels must be finite and ≥ 1 (got ${gamma})`);
  }
  const a = Math.sqrt(2 * dataDim);
  return normalCdf(a * (gamma - 1) + 3 * gamma) - normalCdf(a * (gamma - 1) - 3 * gamma);
}

/** What Technique 2 says about the number of levels: a count, or why it sets none. */
export type LevelsForOverlap =
  | {
      /** L = 1 + ⌈ln(σ_1/σ_L) / ln γ*⌉, at least 2. */
      levels: number;
      /** The ratio of the geometric ladder with that L, (σ_1/σ_L)^{1/(L−1)} ≤ γ*. */
      gamma: number;
      /** γ*: the largest ratio whose shells still overlap by the target, C(γ*) = target. */
      gammaMax: number;
      /** C at the ladder's ratio: at least the target. */
      overlap: number;
    }
  | { levels: null; reason: string };

/**
 * NCSNv2 Technique 2: the fewest geometric levels from σ_1 down to σ_L whose neighbouring
 * shells overlap by at least `overlap` (NCSNv2 asks for C ≈ 0.5). Since C falls
 * monotonically past its small peak, the ratios with C ≥ target are exactly [1, γ*], and
 * γ* is found by bisection on that falling branch.
 *
 * When √(2D) ≤ 3 (D ≤ 4) C never drops below C(1) ≈ 0.9973 at any ratio, so the criterion
 * bounds nothing: the result says so (`levels: null` with a reason) and the caller keeps
 * its own L.
 */
export function levelsForOverlap(
  dataDim: number,
  sigmaBegin: number,
  sigmaEnd: number,
  overlap = 0.5,
): LevelsForOverlap {
  checkDim(dataDim);
  if (!(Number.isFinite(sigmaBegin) && Number.isFinite(sigmaEnd) && sigmaEnd > 0 && sigmaBegin > sigmaEnd)) {
    throw new RangeError(`noise levels need sigma-begin > sigma-end > 0 (got ${sigmaBegin} and ${sigmaEnd})`);
  }
  const atOne = shellOverlap(dataDim, 1);
  // Above C(1) the admissible ratios would no longer start at 1; nothing asks for that.
  if (!(overlap > 0 && overlap < atOne)) {
    throw new RangeError(`the shell overlap must lie in (0, ${atOne.toFixed(4)}) (got ${overlap})`);
  }
  if (2 * dataDim <= 9) {
    return {
      levels: null,
      reason:
        `in ${dataDim}-D √(2D) ≤ 3, so neighbouring noise shells overlap by at least ` +
        `${atOne.toFixed(4)} at every ratio and NCSNv2's overlap criterion (Technique 2) sets no number of levels`,
    };
  }
  let lo = 1; // C(1) > target
  let hi = 2;
  while (shellOverlap(dataDim, hi) >= overlap) hi = 1 + 2 * (hi - 1);
  for (;;) {
    const mid = (lo + hi) / 2;
    if (mid <= lo || mid >= hi) break;
    if (shellOverlap(dataDim, mid) >= overlap) lo = mid;
    else hi = mid;
  }
  const gammaMax = lo; // the side with C ≥ target
  const levels = Math.max(2, 1 + Math.ceil(Math.log(sigmaBegin / sigmaEnd) / Math.log(gammaMax)));
  const gamma = Math.pow(sigmaBegin / sigmaEnd, 1 / (levels - 1));
  return { levels, gamma, gammaMax, overlap: shellOverlap(dataDim, gamma) };
}

/** Technique 4's choice of step, in both conventions, with the f it reaches. */
export interface StepLrForLevels {
  /** ε in this project's convention (α_i = ε σ_i²/σ_L², x ← x + (α_i/2) s + √α_i z): 2·ε_v2. */
  stepLr: number;
  /** ε in NCSNv2's convention (x ← x + α_i s + √(2α_i) z). */
  stepLrV2: number;
  /** f at the optimum; always > 1, so this is how close to 1 it gets. */
  f: number;
}

/**
 * NCSNv2 Technique 4: the Langevin step for T steps per level. For data that is a single
 * point, T steps at σ_L starting from the variance left by σ_{L−1} end with variance
 * σ_L² f(u), u = ε_v2/σ_L², where
 *   f(u) = (1−u)^{2T} (γ² − 2/(2−u)) + 2/(2−u)
 * (the paper's Eq. with σ_L² − σ_L²(1−u)² = σ_L² u(2−u)). NCSNv2 takes the ε that brings f
 * closest to 1. f is a weighted mean of γ² and 2/(2−u), both > 1, so f > 1 everywhere and
 * the best ε minimises f. f falls and then rises on (0, 1) (checked numerically over
 * γ ∈ [1.0001, 100], T ∈ [1, 10⁴]); a log grid finds the valley and bisection on f′ pins it.
 * γ is σ_1/σ_2, so `sigmas` should be geometric.
 */
export function stepLrForLevels(sigmas: readonly number[], stepsPerLevel: number): StepLrForLevels {
  if (sigmas.length < 2) throw new RangeError(`choosing the step needs at least 2 noise levels (got ${sigmas.length})`);
  for (let i = 0; i < sigmas.length; i++) {
    if (!(Number.isFinite(sigmas[i]) && sigmas[i] > 0)) {
      throw new RangeError(`noise levels must be finite and positive (σ_${i + 1} = ${sigmas[i]})`);
    }
    if (i > 0 && !(sigmas[i] < sigmas[i - 1])) {
      throw new RangeError(`noise levels must decrease strictly (σ_${i} = ${sigmas[i - 1]}, σ_${i + 1} = ${sigmas[i]})`);
    }
  }
  if (!Number.isInteger(stepsPerLevel) || stepsPerLevel < 1) {
    throw new RangeError(`the steps per level must be an integer ≥ 1 (got ${stepsPerLevel})`);
  }
  const T = stepsPerLevel;
  const g2 = (sigmas[0] / sigmas[1]) ** 2;
  const f = (u: number) => (1 - u) ** (2 * T) * (g2 - 2 / (2 - u)) + 2 / (2 - u);
  const df = (u: number) =>
    -2 * T * (1 - u) ** (2 * T - 1) * (g2 - 2 / (2 - u)) + (1 - (1 - u) ** (2 * T)) * (2 / (2 - u) ** 2);

  const n = 4000;
  const grid = Array.from({ length: n }, (_, k) => 10 ** (-12 + (12 * k) / n)); // [1e-12, 1)
  let best = 0;
  for (let k = 1; k < n; k++) if (f(grid[k]) < f(grid[best])) best = k;
  let lo = grid[Math.max(0, best - 1)];
  let hi = best + 1 < n ? grid[best + 1] : 1;
  for (;;) {
    const mid = (lo + hi) / 2;
    if (mid <= lo || mid >= hi) break;
    if (df(mid) < 0) lo = mid;
    else hi = mid;
  }
  const u = [lo, grid[best]].reduce((p, q) => (f(q) < f(p) ? q : p));
  const sigmaL2 = sigmas[sigmas.length - 1] ** 2;
  return { stepLr: 2 * u * sigmaL2, stepLrV2: u * sigmaL2, f: f(u) };
}
