// Dataset parsers on valid and broken files, and the built-in toys.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, it, expect } from 'vitest';

import { loadDataset, imageShape, DataError, TOY_NAMES, MIXTURE } from '../src/data/index.js';
import { toyReport } from '../src/metrics.js';
import { parseNpy, writeNpy } from '../src/data/npy.js';
import { parseCsv, csvPieces } from '../src/data/csv.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-data-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// A .npy file by hand: header dict, padded to 64 bytes, then the payload.
function npy(descr: string, shape: string, payload: Buffer, fortran = 'False', version = 1): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': (${shape}), }`;
  const pre = version === 1 ? 10 : 12;
  header = header.padEnd(Math.ceil((pre + header.length + 1) / 64) * 64 - pre - 1, ' ') + '\n';
  const head = Buffer.alloc(pre);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), payload]);
}
const f64 = (v: number[]) => Buffer.from(new Float64Array(v).buffer);
const f32 = (v: number[]) => Buffer.from(new Float32Array(v).buffer);

describe('.npy files', () => {
  it('round-trips what writeNpy writes', () => {
    const data = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const back = parseNpy(writeNpy(data, [3, 2]), 'x.npy');
    expect(back).toEqual({ data, rows: 3, cols: 2, shape: [2] });
    expect(writeNpy(data, [3, 2]).indexOf(0x0a) % 64).toBe(63); // header ends on a 64-byte boundary
  });

  it('reads float64 and float32 with any trailing shape, in versions 1 to 3', () => {
    expect(parseNpy(npy('<f8', '3,', f64([1, 2, 3])), 'a.npy')).toEqual({ data: Float32Array.from([1, 2, 3]), rows: 3, cols: 1, shape: [1] });
    expect(parseNpy(npy('<f4', '2, 3', f32([1, 2, 3, 4, 5, 6])), 'b.npy')).toEqual({ data: Float32Array.from([1, 2, 3, 4, 5, 6]), rows: 2, cols: 3, shape: [3] });
    const eight = [1, 2, 3, 4, 5, 6, 7, 8];
    expect(parseNpy(npy('<f8', '2, 2, 2', f64(eight), 'False', 2), 'c.npy')).toEqual({ data: Float32Array.from(eight), rows: 2, cols: 4, shape: [2, 2] });
    expect(parseNpy(npy('<f4', '4, 2', f32(eight), 'False', 3), 'd.npy')).toMatchObject({ rows: 4, cols: 2 });
    expect(parseNpy(npy('|f4', '2, 1', f32([0.5, -1])), 'e.npy').data).toEqual(Float32Array.from([0.5, -1]));
  });

  it('rejects broken files with the cause', () => {
    const good = npy('<f8', '2, 2', f64([1, 2, 3, 4]));
    expect(() => parseNpy(Buffer.from('PK\x03\x04 not numpy'), 'z.npy')).toThrow(/z\.npy: not a \.npy file/);
    expect(() => parseNpy(good.subarray(0, 9), 'h.npy')).toThrow(/truncated header/);
    expect(() => parseNpy(npy('<f8', '2,', f64([1, 2]), 'False', 2).subarray(0, 11), 'h2.npy')).toThrow(/truncated header/);
    expect(() => parseNpy(good.subarray(0, good.length - 3), 't.npy')).toThrow(/expected 32 data bytes .* found 29/);
    expect(() => parseNpy(npy('>f8', '2,', f64([1, 2])), 'be.npy')).toThrow(/dtype '>f8' is not supported/);
    expect(() => parseNpy(npy('<i8', '2,', f64([1, 2])), 'int.npy')).toThrow(/dtype '<i8'/);
    expect(() => parseNpy(npy('<f8', '2, 1', f64([1, 2]), 'True'), 'f.npy')).toThrow(/Fortran/);
    expect(() => parseNpy(npy('<f8', '2, 2', f64([1, 2, NaN, 4])), 'nan.npy')).toThrow(/non-finite value at row 1 \(NaN\)/);
    expect(() => parseNpy(npy('<f8', '2,', f64([1, 1e300])), 'big.npy')).toThrow(/1e\+300 at row 1 is beyond float32's range/);
    expect(() => parseNpy(Buffer.from('x'), 'x.npy')).toThrow(DataError);
    expect(() => parseNpy(npy('<f8', '2, 2', f64([1, 2, 3, 4])), 'ok.npy')).not.toThrow();
  });
});

describe('.csv files', () => {
  it('reads points with or without a header, LF or CRLF', () => {
    expect(parseCsv('1,2\n3,4\n', 'a.csv')).toEqual({ data: Float32Array.from([1, 2, 3, 4]), rows: 2, cols: 2, shape: [2] });
    expect(parseCsv('x,y\r\n1.5,-2\r\n\r\n3e2,4\r\n', 'b.csv')).toEqual({ data: Float32Array.from([1.5, -2, 300, 4]), rows: 2, cols: 2, shape: [2] });
    const text = [...csvPieces(Float32Array.from([0.1, 2, 3, 4]), 2, 2)].join('');
    expect(parseCsv(text, 'c.csv').data).toEqual(Float32Array.from([0.1, 2, 3, 4]));
  });

  it('names the line and column of a broken field', () => {
    expect(() => parseCsv('1,2\n3\n', 'r.csv')).toThrow(/r\.csv:2: expected 2 fields but found 1/);
    expect(() => parseCsv('1,2\n3,abc\n', 'n.csv')).toThrow(/n\.csv:2: column 2 \('abc'\) is not a finite number/);
    expect(() => parseCsv('1,2\n3,inf\n', 'i.csv')).toThrow(/i\.csv:2: column 2/);
    expect(() => parseCsv('\n\n', 'e.csv')).toThrow(/no data rows/);
    expect(() => parseCsv('x,y\n', 'h.csv')).toThrow(/no data rows/);
  });
});

describe('datasets', () => {
  it('toy:mixture has the W1 weights, means and unit variance', () => {
    const ds = loadDataset('toy:mixture', { seed: 0 });
    expect(ds.rows).toBe(100_000);
    expect(ds.defaults).toEqual({ sigmaBegin: 20, sigmaEnd: 1, levels: 10, steps: 5000 });
    expect(MIXTURE).toEqual({ means: [[-5, -5], [5, 5]], weights: [0.2, 0.8], variance: 1 });
    // the modes are 7σ from the line x + y = 0, so its side names a point's component
    for (const [sign, weight] of [[1, 0.8], [-1, 0.2]] as const) {
      const rows: number[][] = [];
      for (let i = 0; i < ds.rows; i++) if (sign * (ds.data[2 * i] + ds.data[2 * i + 1]) > 0) rows.push([ds.data[2 * i], ds.data[2 * i + 1]]);
      expect(Math.abs(rows.length / ds.rows - weight)).toBeLessThan(0.01); // standard error 0.0013
      const mean = [0, 1].map((j) => rows.reduce((a, r) => a + r[j], 0) / rows.length);
      const cov = (j: number, k: number) => rows.reduce((a, r) => a + (r[j] - mean[j]) * (r[k] - mean[k]), 0) / rows.length;
      for (const m of mean) expect(Math.abs(m - 5 * sign)).toBeLessThan(0.05);
      expect(Math.abs(cov(0, 0) - 1)).toBeLessThan(0.05);
      expect(Math.abs(cov(1, 1) - 1)).toBeLessThan(0.05);
      expect(Math.abs(cov(0, 1))).toBeLessThan(0.05);
    }
  });

  it('every toy is finite, 2-D, in [−6, 6]², seeded and deterministic', () => {
    for (const name of TOY_NAMES) {
      const a = loadDataset(`toy:${name}`, { seed: 1, toySize: 2000 });
      const b = loadDataset(`toy:${name}`, { seed: 1, toySize: 2000 });
      const c = loadDataset(`toy:${name}`, { seed: 2, toySize: 2000 });
      expect(a.dim).toBe(2);
      expect(a.rows).toBe(2000);
      expect(a.data.every((v) => Number.isFinite(v))).toBe(true);
      if (name !== 'mixture') expect(a.data.every((v) => Math.abs(v) < 6)).toBe(true);
      expect(a.data).toEqual(b.data);
      expect(a.data).not.toEqual(c.data);
    }
  });

  it("each toy's measure finds its own data in the support, its modes at their weights, and points off it outside", () => {
    // the data themselves: 100 % of the checkerboard, 99.7 % of a curve within three noise widths,
    // 98.9 % of a 2-D Gaussian; shares within 1 point of truth over 100,000 points
    const floor: Record<string, number> = { checkerboard: 1, '8gaussians': 0.985, swissroll: 0.995, rings: 0.995, moons: 0.995 };
    for (const [name, least] of Object.entries(floor)) {
      const r = toyReport(name, loadDataset(`toy:${name}`, { seed: 3 }).data)!;
      expect(r.inSupport, name).toBeGreaterThanOrEqual(least);
      expect(r.worstModeError, name).toBeLessThan(0.01);
      expect(r.modes.reduce((a, m) => a + m.weight, 0)).toBeCloseTo(1, 12);
    }
    const located = (name: string, points: number[]) => toyReport(name, Float32Array.from(points))!;
    // a dark square's centre, a light square's, and a point off the board
    expect(located('checkerboard', [-3, -3, -1, -3, 5, 0]).inSupport).toBeCloseTo(1 / 3, 12);
    // on ring 2, between rings 2 and 3, beyond the outer ring
    expect(located('rings', [0, 2.2, 2.5, 0, 0, 4.5]).inSupport).toBeCloseTo(1 / 3, 12);
    // a centre, the middle between two centres, the origin
    expect(located('8gaussians', [4, 0, 2 + Math.SQRT2, Math.SQRT2, 0, 0]).inSupport).toBeCloseTo(1 / 3, 12);
    // the top of the upper moon and the bottom of the lower one, and their centres' midpoint
    const moons = located('moons', [-1.25, 1.875, 1.25, -1.875, 0, 0]);
    expect(moons.inSupport).toBeCloseTo(2 / 3, 12);
    expect(moons.modes.map((m) => m.share)).toEqual([0.5, 0.5]);
    // the spiral's start (t = 1.5π, at (0, −1.35)) and the origin inside it
    expect(located('swissroll', [0, (-1.5 * Math.PI) / 3.5, 0, 0]).modes.map((m) => m.share)).toEqual([1, 0, 0, 0]);
    expect(toyReport('mixture', new Float32Array(2))).toBeNull();
    expect(toyReport('toString', new Float32Array(2))).toBeNull();
  });

  it('loads .npy and .csv files and explains what it cannot load', () => {
    fs.writeFileSync(path.join(dir, 'p.npy'), writeNpy(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]));
    fs.writeFileSync(path.join(dir, 'p.csv'), 'a,b\n1,2\n3,4\n');
    expect(loadDataset(path.join(dir, 'p.npy'), { seed: 0 })).toMatchObject({ rows: 2, dim: 3, defaults: null });
    expect(loadDataset(path.join(dir, 'p.csv'), { seed: 0 })).toMatchObject({ rows: 2, dim: 2, shape: [2] });
    fs.writeFileSync(path.join(dir, 'img.npy'), writeNpy(new Float32Array(2 * 3 * 4 * 5), [2, 3, 4, 5]));
    expect(loadDataset(path.join(dir, 'img.npy'), { seed: 0 })).toMatchObject({ rows: 2, dim: 60, shape: [3, 4, 5] });
    const rejects = (spec: string, message: RegExp, toySize?: number) => {
      expect(() => loadDataset(spec, { seed: 0, toySize })).toThrow(DataError);
      expect(() => loadDataset(spec, { seed: 0, toySize })).toThrow(message);
    };
    rejects(path.join(dir, 'missing.npy'), /cannot read .*missing\.npy: no such file/);
    fs.mkdirSync(path.join(dir, 'folder.csv'));
    rejects(path.join(dir, 'folder.csv'), /cannot read .*folder\.csv: is a directory/);
    rejects('toy:spiral', /unknown toy dataset 'toy:spiral'; the toys are toy:mixture, toy:8gaussians, .*toy:moons/);
    rejects('toy:toString', /unknown toy dataset 'toy:toString'/);
    rejects('toy:__proto__', /unknown toy dataset/);
    rejects('toy:mixture', /toySize must be a positive integer, not 0/, 0);
    rejects('data.txt', /unknown data 'data\.txt': give toy:<name> \(mixture, .*\), mnist, mnist:test, a path ending in \.npy, \.csv, \.png, idx3-ubyte or idx3-ubyte\.gz, or a folder of PNGs/);
  });
});

describe('images', () => {
  it('are (H, W) grey or (C, H, W) with 1 or 3 channels first, each side at least 2', () => {
    expect(imageShape([28, 28])).toEqual({ channels: 1, height: 28, width: 28 });
    expect(imageShape([1, 28, 28])).toEqual({ channels: 1, height: 28, width: 28 });
    expect(imageShape([3, 32, 16])).toEqual({ channels: 3, height: 32, width: 16 });
    for (const notImage of [[2], [784], [2, 1], [1, 5], [2, 8, 8], [4, 8, 8], [3, 1, 8], [8, 8, 3], [1, 2, 3, 4]]) {
      expect(imageShape(notImage)).toBeNull();
    }
  });
});
