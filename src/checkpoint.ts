// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
// the raw data. The run's config travels as JSON in the header's __metadata__, so PyTorch users can
// open the file with safetensors.torch.load_file and read the config with safe_open().metadata().
import fs from 'node:fs';
import path from 'node:path';

export interface Tensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const FORMAT = 'ncsn-cuda/1';

export function encodeSafetensors(tensors: Tensor[], metadata: Record<string, string>): Buffer {
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
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, at);
    at += t.data.byteLength;
  }
  return out;
}

export function decodeSafetensors(buf: Buffer, source: string): { tensors: Tensor[]; metadata: Record<string, string> } {
  const fail = (why: string): never => {
    throw new CheckpointError(`${source}: not a valid checkpoint: ${why}`);
  };
  if (buf.length < 8) fail('the file is shorter than a safetensors header');
  const headerLength = Number(buf.readBigUInt64LE(0));
  if (headerLength > buf.length - 8 || headerLength > 100 * 1024 * 1024) {
    fail(`the header claims ${headerLength} bytes but the file has ${buf.length - 8} after the length (truncated, or not a safetensors file)`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  } catch {
    return fail('the header is not JSON (not a safetensors file)');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataLength = buf.length - dataStart;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors: Tensor[] = [];
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
    const data = new Float32Array(count);
    Buffer.from(data.buffer).set(buf.subarray(dataStart + begin, dataStart + end));
    tensors.push({ name, shape: shape as number[], data });
  }
  if (expectedEnd !== dataLength) fail(`${dataLength - expectedEnd} bytes after the last tensor`);
  return { tensors, metadata };
}

/** Writes to a temporary file beside the target and renames it, so a crash never leaves half a file. */
export function writeFileAtomic(file: string, data: Buffer | string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export function writeCheckpoint(file: string, tensors: Tensor[], metadata: Record<string, string>): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

export function readCheckpoint(file: string): { tensors: Tensor[]; metadata: Record<string, string> } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const out = decodeSafetensors(buf, file);
  if (out.metadata.format !== FORMAT) {
    throw new CheckpointError(`${file}: not an ncsn-cuda checkpoint (metadata format is ${JSON.stringify(out.metadata.format ?? null)})`);
  }
  return out;
}
