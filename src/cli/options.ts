// Parsers for command-line values: each rejects a bad value with a message commander prints as
// "error: option '--steps <n>' argument '-5' is invalid. <message>".
import { InvalidArgumentError } from 'commander';

import { NcsnError } from '../errors.js';
import type { Device } from '../index.js';
import { LIMITS } from '../limits.js';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('It must be a positive integer.');
  }
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('It must be an integer ≥ 0.');
  }
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(value === 'auto' ? 'It must be a positive number (this option has no auto).' : 'It must be a positive number.');
  }
  return n;
}

export function device(value: string): Device {
  if (!/^(auto|cpu|cuda|cuda:\d{1,4})$/.test(value)) {
    throw new InvalidArgumentError('It must be auto, cpu, cuda or cuda:N.');
  }
  return value as Device;
}

export function positiveNumberOrAuto(value: string): number | 'auto' {
  return value === 'auto' ? 'auto' : positiveNumber(value);
}

export function levelCountOrAuto(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  const n = positiveInt(value);
  if (n < 2 || n > LIMITS.levels) {
    throw new InvalidArgumentError(`It must be an integer ≥ 2, or auto (at most ${LIMITS.levels.toLocaleString('en-US')} levels).`);
  }
  return n;
}

export function stepsPerLevel(value: string): number {
  const n = positiveInt(value);
  if (n > LIMITS.stepsPerLevel) {
    throw new InvalidArgumentError(`It must be an integer from 1 to ${LIMITS.stepsPerLevel.toLocaleString('en-US')}.`);
  }
  return n;
}

export function unitInterval(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) {
    throw new InvalidArgumentError('It must be a number in [0, 1).');
  }
  return n;
}

/** An error the CLI reports as one line, without a stack trace. */
export class UsageError extends NcsnError {
  override name = 'UsageError';
  readonly code = 'ERR_NCSN_USAGE';
}
