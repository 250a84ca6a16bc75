// Built-in 2-D distributions. Every draw comes from the native Philox stream (seed, stream), so a
// toy dataset is the same on every machine for the same seed.
import { addon } from '../native.js';
import type { FirstLayer } from '../index.js';

/** The settings a dataset trains well with. */
export interface NoiseDefaults {
  sigmaBegin: number;
  sigmaEnd: number;
  levels: number;
  steps: number;
  /** Hidden layers of the MLP; W1's 2 when absent. */
  depth?: number;
  /** The MLP's first hidden layer; W1's softplus when absent. */
  firstLayer?: FirstLayer;
  /** Langevin steps T at each level when sampling; 100 when absent. */
  stepsPerLevel?: number;
  /** Finish sampling with the denoising step x ← x + σ_L² s(x, σ_L). */
  denoise?: boolean;
}

/** W1: the NCSN paper's toy (Section 3), 0.2·N((−5,−5), I) + 0.8·N((5,5), I). */
export const MIXTURE = {
  means: [
    [-5, -5],
    [5, 5],
  ],
  weights: [0.2, 0.8],
  variance: 1,
} as const;

// One point from three uniforms in (0, 1) and two standard normals.
type Point = (u: [number, number, number], z: [number, number]) => [number, number];

/** Where a toy's samples belong: its support and, inside it, its modes with their true weights. */
export interface ToySupport {
  /** The support in words, for reports: "the dark squares". */
  description: string;
  /** What one mode is, in words: "square". */
  mode: string;
  /** The true weight of each mode; they add up to 1. */
  weights: readonly number[];
  /** The mode a point lies in, or −1 when it is outside the support. */
  locate: (x: number, y: number) => number;
}

interface Toy {
  point: Point;
  defaults: NoiseDefaults;
  /** Absent for the mixture, which has its own report (metrics.ts's mixtureReport). */
  support?: ToySupport;
}

// The generating curves and centres, for the supports below; "within three noise widths" of them
// holds 99.7 % of a curve's points (98.9 % of a 2-D Gaussian's).
const swissRoll = (t: number): [number, number] => [(t * Math.cos(t)) / 3.5, (t * Math.sin(t)) / 3.5];
const SWISS_T0 = 1.5 * Math.PI;
const SWISS_T1 = 4.5 * Math.PI;
// vertices 0.013 apart along the roll's length of 25: the nearest one is within 0.007 of the curve
const SWISS_VERTICES = Array.from({ length: 2000 }, (_, k) => swissRoll(SWISS_T0 + ((SWISS_T1 - SWISS_T0) * (k + 0.5)) / 2000));
const GAUSSIAN_CENTRES = Array.from({ length: 8 }, (_, k) => [4 * Math.cos((k * Math.PI) / 4), 4 * Math.sin((k * Math.PI) / 4)]);
const equal = (n: number) => Array.from({ length: n }, () => 1 / n);

// Distance from (x, y) to a moon: the half circle of radius 2.5 about (cx, cy) on the side where
// `side`·(y − cy) ≥ 0, or to the nearer of its two ends.
function moonDistance(x: number, y: number, cx: number, cy: number, side: number): number {
  const dx = x - cx;
  const dy = y - cy;
  if (side * dy >= 0) return Math.abs(Math.hypot(dx, dy) - 2.5);
  return Math.min(Math.hypot(dx - 2.5, dy), Math.hypot(dx + 2.5, dy));
}

// Toys other than W1 live in about [−4, 4]² with structure a few tenths wide and sharp edges. σ_1
// is about their largest pairwise distance (NCSNv2's Technique 1). W1's two-layer MLP, trained
// 20,000 steps to σ_L = 0.05, left the score at the small levels mostly unlearnt (on the
// checkerboard 92 % relative error at σ_L, 67.5 % of samples in the dark squares); four layers, twice
// the training and σ_L = 0.1 finished by the denoising step, whose posterior mean the exact score
// puts back in the support (99.8 %), measured best among the softplus settings tried, and a sin
// first layer under them cut the rings' error at σ_L from 53 % to 1 % (docs/toys.md).
const FINE: NoiseDefaults = { sigmaBegin: 8, sigmaEnd: 0.1, levels: 12, steps: 40_000, depth: 4, firstLayer: 'sin', denoise: true };

const TOYS: Record<string, Toy> = {
  // W1 (fixed by docs/workloads.md)
  mixture: {
    defaults: { sigmaBegin: 20, sigmaEnd: 1, levels: 10, steps: 5000 },
    point: ([u], [z0, z1]) => {
      const c = u < MIXTURE.weights[0] ? MIXTURE.means[0] : MIXTURE.means[1];
      return [c[0] + z0, c[1] + z1];
    },
  },
  // eight Gaussians of std 0.5 evenly spaced on a circle of radius 4
  '8gaussians': {
    defaults: FINE,
    point: ([u], [z0, z1]) => {
      const a = (Math.floor(u * 8) * Math.PI) / 4;
      return [4 * Math.cos(a) + 0.5 * z0, 4 * Math.sin(a) + 0.5 * z1];
    },
    support: {
      description: 'within 1.5 (three noise widths) of a centre',
      mode: 'Gaussian',
      weights: equal(8),
      locate: (x, y) => GAUSSIAN_CENTRES.findIndex(([cx, cy]) => Math.hypot(x - cx, y - cy) < 1.5),
    },
  },
  // a 2-D swiss roll, the spiral (t cos t, t sin t) for t in [1.5π, 4.5π], scaled to radius 4
  swissroll: {
    defaults: FINE,
    point: ([u], [z0, z1]) => {
      const t = 1.5 * Math.PI * (1 + 2 * u);
      const [x, y] = swissRoll(t);
      return [x + 0.1 * z0, y + 0.1 * z1];
    },
    // the roll has no modes; its four quarters (of t, so of equal weight) show whether the samples
    // cover all of it
    support: {
      description: 'within 0.3 (three noise widths) of the spiral',
      mode: 'quarter of the spiral',
      weights: equal(4),
      locate: (x, y) => {
        // a point within 0.3 of the curve is within 0.25 rad of t = its angle + 2πk for some k (the
        // curve's radius is at least 1.35), so only the vertices near those t are looked at
        const n = SWISS_VERTICES.length;
        const perRad = n / (SWISS_T1 - SWISS_T0);
        let best = Infinity;
        let nearest = 0;
        for (let t = Math.atan2(y, x) - 2 * Math.PI; t < SWISS_T1 + 2 * Math.PI; t += 2 * Math.PI) {
          const centre = Math.round((t - SWISS_T0) * perRad);
          for (let k = Math.max(0, centre - 0.25 * perRad); k < Math.min(n, centre + 0.25 * perRad); k++) {
            const [vx, vy] = SWISS_VERTICES[Math.floor(k)];
            const d = (x - vx) ** 2 + (y - vy) ** 2;
            if (d < best) [best, nearest] = [d, Math.floor(k)];
          }
        }
        return best < 0.3 ** 2 ? Math.floor((4 * nearest) / n) : -1;
      },
    },
  },
  // four concentric rings of radius 1, 2, 3 and 4
  rings: {
    // four rings set 1 apart take the learned score's small errors at the middle levels, where the
    // rings part, into their weights, and T = 100 leaves the particles arriving from outside a
    // point too many on the outer rings even with the exact score: twice the training and twice the
    // Langevin steps bring every ring within 2 points of its weight (docs/toys.md)
    defaults: { ...FINE, steps: 80_000, stepsPerLevel: 200 },
    point: ([u0, u1], [z0, z1]) => {
      const r = Math.floor(u0 * 4) + 1;
      const a = 2 * Math.PI * u1;
      return [r * Math.cos(a) + 0.08 * z0, r * Math.sin(a) + 0.08 * z1];
    },
    support: {
      description: 'within 0.24 (three noise widths) of a ring',
      mode: 'ring',
      weights: equal(4),
      locate: (x, y) => {
        const r = Math.hypot(x, y);
        const ring = Math.min(4, Math.max(1, Math.round(r)));
        return Math.abs(r - ring) < 0.24 ? ring - 1 : -1;
      },
    },
  },
  // the dark squares of a 4×4 checkerboard on [−4, 4]²
  checkerboard: {
    defaults: FINE,
    point: ([u0, u1, u2]) => {
      const x = -4 + 8 * u0;
      const row = Math.floor(u1 * 2) * 2 + ((Math.floor(x / 2) + 2) % 2); // a dark square in x's column
      return [x, -4 + 2 * (row + u2)];
    },
    support: {
      description: 'in the dark squares',
      mode: 'dark square',
      weights: equal(8),
      locate: (x, y) => {
        const col = Math.floor((x + 4) / 2);
        const row = Math.floor((y + 4) / 2);
        const dark = col >= 0 && col < 4 && row >= 0 && row < 4 && (col + row) % 2 === 0;
        return dark ? (4 * col + row) >> 1 : -1;
      },
    },
  },
  // two interleaving half circles, centred and scaled to about [−4, 4]
  moons: {
    defaults: FINE,
    point: ([u0, u1], [z0, z1]) => {
      const a = Math.PI * u1;
      const [x, y] = u0 < 0.5 ? [Math.cos(a), Math.sin(a)] : [1 - Math.cos(a), 0.5 - Math.sin(a)];
      return [2.5 * (x - 0.5) + 0.1 * z0, 2.5 * (y - 0.25) + 0.1 * z1];
    },
    // the upper moon's circle is about (−1.25, −0.625), the lower one's about (1.25, 0.625)
    support: {
      description: 'within 0.3 (three noise widths) of a half circle',
      mode: 'moon',
      weights: equal(2),
      locate: (x, y) => {
        const upper = moonDistance(x, y, -1.25, -0.625, 1);
        const lower = moonDistance(x, y, 1.25, 0.625, -1);
        return Math.min(upper, lower) < 0.3 ? (upper <= lower ? 0 : 1) : -1;
      },
    },
  },
};

export const TOY_NAMES: readonly string[] = Object.keys(TOYS);

/** Where a toy's samples belong, or null for a name that is not a toy and for the mixture. */
export function toySupport(name: string): ToySupport | null {
  return Object.hasOwn(TOYS, name) ? (TOYS[name].support ?? null) : null;
}

export function toyDataset(name: string, n: number, seed: number): { data: Float32Array; defaults: NoiseDefaults } | null {
  // own keys only: 'toString' or '__proto__' must not find Object.prototype's members
  if (!Object.hasOwn(TOYS, name)) return null;
  const toy = TOYS[name];
  const u = addon.random({ kind: 'uniform', seed, n: 3 * n, stream: 1, offset: 0 });
  const z = addon.random({ kind: 'normal', seed, n: 2 * n, stream: 2, offset: 0 });
  const data = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    data.set(toy.point([u[3 * i], u[3 * i + 1], u[3 * i + 2]], [z[2 * i], z[2 * i + 1]]), 2 * i);
  }
  return { data, defaults: toy.defaults };
}
