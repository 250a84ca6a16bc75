// Where the command line writes, checked before any training or sampling, so that a destination
// that cannot take the result is refused before the work is done, and a run never writes over
// another run unless asked to.
import fs from 'node:fs';
import path from 'node:path';

import { checkWritableDirectory } from '../io/files.js';
import { UsageError } from './options.js';

/** The files `train` writes into its directory; `--overwrite` removes these and nothing else. */
const RUN_FILES = ['checkpoint.safetensors', 'log.jsonl', 'loss.png', 'score.png', 'samples.png', 'samples.npy'];
const KEPT_CHECKPOINT = /^checkpoint-\d+\.safetensors$/;

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch (e) {
    if (['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return null;
    throw e;
  }
}

// A directory the writer will create with its parents (mkdir -p) when it writes: the nearest part
// of it that exists must be a directory where files can be created.
function checkDirectoryToBe(flag: string, value: string, dir: string): void {
  let existing = path.resolve(dir);
  let found = statOrNull(existing);
  while (!found && path.dirname(existing) !== existing) {
    existing = path.dirname(existing);
    found = statOrNull(existing);
  }
  if (!found?.isDirectory()) throw new UsageError(`${flag} ${value}: ${existing} is not a directory`);
  try {
    checkWritableDirectory(existing);
  } catch (e) {
    throw new UsageError(`${flag} ${value}: ${(e as Error).message}`);
  }
}

/**
 * Refuses an output file before the work: a wrong extension, a directory, or a folder it cannot be
 * written in. Missing parent folders are fine: they are created when the file is written.
 */
export function checkOutputFile(flag: string, file: string, extensions: string[]): void {
  const ext = path.extname(file).toLowerCase();
  if (!extensions.includes(ext)) {
    throw new UsageError(`${flag} ${file}: the extension must be ${extensions.length > 1 ? `one of ${extensions.join(', ')}` : extensions[0]}`);
  }
  if (statOrNull(file)?.isDirectory()) throw new UsageError(`${flag} ${file}: is a directory`);
  checkDirectoryToBe(flag, file, path.dirname(file));
}

/** The files of a run in `dir`: the checkpoint, the kept checkpoints, the log and the pictures. */
function runFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => RUN_FILES.includes(f) || KEPT_CHECKPOINT.test(f))
    .sort();
}

/**
 * Checks train's output directory before any work. A directory that holds a run is refused unless
 * the run continues there (`--resume DIR`) or `overwrite` is set. Either way files must be
 * creatable there (or, for a directory still to be made, in its nearest existing ancestor).
 */
export function checkRunDirectory(dir: string, { continuing, overwrite }: { continuing: boolean; overwrite: boolean }): void {
  const flag = continuing ? '--resume' : '--out';
  if (dir.trim() === '') throw new UsageError(`${flag} needs a directory`);
  const here = statOrNull(dir);
  if (here) {
    if (!here.isDirectory()) throw new UsageError(`${flag} ${dir}: is not a directory`);
    const existing = continuing || overwrite ? [] : runFiles(dir);
    if (existing.length > 0) {
      throw new UsageError(
        `--out ${dir} already holds a run's files (${existing.join(', ')}); continue that run with --resume ${dir}, or start afresh there with --overwrite, which deletes those files`,
      );
    }
  }
  checkDirectoryToBe(flag, dir, dir);
}

/** Creates the run directory; with `overwrite`, first deletes the previous run's files (only those). */
export function prepareRunDirectory(dir: string, overwrite: boolean): void {
  fs.mkdirSync(dir, { recursive: true });
  if (overwrite) for (const f of runFiles(dir)) fs.rmSync(path.join(dir, f));
}
