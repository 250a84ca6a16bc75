// `ncsn-cuda inpaint`: complete the hidden part of an image from a checkpoint (NCSN's inpainting)
// and write the reference, the masked input and the completions as one grid.
import { NcsnModel, type Device, type Precision } from '../index.js';
import { loadDataset } from '../data/index.js';
import { readPng } from '../data/png.js';
import { writeFileAtomic } from '../io/files.js';
import { renderImageGrid } from '../render/images.js';
import { UsageError } from './options.js';
import { checkOutputFile } from './outputs.js';
import { applySamplingFlags, samplerName, type SamplingFlags } from './sampling.js';

export type Half = 'left' | 'right' | 'top' | 'bottom';

export interface InpaintFlags extends Pick<SamplingFlags, 'stepsPerLevel' | 'stepLr' | 'denoise'> {
  checkpoint: string;
  image: string;
  index: number;
  mask?: string;
  maskHalf?: Half;
  n: number;
  seed: number;
  out: string;
  device: Device;
  precision: Precision;
  /** false with --no-graphs */
  graphs: boolean;
}

// 1 where the pixel is known, 0 where it is filled in: the same for every channel.
function halfMask(channels: number, height: number, width: number, hidden: Half): Float32Array {
  const mask = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const inHidden =
          hidden === 'left' ? x < width / 2 : hidden === 'right' ? x >= width / 2 : hidden === 'top' ? y < height / 2 : y >= height / 2;
        mask[(c * height + y) * width + x] = inHidden ? 0 : 1;
      }
  return mask;
}

// A mask drawn as a PNG of the image's size: white (or any value of at least half) is known.
function pngMask(file: string, channels: number, height: number, width: number): Float32Array {
  const png = readPng(file);
  const [c, h, w] = png.shape;
  if (h !== height || w !== width) throw new UsageError(`--mask ${file} is ${w}×${h}; the model's images are ${width}×${height}`);
  const mask = new Float32Array(channels * height * width);
  for (let i = 0; i < height * width; i++) {
    let v = 0;
    for (let k = 0; k < c; k++) v += png.data[k * height * width + i];
    for (let k = 0; k < channels; k++) mask[k * height * width + i] = v / c >= 0.5 ? 1 : 0;
  }
  return mask;
}

export async function inpaint(flags: InpaintFlags): Promise<number> {
  checkOutputFile('--out', flags.out, ['.png']);
  if ((flags.mask === undefined) === (flags.maskHalf === undefined)) {
    throw new UsageError('give the hidden part as --mask PNG or as --mask-half left|right|top|bottom, one of them');
  }
  const model = NcsnModel.load(flags.checkpoint, { device: flags.device, precision: flags.precision, graphs: flags.graphs });
  if (model.backendNotice) process.stderr.write(`note: ${model.backendNotice}\n`);
  const image = model.config.image;
  if (!image) throw new UsageError(`${flags.checkpoint}: inpainting completes images, and this model's data are ${model.config.dataDim}-D points`);
  const { channels, height, width, low, high } = image;
  const data = loadDataset(flags.image, { seed: 0 });
  if (data.dim !== model.config.dataDim) {
    throw new UsageError(`--image ${flags.image} holds points of ${data.dim} values; the model's images are ${channels}×${height}×${width}`);
  }
  if (flags.index >= data.rows) throw new UsageError(`--index ${flags.index}: ${flags.image} holds ${data.rows} images (0 to ${data.rows - 1})`);
  const reference = data.data.slice(flags.index * data.dim, (flags.index + 1) * data.dim);
  const mask = flags.mask !== undefined ? pngMask(flags.mask, channels, height, width) : halfMask(channels, height, width, flags.maskHalf!);
  const { sampling, stepLrNote } = applySamplingFlags({ ...model.config.sampling, sampler: 'ald' }, model.config.sigmas, flags);
  if (stepLrNote) process.stderr.write(`ε = ${sampling.stepLr.toPrecision(3)}: ${stepLrNote}\n`);

  const t = process.hrtime.bigint();
  const completions = await model.inpaint({ ...sampling, image: reference, mask, n: flags.n, seed: flags.seed });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  // the hidden pixels of the input drawn grey, between black and white
  const masked = reference.map((v, i) => (mask[i] ? v : (low + high) / 2));
  const grid = new Float32Array((2 + flags.n) * data.dim);
  grid.set(reference, 0);
  grid.set(masked, data.dim);
  grid.set(completions, 2 * data.dim);
  writeFileAtomic(
    flags.out,
    renderImageGrid({
      images: grid,
      image,
      count: 2 + flags.n,
      title: `${flags.image} #${flags.index}: the image, its known part (hidden grey), ${flags.n} completions`,
      subtitle: `${model.step.toLocaleString('en-US')} training steps; ${samplerName(sampling)}`,
    }),
  );
  process.stderr.write(`inpainted ${flags.n} completions in ${seconds.toFixed(1)} s\n`);
  process.stdout.write(`${flags.out}\n`);
  return 0;
}
