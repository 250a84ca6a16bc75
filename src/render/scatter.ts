// The picture of a 2-D run: the training data as a grey density, the samples as translucent dots
// over it, a framed plot with ticks, a title and a legend. Points and density are blended straight
// into the PNG's pixels; pureimage only rasterises text, in DejaVu Sans from dejavu-fonts-ttf.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as PImage from 'pureimage';
import { PNG } from 'pngjs';

export interface ScatterOptions {
  /** n×2 points, row-major. */
  samples: Float32Array;
  /** n×2 training points, drawn as a density behind the samples. */
  reference?: Float32Array;
  title?: string;
  subtitle?: string;
  width?: number;
  height?: number;
  /** [xMin, xMax, yMin, yMax]; by default the points' 0.5–99.5th percentiles, padded by 10% and square. */
  bounds?: [number, number, number, number];
}

type RGB = readonly [number, number, number];
interface Rect {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

const SAMPLE_RGB: RGB = [31, 119, 180];
const DATA_RGB: RGB = [70, 70, 70];
const DATA_ALPHA = 0.75;
const INK: RGB = [40, 40, 40];
const MUTED: RGB = [95, 95, 95];
const FONT = 'DejaVuSans'; // pureimage takes everything after the size as the family, quotes included

let measurer: PImage.Context | undefined;
function textContext(): PImage.Context {
  if (!measurer) {
    const dir = path.dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json'));
    PImage.registerFont(path.join(dir, 'ttf', 'DejaVuSans.ttf'), FONT).loadSync();
    measurer = PImage.make(1, 1).getContext('2d');
  }
  return measurer;
}

interface Points {
  xs: Float64Array;
  ys: Float64Array;
}

/** The finite rows of an n×2 array, as x and y columns. */
function finitePoints(points: Float32Array | undefined): Points {
  if (!points) return { xs: new Float64Array(0), ys: new Float64Array(0) };
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i + 1 < points.length; i += 2) {
    if (Number.isFinite(points[i]) && Number.isFinite(points[i + 1])) {
      xs.push(points[i]);
      ys.push(points[i + 1]);
    }
  }
  return { xs: Float64Array.from(xs), ys: Float64Array.from(ys) };
}

function defaultBounds(a: Points, b: Points): [number, number, number, number] {
  const sorted = (u: Float64Array, v: Float64Array) => {
    const all = new Float64Array(u.length + v.length);
    all.set(u);
    all.set(v, u.length);
    return all.sort();
  };
  const sx = sorted(a.xs, b.xs);
  const sy = sorted(a.ys, b.ys);
  if (sx.length === 0) return [-1, 1, -1, 1];
  const q = (s: Float64Array, p: number) => s[Math.round(p * (s.length - 1))];
  const span = Math.max(q(sx, 0.995) - q(sx, 0.005), q(sy, 0.995) - q(sy, 0.005)) || 2;
  const cx = (q(sx, 0.005) + q(sx, 0.995)) / 2;
  const cy = (q(sy, 0.005) + q(sy, 0.995)) / 2;
  const half = 0.6 * span; // half the span plus 10% of it on each side
  return [cx - half, cx + half, cy - half, cy + half];
}

// 1, 2, 2.5 or 5 times a power of ten, at most eight intervals over the range.
function ticks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 8;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let i = Math.ceil(lo / step); i <= Math.floor(hi / step); i++) out.push(i * step);
  return out;
}

const tickLabel = (v: number) => String(Number(v.toPrecision(6))).replace('-', '\u2212');

// Blurs each row and writes it transposed, so that two calls blur both axes of a square grid.
function blurRowsTransposed(src: Float32Array, n: number, kernel: Float32Array): Float32Array {
  const r = (kernel.length - 1) / 2;
  const out = new Float32Array(n * n);
  for (let y = 0; y < n; y++) {
    const row = y * n;
    for (let x = 0; x < n; x++) {
      let s = 0;
      for (let d = Math.max(-r, -x); d <= Math.min(r, n - 1 - x); d++) s += src[row + x + d] * kernel[d + r];
      out[x * n + y] = s;
    }
  }
  return out;
}

export function renderScatter(options: ScatterOptions): Buffer {
  const width = Math.round(options.width ?? 800);
  const height = Math.round(options.height ?? 800);
  if (!(width > 0 && height > 0)) throw new RangeError(`renderScatter: bad size ${width}×${height}`);
  const samples = finitePoints(options.samples);
  const reference = finitePoints(options.reference);
  const [x0, x1, y0, y1] = options.bounds ?? defaultBounds(samples, reference);
  if (!(x1 > x0 && y1 > y0)) throw new RangeError(`renderScatter: empty bounds [${x0}, ${x1}, ${y0}, ${y1}]`);

  const png = new PNG({ width, height });
  const px = png.data;
  px.fill(255);
  const image: Rect = { left: 0, top: 0, right: width, bottom: height };
  const blend = (x: number, y: number, rgb: RGB, alpha: number, clip: Rect) => {
    if (alpha <= 0 || x < clip.left || x >= clip.right || y < clip.top || y >= clip.bottom) return;
    const at = 4 * (y * width + x);
    const a = Math.min(1, alpha);
    for (let c = 0; c < 3; c++) px[at + c] = Math.round(px[at + c] * (1 - a) + rgb[c] * a);
  };
  const fillRect = (left: number, top: number, w: number, h: number, rgb: RGB, alpha = 1) => {
    for (let y = top; y < top + h; y++) for (let x = left; x < left + w; x++) blend(x, y, rgb, alpha, image);
  };
  // Coverage of a pixel by a disc, from its centre's distance to the rim: smooth edges at any size.
  const disc = (cx: number, cy: number, r: number, rgb: RGB, alpha: number, clip: Rect) => {
    for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++)
      for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++) {
        const cover = Math.min(1, Math.max(0, r + 0.5 - Math.hypot(x + 0.5 - cx, y + 0.5 - cy)));
        blend(x, y, rgb, alpha * cover, clip);
      }
  };
  // pureimage anti-aliases only along rows, so text is drawn 4× larger, white on black, and
  // averaged down into a coverage mask that smooths the horizontal edges as well.
  const SS = 4;
  const textWidth = (text: string, size: number) => {
    const ctx = textContext();
    ctx.font = `${size}px ${FONT}`;
    return ctx.measureText(text).width;
  };
  type Align = 'left' | 'center' | 'right';
  const text = (s: string, x: number, baseline: number, size: number, rgb: RGB, align: Align = 'left') => {
    const w = textWidth(s, size);
    const left = Math.round(align === 'left' ? x : align === 'center' ? x - w / 2 : x - w);
    const ascent = Math.ceil(size * 1.05);
    const bw = Math.ceil(w + 2) * SS;
    const bh = (ascent + Math.ceil(size * 0.35)) * SS;
    const bitmap = PImage.make(bw, bh);
    const ctx = bitmap.getContext('2d');
    ctx.font = `${size * SS}px ${FONT}`;
    ctx.fillStyle = '#ffffff';
    ctx.fillText(s, SS, ascent * SS);
    const top = Math.round(baseline) - ascent;
    for (let oy = 0; oy < bh / SS; oy++)
      for (let ox = 0; ox < bw / SS; ox++) {
        let sum = 0;
        for (let dy = 0; dy < SS; dy++)
          for (let dx = 0; dx < SS; dx++) sum += bitmap.data[4 * ((oy * SS + dy) * bw + ox * SS + dx)];
        blend(left - 1 + ox, top + oy, rgb, sum / (255 * SS * SS), image);
      }
  };

  // Layout scales with the smaller side, 800 px being the reference size.
  const k = Math.max(0.5, Math.min(width, height) / 800);
  const margin = { left: 66 * k, right: 30 * k, top: (options.subtitle ? 80 : 56) * k, bottom: 52 * k };
  const roomX = width - margin.left - margin.right;
  const side = Math.max(1, Math.floor(Math.min(roomX, height - margin.top - margin.bottom)));
  const left = Math.round(margin.left + (roomX - side) / 2);
  const top = Math.round(margin.top);
  const plot: Rect = { left, top, right: left + side, bottom: top + side };
  const toX = (x: number) => plot.left + ((x - x0) / (x1 - x0)) * side;
  const toY = (y: number) => plot.bottom - ((y - y0) / (y1 - y0)) * side;

  // The data density: a histogram over pixels blurred by a Gaussian whose width shrinks with the
  // number of points (Scott's n^(-1/6)), square-root scaled so that a 20% mode still shows.
  const nRef = reference.xs.length;
  if (nRef > 0) {
    let grid: Float32Array = new Float32Array(side * side);
    for (let i = 0; i < nRef; i++) {
      const gx = Math.floor(toX(reference.xs[i]) - plot.left);
      const gy = Math.floor(toY(reference.ys[i]) - plot.top);
      if (gx >= 0 && gx < side && gy >= 0 && gy < side) grid[gy * side + gx] += 1;
    }
    const sd = Math.max(1, 0.06 * side * nRef ** (-1 / 6));
    const r = Math.ceil(3 * sd);
    const kernel = Float32Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sd * sd)));
    grid = blurRowsTransposed(blurRowsTransposed(grid, side, kernel), side, kernel);
    const peak = grid.reduce((m, v) => Math.max(m, v), 0);
    for (let gy = 0; gy < side; gy++)
      for (let gx = 0; gx < side; gx++)
        blend(plot.left + gx, plot.top + gy, DATA_RGB, DATA_ALPHA * Math.sqrt(grid[gy * side + gx] / peak), plot);
  }

  // Samples: fainter as they get more numerous, so that overlap, not ink, shows where they pile up.
  const nSamples = samples.xs.length;
  const dotRadius = 1.6 * k;
  const dotAlpha = Math.min(0.8, Math.max(0.06, 25 / Math.sqrt(nSamples)));
  for (let i = 0; i < nSamples; i++) {
    disc(toX(samples.xs[i]), toY(samples.ys[i]), dotRadius, SAMPLE_RGB, dotAlpha, plot);
  }

  // Frame just outside the plot area, ticks and their labels.
  const line = Math.max(1, Math.round(k));
  fillRect(plot.left - line, plot.top - line, side + 2 * line, line, INK);
  fillRect(plot.left - line, plot.bottom, side + 2 * line, line, INK);
  fillRect(plot.left - line, plot.top, line, side, INK);
  fillRect(plot.right, plot.top, line, side, INK);
  const tickLength = Math.round(6 * k);
  const tickSize = Math.round(13 * k);
  for (const t of ticks(x0, x1)) {
    const x = Math.min(plot.right - 1, Math.floor(toX(t)));
    fillRect(x, plot.bottom + line, line, tickLength, INK);
    text(tickLabel(t), x + line / 2, plot.bottom + line + tickLength + 1.3 * tickSize, tickSize, INK, 'center');
  }
  for (const t of ticks(y0, y1)) {
    const y = Math.min(plot.bottom - 1, Math.floor(toY(t)));
    fillRect(plot.left - line - tickLength, y, tickLength, line, INK);
    text(tickLabel(t), plot.left - line - tickLength - 5 * k, y + 0.4 * tickSize, tickSize, INK, 'right');
  }

  // Title and subtitle, shrunk if needed to fit the width.
  const fit = (s: string, size: number) =>
    Math.max(1, Math.min(size, Math.floor((size * (width - plot.left - 8 * k)) / textWidth(s, size))));
  if (options.title) text(options.title, plot.left, 30 * k, fit(options.title, Math.round(18 * k)), INK);
  if (options.subtitle) text(options.subtitle, plot.left, 58 * k, fit(options.subtitle, Math.round(15 * k)), MUTED);

  // Legend, in whichever corner of the plot holds the fewest points.
  const entries: { label: string; swatch: (x: number, y: number) => void }[] = [];
  const swatch = Math.round(12 * k);
  if (nRef > 0) entries.push({ label: 'data', swatch: (x, y) => fillRect(x, y, swatch, swatch, DATA_RGB, DATA_ALPHA) });
  if (nSamples > 0) {
    const dot = (x: number, y: number) => disc(x + swatch / 2, y + swatch / 2, swatch / 2.6, SAMPLE_RGB, 0.9, image);
    entries.push({ label: 'samples', swatch: dot });
  }
  if (entries.length > 0) {
    const row = Math.round(22 * k);
    const pad = Math.round(10 * k);
    const boxW = Math.ceil(pad * 2 + swatch + 8 * k + Math.max(...entries.map((e) => textWidth(e.label, tickSize))));
    const boxH = pad * 2 + row * entries.length - Math.round(8 * k);
    const inset = Math.round(10 * k);
    const corners = [
      [plot.right - inset - boxW, plot.top + inset],
      [plot.left + inset, plot.top + inset],
      [plot.right - inset - boxW, plot.bottom - inset - boxH],
      [plot.left + inset, plot.bottom - inset - boxH],
    ];
    const crowding = corners.map(([bx, by]) => {
      let count = 0;
      for (const set of [samples, reference])
        for (let i = 0; i < set.xs.length; i++) {
          const x = toX(set.xs[i]);
          const y = toY(set.ys[i]);
          if (x >= bx && x < bx + boxW && y >= by && y < by + boxH) count++;
        }
      return count;
    });
    const [bx, by] = corners[crowding.indexOf(Math.min(...crowding))];
    fillRect(bx, by, boxW, boxH, [255, 255, 255], 0.85);
    fillRect(bx, by, boxW, 1, [200, 200, 200]);
    fillRect(bx, by + boxH - 1, boxW, 1, [200, 200, 200]);
    fillRect(bx, by, 1, boxH, [200, 200, 200]);
    fillRect(bx + boxW - 1, by, 1, boxH, [200, 200, 200]);
    entries.forEach((e, i) => {
      const y = by + pad + i * row;
      e.swatch(bx + pad, y);
      text(e.label, bx + pad + swatch + 8 * k, y + swatch / 2 + 0.38 * tickSize, tickSize, INK);
    });
  }

  return PNG.sync.write(png);
}
