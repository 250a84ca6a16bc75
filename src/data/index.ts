// Dataset specs: `toy:<name>` for a built-in distribution, or a .npy or .csv file of points.
import fs from 'node:fs';

import { parseNpy } from './npy.js';
import { parseCsv } from './csv.js';
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

function readFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new DataError(`cannot read ${file}: ${why}`);
  }
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
  let points: Points;
  if (/\.npy$/i.test(spec)) points = parseNpy(readFile(spec), spec);
  else if (/\.csv$/i.test(spec)) points = parseCsv(readFile(spec).toString('utf8'), spec);
  else {
    throw new DataError(`unknown data '${spec}': give toy:<name> (${TOY_NAMES.join(', ')}) or a path ending in .npy or .csv`);
  }
  return { name: spec, data: points.data, rows: points.rows, dim: points.cols, shape: points.shape, defaults: null };
}
