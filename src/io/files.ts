// Every file the project writes is complete or absent. A file is written under a temporary name in
// its own directory, every byte checked, flushed to disk and only then renamed over the target, so a
// full disk, an I/O error or a kill leaves the previous file (or none) and never half a new one. A
// failure removes the temporary file and throws one message naming the file and the cause.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * What a writer hands over: the whole content, or its pieces in order (text, or the bytes of any
 * typed array), so that a large file is never one string or Buffer.
 */
export type FileContent = ArrayBufferView | string | Iterable<ArrayBufferView | string>;

/** The most bytes passed to one read or write call; Linux moves at most 2 GiB − 4 KiB per call anyway. */
const IO_PIECE = 64 * 1024 * 1024;

/** The cause of a failed file operation in words: "no space left on device" from ENOSPC's message. */
export function describeFileError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  // Node's system errors read "ENOSPC: no space left on device, write"
  const words = err.code ? /^[A-Z0-9_]+: ([^,]+)/.exec(err.message)?.[1] : undefined;
  return words ? `${words} (${err.code})` : err.message;
}

function fileError(verb: string, file: string, e: unknown): Error {
  return new Error(`cannot ${verb} ${file}: ${describeFileError(e)}`, { cause: e });
}

/** A name beside `file` that no other writer picks: hidden, with this process's id and a random tag. */
function temporaryName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

// Byte views of at most IO_PIECE each: a view over more than 4 GiB cannot even be made in Node 20.
function* pieces(content: FileContent): Generator<Uint8Array> {
  const parts = typeof content === 'string' || ArrayBuffer.isView(content) ? [content] : content;
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
    for (let at = 0; at < bytes.byteLength; at += IO_PIECE) {
      yield new Uint8Array(bytes.buffer, bytes.byteOffset + at, Math.min(IO_PIECE, bytes.byteLength - at));
    }
  }
}

/** Writes all of `bytes`: write(2) may write fewer bytes than asked, and the rest must follow. */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.byteLength; ) {
    const written = fs.writeSync(fd, bytes, at, bytes.byteLength - at);
    if (written <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    at += written;
  }
}

/** Reads exactly `target.byteLength` bytes at `position`, in pieces; a file that ends early is an error. */
export function readAll(fd: number, target: ArrayBufferView, position: number): void {
  for (let at = 0; at < target.byteLength; ) {
    const piece = new Uint8Array(target.buffer, target.byteOffset + at, Math.min(IO_PIECE, target.byteLength - at));
    const read = fs.readSync(fd, piece, 0, piece.byteLength, position + at);
    if (read === 0) throw new Error(`the file ends at byte ${position + at}, before the ${target.byteLength} bytes at ${position} (truncated)`);
    at += read;
  }
}

// After a rename the directory entry itself must reach the disk, or a power cut can undo the rename.
// Some platforms cannot open or sync a directory; the rename is still atomic there.
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort: see above
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Fills a temporary file beside `file` by `fill` and renames it to `file`, making missing parent
 * folders first; on failure removes the temporary file and throws.
 */
function replaceAtomically(file: string, fill: (tmp: string) => void): void {
  const tmp = temporaryName(file);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fill(tmp);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw (e as NodeJS.ErrnoException).code ? fileError('write', file, e) : e;
  }
  // rename(2) of two links to the same file does nothing and leaves the temporary name
  fs.rmSync(tmp, { force: true });
  syncDirectory(path.dirname(file));
}

/** Writes `content` to `file` completely or not at all (the previous `file`, if any, stays). */
export function writeFileAtomic(file: string, content: FileContent): void {
  replaceAtomically(file, (tmp) => {
    const fd = fs.openSync(tmp, 'wx');
    try {
      for (const piece of pieces(content)) writeAll(fd, piece);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  });
}

/**
 * Makes `target` a complete copy of `source`, atomically: a hard link when the file system has them
 * (no bytes copied: every writer here replaces files by rename, never in place), else a copy.
 */
export function copyFileAtomic(source: string, target: string): void {
  replaceAtomically(target, (tmp) => {
    try {
      fs.linkSync(source, tmp);
      return;
    } catch (e) {
      if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    }
    fs.copyFileSync(source, tmp, fs.constants.COPYFILE_EXCL);
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  });
}

/**
 * An append-only file of whole lines (log.jsonl): a line that cannot be written completely is cut
 * off again, so the file never ends in half a line, and the failure is thrown naming the file.
 */
export class LineLog {
  private readonly fd: number;
  private length: number;

  constructor(readonly file: string) {
    try {
      this.fd = fs.openSync(file, 'a');
      this.length = fs.fstatSync(this.fd).size;
    } catch (e) {
      throw fileError('write', file, e);
    }
  }

  append(line: string): void {
    try {
      writeAll(this.fd, Buffer.from(`${line}\n`, 'utf8'));
      this.length = fs.fstatSync(this.fd).size;
    } catch (e) {
      try {
        fs.ftruncateSync(this.fd, this.length);
      } catch {
        // the append's own error below says what went wrong
      }
      throw fileError('append to', this.file, e);
    }
  }

  close(): void {
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw fileError('write', this.file, e);
    } finally {
      fs.closeSync(this.fd);
    }
  }
}

/** Throws, naming the directory and the cause, unless a file can be created in `dir` (tried, then removed). */
export function checkWritableDirectory(dir: string): void {
  const probe = temporaryName(path.join(dir, 'probe'));
  try {
    fs.closeSync(fs.openSync(probe, 'wx'));
    fs.rmSync(probe);
  } catch (e) {
    fs.rmSync(probe, { force: true });
    throw fileError('write in', dir, e);
  }
}
