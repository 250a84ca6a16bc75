// Dataset specs: `toy:<name>` for a built-in distribution, `mnist` or `mnist:test` for the MNIST
// digits, a .npy or .csv file of points, or images: an IDX file, a PNG or a folder of PNGs.
import fs from 'node:fs';

import { parseNpy } from './npy.js';
import { parseCsv } from './csv.js';
import { readFile } from './files.js';
import { mnistFile, readIdx } from './idx.js';
import { readPng, readPngFolder } from './png.js';
import { toyDataset, TOY_NAMES, type NoiseDefaults } from './toy.js';
import { DataError, type Points } from './points.js';

export { DataError } from './points.js';
export { MIXTURE, TOY_NAMES, type NoiseDefaults } from './toy.js';

export interface Dataset {
  /** The spec it was loaded from. */
  name: string;
  data: Float32Array;
  rows: number;
  dim: number;
  /** The shape of one point: [dim], or e.g. [28, 28] for an .npy of images. */
  shape: number[];
  /** Noise levels and step size that suit it; null for user files. */
  defaults: NoiseDefaults | null;
  /**
   * Images of pixels (MNIST, IDX, PNG): their layout, with black at 0 and white at 1. Absent for
   * other data, also for an .npy of images, whose black and white are its extremes.
   */
  image?: ImageShape & { low: number; high: number };
}

/** A point laid out as an image: channels × height × width, row-major. */
export interface ImageShape {
  channels: number;
  height: number;
  width: number;
}

/**
 * The image layout of points of this shape, or null: (H, W) is a grey image and (C, H, W) with
 * C = 1 or 3 an image with C channels first (NumPy and PyTorch's NCHW), each side at least 2.
 */
export function imageShape(shape: readonly number[]): ImageShape | null {
  const [channels, height, width] = shape.length === 2 ? [1, shape[0], shape[1]] : shape.length === 3 ? shape : [0, 0, 0];
  if (!(channels === 1 || channels === 3) || height < 2 || width < 2) return null;
  return { channels, height, width };
}

export interface LoadOptions {
  /** Seed of a toy dataset's draws. */
  seed: number;
  /** Points in a toy dataset (default 100,000). */
  toySize?: number;
}

/** Whether a spec names built-in data (a toy, MNIST) rather than a file or a folder. */
export function isBuiltinDataset(spec: string): boolean {
  return spec.startsWith('toy:') || spec === 'mnist' || spec === 'mnist:test';
}

function isFolder(spec: string): boolean {
  return fs.statSync(spec, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function pixelImages(name: string, images: Points): Dataset {
  const [channels, height, width] = images.shape;
  const image = { channels, height, width, low: 0, high: 1 };
  return { name, data: images.data, rows: images.rows, dim: images.cols, shape: images.shape, defaults: null, image };
}

export function loadDataset(spec: string, options: LoadOptions): Dataset {
  if (spec.startsWith('toy:')) {
    const name = spec.slice(4);
    const n = options.toySize ?? 100_000;
    if (!Number.isSafeInteger(n) || n < 1) throw new DataError(`toySize must be a positive integer, not ${n}`);
    const toy = toyDataset(name, n, options.seed);
    if (!toy) throw new DataError(`unknown toy dataset '${spec}'; the toys are ${TOY_NAMES.map((t) => `toy:${t}`).join(', ')}`);
    return { name: spec, data: toy.data, rows: toy.data.length / 2, dim: 2, shape: [2], defaults: toy.defaults };
  }
  if (spec === 'mnist' || spec === 'mnist:test') {
    return pixelImages(spec, readIdx(mnistFile(spec === 'mnist' ? 'train' : 'test')));
  }
  if (/idx\d-ubyte(\.gz)?$/i.test(spec)) return pixelImages(spec, readIdx(spec));
  if (/\.png$/i.test(spec)) return pixelImages(spec, readPng(spec));
  let points: Points;
  if (/\.npy$/i.test(spec)) points = parseNpy(readFile(spec), spec);
  else if (/\.csv$/i.test(spec)) points = parseCsv(readFile(spec).toString('utf8'), spec);
  else if (isFolder(spec)) return pixelImages(spec, readPngFolder(spec));
  else {
    throw new DataError(
      `unknown data '${spec}': give toy:<name> (${TOY_NAMES.join(', ')}), mnist, mnist:test, a path ending in .npy, .csv, .png, idx3-ubyte or idx3-ubyte.gz, or a folder of PNGs`,
    );
  }
  return { name: spec, data: points.data, rows: points.rows, dim: points.cols, shape: points.shape, defaults: null };
}
