// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
// the raw data. The run's config travels as JSON in the header's __metadata__, so PyTorch users can
// open the file with safetensors.torch.load_file and read the config with safe_open().metadata().
import fs from 'node:fs';

import { NcsnError } from './errors.js';
import { describeFileError, readAll, writeFileAtomic } from './io/files.js';

export interface Tensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** A checkpoint that cannot be read or written, or whose content is not a valid model. */
export class CheckpointError extends NcsnError {
  override name = 'CheckpointError';
  readonly code = 'ERR_NCSN_CHECKPOINT';
}

const FORMAT = 'ncsn-cuda/1';

/** The file's pieces in order: the length and header, then each tensor's data itself (nothing copied). */
function* safetensorsPieces(tensors: Tensor[], metadata: Record<string, string>): Generator<ArrayBufferView> {
  const header: Record<string, unknown> = { __metadata__: { format: FORMAT, ...metadata } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.data.length * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // keeps the data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  yield length;
  yield headerBytes;
  for (const t of tensors) yield t.data;
}

interface TensorEntry {
  name: string;
  shape: number[];
  begin: number;
  count: number;
}

// The header's tensors, checked against the `dataLength` bytes that follow it in the file.
function parseHeader(headerBytes: Buffer, dataLength: number, fail: (why: string) => never): { entries: TensorEntry[]; metadata: Record<string, string> } {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(headerBytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    return fail('the header is not JSON (not a safetensors file)');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header is not a JSON object');
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const entries: TensorEntry[] = [];
  let expectedEnd = 0;
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (v.dtype !== 'F32') fail(`tensor '${name}' has dtype ${String(v.dtype)}; only F32 is supported`);
    const shape = v.shape;
    const offsets = v.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor '${name}' has a bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o))) {
      fail(`tensor '${name}' has bad data offsets`);
    }
    const [begin, end] = offsets as number[];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || begin < 0) fail(`tensor '${name}': its byte range does not match its shape`);
    if (end > dataLength) fail(`tensor '${name}' ends at byte ${end} but the file holds ${dataLength} data bytes (truncated)`);
    expectedEnd = Math.max(expectedEnd, end);
    entries.push({ name, shape: shape as number[], begin, count });
  }
  if (expectedEnd !== dataLength) fail(`${dataLength - expectedEnd} bytes after the last tensor`);
  return { entries, metadata };
}

/** Writes the checkpoint atomically (see io/files.ts), tensor by tensor: no Buffer holds the whole file. */
export function writeCheckpoint(file: string, tensors: Tensor[], metadata: Record<string, string>): void {
  writeFileAtomic(file, safetensorsPieces(tensors, metadata));
}

/** Reads the header, then each tensor by positioned reads straight into its own array, so files over 2 GiB load too. */
export function readCheckpoint(file: string): { tensors: Tensor[]; metadata: Record<string, string> } {
  const fail = (why: string): never => {
    throw new CheckpointError(`${file}: not a valid checkpoint: ${why}`);
  };
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : describeFileError(e)}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) fail('the file is shorter than a safetensors header');
    const lengthBytes = Buffer.alloc(8);
    readAll(fd, lengthBytes, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength > size - 8 || headerLength > 100 * 1024 * 1024) {
      fail(`the header claims ${headerLength} bytes but the file has ${size - 8} after the length (truncated, or not a safetensors file)`);
    }
    const headerBytes = Buffer.alloc(headerLength);
    readAll(fd, headerBytes, 8);
    const dataStart = 8 + headerLength;
    const { entries, metadata } = parseHeader(headerBytes, size - dataStart, fail);
    if (metadata.format !== FORMAT) {
      throw new CheckpointError(`${file}: not an ncsn-cuda checkpoint (metadata format is ${JSON.stringify(metadata.format ?? null)})`);
    }
    const tensors = entries.map(({ name, shape, begin, count }) => {
      const data = new Float32Array(count);
      readAll(fd, data, dataStart + begin);
      return { name, shape, data };
    });
    return { tensors, metadata };
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(e as NodeJS.ErrnoException).code ? describeFileError(e) : (e as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}
