// `ncsn-cuda sample`: draw samples from a checkpoint by annealed Langevin dynamics or the
// predictor-corrector sampler, and optionally record the particles' paths as an animated GIF.
import path from 'node:path';

import { NcsnModel, type Device, type Precision, type SamplerPosition } from '../index.js';
import { loadDataset } from '../data/index.js';
import { npyPieces } from '../data/npy.js';
import { csvPieces } from '../data/csv.js';
import { writeFileAtomic } from '../io/files.js';
import { renderScatter } from '../render/scatter.js';
import { renderAnimation, renderImageAnimation } from '../render/animation.js';
import { gridCount, renderImageGrid } from '../render/images.js';
import { describeToyReport, mixtureReport, toyReport } from '../metrics.js';
import { UsageError } from './options.js';
import { checkOutputFile } from './outputs.js';
import { applySamplingFlags, samplerName, type SamplingFlags } from './sampling.js';

export interface SampleFlags extends SamplingFlags {
  checkpoint: string;
  n: number;
  animate?: string;
  frames: number;
  seed: number;
  out: string;
  device: Device;
  precision: Precision;
  /** false with --no-graphs */
  graphs: boolean;
}

const FORMATS = ['.npy', '.csv', '.png'];
/** The particles an animation follows: more add drawing time and hide each other. */
const ANIMATED_PARTICLES = 10_000;

// The training data behind the samples in a picture, when the checkpoint names it and it can still
// be read; a moved training file leaves the picture with the samples alone.
function loadReference(model: NcsnModel): Float32Array | undefined {
  const spec = model.config.data;
  if (!spec) return undefined;
  try {
    return loadDataset(spec, { seed: model.config.seed }).data;
  } catch {
    return undefined;
  }
}

export async function sample(flags: SampleFlags): Promise<number> {
  // where the results go is checked before the sampling they would throw away
  checkOutputFile('--out', flags.out, FORMATS);
  if (flags.animate !== undefined) checkOutputFile('--animate', flags.animate, ['.gif']);
  const ext = path.extname(flags.out).toLowerCase();
  const model = NcsnModel.load(flags.checkpoint, { device: flags.device, precision: flags.precision, graphs: flags.graphs });
  if (model.backendNotice) process.stderr.write(`note: ${model.backendNotice}\n`);
  const dim = model.config.dataDim;
  const image = model.config.image;
  if (ext === '.png' && dim !== 2 && !image) {
    throw new UsageError(`--out ${flags.out}: a .png draws 2-D points or images, and this model's data is ${dim}-D`);
  }
  if (flags.animate !== undefined && dim !== 2 && !image) {
    throw new UsageError(`--animate draws 2-D particles or images, and this model's data is ${dim}-D`);
  }
  const { sampling, stepLrNote } = applySamplingFlags(model.config.sampling, model.config.sigmas, flags);
  if (stepLrNote) process.stderr.write(`ε = ${sampling.stepLr.toPrecision(3)}: ${stepLrNote}\n`);

  const frames: Float32Array[] = [];
  const captions: string[] = [];
  const levels = model.config.sigmas.length;
  const caption = (at: SamplerPosition) => {
    if (at.level === 0 && at.step === 0) {
      const range = `[${Number(sampling.initLow.toPrecision(3))}, ${Number(sampling.initHigh.toPrecision(3))}]`;
      return sampling.sampler === 'pc' ? 'start: N(0, σ₁² I)' : `start: uniform in ${range}${dim === 2 ? '²' : ` in each of ${dim} coordinates`}`;
    }
    const sigma = model.config.sigmas[at.level];
    const last = at.level === levels - 1 && at.step === sampling.stepsPerLevel;
    return `level ${at.level + 1} of ${levels}, σ = ${Number(sigma.toPrecision(3))}, step ${at.step} of ${sampling.stepsPerLevel}${last && sampling.denoise ? ', denoised' : ''}`;
  };
  const samples = await model.sample({
    ...sampling,
    n: flags.n,
    seed: flags.seed,
    ...(flags.animate !== undefined
      ? {
          frameEvery: Math.max(1, Math.ceil((levels * sampling.stepsPerLevel) / flags.frames)),
          onFrame: (particles: Float32Array, at: SamplerPosition) => {
            frames.push(particles.slice(0, dim * (image ? gridCount(flags.n) : ANIMATED_PARTICLES)));
            captions.push(caption(at));
          },
        }
      : {}),
  });
  const reference = !image && (ext === '.png' || flags.animate !== undefined) ? loadReference(model) : undefined;
  const name = model.config.data ?? 'samples';
  const spec = model.config.data;
  // the measure of a toy's samples, whatever the output format
  const toy = spec?.startsWith('toy:') ? toyReport(spec.slice(4), samples) : null;
  const measure =
    spec === 'toy:mixture' ? `(5,5) mode: ${mixtureReport(samples).fraction.toFixed(3)} of the samples (truth 0.800)` : toy ? describeToyReport(toy) : undefined;
  if (measure) process.stderr.write(`${measure}\n`);
  if (ext === '.npy') {
    const shape = image ? (image.channels === 1 ? [image.height, image.width] : [image.channels, image.height, image.width]) : [dim];
    writeFileAtomic(flags.out, npyPieces(samples, [flags.n, ...shape]));
  } else if (ext === '.csv') writeFileAtomic(flags.out, csvPieces(samples, flags.n, dim));
  else if (image) {
    const count = gridCount(flags.n);
    const of = count < flags.n ? ` (${count} of ${flags.n.toLocaleString('en-US')})` : '';
    const trained = `${model.step.toLocaleString('en-US')} training steps`;
    writeFileAtomic(flags.out, renderImageGrid({ images: samples, image, title: `${name}: samples${of}, ${trained}, ${samplerName(sampling)}` }));
  } else {
    writeFileAtomic(
      flags.out,
      renderScatter({
        samples,
        reference,
        title: `${spec ?? 'samples'}: ${flags.n.toLocaleString('en-US')} samples, ${samplerName(sampling)}`,
        subtitle: measure,
      }),
    );
  }
  const written = [flags.out];
  if (flags.animate !== undefined) {
    const film = image
      ? renderImageAnimation({ frames, captions, image, title: `${name}: ${samplerName(sampling)}` })
      : renderAnimation({
          frames,
          captions,
          reference,
          title: `${name}: ${samplerName(sampling)}${flags.n > ANIMATED_PARTICLES ? `, ${ANIMATED_PARTICLES.toLocaleString('en-US')} of ${flags.n.toLocaleString('en-US')} particles` : ''}`,
        });
    writeFileAtomic(flags.animate, film);
    written.push(flags.animate);
  }
  process.stdout.write(`${written.join('\n')}\n`);
  return 0;
}
