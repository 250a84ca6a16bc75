// Trains a score network on 2-D points of your own, handed over as a Float32Array, samples it by
// annealed Langevin dynamics and plots the samples over the data.
//   node examples/custom-2d.mjs [out.png] [steps]
import fs from 'node:fs';
import { NcsnModel, geometricSigmas, renderScatter } from 'ncsn-cuda';

const out = process.argv[2] ?? 'spiral.png';
const steps = Number(process.argv[3] ?? 20_000);

// 20,000 points on a spiral of two turns with a little noise, row-major: x0, y0, x1, y1, …
// (a small linear congruential generator keeps the data the same on every run).
let state = 1;
const uniform = () => (state = (state * 1664525 + 1013904223) >>> 0) / 2 ** 32;
const rows = 20_000;
const data = new Float32Array(rows * 2);
for (let i = 0; i < rows; i++) {
  const t = 4 * Math.PI * Math.sqrt(uniform());
  const r = 0.3 * t;
  data[2 * i] = r * Math.cos(t) + 0.1 * (uniform() - 0.5);
  data[2 * i + 1] = r * Math.sin(t) + 0.1 * (uniform() - 0.5);
}

// σ_1 about the data's diameter, σ_L below the spiral's spacing (NCSN's rules of thumb).
const sigmas = geometricSigmas(8, 0.05, 12);
const model = NcsnModel.create({ sigmas, seed: 0, sampling: { stepLr: 0.1 * sigmas.at(-1) ** 2 } });
try {
  const result = await model.train({ data, rows, dim: 2 }, {
    steps,
    batchSize: 128,
    reportEvery: Math.max(1, Math.floor(steps / 5)),
    onProgress: ({ step, loss }) => console.log(`step ${step}: loss ${loss.toFixed(3)}`),
  });
  const samples = await model.sample({ n: 5000, seed: 1, denoise: true });
  fs.writeFileSync(out, renderScatter({ samples, reference: data, title: 'a spiral from a Float32Array', subtitle: `${result.step} steps` }));
  console.log(`${out}: ${samples.length / 2} samples`);
} finally {
  model.dispose();
}
