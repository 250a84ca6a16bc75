// trainRun, the library's training loop with checkpoints (what `ncsn-cuda train` runs): it saves on
// the multiples of `every` and at the end, keeps `keep` earlier checkpoints, pauses where asked,
// and on an abort saves and resolves with cancelled: true.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { NcsnModel, trainRun, loadDataset } from '../src/index.js';
import { readCheckpoint } from '../src/checkpoint.js';

const small = { sigmas: [4, 2, 1], width: 8, depth: 1, device: 'cpu' as const, threads: 1, batchSize: 16 };
const data = loadDataset('toy:mixture', { seed: 0, toySize: 500 });

function runDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-training-'));
}

const stepOf = (file: string) => Number(readCheckpoint(file).metadata.step);

describe('trainRun', () => {
  it('saves every `every` steps and at the end, keeping the `keep` latest earlier checkpoints', async () => {
    const dir = runDir();
    const file = path.join(dir, 'checkpoint.safetensors');
    const saves: number[] = [];
    const pauses: number[] = [];
    const model = NcsnModel.create(small);
    const result = await trainRun(model, data, {
      steps: 23,
      checkpoint: { file, every: 5, keep: 2, onSave: (_, step) => saves.push(step) },
      pauseEvery: 10,
      onPause: (step) => {
        pauses.push(step);
      },
    });
    expect(result).toEqual({ steps: 23, step: 23, cancelled: false, savedStep: 23 });
    expect(saves).toEqual([5, 10, 15, 20, 23]);
    expect(pauses).toEqual([10, 20]);
    expect(fs.readdirSync(dir).sort()).toEqual(['checkpoint-15.safetensors', 'checkpoint-20.safetensors', 'checkpoint.safetensors']);
    expect(stepOf(file)).toBe(23);
    expect(stepOf(path.join(dir, 'checkpoint-15.safetensors'))).toBe(15);
  });

  it('trains the same weights in segments as in one call', async () => {
    const dir = runDir();
    const segmented = NcsnModel.create(small);
    await trainRun(segmented, data, { steps: 12, checkpoint: { file: path.join(dir, 'c.safetensors'), every: 5 } });
    const whole = NcsnModel.create(small);
    await whole.train(data, { steps: 12 });
    expect(segmented.tensors()).toEqual(whole.tensors());
  });

  it('stops on an abort, during a segment or a pause, saves and resolves with cancelled: true', async () => {
    const dir = runDir();
    const file = path.join(dir, 'checkpoint.safetensors');
    const abort = new AbortController();
    const model = NcsnModel.create(small);
    const result = await trainRun(model, data, {
      steps: 1_000_000,
      reportEvery: 1,
      signal: abort.signal,
      onProgress: ({ step }) => {
        if (step === 7) abort.abort();
      },
      checkpoint: { file },
    });
    expect(result.cancelled).toBe(true);
    expect(result.step).toBeLessThan(1_000_000);
    expect(stepOf(file)).toBe(result.step);

    const paused = new AbortController();
    const other = NcsnModel.create(small);
    const atPause = await trainRun(other, data, {
      steps: 100,
      signal: paused.signal,
      checkpoint: { file: path.join(dir, 'paused.safetensors') },
      pauseEvery: 10,
      onPause: () => paused.abort(),
    });
    expect(atPause).toEqual({ steps: 10, step: 10, cancelled: true, savedStep: 10 });
  });

  it('rejects with what onProgress throws, leaving the last saved checkpoint as it was', async () => {
    const dir = runDir();
    const file = path.join(dir, 'checkpoint.safetensors');
    const model = NcsnModel.create(small);
    const failing = trainRun(model, data, {
      steps: 40,
      reportEvery: 1,
      checkpoint: { file, every: 10 },
      onProgress: ({ step }) => {
        if (step === 15) throw new Error('the log cannot be written');
      },
    });
    await expect(failing).rejects.toThrow('the log cannot be written');
    expect(stepOf(file)).toBe(10);
  });

  it('refuses a step count or interval that is not a whole number', async () => {
    const model = NcsnModel.create(small);
    await expect(trainRun(model, data, { steps: 1.5 })).rejects.toThrow(RangeError);
    await expect(trainRun(model, data, { steps: 10, pauseEvery: 0 })).rejects.toThrow('pauseEvery is 0; it must be an integer ≥ 1');
  });
});
