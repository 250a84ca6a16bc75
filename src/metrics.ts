// What samples of a built-in toy should show. The W1 mixture: the weight of the (5,5) mode
// (x₁ + x₂ > 0, truth 0.8) and each mode's mean and covariance. The other toys: the fraction of
// samples in the toy's support and each mode's share against its true weight.
import { toySupport } from './data/toy.js';

export interface ModeStats {
  count: number;
  mean: [number, number];
  covariance: [[number, number], [number, number]];
}

export interface MixtureReport {
  /** Fraction of the samples in the (5,5) mode. */
  fraction: number;
  positive: ModeStats;
  negative: ModeStats;
}

function stats(points: number[][]): ModeStats {
  const n = points.length;
  const mean: [number, number] = [0, 0];
  for (const [a, b] of points) {
    mean[0] += a / n;
    mean[1] += b / n;
  }
  const c = [0, 0, 0];
  for (const [a, b] of points) {
    c[0] += ((a - mean[0]) * (a - mean[0])) / (n - 1);
    c[1] += ((a - mean[0]) * (b - mean[1])) / (n - 1);
    c[2] += ((b - mean[1]) * (b - mean[1])) / (n - 1);
  }
  return { count: n, mean, covariance: [[c[0], c[1]], [c[1], c[2]]] };
}

export function mixtureReport(samples: Float32Array): MixtureReport {
  const pos: number[][] = [];
  const neg: number[][] = [];
  for (let i = 0; i + 1 < samples.length; i += 2) {
    const p = [samples[i], samples[i + 1]];
    (p[0] + p[1] > 0 ? pos : neg).push(p);
  }
  return { fraction: pos.length / (pos.length + neg.length), positive: stats(pos), negative: stats(neg) };
}

/** How closely samples of a built-in toy keep to it (toySupport in data/toy.ts says where it lies). */
export interface ToyReport {
  /** The support in words, and what one mode is. */
  support: string;
  mode: string;
  /** Fraction of the samples in the support. */
  inSupport: number;
  /** Each mode's share of the samples in the support, beside its true weight. */
  modes: { share: number; weight: number }[];
  /** The largest |share − weight| over the modes. */
  worstModeError: number;
}

/** The measure of a toy's samples, or null for a name without one (the mixture has mixtureReport). */
export function toyReport(name: string, samples: Float32Array): ToyReport | null {
  const support = toySupport(name);
  if (!support) return null;
  const counts = support.weights.map(() => 0);
  let inside = 0;
  for (let i = 0; i + 1 < samples.length; i += 2) {
    const mode = support.locate(samples[i], samples[i + 1]);
    if (mode < 0) continue;
    counts[mode]++;
    inside++;
  }
  const modes = support.weights.map((weight, k) => ({ share: inside > 0 ? counts[k] / inside : 0, weight }));
  return {
    support: support.description,
    mode: support.mode,
    inSupport: inside / Math.floor(samples.length / 2),
    modes,
    worstModeError: Math.max(...modes.map((m) => Math.abs(m.share - m.weight))),
  };
}

/** A report in one line: "96.1 % in the dark squares; each dark square 11.9–13.0 % of them (truth 12.5 %)". */
export function describeToyReport(r: ToyReport): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)} %`;
  const shares = r.modes.map((m) => m.share);
  const weights = [...new Set(r.modes.map((m) => m.weight))];
  const truth = weights.length === 1 ? pct(weights[0]) : weights.map(pct).join(', ');
  return `${pct(r.inSupport)} of the samples ${r.support}; each ${r.mode} holds ${pct(Math.min(...shares))}–${pct(Math.max(...shares))} of those (truth ${truth}, worst ${(100 * r.worstModeError).toFixed(1)} points off)`;
}
