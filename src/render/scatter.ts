// The picture of a 2-D run: the training data as a grey density, the samples as translucent dots
// over it, with axes, a title and a legend. Pixels are blended directly into the bitmap; pureimage
// draws the text and lines with the DejaVu Sans font from the dejavu-fonts-ttf package.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as PImage from 'pureimage';
import { PNG } from 'pngjs';

export interface ScatterOptions {
  /** n×2 points, row-major. */
  samples: Float32Array;
  /** n×2 training points drawn as a density behind the samples. */
  reference?: Float32Array;
  title?: string;
  subtitle?: string;
  width?: number;
  height?: number;
  /** [xMin, xMax, yMin, yMax]; by default the points' 0.5–99.5th percentiles, padded and square. */
  bounds?: [number, number, number, number];
}

const FONT = 'DejaVu Sans';
let fontLoaded = false;
function loadFont(): void {
  if (fontLoaded) return;
  const dir = path.dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json'));
  PImage.registerFont(path.join(dir, 'ttf', 'DejaVuSans.ttf'), FONT).loadSync();
  fontLoaded = true;
}

const SAMPLE_RGB = [31, 119, 180];
const DATA_RGB = [110, 110, 110];

function finitePairs(points: Float32Array | undefined): number[][] {
  const out: number[][] = [];
  if (!points) return out;
  for (let i = 0; i + 1 < points.length; i += 2) {
    if (Number.isFinite(points[i]) && Number.isFinite(points[i + 1])) out.push([points[i], points[i + 1]]);
  }
  return out;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

function defaultBounds(points: number[][]): [number, number, number, number] {
  if (points.length === 0) return [-1, 1, -1, 1];
  const xs = points.map((p) => p[0]).sort((a, b) => a - b);
  const ys = points.map((p) => p[1]).sort((a, b) => a - b);
  const [x0, x1, y0, y1] = [percentile(xs, 0.005), percentile(xs, 0.995), percentile(ys, 0.005), percentile(ys, 0.995)];
  const half = (Math.max(x1 - x0, y1 - y0, 1e-6) / 2) * 1.25;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  return [cx - half, cx + half, cy - half, cy + half];
}

// Round tick steps: 1, 2 or 5 times a power of ten, about six ticks over the range.
function ticks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 6;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(Math.abs(v) < 1e-9 * step ? 0 : v);
  return out;
}

export function renderScatter(options: ScatterOptions): Buffer {
  loadFont();
  const width = options.width ?? 800;
  const height = options.height ?? 800;
  const samples = finitePairs(options.samples);
  const reference = finitePairs(options.reference);
  const [x0, x1, y0, y1] = options.bounds ?? defaultBounds([...samples, ...reference]);

  const img = PImage.make(width, height);
  const ctx = img.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);

  const plot = { left: 70, top: options.subtitle ? 78 : 56, right: width - 24, bottom: height - 56 };
  const pw = plot.right - plot.left;
  const ph = plot.bottom - plot.top;
  const px = (x: number) => plot.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => plot.bottom - ((y - y0) / (y1 - y0)) * ph;
  const data = img.data;
  const blend = (x: number, y: number, rgb: number[], alpha: number) => {
    if (x < plot.left || x >= plot.right || y < plot.top || y >= plot.bottom || alpha <= 0) return;
    const at = 4 * (y * width + x);
    for (let c = 0; c < 3; c++) data[at + c] = Math.round(data[at + c] * (1 - alpha) + rgb[c] * alpha);
  };

  // The data density: a histogram over 2-pixel cells, blurred by three box passes (close to a
  // Gaussian of 2.5 cells), square-root scaled so that a 20% mode still shows.
  if (reference.length > 0) {
    const cell = 2;
    const gw = Math.ceil(pw / cell);
    const gh = Math.ceil(ph / cell);
    let grid = new Float64Array(gw * gh);
    for (const [x, y] of reference) {
      const gx = Math.floor((px(x) - plot.left) / cell);
      const gy = Math.floor((py(y) - plot.top) / cell);
      if (gx >= 0 && gx < gw && gy >= 0 && gy < gh) grid[gy * gw + gx] += 1;
    }
    const r = 2;
    for (let pass = 0; pass < 3; pass++) {
      const rows = new Float64Array(gw * gh);
      for (let gy = 0; gy < gh; gy++)
        for (let gx = 0; gx < gw; gx++) {
          let s = 0;
          for (let d = -r; d <= r; d++) s += grid[gy * gw + Math.min(gw - 1, Math.max(0, gx + d))];
          rows[gy * gw + gx] = s / (2 * r + 1);
        }
      const cols = new Float64Array(gw * gh);
      for (let gy = 0; gy < gh; gy++)
        for (let gx = 0; gx < gw; gx++) {
          let s = 0;
          for (let d = -r; d <= r; d++) s += rows[Math.min(gh - 1, Math.max(0, gy + d)) * gw + gx];
          cols[gy * gw + gx] = s / (2 * r + 1);
        }
      grid = cols;
    }
    const top = Math.sqrt(Math.max(...grid));
    for (let y = plot.top; y < plot.bottom; y++)
      for (let x = plot.left; x < plot.right; x++) {
        const v = grid[Math.floor((y - plot.top) / cell) * gw + Math.floor((x - plot.left) / cell)];
        blend(x, y, DATA_RGB, 0.8 * (Math.sqrt(v) / top));
      }
  }

  // Samples: anti-aliased discs of radius 1.8 px, translucent so that density reads as colour depth.
  const radius = 1.8;
  const alpha = Math.min(0.6, Math.max(0.12, 600 / Math.max(1, samples.length)));
  for (const [x, y] of samples) {
    const cx = px(x);
    const cy = py(y);
    for (let yy = Math.floor(cy - radius - 1); yy <= Math.ceil(cy + radius + 1); yy++)
      for (let xx = Math.floor(cx - radius - 1); xx <= Math.ceil(cx + radius + 1); xx++) {
        const d = Math.hypot(xx + 0.5 - cx, yy + 0.5 - cy);
        blend(xx, yy, SAMPLE_RGB, alpha * Math.min(1, Math.max(0, radius + 0.5 - d)));
      }
  }

  // Frame, ticks and labels.
  ctx.strokeStyle = '#333333';
  ctx.lineWidth = 1;
  ctx.strokeRect(plot.left, plot.top, pw, ph);
  ctx.fillStyle = '#333333';
  ctx.font = `13pt '${FONT}'`;
  const label = (v: number) => String(Number(v.toPrecision(6)));
  for (const t of ticks(x0, x1)) {
    const x = Math.round(px(t)) + 0.5;
    ctx.fillRect(x, plot.bottom, 1, 6);
    const s = label(t);
    ctx.fillText(s, x - ctx.measureText(s).width / 2, plot.bottom + 24);
  }
  for (const t of ticks(y0, y1)) {
    const y = Math.round(py(t)) + 0.5;
    ctx.fillRect(plot.left - 6, y, 6, 1);
    const s = label(t);
    ctx.fillText(s, plot.left - 10 - ctx.measureText(s).width, y + 5);
  }
  ctx.fillStyle = '#111111';
  ctx.font = `15pt '${FONT}'`;
  if (options.title) ctx.fillText(options.title, plot.left, 30);
  ctx.fillStyle = '#444444';
  ctx.font = `13pt '${FONT}'`;
  if (options.subtitle) ctx.fillText(options.subtitle, plot.left, 56);

  // Legend, top right inside the frame.
  const entries: [string, string][] = [];
  if (reference.length > 0) entries.push(['data', '#969696']);
  entries.push(['samples', '#1f77b4']);
  const lx = plot.right - 110;
  let ly = plot.top + 12;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(lx - 10, ly - 6, 112, entries.length * 22 + 6);
  for (const [name, colour] of entries) {
    ctx.fillStyle = colour;
    ctx.fillRect(lx, ly + 2, 12, 12);
    ctx.fillStyle = '#333333';
    ctx.fillText(name, lx + 20, ly + 13);
    ly += 22;
  }

  const png = new PNG({ width, height });
  Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength).copy(png.data);
  return PNG.sync.write(png);
}
