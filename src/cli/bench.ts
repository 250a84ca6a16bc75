// `ncsn-cuda bench`: the speed figures of a workload of docs/workloads.md, as one JSON line, with
// the arithmetic rate they amount to (the matrix products and convolutions; training counts three
// forward passes, the forward and the two products of the backward).
import { NcsnModel, info, type Device, type Precision } from '../index.js';
import { addon } from '../native.js';
import { loadDataset, type Dataset } from '../data/index.js';
import { geometricSigmas } from '../schedule.js';

export interface BenchFlags {
  workload: 'w1' | 'w2';
  device: Device;
  repeats: number;
  precision: Precision;
}

// The best rate of `repeats` timings of run(), which does `count` units of work.
async function perSecond(repeats: number, count: number, run: () => Promise<unknown>): Promise<number> {
  let top = 0;
  for (let r = 0; r < repeats; r++) {
    const t = process.hrtime.bigint();
    await run();
    top = Math.max(top, count / (Number(process.hrtime.bigint() - t) / 1e9));
  }
  return top;
}

interface Workload {
  model: NcsnModel;
  data: Dataset;
  batch: number;
  trainSteps: number;
  particles: number;
  stepsPerLevel: number;
  /** Names of the figures: training units and sampling units. */
  trainKey: string;
  sampleKey: string;
  /** Training figure per step: steps (W1) or images (W2). */
  trainUnitsPerStep: number;
}

function w1(flags: BenchFlags): Workload {
  // W1: the 2-D mixture, σ 20 → 1 over 10 geometric levels, the width-128 MLP, Adam 1e-3.
  const model = NcsnModel.create({ model: 'mlp', dataDim: 2, width: 128, depth: 2, sigmas: geometricSigmas(20, 1, 10), device: flags.device, precision: flags.precision });
  const gpu = model.backend.startsWith('cuda');
  // batch 512 and 10,000 particles on a CPU, 4096 and 1,000,000 on a GPU
  const batch = gpu ? 4096 : 512;
  return {
    model,
    data: loadDataset('toy:mixture', { seed: 0 }),
    batch,
    trainSteps: 500,
    particles: gpu ? 1_000_000 : 10_000,
    stepsPerLevel: 20,
    trainKey: 'train_steps_per_s',
    sampleKey: 'sample_particle_steps_per_s',
    trainUnitsPerStep: 1,
  };
}

function w2(flags: BenchFlags): Workload {
  // W2: MNIST, σ 1 → 0.01 over 10 levels, the U-Net with C = 32 at batch 32 on a CPU and C = 64 at
  // batch 128 on a GPU, a sampling step over the same batch.
  const gpu = flags.device !== 'cpu' && (flags.device !== 'auto' || info().devices.some((d) => d.usable));
  const batch = gpu ? 128 : 32;
  const data = loadDataset('mnist', { seed: 0 });
  const model = NcsnModel.create({
    model: 'unet',
    channels: gpu ? 64 : 32,
    image: data.image!,
    dataDim: data.dim,
    sigmas: geometricSigmas(1, 0.01, 10),
    dequantize: true,
    device: flags.device,
    precision: flags.precision,
  });
  return {
    model,
    data,
    batch,
    trainSteps: gpu ? 20 : 5,
    particles: batch,
    stepsPerLevel: gpu ? 5 : 1,
    trainKey: 'train_images_per_s',
    sampleKey: 'sample_image_steps_per_s',
    trainUnitsPerStep: batch,
  };
}

export async function bench(flags: BenchFlags): Promise<number> {
  const w = flags.workload === 'w1' ? w1(flags) : w2(flags);
  const { model, data, batch } = w;
  if (model.backendNotice) process.stderr.write(`note: ${model.backendNotice}\n`);
  const gpu = model.backend.startsWith('cuda');
  await model.train(data, { steps: 2, batchSize: batch }); // warm-up
  const trainRate = await perSecond(flags.repeats, w.trainSteps * w.trainUnitsPerStep, () =>
    model.train(data, { steps: w.trainSteps, batchSize: batch, reportEvery: w.trainSteps }),
  );
  const levels = model.config.sigmas.length;
  await model.sample({ n: w.particles, stepsPerLevel: 1 }); // warm-up
  const sampleRate = await perSecond(flags.repeats, w.particles * w.stepsPerLevel * levels, () =>
    model.sample({ n: w.particles, stepsPerLevel: w.stepsPerLevel }),
  );
  // FLOPs per sample: one forward pass for a Langevin step, three for a training sample
  const flops = model.forwardFlops;
  const trainSamplesPerS = (trainRate / w.trainUnitsPerStep) * batch;
  const trainGflops = (3 * flops * trainSamplesPerS) / 1e9;
  const sampleGflops = (flops * sampleRate) / 1e9;
  // the ceiling those rates are a fraction of, on the threads the model used (a GPU has none here)
  const peak = gpu ? null : addon.fmaPeak(model.threads);
  process.stdout.write(
    `${JSON.stringify({
      workload: flags.workload,
      impl: 'ncsn-cuda',
      device: model.backend,
      threads: model.threads,
      precision: gpu ? flags.precision : 'fp32',
      train_batch: batch,
      [w.trainKey]: Math.round(trainRate),
      sample_batch: w.particles,
      [w.sampleKey]: Math.round(sampleRate),
      forward_mflop_per_sample: +(flops / 1e6).toFixed(3),
      train_gflop_per_s: +trainGflops.toFixed(1),
      sample_gflop_per_s: +sampleGflops.toFixed(1),
      ...(peak !== null
        ? {
            fma_peak_gflop_per_s: +peak.toFixed(1),
            train_fraction_of_peak: +(trainGflops / peak).toFixed(3),
            sample_fraction_of_peak: +(sampleGflops / peak).toFixed(3),
          }
        : {}),
      repeats: flags.repeats,
    })}\n`,
  );
  return 0;
}
