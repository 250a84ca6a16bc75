// `ncsn-cuda plot DIR`: DIR/loss.png from DIR/log.jsonl, the loss over steps for each noise level.
import fs from 'node:fs';
import path from 'node:path';

import { readCheckpoint } from '../checkpoint.js';
import { writeFileAtomic } from '../io/files.js';
import { renderLines, ramp, type Series } from '../render/lines.js';
import { renderScatter } from '../render/scatter.js';
import { NcsnModel } from '../index.js';
import { loadDataset } from '../data/index.js';
import { UsageError } from './options.js';

interface LogLine {
  step: number;
  loss: number;
  level_loss: (number | null)[];
}

function readLog(file: string): LogLine[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      let v: LogLine;
      try {
        v = JSON.parse(l) as LogLine;
      } catch {
        throw new UsageError(`${file}:${i + 1}: not a JSON line`);
      }
      if (!Number.isFinite(v.step) || !Array.isArray(v.level_loss)) throw new UsageError(`${file}:${i + 1}: not a training log line`);
      return v;
    });
}

/** Writes DIR/score.png: the learned score at level `level` (0-based) as arrows over the data. */
export function plotScore(model: NcsnModel, reference: Float32Array, dir: string, level: number): string {
  const levels = model.config.sigmas.length;
  if (!Number.isInteger(level) || level < 0 || level >= levels) {
    throw new UsageError(`--level must be between 1 and ${levels}`);
  }
  const [lo, hi] = [model.config.sampling.initLow, model.config.sampling.initHigh];
  const n = 25;
  const grid = new Float32Array(2 * n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      grid[2 * (i * n + j)] = lo + ((hi - lo) * (j + 0.5)) / n;
      grid[2 * (i * n + j) + 1] = lo + ((hi - lo) * (i + 0.5)) / n;
    }
  const s = model.score(grid, level);
  const arrows = new Float32Array(4 * n * n);
  for (let p = 0; p < n * n; p++) arrows.set([grid[2 * p], grid[2 * p + 1], s[2 * p], s[2 * p + 1]], 4 * p);
  const sigma = Number(model.config.sigmas[level].toPrecision(3));
  const file = path.join(dir, 'score.png');
  writeFileAtomic(
    file,
    renderScatter({
      samples: new Float32Array(0),
      reference,
      arrows,
      bounds: [lo, hi, lo, hi],
      title: `${model.config.data ?? 'model'}: the learned score s(x, σ) at σ = ${sigma} (level ${level + 1} of ${levels})`,
      subtitle: `arrow length ∝ |s|, the largest is ${Number(Math.max(...Array.from({ length: n * n }, (_, p) => Math.hypot(s[2 * p], s[2 * p + 1]))).toPrecision(3))}`,
    }),
  );
  return file;
}

/** Writes DIR/loss.png and returns its path. */
export function plotRun(dir: string): string {
  const lines = readLog(path.join(dir, 'log.jsonl'));
  if (lines.length === 0) throw new UsageError(`${path.join(dir, 'log.jsonl')}: no training steps logged yet`);
  let sigmas: number[] | undefined;
  let data = '';
  try {
    const config = JSON.parse(readCheckpoint(path.join(dir, 'checkpoint.safetensors')).metadata.config) as { sigmas: number[]; data: string | null };
    sigmas = config.sigmas;
    data = config.data ?? '';
  } catch {
    sigmas = undefined; // a run without a checkpoint yet: levels go by index
  }
  const levels = lines[0].level_loss.length;
  const steps = lines.map((l) => l.step);
  const series: Series[] = Array.from({ length: levels }, (_, i) => ({
    label: sigmas ? `σ = ${Number(sigmas[i].toPrecision(3))}` : `level ${i + 1}`,
    xs: steps,
    ys: lines.map((l) => l.level_loss[i] ?? NaN),
    rgb: ramp(levels > 1 ? i / (levels - 1) : 0),
  }));
  series.push({ label: 'all levels', xs: steps, ys: lines.map((l) => l.loss), rgb: [20, 20, 20], width: 2.6 });
  const file = path.join(dir, 'loss.png');
  writeFileAtomic(
    file,
    renderLines({
      series,
      title: `${data ? `${data}: ` : ''}DSM loss ½‖σ s(x̃, σ) + z‖² per noise level`,
      subtitle: `mean over each logging window, steps ${steps[0].toLocaleString('en-US')}–${steps[steps.length - 1].toLocaleString('en-US')}`,
      xLabel: 'training step',
    }),
  );
  return file;
}

/** `ncsn-cuda plot DIR`: loss.png, and for a 2-D model score.png at `level` (1-based; default the last). */
export function plotCommand(dir: string, level?: number): string[] {
  const files = [plotRun(dir)];
  const checkpoint = path.join(dir, 'checkpoint.safetensors');
  if (!fs.existsSync(checkpoint)) return files;
  const model = NcsnModel.load(checkpoint, { device: 'cpu' });
  if (model.config.dataDim !== 2) {
    if (level !== undefined) throw new UsageError('--level draws score.png, which needs a 2-D model');
    return files;
  }
  let reference: Float32Array = new Float32Array(0);
  try {
    if (model.config.data) reference = loadDataset(model.config.data, { seed: model.config.seed }).data;
  } catch {
    reference = new Float32Array(0); // the training file may have moved; the arrows alone still tell
  }
  files.push(plotScore(model, reference, dir, (level ?? model.config.sigmas.length) - 1));
  return files;
}
