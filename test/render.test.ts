import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { renderScatter } from '../src/render/scatter.js';

// Seeded normal deviates (mulberry32 + Box–Muller), so that every run draws the same picture.
function normals(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

function cluster(n: number, cx: number, cy: number, sd: number, seed = 1): Float32Array {
  const z = normals(seed);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = cx + sd * z();
    out[2 * i + 1] = cy + sd * z();
  }
  return out;
}

const BOX: [number, number, number, number] = [-10, 10, -10, 10];
const isBlue = (r: number, _g: number, b: number) => b - r > 40;
const isGrey = (r: number, g: number, b: number) => r < 235 && Math.max(r, g, b) - Math.min(r, g, b) < 6;

/** Pixels matching `test` in a region given as fractions of the image, and their centroid. */
function scan(png: PNG, test: (r: number, g: number, b: number) => boolean, region = [0, 1, 0, 1]) {
  let count = 0;
  let sx = 0;
  let sy = 0;
  for (let y = Math.floor(region[2] * png.height); y < region[3] * png.height; y++)
    for (let x = Math.floor(region[0] * png.width); x < region[1] * png.width; x++) {
      const i = 4 * (y * png.width + x);
      if (test(png.data[i], png.data[i + 1], png.data[i + 2])) {
        count++;
        sx += x;
        sy += y;
      }
    }
  return { count, x: sx / count / png.width, y: sy / count / png.height };
}

const decode = (buf: Buffer) => PNG.sync.read(buf);
const LOWER_LEFT = [0.15, 0.45, 0.55, 0.85];
const UPPER_RIGHT = [0.55, 0.8, 0.25, 0.45];

describe('renderScatter', () => {
  it('writes a PNG of the requested size, 800×800 by default', () => {
    const samples = cluster(500, 0, 0, 1);
    const byDefault = decode(renderScatter({ samples, title: 'a title', subtitle: 'a subtitle' }));
    expect([byDefault.width, byDefault.height]).toEqual([800, 800]);
    const sized = decode(renderScatter({ samples, width: 640, height: 480 }));
    expect([sized.width, sized.height]).toEqual([640, 480]);
  });

  it('colours the pixels where the samples are and leaves the opposite corner white', () => {
    const png = decode(renderScatter({ samples: cluster(2000, 5, 5, 0.4), bounds: BOX }));
    const blue = scan(png, isBlue);
    expect(blue.count).toBeGreaterThan(1000);
    // (5, 5) in [−10, 10]² lies three quarters across and a quarter down the plot
    expect(blue.x).toBeGreaterThan(0.62);
    expect(blue.y).toBeLessThan(0.4);
    expect(scan(png, isBlue, UPPER_RIGHT.map((v, i) => (i < 2 ? v + 0.1 : v - 0.1))).count).toBeGreaterThan(100);
    expect(scan(png, (r, g, b) => r < 250 || g < 250 || b < 250, LOWER_LEFT).count).toBe(0);
  });

  it('draws the reference as a grey density under the samples', () => {
    const reference = cluster(5000, -5, -5, 1, 2);
    const png = decode(renderScatter({ samples: cluster(2000, 5, 5, 0.4), reference, bounds: BOX }));
    expect(scan(png, isGrey, LOWER_LEFT).count).toBeGreaterThan(2000);
    expect(scan(png, isBlue, LOWER_LEFT).count).toBe(0);
    // a mode with a fifth of the points still shows
    const modes = new Float32Array([...cluster(4000, 5, 5, 1, 3), ...cluster(1000, -5, -5, 1, 4)]);
    const twoModes = decode(renderScatter({ samples: new Float32Array(0), reference: modes, bounds: BOX }));
    expect(scan(twoModes, isGrey, LOWER_LEFT).count).toBeGreaterThan(2000);
    expect(scan(twoModes, isGrey, UPPER_RIGHT).count).toBeGreaterThan(2000);
  });

  it('ignores NaN and infinite points', () => {
    const samples = cluster(1000, 1, 2, 1);
    const reference = cluster(1000, 0, 0, 2, 5);
    const bad = [NaN, 1, Infinity, 2, 3, -Infinity, NaN, NaN, 1e30 * 1e30, 0];
    const clean = renderScatter({ samples, reference });
    const dirty = renderScatter({
      samples: new Float32Array([...bad, ...samples, ...bad]),
      reference: new Float32Array([...reference, ...bad]),
    });
    expect(dirty.equals(clean)).toBe(true);
  });

  it('draws a valid, empty plot for no samples', () => {
    for (const samples of [new Float32Array(0), new Float32Array([NaN, NaN])]) {
      const png = decode(renderScatter({ samples, title: 'nothing yet' }));
      expect([png.width, png.height]).toEqual([800, 800]);
      expect(scan(png, isBlue).count).toBe(0);
      expect(scan(png, (r, g, b) => r < 250 || g < 250 || b < 250, [0.3, 0.7, 0.3, 0.7]).count).toBe(0);
    }
  });

  it('honours the bounds option', () => {
    const samples = cluster(2000, 5, 5, 0.4);
    const centred = scan(decode(renderScatter({ samples, bounds: [0, 10, 0, 10] })), isBlue);
    expect(Math.abs(centred.x - 0.5)).toBeLessThan(0.08);
    expect(Math.abs(centred.y - 0.5)).toBeLessThan(0.08);
    const corner = scan(decode(renderScatter({ samples, bounds: [5, 25, -15, 5] })), isBlue);
    expect(corner.x).toBeLessThan(0.2);
    expect(corner.y).toBeLessThan(0.2);
  });

  it('clips points outside the bounds instead of wrapping them', () => {
    const outside = new Float32Array([10.3, 0, 30, 5, -12, -9, 0, 10.4, 0, -50, 1e6, 1e6]);
    const one = new Float32Array([10.3, 0]);
    // both pictures hold only the legend's swatch
    const picture = renderScatter({ samples: outside, bounds: BOX });
    expect(picture.equals(renderScatter({ samples: one, bounds: BOX }))).toBe(true);
  });

  it('rejects empty bounds', () => {
    expect(() => renderScatter({ samples: new Float32Array(0), bounds: [1, 1, 0, 1] })).toThrow(RangeError);
  });
});

describe('renderLines', () => {
  it('draws each series in its colour on a log axis, leaving gaps for missing values', async () => {
    const { renderLines } = await import('../src/render/lines.js');
    const xs = [0, 1, 2, 3, 4];
    const png = PNG.sync.read(
      renderLines({
        series: [
          { label: 'red', xs, ys: [1, 1, 1, 1, 1], rgb: [220, 0, 0], width: 4 },
          { label: 'blue', xs, ys: [10, 10, NaN, 10, 10], rgb: [0, 0, 220], width: 4 },
        ],
        width: 900,
        height: 600,
      }),
    );
    expect([png.width, png.height]).toEqual([900, 600]);
    const colour = (x: number, y: number) => Array.from(png.data.subarray(4 * (y * 900 + x), 4 * (y * 900 + x) + 3));
    // Find both lines in the column a quarter of the way across the plot (x = 0.5 → between points 0 and 1).
    const column = Math.round(60 + 0.125 * (758 - 60));
    const rows = Array.from({ length: 600 }, (_, y) => colour(column, y));
    const red = rows.findIndex(([r, g, b]) => r > 180 && g < 80 && b < 80);
    const blue = rows.findIndex(([r, g, b]) => b > 180 && r < 80 && g < 80);
    expect(red).toBeGreaterThan(0);
    expect(blue).toBeGreaterThan(0);
    expect(blue).toBeLessThan(red); // 10 sits above 1
    // around x = 2 the blue series has no value, so no blue there
    const gap = Math.round(60 + 0.5 * (758 - 60));
    expect(Array.from({ length: 600 }, (_, y) => colour(gap, y)).some(([r, g, b]) => b > 180 && r < 80 && g < 80)).toBe(false);
  });
});
