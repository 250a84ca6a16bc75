// The 2-D scatter plot: a PNG of the requested size with the samples and the data where they are.
import { describe, it, expect } from 'vitest';
import { PNG } from 'pngjs';

import { renderScatter } from '../src/index.js';

const bounds: [number, number, number, number] = [-10, 10, -10, 10];
const pixel = (png: PNG, x: number, y: number) => Array.from(png.data.subarray(4 * (y * png.width + x), 4 * (y * png.width + x) + 3));
// With the default 800×800 layout and these bounds, where a data point lands.
const at = (x: number, y: number): [number, number] => [Math.round(70 + ((x + 10) / 20) * 706), Math.round(78 + ((10 - y) / 20) * 666)];

function cluster(cx: number, cy: number, n: number): Float32Array {
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = cx + 0.3 * Math.cos(i);
    out[2 * i + 1] = cy + 0.3 * Math.sin(1.7 * i);
  }
  return out;
}

describe('renderScatter', () => {
  it('draws samples in colour and the data in grey, where they are', () => {
    const png = PNG.sync.read(
      renderScatter({ samples: cluster(5, 5, 2000), reference: cluster(-5, -5, 2000), bounds, title: 't', subtitle: 's' }),
    );
    expect([png.width, png.height]).toEqual([800, 800]);
    const [r, g, b] = pixel(png, ...at(5, 5));
    expect(b).toBeGreaterThan(r + 40); // the samples' blue
    const grey = pixel(png, ...at(-5, -5));
    expect(Math.max(...grey) - Math.min(...grey)).toBeLessThan(8);
    expect(grey[0]).toBeLessThan(200);
    expect(pixel(png, ...at(5, -5))).toEqual([255, 255, 255]);
  });

  it('ignores non-finite points, accepts no samples, honours the size', () => {
    const samples = Float32Array.from([NaN, 1, Infinity, 2, 0, 0]);
    const png = PNG.sync.read(renderScatter({ samples, bounds, width: 400, height: 300 }));
    expect([png.width, png.height]).toEqual([400, 300]);
    expect(() => renderScatter({ samples: new Float32Array(0) })).not.toThrow();
  });
});
