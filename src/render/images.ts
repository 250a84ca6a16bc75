// Samples that are images, drawn as a grid: each value mapped from [low, high] to black…white (per
// channel for colour), each image scaled up by whole pixels so that the grid is about 720 px across.
import { Canvas, type RGB } from './canvas.js';
import type { ImageSpec } from '../index.js';

export interface ImageGridOptions {
  /** n images of channels × height × width values each, row-major. */
  images: Float32Array;
  image: ImageSpec;
  /** How many of the images to draw, from the first: all of them up to 64 by default. */
  count?: number;
  title?: string;
  subtitle?: string;
}

export interface ImageGrid {
  canvas: Canvas;
  image: ImageSpec;
  count: number;
  columns: number;
  /** Screen pixels per image pixel. */
  scale: number;
  gap: number;
  left: number;
  top: number;
}

const GRID_SIZE = 720;
const MARGIN = 40;
const TITLES = 80;
const DEFAULT_COUNT = 64;
/** Where a value is NaN or infinite, so that a diverged sample shows as one. */
const NOT_FINITE: RGB = [220, 40, 40];

/** How many images a grid draws by default, from n. */
export function gridCount(n: number): number {
  return Math.min(n, DEFAULT_COUNT);
}

export function layoutImageGrid(image: ImageSpec, count: number): ImageGrid {
  if (!(Number.isInteger(count) && count >= 1)) throw new RangeError(`an image grid needs at least one image, not ${count}`);
  const columns = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / columns);
  const scale = Math.max(1, Math.floor(Math.min(GRID_SIZE / (columns * image.width), GRID_SIZE / (rows * image.height))));
  const gap = Math.max(2, Math.round(scale / 2));
  const width = 2 * MARGIN + columns * image.width * scale + (columns - 1) * gap;
  const height = TITLES + rows * image.height * scale + (rows - 1) * gap + MARGIN;
  return { canvas: new Canvas(width, height), image, count, columns, scale, gap, left: MARGIN, top: TITLES };
}

/** Draws the first `count` images of `images` into their cells, over whatever the cells held. */
export function drawImages(grid: ImageGrid, images: Float32Array): void {
  const { canvas, image, count, columns, scale, gap, left, top } = grid;
  const { channels, height, width, low, high } = image;
  const size = channels * height * width;
  if (images.length < count * size) {
    throw new RangeError(`${images.length} values hold ${Math.floor(images.length / size)} images of ${size}, not ${count}`);
  }
  const px = canvas.rgba;
  const level = (v: number) => Math.round(255 * Math.min(1, Math.max(0, (v - low) / (high - low))));
  for (let i = 0; i < count; i++) {
    const x0 = left + (i % columns) * (width * scale + gap);
    const y0 = top + Math.floor(i / columns) * (height * scale + gap);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const at = i * size + y * width + x;
        let rgb: RGB;
        if (channels === 1) {
          const v = images[at];
          rgb = Number.isFinite(v) ? [level(v), level(v), level(v)] : NOT_FINITE;
        } else {
          const vs = [images[at], images[at + height * width], images[at + 2 * height * width]];
          rgb = vs.every(Number.isFinite) ? [level(vs[0]), level(vs[1]), level(vs[2])] : NOT_FINITE;
        }
        for (let sy = 0; sy < scale; sy++) {
          let p = 4 * ((y0 + y * scale + sy) * canvas.width + x0 + x * scale);
          for (let sx = 0; sx < scale; sx++, p += 4) {
            px[p] = rgb[0];
            px[p + 1] = rgb[1];
            px[p + 2] = rgb[2];
          }
        }
      }
  }
}

/** The grid as a PNG. */
export function renderImageGrid(o: ImageGridOptions): Buffer {
  const size = o.image.channels * o.image.height * o.image.width;
  const grid = layoutImageGrid(o.image, o.count ?? gridCount(Math.floor(o.images.length / size)));
  drawImages(grid, o.images);
  grid.canvas.titles(grid.left, o.title, o.subtitle);
  return grid.canvas.encode();
}
