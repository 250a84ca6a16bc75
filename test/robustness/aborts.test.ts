// The promises around a run: an abort before or during it, an error thrown by a progress
// callback, and dispose() before, during and after it.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { NcsnModel, loadDataset } from '../../src/index.js';

const data = loadDataset('toy:mixture', { seed: 0, toySize: 2_000 });
const create = (threads = 1) => NcsnModel.create({ sigmas: [20, 5, 1], width: 16, depth: 1, device: 'cpu', threads });
const aborted = () => {
  const c = new AbortController();
  c.abort();
  return c.signal;
};
const abortAfter = (ms: number) => AbortSignal.timeout(ms);

describe('an AbortSignal', () => {
  it('already aborted rejects train and sample at once, before any step', async () => {
    const model = create();
    const started = Date.now();
    await expect(model.train(data, { steps: 1_000_000, signal: aborted() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(model.step).toBe(0);
    await expect(model.sample({ n: 100_000, stepsPerLevel: 1_000_000, signal: aborted() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('stops training after the current step even when no report is due', async () => {
    const model = create();
    const reports: number[] = [];
    const started = Date.now();
    const r = await model.train(data, {
      steps: 10_000_000,
      reportEvery: 10_000_000,
      signal: abortAfter(300),
      onProgress: (p) => reports.push(p.step),
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(r.cancelled).toBe(true);
    expect(r.steps).toBeGreaterThan(0);
    expect(model.step).toBe(r.steps);
    // the steps since the last report are reported when the run stops
    expect(reports).toEqual([r.steps]);
  });

  it('stops sampling after the current Langevin step, inside a level', async () => {
    const model = create();
    for (const sampler of ['ald', 'pc'] as const) {
      const levelsDone: number[] = [];
      const started = Date.now();
      await expect(
        model.sample({ n: 1_000, sampler, stepsPerLevel: 1_000_000, signal: abortAfter(300), onProgress: (l) => levelsDone.push(l) }),
      ).rejects.toMatchObject({ name: 'AbortError' });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(levelsDone).toEqual([]);
    }
  });

  it('aborted after a run has ended leaves the next run alone', async () => {
    const model = create();
    const controller = new AbortController();
    await model.train(data, { steps: 3, signal: controller.signal });
    controller.abort();
    const r = await model.train(data, { steps: 3 });
    expect(r).toMatchObject({ steps: 3, cancelled: false });
  });
});

describe('an error thrown by a progress callback', () => {
  it('stops training and rejects train with that error', async () => {
    const model = create();
    const boom = new Error('onProgress failed');
    let calls = 0;
    await expect(
      model.train(data, {
        steps: 1_000_000,
        reportEvery: 5,
        onProgress: () => {
          calls += 1;
          throw boom;
        },
      }),
    ).rejects.toBe(boom);
    expect(calls).toBe(1);
    expect(model.step).toBeLessThan(1_000);
    // the model is usable again
    await expect(model.train(data, { steps: 2 })).resolves.toMatchObject({ cancelled: false });
  });

  it('stops sampling and rejects sample with that error, from onFrame or onProgress', async () => {
    const model = create();
    const fromFrame = new Error('onFrame failed');
    await expect(
      model.sample({
        n: 100,
        stepsPerLevel: 1_000_000,
        frameEvery: 10,
        onFrame: () => {
          throw fromFrame;
        },
      }),
    ).rejects.toBe(fromFrame);
    const fromProgress = new TypeError('onProgress failed');
    await expect(
      model.sample({
        n: 100,
        stepsPerLevel: 10,
        onProgress: () => {
          throw fromProgress;
        },
      }),
    ).rejects.toBe(fromProgress);
  });

  it('may be something other than an Error', async () => {
    const model = create();
    await expect(
      model.train(data, {
        steps: 10,
        reportEvery: 1,
        onProgress: () => {
          throw 'a string'; // eslint-disable-line no-throw-literal
        },
      }),
    ).rejects.toBe('a string');
  });
});

// Threads of this process, from /proc (Linux).
const threadCount = () => Number(/Threads:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]);

describe('dispose()', () => {
  it('frees the worker threads now, and every later use throws', async () => {
    await create().train(data, { steps: 1 }); // libuv's own threads start on the first run
    const before = threadCount();
    const model = create(6);
    const created = threadCount();
    expect(created).toBeGreaterThanOrEqual(before + 5);
    model.dispose();
    // its five workers gone, counted against the count just before dispose(): a thread the runtime
    // starts meanwhile for itself (CI once saw one more than `before` under load) is not the model's
    expect(threadCount()).toBeLessThanOrEqual(created - 5);
    expect(model.disposed).toBe(true);
    expect(() => model.step).toThrow('the model has been disposed');
    expect(() => model.save('never.safetensors')).toThrow('the model has been disposed');
    expect(() => model.score(new Float32Array(2), 0)).toThrow('the model has been disposed');
    await expect(model.train(data, { steps: 1 })).rejects.toThrow('the model has been disposed');
    await expect(model.sample({ n: 10 })).rejects.toThrow('the model has been disposed');
    model.dispose(); // a second time does nothing
  });

  it('during a run cancels it and frees the model when it ends', async () => {
    const model = create();
    const training = model.train(data, { steps: 10_000_000, reportEvery: 10_000_000 });
    model.dispose();
    expect(model.disposed).toBe(true);
    await expect(training).resolves.toMatchObject({ cancelled: true });
    expect(() => model.step).toThrow('the model has been disposed');

    const other = create();
    const sampling = other.sample({ n: 1_000, stepsPerLevel: 1_000_000 });
    other.dispose();
    await expect(sampling).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('is what Symbol.dispose does, for `using`', () => {
    const model = create();
    model[Symbol.dispose]();
    expect(model.disposed).toBe(true);
  });
});
