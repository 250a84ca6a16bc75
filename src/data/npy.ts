// NumPy .npy files (format versions 1.0, 2.0, 3.0): little-endian float32 or float64, C order.
// The first axis counts the points; any further axes are flattened into the point's dimension, and
// kept as its shape (an image's channels, height and width).
import { DataError, type Points } from './points.js';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

export function parseNpy(buf: Buffer, source: string): Points {
  const fail = (why: string): never => {
    throw new DataError(`${source}: ${why}`);
  };
  if (buf.length < 8 || !buf.subarray(0, 6).equals(MAGIC)) fail('not a .npy file (no \\x93NUMPY magic)');
  const major = buf[6];
  if (major < 1 || major > 3) fail(`unsupported .npy version ${major}.${buf[7]}`);
  const lengthBytes = major === 1 ? 2 : 4;
  if (buf.length < 8 + lengthBytes) fail('truncated header');
  const headerLength = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const dataStart = 8 + lengthBytes + headerLength;
  if (dataStart > buf.length) fail('truncated header');
  const header = buf.subarray(8 + lengthBytes, dataStart).toString(major === 3 ? 'utf8' : 'latin1');

  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) fail('malformed header');
  // NumPy reads '|f4' (no byte order) as native order, and every machine this runs on is little-endian
  const itemSize = /^[<|]f4$/.test(descr as string) ? 4 : /^[<|]f8$/.test(descr as string) ? 8 : 0;
  if (itemSize === 0) {
    fail(`dtype '${descr}' is not supported; save float32 or float64 in little-endian order (<f4, <f8)`);
  }
  if (fortran === 'True') fail('Fortran-ordered arrays are not supported; save with np.ascontiguousarray');
  const shape = (shapeText as string)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.length === 0 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`bad shape (${shapeText})`);
  const rows = shape[0];
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  if (rows === 0 || cols === 0) fail(`the array is empty (shape (${shapeText}))`);
  const expected = rows * cols * itemSize;
  const actual = buf.length - dataStart;
  if (actual !== expected) fail(`expected ${expected} data bytes for shape (${shapeText}) but found ${actual} (truncated or corrupt)`);

  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) {
    const v = itemSize === 4 ? buf.readFloatLE(dataStart + 4 * i) : buf.readDoubleLE(dataStart + 8 * i);
    data[i] = v;
    if (!Number.isFinite(data[i])) {
      const at = `at row ${Math.floor(i / cols)}`;
      fail(Number.isFinite(v) ? `value ${v} ${at} is beyond float32's range` : `non-finite value ${at} (${v})`);
    }
  }
  return { data, rows, cols, shape: shape.length > 1 ? shape.slice(1) : [1] };
}

/** An .npy file of `data` as its two pieces, the header and a view of the values, for writing without a copy. */
export function npyPieces(data: Float32Array, shape: number[]): [Buffer, Uint8Array] {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`shape (${shape.join(', ')}) does not hold ${data.length} values`);
  const shapeText = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shapeText}), }`;
  // magic (6) + version (2) + length (2) + header + '\n' padded to a multiple of 64
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const out = Buffer.alloc(total);
  MAGIC.copy(out, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  return [out, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
}

export function writeNpy(data: Float32Array, shape: number[]): Buffer {
  return Buffer.concat(npyPieces(data, shape));
}
