// `ncsn-cuda train`: train a score network by DSM, then write a checkpoint, a log and samples.
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';

import { NcsnModel, type Device, type ModelKind, type TrainProgress } from '../index.js';
import { loadDataset, type Dataset } from '../data/index.js';
import { writeNpy } from '../data/npy.js';
import { geometricSigmas } from '../schedule.js';
import { writeFileAtomic } from '../checkpoint.js';
import { renderScatter } from '../render/scatter.js';
import { mixtureReport } from '../metrics.js';
import { UsageError } from './options.js';

export interface TrainFlags {
  data: string;
  model: ModelKind;
  steps?: number;
  batchSize: number;
  lr: number;
  sigmaBegin?: number;
  sigmaEnd?: number;
  levels?: number;
  seed: number;
  device: Device;
  out?: string;
}

/** Samples drawn at the end of a run for the picture and the summary. */
const SUMMARY_SAMPLES = 10_000;

function timestampDir(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  const base = path.join('runs', `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`);
  let dir = base;
  for (let i = 2; fs.existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

// NCSNv2's Technique 1: σ_1 as large as the largest distance between two training points, measured
// on a sample of them.
function maxPairwiseDistance(ds: Dataset): number {
  const n = Math.min(ds.rows, 2000);
  const stride = ds.rows / n;
  let best = 0;
  for (let a = 0; a < n; a++) {
    const i = Math.floor(a * stride) * ds.dim;
    for (let b = a + 1; b < n; b++) {
      const j = Math.floor(b * stride) * ds.dim;
      let d2 = 0;
      for (let k = 0; k < ds.dim; k++) d2 += (ds.data[i + k] - ds.data[j + k]) ** 2;
      best = Math.max(best, d2);
    }
  }
  return Math.sqrt(best);
}

function dataRange(ds: Dataset): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of ds.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const pad = 0.1 * (hi - lo || 1);
  return [lo - pad, hi + pad];
}

function fmt(n: number, digits = 3): string {
  return Number(n.toPrecision(digits)).toLocaleString('en-US');
}

export async function train(flags: TrainFlags): Promise<number> {
  const dataset = loadDataset(flags.data, { seed: flags.seed });
  if (flags.model === 'exact:mixture' && flags.data !== 'toy:mixture') {
    throw new UsageError('--model exact:mixture is the exact score of toy:mixture; use it with --data toy:mixture');
  }
  const d = dataset.defaults;
  const sigmaBegin = flags.sigmaBegin ?? d?.sigmaBegin ?? maxPairwiseDistance(dataset);
  const sigmaEnd = flags.sigmaEnd ?? d?.sigmaEnd ?? sigmaBegin / 100;
  const levels = flags.levels ?? d?.levels ?? 10;
  if (!(sigmaEnd < sigmaBegin)) {
    throw new UsageError(`--sigma-end (${sigmaEnd}) must be smaller than --sigma-begin (${sigmaBegin})`);
  }
  const sigmas = geometricSigmas(sigmaBegin, sigmaEnd, levels);
  // α_L = ε = 0.1 σ_L²: W1's ε = 0.1 at σ_L = 1, the same ratio at any scale.
  const stepLr = 0.1 * sigmaEnd * sigmaEnd;
  const steps = flags.steps ?? d?.steps ?? 5000;
  const [initLow, initHigh] = d ? [-8, 8] : dataRange(dataset);

  const out = flags.out ?? timestampDir();
  fs.mkdirSync(out, { recursive: true });
  const model = NcsnModel.create({
    model: flags.model,
    dataDim: dataset.dim,
    sigmas,
    seed: flags.seed,
    lr: flags.lr,
    data: flags.data,
    sampling: { stepLr, initLow, initHigh },
    device: flags.device,
  });

  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (model.backendNotice) log(`note: ${model.backendNotice}`);
  log(`data: ${dataset.name}, ${dataset.rows.toLocaleString('en-US')} points in ${dataset.dim}-D`);
  log(
    `model: ${flags.model}${flags.model === 'mlp' ? `, ${model.paramCount.toLocaleString('en-US')} parameters` : ''} on ${model.backend} (${model.threads} threads)`,
  );
  log(`noise: ${levels} geometric levels from ${fmt(sigmaBegin)} to ${fmt(sigmaEnd)}`);

  const logFile = path.join(out, 'log.jsonl');
  fs.writeFileSync(logFile, '');
  const checkpoint = path.join(out, 'checkpoint.safetensors');
  let interrupted = false;
  if (flags.model === 'mlp') {
    log(`training: ${steps.toLocaleString('en-US')} steps, batch ${flags.batchSize}, Adam lr ${flags.lr}`);
    const reportEvery = Math.max(1, Math.min(100, Math.floor(steps / 50)));
    const bar = process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { format: 'train |{bar}| {value}/{total} steps | loss {loss} | {rate} steps/s | eta {eta_formatted}', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : null;
    bar?.start(steps, 0, { loss: '-', rate: '-' });
    let lastPrinted = 0;
    const abort = new AbortController();
    const onSignal = () => {
      interrupted = true;
      abort.abort();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const started = Date.now();
    let last: TrainProgress | null = null;
    const result = await model.train(dataset, {
      steps,
      batchSize: flags.batchSize,
      reportEvery,
      signal: abort.signal,
      onProgress: (p) => {
        last = p;
        fs.appendFileSync(
          logFile,
          `${JSON.stringify({ step: p.step, loss: p.loss, level_loss: p.levelLoss, steps_per_s: p.stepsPerSecond })}\n`,
        );
        if (bar) bar.update(p.step, { loss: p.loss.toFixed(4), rate: Math.round(p.stepsPerSecond) });
        else if (p.step - lastPrinted >= steps / 10 || p.step === steps) {
          lastPrinted = p.step;
          log(`step ${p.step}/${steps}  loss ${p.loss.toFixed(4)}  ${Math.round(p.stepsPerSecond)} steps/s`);
        }
      },
    });
    bar?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const seconds = (Date.now() - started) / 1000;
    const finalLoss = (last as TrainProgress | null)?.loss;
    log(
      `trained ${result.steps.toLocaleString('en-US')} steps in ${seconds.toFixed(1)} s (${fmt(result.steps / seconds)} steps/s)${finalLoss !== undefined ? `, final loss ${finalLoss.toFixed(4)}` : ''}`,
    );
  }
  model.save(checkpoint);
  if (interrupted) {
    log(`interrupted: wrote ${checkpoint} at step ${model.step}`);
    return 130;
  }

  const started = Date.now();
  const samples = await model.sample({ n: SUMMARY_SAMPLES, seed: flags.seed });
  const s = model.config.sampling;
  log(
    `sampled ${SUMMARY_SAMPLES.toLocaleString('en-US')} points by annealed Langevin (T = ${s.stepsPerLevel}, ε = ${s.stepLr}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const written = [checkpoint, logFile];
  let subtitle: string | undefined;
  if (flags.data === 'toy:mixture') {
    const r = mixtureReport(samples);
    subtitle = `(5,5) mode: ${r.fraction.toFixed(3)} of the samples (truth 0.800)`;
    const m = (v: [number, number]) => `(${v[0].toFixed(2)}, ${v[1].toFixed(2)})`;
    log(`${subtitle}; mode means ${m(r.positive.mean)} and ${m(r.negative.mean)}`);
  }
  if (dataset.dim === 2) {
    const png = renderScatter({
      samples,
      reference: dataset.data,
      title: `${dataset.name}: ${SUMMARY_SAMPLES.toLocaleString('en-US')} samples, ${flags.model === 'mlp' ? `${model.step.toLocaleString('en-US')} training steps` : 'exact score'}, annealed Langevin`,
      subtitle,
    });
    const file = path.join(out, 'samples.png');
    writeFileAtomic(file, png);
    written.push(file);
  } else {
    const file = path.join(out, 'samples.npy');
    writeFileAtomic(file, writeNpy(samples, [SUMMARY_SAMPLES, dataset.dim]));
    written.push(file);
  }
  process.stdout.write(`${written.join('\n')}\n`);
  return 0;
}
