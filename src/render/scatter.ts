// The picture of a 2-D run: the training data as a grey density, the samples as translucent dots
// over it, a framed plot with ticks, a title and a legend.
import { Canvas, type LegendEntry, type RGB, type Rect, ticks } from './canvas.js';

export type Bounds = [number, number, number, number];

export interface ScatterOptions {
  /** n×2 points, row-major. */
  samples: Float32Array;
  /** n×2 training points, drawn as a density behind the samples. */
  reference?: Float32Array;
  /** n×4 rows (x, y, dx, dy): a vector field drawn as arrows, longest to 0.9 of their spacing. */
  arrows?: Float32Array;
  title?: string;
  subtitle?: string;
  width?: number;
  height?: number;
  /** [xMin, xMax, yMin, yMax]; by default the points' 0.5–99.5th percentiles, padded by 10% and square. */
  bounds?: Bounds;
}

const SAMPLE_RGB: RGB = [31, 119, 180];
const DATA_RGB: RGB = [70, 70, 70];
const DATA_ALPHA = 0.75;
const ARROW_RGB: RGB = [200, 55, 40];

export interface Points {
  xs: Float64Array;
  ys: Float64Array;
}

/** The finite rows of an n×2 array, as x and y columns. */
export function finitePoints(points: Float32Array | undefined): Points {
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

export function defaultBounds(a: Points, b: Points): Bounds {
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

/** A canvas laid out for a scatter plot: the square plot area and the map from data onto it. */
export interface ScatterPlot {
  canvas: Canvas;
  plot: Rect;
  bounds: Bounds;
  toX: (x: number) => number;
  toY: (y: number) => number;
}

export function layoutScatter(o: { width?: number; height?: number; bounds: Bounds; subtitled: boolean }): ScatterPlot {
  const canvas = new Canvas(o.width ?? 800, o.height ?? 800);
  const { width, height, k } = canvas;
  const [x0, x1, y0, y1] = o.bounds;
  if (!(x1 > x0 && y1 > y0)) throw new RangeError(`empty plot bounds [${x0}, ${x1}, ${y0}, ${y1}]`);

  // Layout scales with the smaller side, 800 px being the reference size.
  const margin = { left: 66 * k, right: 30 * k, top: (o.subtitled ? 80 : 56) * k, bottom: 52 * k };
  const roomX = width - margin.left - margin.right;
  const side = Math.max(1, Math.floor(Math.min(roomX, height - margin.top - margin.bottom)));
  const left = Math.round(margin.left + (roomX - side) / 2);
  const top = Math.round(margin.top);
  const plot: Rect = { left, top, right: left + side, bottom: top + side };
  return {
    canvas,
    plot,
    bounds: o.bounds,
    toX: (x: number) => plot.left + ((x - x0) / (x1 - x0)) * side,
    toY: (y: number) => plot.bottom - ((y - y0) / (y1 - y0)) * side,
  };
}

// The data density: a histogram over pixels blurred by a Gaussian whose width shrinks with the
// number of points (Scott's n^(-1/6)), square-root scaled so that a 20% mode still shows.
export function drawDensity({ canvas, plot, toX, toY }: ScatterPlot, reference: Points): void {
  const nRef = reference.xs.length;
  if (nRef === 0) return;
  const side = plot.right - plot.left;
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
      canvas.blend(plot.left + gx, plot.top + gy, DATA_RGB, DATA_ALPHA * Math.sqrt(grid[gy * side + gx] / peak), plot);
}

// Samples: fainter as they get more numerous, so that overlap, not ink, shows where they pile up.
export function drawSamples({ canvas, plot, toX, toY }: ScatterPlot, samples: Points): void {
  const nSamples = samples.xs.length;
  const dotRadius = 1.6 * canvas.k;
  const dotAlpha = Math.min(0.8, Math.max(0.06, 25 / Math.sqrt(nSamples)));
  for (let i = 0; i < nSamples; i++) {
    canvas.disc(toX(samples.xs[i]), toY(samples.ys[i]), dotRadius, SAMPLE_RGB, dotAlpha, plot);
  }
}

// Arrows: length by magnitude relative to the largest, so the field's shape reads at a glance.
function drawArrows({ canvas, plot, toX, toY }: ScatterPlot, arrows: Float32Array): void {
  const k = canvas.k;
  const nArrows = Math.floor(arrows.length / 4);
  let spacing = Infinity;
  let longest = 0;
  for (let i = 0; i < nArrows; i++) {
    longest = Math.max(longest, Math.hypot(arrows[4 * i + 2], arrows[4 * i + 3]));
    if (i > 0) {
      const d = Math.hypot(toX(arrows[4 * i]) - toX(arrows[0]), toY(arrows[4 * i + 1]) - toY(arrows[1]));
      if (d > 0) spacing = Math.min(spacing, d);
    }
  }
  const scale = (0.9 * (Number.isFinite(spacing) ? spacing : 20 * k)) / (longest || 1);
  for (let i = 0; i < nArrows; i++) {
    const [ax, ay, dx, dy] = [arrows[4 * i], arrows[4 * i + 1], arrows[4 * i + 2], arrows[4 * i + 3]];
    if (![ax, ay, dx, dy].every(Number.isFinite)) continue;
    const [x, y] = [toX(ax), toY(ay)];
    const [ex, ey] = [x + dx * scale, y - dy * scale];
    const len = Math.hypot(ex - x, ey - y);
    if (len < 0.5) continue;
    const head = Math.min(0.35 * len, 6 * k);
    const [ux, uy] = [(ex - x) / len, (ey - y) / len];
    canvas.polyline([x, ex], [y, ey], ARROW_RGB, 1.3 * k, plot);
    canvas.polyline(
      [ex - head * (ux - 0.5 * uy), ex, ex - head * (ux + 0.5 * uy)],
      [ey - head * (uy + 0.5 * ux), ey, ey - head * (uy - 0.5 * ux)],
      ARROW_RGB,
      1.3 * k,
      plot,
    );
  }
}

export function drawAxes({ canvas, plot, bounds: [x0, x1, y0, y1], toX, toY }: ScatterPlot): void {
  canvas.frame(plot, ticks(x0, x1), toX, ticks(y0, y1), toY);
}

export function legendEntries(shown: { data: boolean; score: boolean; samples: boolean }): LegendEntry[] {
  const entries: LegendEntry[] = [];
  if (shown.data) entries.push({ label: 'data', swatch: (c, x, y, size) => c.fillRect(x, y, size, size, DATA_RGB, DATA_ALPHA) });
  if (shown.score) {
    entries.push({ label: 'score', swatch: (c, x, y, size) => c.polyline([x, x + size], [y + size / 2, y + size / 2], ARROW_RGB, 2 * c.k) });
  }
  if (shown.samples) {
    entries.push({ label: 'samples', swatch: (c, x, y, size) => c.disc(x + size / 2, y + size / 2, size / 2.6, SAMPLE_RGB, 0.9) });
  }
  return entries;
}

/** The top-left corner for the legend: whichever corner of the plot holds the fewest of these points. */
export function legendCorner({ canvas, plot, toX, toY }: ScatterPlot, entries: LegendEntry[], crowd: Points[]): [number, number] {
  const { w: boxW, h: boxH } = canvas.legendSize(entries);
  const inset = Math.round(10 * canvas.k);
  const corners: [number, number][] = [
    [plot.right - inset - boxW, plot.top + inset],
    [plot.left + inset, plot.top + inset],
    [plot.right - inset - boxW, plot.bottom - inset - boxH],
    [plot.left + inset, plot.bottom - inset - boxH],
  ];
  const crowding = corners.map(([bx, by]) => {
    let count = 0;
    for (const set of crowd)
      for (let i = 0; i < set.xs.length; i++) {
        const x = toX(set.xs[i]);
        const y = toY(set.ys[i]);
        if (x >= bx && x < bx + boxW && y >= by && y < by + boxH) count++;
      }
    return count;
  });
  return corners[crowding.indexOf(Math.min(...crowding))];
}

/** The whole picture, on a canvas whose pixels the caller may read or encode. */
export function drawScatter(options: ScatterOptions): Canvas {
  const samples = finitePoints(options.samples);
  const reference = finitePoints(options.reference);
  const arrows = options.arrows ?? new Float32Array(0);
  const scatter = layoutScatter({
    width: options.width,
    height: options.height,
    bounds: options.bounds ?? defaultBounds(samples, reference),
    subtitled: Boolean(options.subtitle),
  });
  drawDensity(scatter, reference);
  drawSamples(scatter, samples);
  drawArrows(scatter, arrows);
  drawAxes(scatter);
  const { canvas } = scatter;
  canvas.titles(scatter.plot.left, options.title, options.subtitle);
  const entries = legendEntries({ data: reference.xs.length > 0, score: arrows.length >= 4, samples: samples.xs.length > 0 });
  if (entries.length > 0) canvas.legend(entries, ...legendCorner(scatter, entries, [samples, reference]));
  return canvas;
}

export function renderScatter(options: ScatterOptions): Buffer {
  return drawScatter(options).encode();
}
