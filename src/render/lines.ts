// Line charts on a logarithmic y axis: the training loss over steps, one line per noise level.
import { Canvas, type LegendEntry, type RGB, type Rect, ticks, tickLabel } from './canvas.js';

export interface Series {
  label: string;
  /** Non-finite or non-positive values leave a gap. */
  xs: number[];
  ys: number[];
  rgb: RGB;
  width?: number;
}

export interface LinesOptions {
  series: Series[];
  title?: string;
  subtitle?: string;
  xLabel?: string;
  width?: number;
  height?: number;
}

// Viridis at a few stops, interpolated: dark for the first (largest σ) series, light for the last.
const VIRIDIS: RGB[] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
export function ramp(t: number): RGB {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(VIRIDIS[i][c] * (1 - f) + VIRIDIS[i + 1][c] * f)) as unknown as RGB;
}

// Log-axis ticks: 1, 2 and 5 times powers of ten, or only the powers when those are too many.
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) out.push(v);
    }
  return out.length > 9 ? out.filter((v) => Number.isInteger(Math.log10(v))) : out;
}

// Smallest and largest by a loop: spreading a long log into Math.min overflows the stack.
function extent(values: number[]): [number, number] | null {
  if (values.length === 0) return null;
  let lo = values[0];
  let hi = values[0];
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return [lo, hi];
}

// An axis over a single value (a log whose lines all have one step) spans one unit either side.
function widened([lo, hi]: [number, number]): [number, number] {
  return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
}

export function renderLines(options: LinesOptions): Buffer {
  const canvas = new Canvas(options.width ?? 900, options.height ?? 600);
  const { width, height, k } = canvas;
  const points = options.series.flatMap((s) => s.xs.map((x, i) => [x, s.ys[i]])).filter(([x, y]) => Number.isFinite(x) && y > 0);
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => Math.log10(p[1]));
  const [x0, x1] = widened(extent(xs) ?? [0, 1]);
  const [l0, l1] = extent(ys) ?? [0, 1];
  const pad = Math.max(0.05, 0.05 * (l1 - l0));
  const [y0, y1] = [l0 - pad, l1 + pad];
  const plot: Rect = {
    left: Math.round(80 * k),
    top: Math.round((options.subtitle ? 80 : 56) * k),
    right: Math.round(width - 190 * k),
    bottom: Math.round(height - 64 * k),
  };
  const toX = (x: number) => plot.left + ((x - x0) / (x1 - x0)) * (plot.right - plot.left);
  const toY = (v: number) => plot.bottom - ((Math.log10(v) - y0) / (y1 - y0)) * (plot.bottom - plot.top);

  for (const s of options.series) {
    const px = s.xs.map((x, i) => (Number.isFinite(x) && s.ys[i] > 0 ? toX(x) : NaN));
    const py = s.ys.map((y) => (y > 0 ? toY(y) : NaN));
    canvas.polyline(px, py, s.rgb, (s.width ?? 1.6) * k, plot);
  }
  canvas.frame(plot, ticks(x0, x1), toX, logTicks(10 ** y0, 10 ** y1), toY, {
    y: (v) => tickLabel(Number(v.toPrecision(3))),
  });
  if (options.xLabel) {
    canvas.text(options.xLabel, (plot.left + plot.right) / 2, height - 14 * k, canvas.tickSize, [95, 95, 95], 'center');
  }
  canvas.titles(plot.left, options.title, options.subtitle);
  const entries: LegendEntry[] = options.series.map((s) => ({
    label: s.label,
    swatch: (c, x, y, size) => c.fillRect(x, y + size / 2 - Math.max(1, Math.round(1.5 * k)), size, Math.max(2, Math.round(3 * k)), s.rgb),
  }));
  if (entries.length > 0) canvas.legend(entries, Math.round(plot.right + 14 * k), plot.top);
  return canvas.encode();
}
