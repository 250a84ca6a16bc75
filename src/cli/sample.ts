// `ncsn-cuda sample`: draw samples from a checkpoint by annealed Langevin dynamics.
import fs from 'node:fs';
import path from 'node:path';

import { NcsnModel, type Device } from '../index.js';
import { loadDataset } from '../data/index.js';
import { writeNpy } from '../data/npy.js';
import { formatCsv } from '../data/csv.js';
import { writeFileAtomic } from '../checkpoint.js';
import { renderScatter } from '../render/scatter.js';
import { mixtureReport } from '../metrics.js';
import { UsageError } from './options.js';

export interface SampleFlags {
  checkpoint: string;
  n: number;
  stepsPerLevel?: number;
  stepLr?: number;
  denoise?: boolean;
  seed: number;
  out: string;
  device: Device;
}

const FORMATS = ['.npy', '.csv', '.png'];

export async function sample(flags: SampleFlags): Promise<number> {
  const ext = path.extname(flags.out).toLowerCase();
  if (!FORMATS.includes(ext)) {
    throw new UsageError(`--out ${flags.out}: the extension must be one of ${FORMATS.join(', ')}`);
  }
  const model = NcsnModel.load(flags.checkpoint, { device: flags.device });
  if (model.backendNotice) process.stderr.write(`note: ${model.backendNotice}\n`);
  const dim = model.config.dataDim;
  if (ext === '.png' && dim !== 2) {
    throw new UsageError(`--out ${flags.out}: a .png scatter plot needs 2-D data, and this model's data is ${dim}-D`);
  }
  const samples = await model.sample({
    n: flags.n,
    seed: flags.seed,
    ...(flags.stepsPerLevel !== undefined ? { stepsPerLevel: flags.stepsPerLevel } : {}),
    ...(flags.stepLr !== undefined ? { stepLr: flags.stepLr } : {}),
    ...(flags.denoise !== undefined ? { denoise: flags.denoise } : {}),
  });
  fs.mkdirSync(path.dirname(path.resolve(flags.out)), { recursive: true });
  if (ext === '.npy') writeFileAtomic(flags.out, writeNpy(samples, [flags.n, dim]));
  else if (ext === '.csv') writeFileAtomic(flags.out, formatCsv(samples, flags.n, dim));
  else {
    const spec = model.config.data;
    let reference: Float32Array | undefined;
    if (spec) {
      try {
        reference = loadDataset(spec, { seed: model.config.seed }).data;
      } catch {
        reference = undefined; // the training file may have moved; the plot then shows the samples alone
      }
    }
    const subtitle = spec === 'toy:mixture' ? `(5,5) mode: ${mixtureReport(samples).fraction.toFixed(3)} of the samples (truth 0.800)` : undefined;
    writeFileAtomic(
      flags.out,
      renderScatter({
        samples,
        reference,
        title: `${spec ?? 'samples'}: ${flags.n.toLocaleString('en-US')} samples, annealed Langevin`,
        subtitle,
      }),
    );
  }
  process.stdout.write(`${flags.out}\n`);
  return 0;
}
