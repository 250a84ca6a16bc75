// Reading data files, with the reason for a failure in words rather than errno codes.
import fs from 'node:fs';

import { DataError } from './points.js';

export function cannotRead(file: string, e: unknown): DataError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
  return new DataError(`cannot read ${file}: ${why}`);
}

export function readFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw cannotRead(file, e);
  }
}
