// `ncsn-cuda plot DIR`: DIR/loss.png from DIR/log.jsonl, the loss over steps for each noise level.
import fs from 'node:fs';
import path from 'node:path';

import { readCheckpoint, writeFileAtomic } from '../checkpoint.js';
import { renderLines, ramp, type Series } from '../render/lines.js';
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
