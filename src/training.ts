// A training run that another app would write the same way as the CLI: train to a total step,
// save a checkpoint every so many steps and at the end, keep the previous ones up to a number, stop
// cleanly on an abort (saving first), and pause at fixed steps for work of the caller's own.
import fs from 'node:fs';
import path from 'node:path';

import { copyFileAtomic } from './io/files.js';
import type { NcsnModel, TrainingData, TrainProgress } from './index.js';

export interface CheckpointOptions {
  /** Where the checkpoint is written (atomically), e.g. run/checkpoint.safetensors. */
  file: string;
  /** Also save every this many steps, on their multiples (default: only at the end). */
  every?: number;
  /**
   * Keep this many earlier checkpoints beside `file`, as <name>-<step>.safetensors, the oldest
   * beyond it deleted (default 0).
   */
  keep?: number;
  /** The step of the checkpoint already in `file` (a resumed run), kept by `keep` like the others. */
  savedStep?: number | null;
  /** Called after each save. */
  onSave?: (file: string, step: number) => void;
}

export interface TrainRunOptions {
  /** The step to train to: the model's total, so that a resumed run continues to the same end. */
  steps: number;
  batchSize?: number;
  reportEvery?: number;
  onProgress?: (p: TrainProgress) => void;
  checkpoint?: CheckpointOptions;
  /** Also stop at multiples of this step (below `steps`) and await onPause there, e.g. to draw samples. */
  pauseEvery?: number;
  onPause?: (step: number) => void | Promise<void>;
  /** Aborting stops after the current step, saves the checkpoint and resolves with cancelled: true. */
  signal?: AbortSignal;
}

export interface TrainRunResult {
  /** Steps run by this call, and the model's total. */
  steps: number;
  step: number;
  cancelled: boolean;
  /** The step of the last checkpoint saved, or given as savedStep; null when none is. */
  savedStep: number | null;
}

/**
 * Saves `model` to `file`; with `keep` > 0 the checkpoint it replaces (at `previousStep`) is first
 * copied to <name>-<previousStep>.safetensors, and the oldest such copies beyond `keep` are deleted.
 */
export function saveCheckpoint(model: NcsnModel, file: string, options: { keep?: number; previousStep?: number | null } = {}): void {
  const { keep = 0, previousStep = null } = options;
  if (keep > 0 && previousStep !== null && previousStep !== model.step) {
    const dir = path.dirname(file);
    const name = path.basename(file, '.safetensors');
    copyFileAtomic(file, path.join(dir, `${name}-${previousStep}.safetensors`));
    const pattern = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)\\.safetensors$`);
    const old = fs
      .readdirSync(dir)
      .map((f) => pattern.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .sort((x, y) => Number(y[1]) - Number(x[1]));
    for (const m of old.slice(keep)) fs.rmSync(path.join(dir, m[0]));
  }
  model.save(file);
}

/**
 * Trains `model` on `data` up to step `options.steps` in segments that end on the multiples of
 * `checkpoint.every` and `pauseEvery`, saving and pausing there. What a save, onProgress or onPause
 * throws stops the run and rejects with it; the checkpoint saved last is then the run's last good one.
 */
export async function trainRun(model: NcsnModel, data: TrainingData, options: TrainRunOptions): Promise<TrainRunResult> {
  const { steps, checkpoint, pauseEvery, signal } = options;
  if (!Number.isSafeInteger(steps) || steps < 0) throw new RangeError(`steps is ${steps}; it must be the step to train to, an integer ≥ 0`);
  for (const [name, value] of [['checkpoint.every', checkpoint?.every], ['pauseEvery', pauseEvery]] as const) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) throw new RangeError(`${name} is ${value}; it must be an integer ≥ 1`);
  }
  signal?.throwIfAborted();
  const start = model.step;
  let savedStep = checkpoint?.savedStep ?? null;
  const save = () => {
    if (!checkpoint) return;
    saveCheckpoint(model, checkpoint.file, { keep: checkpoint.keep, previousStep: savedStep });
    savedStep = model.step;
    checkpoint.onSave?.(checkpoint.file, model.step);
  };
  const every = checkpoint?.every ?? Infinity;
  const next = (k: number) => (Math.floor(model.step / k) + 1) * k;
  let cancelled = false;
  while (model.step < steps && !cancelled) {
    // an abort between segments (during onPause) stops here as one during a segment does
    if (signal?.aborted) {
      cancelled = true;
      if (savedStep !== model.step) save();
      break;
    }
    const end = Math.min(steps, every === Infinity ? Infinity : next(every), pauseEvery ? next(pauseEvery) : Infinity);
    const result = await model.train(data, {
      steps: end - model.step,
      batchSize: options.batchSize,
      reportEvery: options.reportEvery,
      onProgress: options.onProgress,
      signal,
    });
    cancelled = result.cancelled;
    if (model.step % every === 0 || model.step >= steps || cancelled) save();
    if (pauseEvery && options.onPause && model.step % pauseEvery === 0 && model.step < steps && !cancelled) await options.onPause(model.step);
  }
  // a run with nothing left to train still leaves its checkpoint
  if (model.step === start && savedStep !== model.step) save();
  return { steps: model.step - start, step: model.step, cancelled, savedStep };
}
