// What a sample of the W1 mixture should show: the weight of the (5,5) mode (x₁ + x₂ > 0, truth
// 0.8) and each mode's mean and covariance.

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
