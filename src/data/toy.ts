// Built-in 2-D distributions. Every draw comes from the native Philox stream (seed, stream), so a
// toy dataset is the same on every machine for the same seed.
import { addon } from '../native.js';

/** The settings a dataset trains well with. */
export interface NoiseDefaults {
  sigmaBegin: number;
  sigmaEnd: number;
  levels: number;
  steps: number;
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

interface Toy {
  point: Point;
  defaults: NoiseDefaults;
}

// Toys other than W1 live in about [−4, 4]² with structure a few tenths wide: σ_1 about their
// largest pairwise distance (NCSNv2's Technique 1), σ_L below the structure, and the longer training
// the small levels need (chosen by looking at the plots).
const FINE: NoiseDefaults = { sigmaBegin: 8, sigmaEnd: 0.05, levels: 12, steps: 20_000 };

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
  },
  // a 2-D swiss roll, the spiral (t cos t, t sin t) for t in [1.5π, 4.5π], scaled to radius 4
  swissroll: {
    defaults: FINE,
    point: ([u], [z0, z1]) => {
      const t = 1.5 * Math.PI * (1 + 2 * u);
      return [(t * Math.cos(t)) / 3.5 + 0.1 * z0, (t * Math.sin(t)) / 3.5 + 0.1 * z1];
    },
  },
  // four concentric rings of radius 1, 2, 3 and 4
  rings: {
    defaults: FINE,
    point: ([u0, u1], [z0, z1]) => {
      const r = Math.floor(u0 * 4) + 1;
      const a = 2 * Math.PI * u1;
      return [r * Math.cos(a) + 0.08 * z0, r * Math.sin(a) + 0.08 * z1];
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
  },
  // two interleaving half circles, centred and scaled to about [−4, 4]
  moons: {
    defaults: FINE,
    point: ([u0, u1], [z0, z1]) => {
      const a = Math.PI * u1;
      const [x, y] = u0 < 0.5 ? [Math.cos(a), Math.sin(a)] : [1 - Math.cos(a), 0.5 - Math.sin(a)];
      return [2.5 * (x - 0.5) + 0.1 * z0, 2.5 * (y - 0.25) + 0.1 * z1];
    },
  },
};

export const TOY_NAMES: readonly string[] = Object.keys(TOYS);

export function toyDataset(name: string, n: number, seed: number): { data: Float32Array; defaults: NoiseDefaults } | null {
  // own keys only: 'toString' or '__proto__' must not find Object.prototype's members
  if (!Object.hasOwn(TOYS, name)) return null;
  const toy = TOYS[name];
  const u = addon.random({ kind: 'uniform', seed, n: 3 * n, stream: 1 });
  const z = addon.random({ kind: 'normal', seed, n: 2 * n, stream: 2 });
  const data = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    data.set(toy.point([u[3 * i], u[3 * i + 1], u[3 * i + 2]], [z[2 * i], z[2 * i + 1]]), 2 * i);
  }
  return { data, defaults: toy.defaults };
}
