// A white RGBA image with the few things our plots draw: blended pixels, rectangles, anti-aliased
// discs and lines, text in DejaVu Sans (rasterised by pureimage, from dejavu-fonts-ttf), a framed
// plot area with ticks, a title and a legend.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as PImage from 'pureimage';
import { PNG } from 'pngjs';

export type RGB = readonly [number, number, number];
export interface Rect {
  left: number;
  top: number;
  right: number;
  bottom: number;
}
export interface LegendEntry {
  label: string;
  swatch: (canvas: Canvas, x: number, y: number, size: number) => void;
}

export const INK: RGB = [40, 40, 40];
export const MUTED: RGB = [95, 95, 95];
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

// 1, 2, 2.5 or 5 times a power of ten, at most eight intervals over the range.
export function ticks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / 8;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let i = Math.ceil(lo / step); i <= Math.floor(hi / step); i++) out.push(i * step);
  return out;
}

export const tickLabel = (v: number) => String(Number(v.toPrecision(6))).replace('-', '\u2212');

export class Canvas {
  readonly width: number;
  readonly height: number;
  /** Layout scale: 1 at 800 px on the smaller side. */
  readonly k: number;
  private readonly png: PNG;
  private readonly image: Rect;

  constructor(width: number, height: number) {
    this.width = Math.round(width);
    this.height = Math.round(height);
    if (!(this.width > 0 && this.height > 0)) throw new RangeError(`bad image size ${width}×${height}`);
    this.k = Math.max(0.5, Math.min(this.width, this.height) / 800);
    this.png = new PNG({ width: this.width, height: this.height });
    this.png.data.fill(255);
    this.image = { left: 0, top: 0, right: this.width, bottom: this.height };
  }

  /** The pixels, row by row, four bytes (RGBA) each: drawing writes here, and encode() reads here. */
  get rgba(): Uint8Array {
    // A plain Uint8Array, not the Buffer itself, whose slice() would share memory instead of copying.
    const { buffer, byteOffset, byteLength } = this.png.data;
    return new Uint8Array(buffer, byteOffset, byteLength);
  }

  /** Mixes rgb into the pixel at integer (x, y) with the given opacity. */
  blend(x: number, y: number, rgb: RGB, alpha: number, clip: Rect = this.image): void {
    if (alpha <= 0 || x < clip.left || x >= clip.right || y < clip.top || y >= clip.bottom) return;
    const at = 4 * (y * this.width + x);
    const a = Math.min(1, alpha);
    const px = this.png.data;
    for (let c = 0; c < 3; c++) px[at + c] = Math.round(px[at + c] * (1 - a) + rgb[c] * a);
  }

  fillRect(left: number, top: number, w: number, h: number, rgb: RGB, alpha = 1): void {
    const [l, t] = [Math.round(left), Math.round(top)];
    const [r, b] = [l + Math.round(w), t + Math.round(h)];
    for (let y = t; y < b; y++) for (let x = l; x < r; x++) this.blend(x, y, rgb, alpha);
  }

  // Coverage of a pixel by a disc, from its centre's distance to the rim: smooth edges at any size.
  disc(cx: number, cy: number, r: number, rgb: RGB, alpha: number, clip: Rect = this.image): void {
    for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++)
      for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++) {
        const cover = Math.min(1, Math.max(0, r + 0.5 - Math.hypot(x + 0.5 - cx, y + 0.5 - cy)));
        this.blend(x, y, rgb, alpha * cover, clip);
      }
  }

  // A polyline of the given width: each pixel takes the coverage of its nearest segment.
  polyline(xs: number[], ys: number[], rgb: RGB, lineWidth: number, clip: Rect = this.image): void {
    const half = lineWidth / 2;
    const cover = new Map<number, number>();
    for (let i = 0; i + 1 < xs.length; i++) {
      const [ax, ay, bx, by] = [xs[i], ys[i], xs[i + 1], ys[i + 1]];
      if (![ax, ay, bx, by].every(Number.isFinite)) continue;
      const dx = bx - ax;
      const dy = by - ay;
      const len2 = dx * dx + dy * dy || 1e-12;
      for (let y = Math.floor(Math.min(ay, by) - half - 1); y <= Math.ceil(Math.max(ay, by) + half + 1); y++)
        for (let x = Math.floor(Math.min(ax, bx) - half - 1); x <= Math.ceil(Math.max(ax, bx) + half + 1); x++) {
          const t = Math.min(1, Math.max(0, ((x + 0.5 - ax) * dx + (y + 0.5 - ay) * dy) / len2));
          const d = Math.hypot(x + 0.5 - (ax + t * dx), y + 0.5 - (ay + t * dy));
          const c = Math.min(1, Math.max(0, half + 0.5 - d));
          const key = y * this.width + x;
          if (c > (cover.get(key) ?? 0)) cover.set(key, c);
        }
    }
    for (const [key, c] of cover) this.blend(key % this.width, Math.floor(key / this.width), rgb, c, clip);
  }

  textWidth(s: string, size: number): number {
    const ctx = textContext();
    ctx.font = `${size}px ${FONT}`;
    return ctx.measureText(s).width;
  }

  // pureimage anti-aliases only along rows, so text is drawn 4× larger, white on black, and
  // averaged down into a coverage mask that smooths the horizontal edges as well.
  text(s: string, x: number, baseline: number, size: number, rgb: RGB, align: 'left' | 'center' | 'right' = 'left'): void {
    const SS = 4;
    const w = this.textWidth(s, size);
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
        this.blend(left - 1 + ox, top + oy, rgb, sum / (255 * SS * SS));
      }
  }

  /** The frame just outside `plot`, with ticks at the given data positions mapped by toX/toY. */
  frame(plot: Rect, xTicks: number[], toX: (v: number) => number, yTicks: number[], toY: (v: number) => number,
        labels: { x?: (v: number) => string; y?: (v: number) => string } = {}): void {
    const k = this.k;
    const line = Math.max(1, Math.round(k));
    const w = plot.right - plot.left;
    const h = plot.bottom - plot.top;
    this.fillRect(plot.left - line, plot.top - line, w + 2 * line, line, INK);
    this.fillRect(plot.left - line, plot.bottom, w + 2 * line, line, INK);
    this.fillRect(plot.left - line, plot.top, line, h, INK);
    this.fillRect(plot.right, plot.top, line, h, INK);
    const tickLength = Math.round(6 * k);
    const size = this.tickSize;
    for (const t of xTicks) {
      const x = Math.min(plot.right - 1, Math.floor(toX(t)));
      this.fillRect(x, plot.bottom + line, line, tickLength, INK);
      this.text((labels.x ?? tickLabel)(t), x + line / 2, plot.bottom + line + tickLength + 1.3 * size, size, INK, 'center');
    }
    for (const t of yTicks) {
      const y = Math.min(plot.bottom - 1, Math.floor(toY(t)));
      this.fillRect(plot.left - line - tickLength, y, tickLength, line, INK);
      this.text((labels.y ?? tickLabel)(t), plot.left - line - tickLength - 5 * k, y + 0.4 * size, size, INK, 'right');
    }
  }

  get tickSize(): number {
    return Math.round(13 * this.k);
  }

  /** Title and subtitle above the plot, shrunk if needed to fit the width. */
  titles(left: number, title?: string, subtitle?: string): void {
    const k = this.k;
    const fit = (s: string, size: number) =>
      Math.max(1, Math.min(size, Math.floor((size * (this.width - left - 8 * k)) / this.textWidth(s, size))));
    if (title) this.text(title, left, 30 * k, fit(title, Math.round(18 * k)), INK);
    if (subtitle) this.text(subtitle, left, 58 * k, fit(subtitle, Math.round(15 * k)), MUTED);
  }

  /** The size of a legend box for these entries. */
  legendSize(entries: LegendEntry[]): { w: number; h: number } {
    const k = this.k;
    const pad = Math.round(10 * k);
    const swatch = Math.round(12 * k);
    const w = Math.ceil(pad * 2 + swatch + 8 * k + Math.max(...entries.map((e) => this.textWidth(e.label, this.tickSize))));
    return { w, h: pad * 2 + Math.round(22 * k) * entries.length - Math.round(8 * k) };
  }

  legend(entries: LegendEntry[], bx: number, by: number): void {
    const k = this.k;
    const { w, h } = this.legendSize(entries);
    const pad = Math.round(10 * k);
    const swatch = Math.round(12 * k);
    const edge: RGB = [200, 200, 200];
    this.fillRect(bx, by, w, h, [255, 255, 255], 0.85);
    this.fillRect(bx, by, w, 1, edge);
    this.fillRect(bx, by + h - 1, w, 1, edge);
    this.fillRect(bx, by, 1, h, edge);
    this.fillRect(bx + w - 1, by, 1, h, edge);
    entries.forEach((e, i) => {
      const y = by + pad + i * Math.round(22 * k);
      e.swatch(this, bx + pad, y, swatch);
      this.text(e.label, bx + pad + swatch + 8 * k, y + swatch / 2 + 0.38 * this.tickSize, this.tickSize, INK);
    });
  }

  encode(): Buffer {
    return PNG.sync.write(this.png);
  }
}
