// Sampling as a film, a GIF that loops forever: 2-D particles at each recorded step, drawn as in
// samples.png over the fixed axes of the final picture, or a grid of images at each recorded step.
import { createRequire } from 'node:module';
import type * as Gifenc from 'gifenc';
import type { Canvas } from './canvas.js';
import { drawImages, gridCount, layoutImageGrid } from './images.js';
import type { ImageSpec } from '../index.js';
import {
  type Bounds,
  defaultBounds,
  drawAxes,
  drawDensity,
  drawSamples,
  finitePoints,
  layoutScatter,
  legendCorner,
  legendEntries,
} from './scatter.js';

// gifenc is CommonJS whose named exports Node's ES module loader cannot see, so it is required.
const { GIFEncoder, quantize } = createRequire(import.meta.url)('gifenc') as typeof Gifenc;

export interface AnimationOptions {
  /** The particles at each recorded step: n×2, row-major, the same n in every frame. */
  frames: Float32Array[];
  /** One line per frame under the title, e.g. "level 3 of 10, σ = 5.43, step 40 of 100". */
  captions: string[];
  /** n×2 training points, drawn as a grey density behind the particles. */
  reference?: Float32Array;
  title?: string;
  /** [xMin, xMax, yMin, yMax] for every frame; by default those that frame the last one and the reference. */
  bounds?: Bounds;
  /** How long each frame shows, 80 ms by default; GIF keeps hundredths of a second. */
  delayMs?: number;
  /** How long the last frame shows before the loop starts again, 2 s by default. */
  holdLastMs?: number;
  width?: number;
  height?: number;
}

export interface ImageAnimationOptions {
  /** The images at each recorded step: n × channels × height × width, the same n in every frame. */
  frames: Float32Array[];
  captions: string[];
  image: ImageSpec;
  /** How many of the images to draw, from the first: all of them up to 64 by default. */
  count?: number;
  title?: string;
  delayMs?: number;
  holdLastMs?: number;
}

type Palette = Gifenc.Palette;

// Browsers play GIF delays under 20 ms as 100 ms, and the format stores hundredths of a second in 16 bits.
const MIN_DELAY_MS = 20;
const MAX_DELAY_MS = 655_350;

function checkDelay(who: string, name: string, ms: number): number {
  if (!(ms >= MIN_DELAY_MS && ms <= MAX_DELAY_MS)) {
    throw new RangeError(`${who}: ${name} must be between ${MIN_DELAY_MS} and ${MAX_DELAY_MS} ms, not ${ms}`);
  }
  return ms;
}

// Every frame n points of `size` values, the same n throughout, and a caption for each.
function checkFrames(who: string, frames: unknown, captions: unknown, size: number, points: string): void {
  if (!Array.isArray(frames)) throw new TypeError(`${who}: frames must be an array of Float32Array`);
  if (frames.length === 0) throw new RangeError(`${who}: no frames to draw`);
  frames.forEach((frame, i) => {
    if (!(frame instanceof Float32Array)) throw new TypeError(`${who}: frame ${i} is not a Float32Array`);
    if (frame.length % size !== 0) throw new RangeError(`${who}: frame ${i} has ${frame.length} values, not n×${size}`);
    if (frame.length !== frames[0].length) {
      throw new RangeError(`${who}: frame ${i} holds ${frame.length / size} ${points} and frame 0 holds ${frames[0].length / size}`);
    }
  });
  if (!Array.isArray(captions) || !captions.every((c) => typeof c === 'string')) {
    throw new TypeError(`${who}: captions must be an array of strings`);
  }
  if (captions.length !== frames.length) {
    throw new RangeError(`${who}: ${captions.length} captions for ${frames.length} frames`);
  }
}

// A GIF frame has at most 256 colours. Greys (the data's density, text, axes) fill large smooth
// areas, where coarse steps would show as contour lines, so every other grey level has an entry;
// the quantizer spends the rest on the blues of the particles, and the last stays free for
// transparency. gifenc's quantizer alone bins colours to 5-6 bits a channel, too coarse for greys.
const GREY_LEVELS = 128;
const greyIndex = (v: number) => (255 - v) >> 1;

function gifPalette(pictures: Uint8Array[]): Palette {
  const greys = Array.from({ length: GREY_LEVELS }, (_, i) => [255 - 2 * i, 255 - 2 * i, 255 - 2 * i]);
  const tinted: number[] = [];
  for (const rgba of pictures)
    for (let p = 0; p < rgba.length; p += 4) {
      if (rgba[p] !== rgba[p + 1] || rgba[p] !== rgba[p + 2]) tinted.push(rgba[p], rgba[p + 1], rgba[p + 2], 255);
    }
  return tinted.length > 0 ? [...greys, ...quantize(Uint8Array.from(tinted), 255 - GREY_LEVELS)] : greys;
}

/** The palette entry nearest each colour, remembered since a film repeats few colours many times. */
class NearestColour {
  private readonly known = new Map<number, number>();

  constructor(private readonly palette: Palette) {}

  of(r: number, g: number, b: number): number {
    if (r === g && g === b) return greyIndex(r);
    const key = (r << 16) | (g << 8) | b;
    const known = this.known.get(key);
    if (known !== undefined) return known;
    let [best, bestDistance] = [0, Infinity];
    this.palette.forEach(([pr, pg, pb], i) => {
      const distance = (pr - r) ** 2 + (pg - g) ** 2 + (pb - b) ** 2;
      if (distance < bestDistance) [best, bestDistance] = [i, distance];
    });
    this.known.set(key, best);
    return best;
  }
}

export function renderAnimation(o: AnimationOptions): Buffer {
  checkFrames('renderAnimation', o.frames, o.captions, 2, 'particles');
  const delayMs = checkDelay('renderAnimation', 'delayMs', o.delayMs ?? 80);
  const holdLastMs = checkDelay('renderAnimation', 'holdLastMs', o.holdLastMs ?? 2000);
  const lastAt = o.frames.length - 1;
  const last = finitePoints(o.frames[lastAt]);
  const reference = finitePoints(o.reference);

  // What stays put is drawn once; each frame starts from a copy of it.
  const scatter = layoutScatter({
    width: o.width ?? 640,
    height: o.height ?? 640,
    bounds: o.bounds ?? defaultBounds(last, reference),
    subtitled: true,
  });
  const { canvas, plot } = scatter;
  drawDensity(scatter, reference);
  drawAxes(scatter);
  canvas.titles(plot.left, o.title);
  const background = canvas.rgba.slice();
  const legend = legendEntries({ data: reference.xs.length > 0, score: false, samples: o.frames[0].length > 0 });
  const legendAt = legend.length > 0 ? legendCorner(scatter, legend, [last, reference]) : undefined;

  // Particles are clipped to the plot, so they never touch the axes or titles in the background;
  // the legend, which lies inside the plot, goes over them as in samples.png.
  return encodeFilm(canvas, o.frames.length, delayMs, holdLastMs, (at) => {
    canvas.rgba.set(background);
    drawSamples(scatter, finitePoints(o.frames[at]));
    canvas.titles(plot.left, undefined, o.captions[at]);
    if (legendAt) canvas.legend(legend, ...legendAt);
    return canvas.rgba;
  });
}

export function renderImageAnimation(o: ImageAnimationOptions): Buffer {
  const size = o.image.channels * o.image.height * o.image.width;
  checkFrames('renderImageAnimation', o.frames, o.captions, size, 'images');
  const delayMs = checkDelay('renderImageAnimation', 'delayMs', o.delayMs ?? 80);
  const holdLastMs = checkDelay('renderImageAnimation', 'holdLastMs', o.holdLastMs ?? 2000);
  const grid = layoutImageGrid(o.image, o.count ?? gridCount(o.frames[0].length / size));
  const { canvas } = grid;
  canvas.titles(grid.left, o.title);
  const background = canvas.rgba.slice();
  return encodeFilm(canvas, o.frames.length, delayMs, holdLastMs, (at) => {
    canvas.rgba.set(background);
    drawImages(grid, o.frames[at]);
    canvas.titles(grid.left, undefined, o.captions[at]);
    return canvas.rgba;
  });
}

// The pictures drawFrame(0 … count − 1) paints on the canvas, as a GIF.
function encodeFilm(
  canvas: Canvas,
  count: number,
  delayMs: number,
  holdLastMs: number,
  drawFrame: (at: number) => Uint8Array,
): Buffer {
  const lastAt = count - 1;
  // One palette for the whole film, so that no colour flickers between frames: from the first frame
  // and the last (particles spread thin and piled up; images all noise and clean), which between
  // them hold the colours of the frames in between.
  const first = drawFrame(0).slice();
  const final = drawFrame(lastAt).slice();
  const palette = gifPalette([first, final]);
  const nearest = new NearestColour(palette);
  const transparentIndex = palette.length;

  const gif = GIFEncoder();
  const pixels = canvas.width * canvas.height;
  const shown = new Uint8Array(pixels);
  const previous = new Uint8Array(4 * pixels);
  for (let at = 0; at <= lastAt; at++) {
    const rgba = at === 0 ? first : at === lastAt ? final : drawFrame(at);
    const delay = at === lastAt ? holdLastMs : delayMs;
    // Each frame stays under the next (disposal 1), so the next need only give the pixels that
    // change and leave the rest transparent: 2.6 times smaller for 1,000 particles, and still a
    // seventh smaller for 10,000, when every particle moves in every frame.
    const index = new Uint8Array(pixels);
    for (let i = 0, p = 0; i < pixels; i++, p += 4) {
      const unchanged = at > 0 && rgba[p] === previous[p] && rgba[p + 1] === previous[p + 1] && rgba[p + 2] === previous[p + 2];
      const colour = unchanged ? shown[i] : nearest.of(rgba[p], rgba[p + 1], rgba[p + 2]);
      index[i] = at > 0 && colour === shown[i] ? transparentIndex : colour;
      shown[i] = colour;
    }
    previous.set(rgba);
    if (at === 0) {
      const colourTable = [...palette, [255, 255, 255]]; // the last entry, for transparency, is never shown
      gif.writeFrame(index, canvas.width, canvas.height, { palette: colourTable, delay, repeat: 0, dispose: 1 });
    } else {
      gif.writeFrame(index, canvas.width, canvas.height, { delay, transparent: true, transparentIndex, dispose: 1 });
    }
  }
  gif.finish();
  const bytes = gif.bytesView();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
