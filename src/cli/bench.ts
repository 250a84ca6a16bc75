// `ncsn-cuda bench`: the speed figures of a WORKLOADS.md workload, as one JSON line.
import { NcsnModel, type Device } from '../index.js';
import { loadDataset } from '../data/index.js';
import { geometricSigmas } from '../schedule.js';

export interface BenchFlags {
  workload: 'w1';
  device: Device;
  repeats: number;
  precision: 'fp32' | 'tf32';
}

async function best(repeats: number, run: () => Promise<number>): Promise<number> {
  let top = 0;
  for (let r = 0; r < repeats; r++) top = Math.max(top, await run());
  return top;
}

export async function bench(flags: BenchFlags): Promise<number> {
  // W1: the 2-D mixture, σ 20 → 1 over 10 geometric levels, the width-128 MLP, Adam 1e-3.
  const data = loadDataset('toy:mixture', { seed: 0 });
  const sigmas = geometricSigmas(20, 1, 10);
  const model = NcsnModel.create({
    model: 'mlp',
    dataDim: 2,
    width: 128,
    depth: 2,
    sigmas,
    device: flags.device,
    precision: flags.precision,
  });
  if (model.backendNotice) process.stderr.write(`note: ${model.backendNotice}\n`);
  const gpu = model.backend.startsWith('cuda');
  // WORKLOADS.md: batch 512 and 10,000 particles on a CPU, 4096 and 1,000,000 on a GPU
  const batch = gpu ? 4096 : 512;
  const trainSteps = 500;
  await model.train(data, { steps: 20, batchSize: batch }); // warm-up
  const trainStepsPerS = await best(flags.repeats, async () => {
    const t = process.hrtime.bigint();
    await model.train(data, { steps: trainSteps, batchSize: batch, reportEvery: trainSteps });
    return trainSteps / (Number(process.hrtime.bigint() - t) / 1e9);
  });

  const particles = gpu ? 1_000_000 : 10_000;
  const stepsPerLevel = 20;
  await model.sample({ n: particles, stepsPerLevel: 1 }); // warm-up
  const sampleRate = await best(flags.repeats, async () => {
    const t = process.hrtime.bigint();
    await model.sample({ n: particles, stepsPerLevel });
    return (particles * stepsPerLevel * sigmas.length) / (Number(process.hrtime.bigint() - t) / 1e9);
  });

  process.stdout.write(
    `${JSON.stringify({
      workload: 'w1',
      impl: 'ncsn-cuda',
      device: model.backend,
      threads: model.threads,
      precision: gpu ? flags.precision : 'fp32',
      train_batch: batch,
      train_steps_per_s: Math.round(trainStepsPerS),
      sample_particles: particles,
      sample_particle_steps_per_s: Math.round(sampleRate),
      repeats: flags.repeats,
    })}\n`,
  );
  return 0;
}
