import { describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { drawScatter, renderScatter } from '../src/render/scatter.js';
import { type AnimationOptions, renderAnimation, renderImageAnimation } from '../src/render/animation.js';
import { renderImageGrid } from '../src/render/images.js';

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

interface Picture {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Pixels matching `test` in a region given as fractions of the image, and their centroid. */
function scan(png: Picture, test: (r: number, g: number, b: number) => boolean, region = [0, 1, 0, 1]) {
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

interface GifFrame extends Picture {
  delayMs: number;
}

/**
 * Reads a GIF block by block (header, logical screen, colour tables, extensions, images) and
 * composes each image over the ones before it, as a viewer does for disposal methods 0 and 1.
 */
function decodeGif(gif: Buffer) {
  let at = 0;
  const byte = () => gif[at++];
  const u16 = () => byte() | (byte() << 8);
  const subBlocks = () => {
    const parts: Buffer[] = [];
    for (let size = byte(); size > 0; size = byte()) {
      parts.push(gif.subarray(at, at + size));
      at += size;
    }
    return Buffer.concat(parts);
  };
  const colourTable = (flags: number) => {
    const table = gif.subarray(at, at + 3 * (2 << (flags & 7)));
    at += table.length;
    return table;
  };
  const signature = gif.toString('latin1', 0, 6);
  at = 6;
  const [width, height, screenFlags] = [u16(), u16(), byte()];
  at += 2; // background colour, aspect ratio
  const globalTable = screenFlags & 0x80 ? colourTable(screenFlags) : undefined;
  const screen = new Uint8Array(4 * width * height);
  const frames: GifFrame[] = [];
  let loopCount: number | undefined;
  let graphicControls = 0;
  let localTables = 0;
  let control = { delayMs: 0, transparentIndex: -1, disposal: 0 };
  for (;;) {
    const block = byte();
    if (block === 0x3b) break;
    if (block === 0x21) {
      const label = byte();
      const body = subBlocks();
      if (label === 0xf9) {
        graphicControls++;
        control = { disposal: (body[0] >> 2) & 7, delayMs: 10 * body.readUInt16LE(1), transparentIndex: body[0] & 1 ? body[3] : -1 };
      } else if (label === 0xff && body.toString('latin1', 0, 11) === 'NETSCAPE2.0' && body[11] === 1) {
        loopCount = body.readUInt16LE(12);
      }
    } else if (block === 0x2c) {
      const [left, top, w, h, flags] = [u16(), u16(), u16(), u16(), byte()];
      if (flags & 0x40) throw new Error('interlaced images are not decoded here');
      if (flags & 0x80) localTables++;
      const colours = flags & 0x80 ? colourTable(flags) : globalTable;
      if (!colours) throw new Error('an image without a colour table');
      expect(control.disposal).toBeLessThanOrEqual(1);
      const minCodeSize = byte();
      const index = lzwDecode(subBlocks(), minCodeSize, w * h);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const c = index[y * w + x];
          if (c === control.transparentIndex) continue;
          const p = 4 * ((top + y) * width + left + x);
          screen.set([colours[3 * c], colours[3 * c + 1], colours[3 * c + 2], 255], p);
        }
      frames.push({ width, height, data: screen.slice(), delayMs: control.delayMs });
    } else throw new Error(`unknown GIF block 0x${block.toString(16)} at byte ${at - 1}`);
  }
  return { signature, width, height, loopCount, graphicControls, localTables, frames, trailingBytes: gif.length - at };
}

function lzwDecode(data: Buffer, minCodeSize: number, count: number): Uint8Array {
  const out = new Uint8Array(count);
  const clear = 1 << minCodeSize;
  const prefix = new Int32Array(4096);
  const suffix = new Uint8Array(4096);
  const first = new Uint8Array(4096);
  const length = new Int32Array(4096);
  for (let i = 0; i < clear; i++) [suffix[i], first[i], length[i]] = [i, i, 1];
  let [codeSize, next, previous, bits, accumulator, written] = [minCodeSize + 1, clear + 2, -1, 0, 0, 0];
  for (const value of data) {
    accumulator |= value << bits;
    bits += 8;
    while (bits >= codeSize) {
      const code = accumulator & ((1 << codeSize) - 1);
      accumulator >>>= codeSize;
      bits -= codeSize;
      if (code === clear) {
        [codeSize, next, previous] = [minCodeSize + 1, clear + 2, -1];
        continue;
      }
      if (code === clear + 1) return out;
      if (previous >= 0 && next < 4096) {
        // the new entry is the previous string and the first symbol of this one (of itself, if it is the new one)
        [prefix[next], first[next], length[next]] = [previous, first[previous], length[previous] + 1];
        suffix[next] = first[code < next ? code : previous];
        next++;
        if (next === 1 << codeSize && codeSize < 12) codeSize++;
      }
      for (let i = length[code] - 1, c = code; i >= 0; i--, c = prefix[c]) if (written + i < count) out[written + i] = suffix[c];
      written += length[code];
      previous = code;
    }
  }
  return out;
}

/**
 * The largest difference in any channel between two pictures of the same size, and its mean, over
 * the pixels whose colour in `b` passes `where`.
 */
function difference(a: Uint8Array, b: Uint8Array, where = (_r: number, _g: number, _b: number) => true) {
  let [largest, sum, count] = [0, 0, 0];
  for (let p = 0; p < a.length; p += 4) {
    if (!where(b[p], b[p + 1], b[p + 2])) continue;
    const d = Math.max(Math.abs(a[p] - b[p]), Math.abs(a[p + 1] - b[p + 1]), Math.abs(a[p + 2] - b[p + 2]));
    largest = Math.max(largest, d);
    sum += d;
    count++;
  }
  return { largest, mean: sum / count };
}

/** The rows of a picture between two fractions of its height. */
const rows = (picture: Picture, from: number, to: number) => {
  const row = 4 * picture.width;
  return picture.data.subarray(row * Math.floor(from * picture.height), row * Math.floor(to * picture.height));
};

describe('renderAnimation', () => {
  const captions = (n: number) => Array.from({ length: n }, (_, i) => `level ${i + 1} of ${n}, σ = 1, step 1 of 1`);

  it('writes a GIF89a that loops forever, one frame per step, the last held longer', () => {
    const frames = [cluster(300, -5, -5, 1), cluster(300, 0, 0, 1), cluster(300, 5, 5, 1)];
    const gif = decodeGif(renderAnimation({ frames, captions: captions(3) }));
    expect(gif.signature).toBe('GIF89a');
    expect([gif.width, gif.height]).toEqual([640, 640]);
    expect(gif.loopCount).toBe(0);
    expect(gif.graphicControls).toBe(3);
    expect(gif.frames.map((f) => f.delayMs)).toEqual([80, 80, 2000]);
    expect(gif.localTables).toBe(0); // one palette for the film
    expect(gif.trailingBytes).toBe(0);

    const timed = decodeGif(
      renderAnimation({ frames, captions: captions(3), delayMs: 50, holdLastMs: 1000, width: 320, height: 240 }),
    );
    expect([timed.width, timed.height]).toEqual([320, 240]);
    expect(timed.frames.map((f) => f.delayMs)).toEqual([50, 50, 1000]);
  });

  it('draws each frame where its particles are, over axes that stay put', () => {
    const frames = [cluster(2000, -5, -5, 0.4), cluster(2000, 5, 5, 0.4), cluster(2000, 5, 5, 0.4)];
    const captions = ['same', 'same', 'same'];
    const [a, b, c] = decodeGif(renderAnimation({ frames, captions, bounds: BOX, width: 400, height: 400 })).frames;
    const [blueA, blueB] = [scan(a, isBlue, [0, 1, 0.1, 1]), scan(b, isBlue, [0, 1, 0.1, 1])];
    expect(blueA.x).toBeLessThan(0.4);
    expect(blueA.y).toBeGreaterThan(0.6);
    expect(blueB.x).toBeGreaterThan(0.6);
    expect(blueB.y).toBeLessThan(0.4);
    expect(difference(a.data, b.data).largest).toBeGreaterThan(100);
    expect(difference(b.data, c.data).largest).toBe(0);
    // the tick labels under the plot are the same in every frame
    expect(Buffer.from(rows(a, 0.93, 1)).equals(rows(b, 0.93, 1))).toBe(true);
  });

  it('frames every step as the scatter plot of the last one, leaving out what falls outside', () => {
    const reference = new Float32Array([...cluster(4000, 5, 5, 1, 3), ...cluster(1000, -5, -5, 1, 4)]);
    const last = new Float32Array([...cluster(1600, 5, 5, 1, 5), ...cluster(400, -5, -5, 1, 6)]);
    const farAway = last.map((v) => v + Math.sign(v) * 1000);
    const title = 'a title';
    const caption = 'level 10 of 10, σ = 1, step 100 of 100';
    const gif = renderAnimation({ frames: [farAway, last], captions: ['start', caption], reference, title });
    const [start, end] = decodeGif(gif).frames;
    // the last frame is samples.png's picture of the last particles, but for the GIF's 255 colours,
    // which keep the greys of the smooth density within a level so that it shows no contours
    const picture = drawScatter({ samples: last, reference, title, subtitle: caption, width: 640, height: 640 });
    const all = difference(end.data, picture.rgba);
    expect(all.largest).toBeLessThan(16);
    expect(all.mean).toBeLessThan(1);
    expect(difference(end.data, picture.rgba, (r, g, b) => r === g && g === b).largest).toBeLessThanOrEqual(1);
    // the first frame has the same axes, and of its particles, all outside them, no trace but the legend's
    expect(Buffer.from(rows(start, 0.93, 1)).equals(rows(end, 0.93, 1))).toBe(true);
    expect(scan(start, isBlue).count).toBeLessThan(150);
    expect(scan(end, isBlue).count).toBeGreaterThan(5000);
  });

  it('rejects frames, captions and timings it cannot draw, saying what is wrong', () => {
    const frame = cluster(10, 0, 0, 1);
    const refused = (o: Partial<AnimationOptions>, kind: typeof RangeError | typeof TypeError, message: RegExp) => {
      const animate = () => renderAnimation({ frames: [frame], captions: ['one'], ...o });
      expect(animate).toThrow(kind);
      expect(animate).toThrow(message);
    };
    refused({ frames: [], captions: [] }, RangeError, /no frames/);
    const uneven = [frame, cluster(11, 0, 0, 1)];
    refused({ frames: uneven, captions: ['one', 'two'] }, RangeError, /frame 1 holds 11 particles and frame 0 holds 10/);
    refused({ frames: [frame.subarray(1)] }, RangeError, /frame 0 has 19 values, not n×2/);
    refused({ frames: [frame, frame] }, RangeError, /1 captions for 2 frames/);
    refused({ frames: [Array.from(frame)] as unknown as Float32Array[] }, TypeError, /frame 0 is not a Float32Array/);
    refused({ captions: 'one' as unknown as string[] }, TypeError, /captions must be an array of strings/);
    refused({ delayMs: 5 }, RangeError, /delayMs must be between 20 and 655350 ms, not 5/);
    refused({ holdLastMs: NaN }, RangeError, /holdLastMs/);
    refused({ bounds: [0, 1, 1, 1] }, RangeError, /empty plot bounds/);
  });
});

/** The RGB of pixel (x, y). */
const pixel = (picture: Picture, x: number, y: number) => Array.from(picture.data.subarray(4 * (y * picture.width + x), 4 * (y * picture.width + x) + 3));

describe('renderImageGrid', () => {
  const grey = { channels: 1, height: 2, width: 3, low: 0, high: 1 };

  it('lays the images out in a square grid, each pixel a block of its grey', () => {
    // four 2×3 images: 2 columns, blocks of min(720/(2·3), 720/(2·2)) = 120 px, gaps of 60
    const images = Float32Array.from({ length: 24 }, (_, i) => (i % 6) / 5);
    images[23] = 7; // beyond white
    images[18] = -3; // beyond black
    images[13] = NaN;
    const png = decode(renderImageGrid({ images, image: grey, title: 'four images' }));
    expect([png.width, png.height]).toEqual([40 + 2 * 360 + 60 + 40, 80 + 2 * 240 + 60 + 40]);
    // image i, its pixel (x, y), at the centre of the block
    const at = (i: number, x: number, y: number) =>
      pixel(png, 40 + (i % 2) * 420 + x * 120 + 60, 80 + Math.floor(i / 2) * 300 + y * 120 + 60);
    expect(at(0, 0, 0)).toEqual([0, 0, 0]);
    expect(at(0, 2, 0)).toEqual([102, 102, 102]);
    expect(at(1, 1, 1)).toEqual([204, 204, 204]);
    expect(at(2, 1, 0)).toEqual([220, 40, 40]); // the NaN
    expect(at(3, 0, 0)).toEqual([0, 0, 0]);
    expect(at(3, 2, 1)).toEqual([255, 255, 255]);
    // the gap between the columns stays white, and the title is drawn above the grid
    expect(pixel(png, 40 + 360 + 30, 200)).toEqual([255, 255, 255]);
    expect(scan(png, (r) => r < 128, [0, 1, 0, 70 / png.height]).count).toBeGreaterThan(50);
  });

  it('maps [low, high] to black and white in each colour channel', () => {
    const image = { channels: 3, height: 2, width: 2, low: -1, high: 1 };
    // red plane −1 → 0, green plane 1 → 255, blue plane 0 → 128
    const images = Float32Array.from([-1, -1, -1, -1, 1, 1, 1, 1, 0, 0, 0, 0]);
    const png = decode(renderImageGrid({ images, image }));
    expect(pixel(png, 100, 200)).toEqual([0, 255, 128]);
  });

  it('draws up to 64 images by default, or the count asked for', () => {
    const image = { channels: 1, height: 4, width: 4, low: 0, high: 1 };
    const images = new Float32Array(100 * 16).fill(0.5);
    // 8 columns of 4·22 px
    expect(decode(renderImageGrid({ images, image })).width).toBe(80 + 8 * 88 + 7 * 11);
    expect(decode(renderImageGrid({ images, image, count: 9 })).width).toBe(80 + 3 * 240 + 2 * 30);
    expect(() => renderImageGrid({ images, image, count: 101 })).toThrow(/hold 100 images of 16, not 101/);
    expect(() => renderImageGrid({ images, image, count: 0 })).toThrow(/at least one image/);
  });
});

describe('renderImageAnimation', () => {
  const image = { channels: 1, height: 4, width: 4, low: 0, high: 1 };

  it('films the grid, one frame per step, over a title that stays put', () => {
    const frames = [0.1, 0.5, 0.9].map((v) => new Float32Array(4 * 16).fill(v));
    const gif = decodeGif(renderImageAnimation({ frames, captions: ['a', 'b', 'c'], image, title: 'bars' }));
    expect(gif.frames.map((f) => f.delayMs)).toEqual([80, 80, 2000]);
    // 2 columns of 4·90 px; the centre of the first image, in 128 palette greys (every other level)
    const centre = (f: Picture) => pixel(f, 40 + 180, 80 + 180)[0];
    expect(Math.abs(centre(gif.frames[0]) - 26)).toBeLessThanOrEqual(1);
    expect(Math.abs(centre(gif.frames[1]) - 128)).toBeLessThanOrEqual(1);
    expect(Math.abs(centre(gif.frames[2]) - 230)).toBeLessThanOrEqual(1);
    expect(Buffer.from(rows(gif.frames[0], 0, 0.05)).equals(rows(gif.frames[2], 0, 0.05))).toBe(true);
  });

  it('rejects frames that are not whole images', () => {
    expect(() => renderImageAnimation({ frames: [new Float32Array(17)], captions: ['a'], image })).toThrow(
      /renderImageAnimation: frame 0 has 17 values, not n×16/,
    );
    expect(() =>
      renderImageAnimation({ frames: [new Float32Array(32), new Float32Array(16)], captions: ['a', 'b'], image }),
    ).toThrow(/frame 1 holds 1 images and frame 0 holds 2/);
  });
});
