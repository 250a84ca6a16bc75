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

// u holds three uniforms in (0, 1) per point, z two standard normals.
type Generator = (n: number, u: Float32Array, z: Float32Array) => Float32Array;

interface Toy {
  generate: Generator;
  defaults: NoiseDefaults;
}

// Toys other than W1 live in about [−4, 4]² with structure a few tenths wide: σ_1 about their
// largest pairwise distance (NCSNv2's Technique 1), σ_L below the structure, and the longer training
// the small levels need (chosen by looking at the plots).
const FINE: NoiseDefaults = { sigmaBegin: 8, sigmaEnd: 0.05, levels: 12, steps: 20_000 };

const TOYS: Record<string, Toy> = {
  // W1 (fixed by WORKLOADS.md)
  mixture: {
    defaults: { sigmaBegin: 20, sigmaEnd: 1, levels: 10, steps: 5000 },
    generate: (n, u, z) => {
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const c = u[3 * i] < MIXTURE.weights[0] ? MIXTURE.means[0] : MIXTURE.means[1];
        out[2 * i] = c[0] + z[2 * i];
        out[2 * i + 1] = c[1] + z[2 * i + 1];
      }
      return out;
    },
  },
  // eight Gaussians of std 0.5 evenly spaced on a circle of radius 4
  '8gaussians': {
    defaults: FINE,
    generate: (n, u, z) => {
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const a = (Math.floor(u[3 * i] * 8) * Math.PI) / 4;
        out[2 * i] = 4 * Math.cos(a) + 0.5 * z[2 * i];
        out[2 * i + 1] = 4 * Math.sin(a) + 0.5 * z[2 * i + 1];
      }
      return out;
    },
  },
  // a 2-D swiss roll, the spiral (t cos t, t sin t) for t in [1.5π, 4.5π], scaled to radius 4
  swissroll: {
    defaults: FINE,
    generate: (n, u, z) => {
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const t = 1.5 * Math.PI * (1 + 2 * u[3 * i]);
        out[2 * i] = (t * Math.cos(t)) / 3.5 + 0.1 * z[2 * i];
        out[2 * i + 1] = (t * Math.sin(t)) / 3.5 + 0.1 * z[2 * i + 1];
      }
      return out;
    },
  },
  // four concentric rings of radius 1, 2, 3 and 4
  rings: {
    defaults: FINE,
    generate: (n, u, z) => {
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const ring = Math.floor(u[3 * i] * 4);
        const a = 2 * Math.PI * u[3 * i + 1];
        out[2 * i] = (ring + 1) * Math.cos(a) + 0.08 * z[2 * i];
        out[2 * i + 1] = (ring + 1) * Math.sin(a) + 0.08 * z[2 * i + 1];
      }
      return out;
    },
  },
  // the dark squares of a 4×4 checkerboard on [−4, 4]²
  checkerboard: {
    defaults: FINE,
    generate: (n, u, _z) => {
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const x = -4 + 8 * u[3 * i];
        const row = Math.floor(u[3 * i + 1] * 2) * 2 + ((Math.floor(x / 2) + 2) % 2); // a dark square in x's column
        out[2 * i] = x;
        out[2 * i + 1] = -4 + 2 * (row + u[3 * i + 2]);
      }
      return out;
    },
  },
  // two interleaving half circles, centred and scaled to about [−4, 4]
  moons: {
    defaults: FINE,
    generate: (n, u, z) => {
      const out = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const upper = u[3 * i] < 0.5;
        const a = Math.PI * u[3 * i + 1];
        const x = upper ? Math.cos(a) : 1 - Math.cos(a);
        const y = upper ? Math.sin(a) : 0.5 - Math.sin(a);
        out[2 * i] = 2.5 * (x - 0.5) + 0.1 * z[2 * i];
        out[2 * i + 1] = 2.5 * (y - 0.25) + 0.1 * z[2 * i + 1];
      }
      return out;
    },
  },
};

export const TOY_NAMES: readonly string[] = Object.keys(TOYS);

export function toyDataset(name: string, n: number, seed: number): { data: Float32Array; defaults: NoiseDefaults } | null {
  const toy = TOYS[name];
  if (!toy) return null;
  const u = addon.random({ kind: 'uniform', seed, n: 3 * n, stream: 1 });
  const z = addon.random({ kind: 'normal', seed, n: 2 * n, stream: 2 });
  return { data: toy.generate(n, u, z), defaults: toy.defaults };
}
