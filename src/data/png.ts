// PNG images: one file, or every .png directly in a folder, all of one size. The data are grey (one
// channel) when every file is a grey PNG, else RGB (a grey file's value in all three channels);
// alpha is ignored. Pixels are scaled to [0, 1] (pngjs brings 16-bit and palette files to 8-bit RGBA).
import fs from 'node:fs';
import path from 'node:path';
import { PNG } from 'pngjs';

import { cannotRead, readFile } from './files.js';
import { UNIT_BYTES } from './idx.js';
import { DataError, type Points } from './points.js';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// PNG colour types 0 (grey) and 4 (grey with alpha); 2, 3 and 6 are RGB, palette and RGBA
const GREY_TYPES = new Set([0, 4]);

interface PngFile {
  name: string;
  bytes: Buffer;
  width: number;
  height: number;
  grey: boolean;
}

// The size and colour type from the IHDR chunk, which the format puts first: every file's is
// checked before any is decoded, so a stray size is reported at once.
function readHeader(name: string, bytes: Buffer): PngFile {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(SIGNATURE) || bytes.toString('latin1', 12, 16) !== 'IHDR') {
    throw new DataError(`${name}: not a PNG file`);
  }
  return { name, bytes, width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20), grey: GREY_TYPES.has(bytes[25]) };
}

function decodeAll(files: PngFile[]): Points {
  const { width, height } = files[0];
  const other = files.find((f) => f.width !== width || f.height !== height);
  if (other) {
    throw new DataError(`${other.name} is ${other.width}×${other.height} but ${files[0].name} is ${width}×${height}; all images must have one size`);
  }
  const channels = files.every((f) => f.grey) ? 1 : 3;
  const plane = width * height;
  const cols = channels * plane;
  const data = new Float32Array(files.length * cols);
  files.forEach((file, i) => {
    let rgba: Buffer;
    try {
      rgba = PNG.sync.read(file.bytes).data;
    } catch (e) {
      throw new DataError(`${file.name}: broken PNG (${(e as Error).message})`);
    }
    // RGBA interleaved to channels first
    for (let c = 0; c < channels; c++) {
      const out = data.subarray(i * cols + c * plane, i * cols + (c + 1) * plane);
      for (let p = 0; p < plane; p++) out[p] = UNIT_BYTES[rgba[4 * p + c]];
    }
  });
  return { data, rows: files.length, cols, shape: [channels, height, width] };
}

/** One PNG file as a dataset of one image. */
export function readPng(file: string): Points {
  return decodeAll([readHeader(file, readFile(file))]);
}

/** Every .png directly in a folder, in natural order of their names (2.png before 10.png). */
export function readPngFolder(dir: string): Points {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    throw cannotRead(dir, e);
  }
  const names = entries.filter((n) => /\.png$/i.test(n)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (names.length === 0) throw new DataError(`${dir}: a folder of images must hold .png files, and this one holds none`);
  return decodeAll(names.map((n) => path.join(dir, n)).map((file) => readHeader(file, readFile(file))));
}
