// `ncsn-cuda train`: train a score network by DSM, then write a checkpoint, a log and samples.
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';

import { NcsnModel, MODEL_DEFAULTS, SAMPLING_DEFAULTS, type Device, type ModelKind, type Precision, type TrainProgress } from '../index.js';
import { imageShape, isBuiltinDataset, loadDataset, type Dataset } from '../data/index.js';
import { dataDefaults, IMAGE_STEP_LR } from '../config.js';
import { npyPieces } from '../data/npy.js';
import { geometricSigmas, levelsForOverlap } from '../schedule.js';
import { LineLog, writeFileAtomic } from '../io/files.js';
import { saveCheckpoint, trainRun } from '../training.js';
import { renderScatter } from '../render/scatter.js';
import { renderImageGrid } from '../render/images.js';
import { describeToyReport, mixtureReport, toyReport } from '../metrics.js';
import { UsageError } from './options.js';
import { checkRunDirectory, prepareRunDirectory } from './outputs.js';
import { applySamplingFlags, describeSampler, samplerName, type SamplingFlags } from './sampling.js';
import { plotRun, plotScore } from './plot.js';

export interface TrainFlags extends SamplingFlags {
  data?: string;
  model?: ModelKind;
  channels?: number;
  steps?: number;
  batchSize?: number;
  lr?: number;
  sigmaBegin?: number | 'auto';
  sigmaEnd?: number;
  ema?: number;
  levels?: number | 'auto';
  seed?: number;
  device: Device;
  precision: Precision;
  /** false with --no-graphs */
  graphs: boolean;
  out?: string;
  resume?: string;
  overwrite?: boolean;
  checkpointEvery?: number;
  sampleEvery?: number;
  keep: number;
}

/** Samples drawn at the end of a run for the picture and the summary: points, or images for a grid. */
const SUMMARY_SAMPLES = 10_000;
const SUMMARY_IMAGES = 64;

function imageGrid(model: NcsnModel, name: string, images: Float32Array): Buffer {
  const n = images.length / model.config.dataDim;
  return renderImageGrid({
    images,
    image: model.config.image!,
    title: `${name}: ${n} samples, ${model.step.toLocaleString('en-US')} training steps, ${samplerName(model.config.sampling)}`,
  });
}

// The grid of --sample-every, with the seed of the final grid: every grid of a run starts from the
// same points, so that they show training alone.
async function sampleGrid(model: NcsnModel, name: string): Promise<Buffer> {
  return imageGrid(model, name, await model.sample({ n: SUMMARY_IMAGES, seed: model.config.seed }));
}

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

function dataExtent(ds: Dataset): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of ds.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return [lo, hi];
}

// Where annealed Langevin starts for a user's data: its extent and a tenth more on each side.
function padded([lo, hi]: [number, number]): [number, number] {
  const pad = 0.1 * (hi - lo || 1);
  return [lo - pad, hi + pad];
}

function fmt(n: number, digits = 3): string {
  const r = Number(n.toPrecision(digits));
  return Math.abs(r) >= 1000 ? r.toLocaleString('en-US') : String(r);
}

// A file a run trained on, as its checkpoint names it. Runs store the whole path; older ones stored
// it as given, relative to where they were started, so it is looked for from here and from the run.
function runDataPath(spec: string, runDir: string): string {
  if (isBuiltinDataset(spec) || path.isAbsolute(spec)) return spec;
  const places = [path.resolve(spec), path.resolve(runDir, spec)];
  const found = places.find((f) => fs.existsSync(f));
  if (found) return found;
  throw new UsageError(
    `${runDir}: the checkpoint names its training data by the relative path ${spec}, which is neither at ${places[0]} nor at ${places[1]}; resume from the directory the run was started in`,
  );
}

// The model and its data: a new run from the flags, or one read back from DIR/checkpoint.safetensors
// with --resume DIR.
function setUp(flags: TrainFlags): { model: NcsnModel; dataset: Dataset; steps: number; why: string } {
  if (flags.resume) {
    const fixed = (['data', 'model', 'channels', 'batchSize', 'lr', 'sigmaBegin', 'sigmaEnd', 'levels', 'seed', 'ema'] as const).filter(
      (k) => flags[k] !== undefined,
    );
    if (fixed.length > 0) {
      const names = fixed.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
      throw new UsageError(`${names.join(', ')} cannot change when resuming; the run's own settings are in its checkpoint`);
    }
    const model = NcsnModel.load(path.join(flags.resume, 'checkpoint.safetensors'), { device: flags.device, precision: flags.precision, graphs: flags.graphs });
    const spec = model.config.data;
    if (!spec) throw new UsageError(`${flags.resume}: the checkpoint does not name its training data`);
    const dataset = loadDataset(runDataPath(spec, flags.resume), { seed: model.config.seed });
    const steps = flags.steps ?? model.step;
    if (steps < model.step) {
      throw new UsageError(`--steps ${steps} is the run's total and it has already done ${model.step}`);
    }
    // the sampling settings do not touch training, so a resumed run may change them
    const { sampling, stepLrNote } = applySamplingFlags(model.config.sampling, model.config.sigmas, flags);
    Object.assign(model.config.sampling, sampling);
    const why = ['from the checkpoint', stepLrNote].filter((w) => w !== null).join('; ');
    return { model, dataset, steps, why };
  }
  const data = flags.data ?? 'toy:mixture';
  const seed = flags.seed ?? MODEL_DEFAULTS.seed;
  const dataset = loadDataset(data, { seed });
  const defaults = dataDefaults(dataset);
  const kind = flags.model ?? defaults.model;
  if (kind === 'exact:mixture' && data !== 'toy:mixture') {
    throw new UsageError('--model exact:mixture is the exact score of toy:mixture; use it with --data toy:mixture');
  }
  if (kind !== 'unet' && flags.channels !== undefined) throw new UsageError(`--channels is the U-Net's base width; --model ${kind} has none`);
  const pixels = dataset.image !== undefined;
  const d = defaults.noise;
  // σ_1: the flag, the dataset's own, or NCSNv2's Technique 1 (the largest pairwise distance)
  const technique1 = flags.sigmaBegin === 'auto' || (flags.sigmaBegin === undefined && !d);
  const sigmaBegin = technique1 ? maxPairwiseDistance(dataset) : ((flags.sigmaBegin as number | undefined) ?? d!.sigmaBegin);
  if (technique1 && !(sigmaBegin > 0)) {
    const what = dataset.rows < 2 ? 'has a single point' : `has no spread (its points are all the same)`;
    throw new UsageError(
      `${data} ${what}, so σ_1 cannot be the largest distance between training points; give --sigma-begin and --sigma-end`,
    );
  }
  const sigmaEnd = flags.sigmaEnd ?? d?.sigmaEnd ?? sigmaBegin / 100;
  if (!(sigmaEnd < sigmaBegin)) {
    const end = flags.sigmaEnd !== undefined ? `--sigma-end (${sigmaEnd})` : `σ_L (${sigmaEnd}, ${data}'s default; set it with --sigma-end)`;
    const begin = flags.sigmaBegin !== undefined && flags.sigmaBegin !== 'auto' ? `--sigma-begin (${sigmaBegin})` : `σ_1 (${fmt(sigmaBegin)}, ${technique1 ? 'the largest distance between training points' : `${data}'s default`})`;
    throw new UsageError(`${end} must be smaller than ${begin}`);
  }
  const reasons: string[] = [];
  if (technique1) reasons.push('σ_1 is the largest distance between training points (NCSNv2 Technique 1)');
  const defaulted = [flags.sigmaBegin === undefined && d ? 'σ_1' : '', flags.sigmaEnd === undefined && d ? 'σ_L' : '']
    .filter((w) => w !== '')
    .join(' and ');
  if (defaulted) reasons.push(`${defaulted} from ${data}'s defaults`);
  if (flags.sigmaEnd === undefined && !d) reasons.push('σ_L = σ_1/100');

  let levels = typeof flags.levels === 'number' ? flags.levels : (d?.levels ?? defaults.levels);
  if (flags.levels === 'auto') {
    const t2 = levelsForOverlap(dataset.dim, sigmaBegin, sigmaEnd);
    if (t2.levels === null) reasons.push(`L = ${levels}, the default: ${t2.reason}`);
    else {
      levels = t2.levels;
      reasons.push(
        `L = ${levels} keeps neighbouring levels' noise shells overlapping by at least ${fmt(t2.overlap, 2)} in ${dataset.dim}-D (NCSNv2 Technique 2)`,
      );
    }
  }
  const sigmas = geometricSigmas(sigmaBegin, sigmaEnd, levels);

  const { sampling, stepLrNote } = applySamplingFlags(
    { ...SAMPLING_DEFAULTS, stepLr: defaults.stepLr(sigmaEnd), ...(d?.stepsPerLevel !== undefined ? { stepsPerLevel: d.stepsPerLevel } : {}) },
    sigmas,
    flags,
  );
  if (d?.stepsPerLevel !== undefined && flags.stepsPerLevel === undefined) reasons.push(`T = ${d.stepsPerLevel}, ${data}'s default`);
  if (stepLrNote) reasons.push(stepLrNote);
  else if (flags.stepLr === undefined) reasons.push(pixels ? `ε = ${IMAGE_STEP_LR.toExponential()}, NCSN's for images` : 'ε = 0.1 σ_L²');
  const layout = imageShape(dataset.shape);
  const [low, high] = dataExtent(dataset);
  const image = dataset.image ?? (layout && low < high ? { ...layout, low, high } : null);
  if (kind === 'unet' && !image) throw new UsageError(`--model unet takes images, and ${data} holds ${dataset.dim}-D points`);
  if (image && flags.denoise === undefined) {
    sampling.denoise = true;
    reasons.push('denoised, as NCSNv2 does for images');
  } else if (d?.denoise && flags.denoise === undefined) {
    sampling.denoise = true;
    reasons.push(`denoised, ${data}'s default`);
  }
  const why = reasons.join('; ');
  const [initLow, initHigh] = defaults.init ?? padded([low, high]);
  const model = NcsnModel.create({
    model: kind,
    // the rest, when no flag gives them, are the library's defaults (config.ts)
    channels: flags.channels,
    ...(kind === 'mlp' && d?.depth !== undefined ? { depth: d.depth } : {}),
    ...(kind === 'mlp' && d?.firstLayer !== undefined ? { firstLayer: d.firstLayer } : {}),
    dequantize: defaults.dequantize,
    dataDim: dataset.dim,
    sigmas,
    seed,
    lr: flags.lr,
    batchSize: flags.batchSize,
    emaDecay: flags.ema,
    // a file is named by its whole path, so that --resume and plot find it from any directory
    data: isBuiltinDataset(data) ? data : path.resolve(data),
    image,
    sampling: { ...sampling, initLow, initHigh },
    device: flags.device,
    precision: flags.precision,
    graphs: flags.graphs,
  });
  return { model, dataset, steps: flags.steps ?? d?.steps ?? defaults.steps, why };
}

// The run directory, settled before any work: a run directory is only ever continued (--resume) or
// replaced (--overwrite), never mixed with a new run.
function runDirectory(flags: TrainFlags): { out: string; continuing: boolean; overwrite: boolean } {
  const out = flags.out ?? flags.resume ?? timestampDir();
  const continuing = flags.resume !== undefined && path.resolve(out) === path.resolve(flags.resume);
  const overwrite = flags.overwrite ?? false;
  if (continuing && overwrite) throw new UsageError(`--overwrite would delete the run that --resume ${flags.resume} continues`);
  checkRunDirectory(out, { continuing, overwrite });
  return { out, continuing, overwrite };
}

// What is trained, on what and how, before the first step.
function describeRun(log: (line: string) => void, model: NcsnModel, dataset: Dataset, why: string): void {
  const cfg = model.config;
  if (model.backendNotice) log(`note: ${model.backendNotice}`);
  const im = cfg.image;
  log(
    `data: ${dataset.name}, ${dataset.rows.toLocaleString('en-US')} ${im ? `images of ${im.channels}×${im.height}×${im.width}, values ${fmt(im.low)} (black) to ${fmt(im.high)} (white)` : `points in ${dataset.dim}-D`}`,
  );
  log(
    `model: ${cfg.model}${cfg.model === 'unet' ? ` (C = ${cfg.channels})` : ''}${cfg.model === 'mlp' ? ` (width ${cfg.width}, ${cfg.depth} hidden layers${cfg.firstLayer === 'sin' ? ': sin, then softplus' : ''})` : ''}${cfg.model !== 'exact:mixture' ? `, ${model.paramCount.toLocaleString('en-US')} parameters` : ''} on ${model.backend} (${model.threads} threads)`,
  );
  log(
    `noise: ${cfg.sigmas.length} geometric levels from ${fmt(cfg.sigmas[0])} to ${fmt(cfg.sigmas[cfg.sigmas.length - 1])}; sampling: ${describeSampler(cfg.sampling)} (${why})`,
  );
}

// A progress bar on a terminal, else a line every tenth of the run.
function progressDisplay(log: (line: string) => void, from: number, steps: number) {
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { format: 'train |{bar}| {value}/{total} steps | loss {loss} | {rate} steps/s | eta {eta_formatted}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(steps, from, { loss: '-', rate: '-' });
  let lastPrinted = from;
  return {
    update(p: TrainProgress) {
      if (bar) bar.update(p.step, { loss: p.loss.toFixed(4), rate: Math.round(p.stepsPerSecond) });
      else if (p.step - lastPrinted >= steps / 10 || p.step === steps) {
        lastPrinted = p.step;
        log(`step ${p.step}/${steps}  loss ${p.loss.toFixed(4)}  ${Math.round(p.stepsPerSecond)} steps/s`);
      }
    },
    stop: () => bar?.stop(),
  };
}

// The first Ctrl-C (or SIGTERM) aborts after the current step, which saves; a second one leaves at once.
function interruptOnSignals(): { signal: AbortSignal; release: () => void } {
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(130);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: abort.signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

// Trains to `steps` with the loss log, the progress display, the checkpoints of --checkpoint-every
// and --keep and the grids of --sample-every; returns whether a signal interrupted it.
async function trainToSteps(
  flags: TrainFlags,
  run: { model: NcsnModel; dataset: Dataset; steps: number; out: string; checkpoint: string; lossLog: LineLog; continuing: boolean },
  log: (line: string) => void,
): Promise<{ interrupted: boolean }> {
  const { model, dataset, steps, out, checkpoint, lossLog } = run;
  const cfg = model.config;
  log(
    `training: ${flags.resume ? `from step ${model.step.toLocaleString('en-US')} ` : ''}to step ${steps.toLocaleString('en-US')}, batch ${cfg.batchSize}, Adam lr ${cfg.lr}, EMA ${cfg.emaDecay} (sampling uses the EMA)`,
  );
  const display = progressDisplay(log, model.step, steps);
  const interrupt = interruptOnSignals();
  const started = Date.now();
  const startStep = model.step;
  let last: TrainProgress | null = null;
  // the step of the checkpoint in `out` known to be good: the one resumed from, then each one saved
  let savedStep: number | null = run.continuing ? model.step : null;
  let result;
  try {
    result = await trainRun(model, dataset, {
      steps,
      reportEvery: Math.max(1, Math.min(100, Math.floor(steps / 50))),
      signal: interrupt.signal,
      // a log line that cannot be written stops the run: the log would no longer tell its loss
      onProgress: (p) => {
        last = p;
        lossLog.append(JSON.stringify({ step: p.step, loss: p.loss, level_loss: p.levelLoss, steps_per_s: p.stepsPerSecond }));
        display.update(p);
      },
      checkpoint: { file: checkpoint, every: flags.checkpointEvery, keep: flags.keep, savedStep, onSave: (_, step) => (savedStep = step) },
      pauseEvery: flags.sampleEvery,
      onPause: async (step) => {
        const file = path.join(out, `samples-${step}.png`);
        writeFileAtomic(file, await sampleGrid(model, dataset.name));
        log(`step ${step}: wrote ${file}`);
      },
    });
    lossLog.close();
  } catch (e) {
    display.stop();
    const kept = savedStep !== null ? ` The last good checkpoint is ${checkpoint} (step ${savedStep}).` : '';
    throw new UsageError(`${(e as Error).message}.${kept}`);
  } finally {
    interrupt.release();
  }
  display.stop();
  const seconds = (Date.now() - started) / 1000;
  const finalLoss = (last as TrainProgress | null)?.loss;
  const done = model.step - startStep;
  log(
    `trained ${done.toLocaleString('en-US')} steps in ${seconds.toFixed(1)} s (${fmt(done / seconds)} steps/s)${finalLoss !== undefined ? `, final loss ${finalLoss.toFixed(4)}` : ''}`,
  );
  if (result.cancelled) {
    log(`interrupted at step ${model.step}: wrote ${checkpoint}`);
    log(`resume with: npx ncsn-cuda train --resume ${out}${flags.steps !== undefined ? ` --steps ${steps}` : ''}`);
  }
  return { interrupted: result.cancelled };
}

// The end of a run: samples, their measure for a toy, and the pictures; returns the files written.
async function summarize(model: NcsnModel, dataset: Dataset, out: string, log: (line: string) => void): Promise<string[]> {
  const cfg = model.config;
  const started = Date.now();
  const n = cfg.image ? SUMMARY_IMAGES : SUMMARY_SAMPLES;
  const samples = await model.sample({ n, seed: cfg.seed });
  log(
    `sampled ${n.toLocaleString('en-US')} ${cfg.image ? 'images' : 'points'} by ${describeSampler(cfg.sampling)} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const written: string[] = [];
  if (fs.statSync(path.join(out, 'log.jsonl')).size > 0) written.push(plotRun(out));
  let subtitle: string | undefined;
  if (cfg.data === 'toy:mixture') {
    const r = mixtureReport(samples);
    subtitle = `(5,5) mode: ${r.fraction.toFixed(3)} of the samples (truth 0.800)`;
    const m = (v: [number, number]) => `(${v[0].toFixed(2)}, ${v[1].toFixed(2)})`;
    log(`${subtitle}; mode means ${m(r.positive.mean)} and ${m(r.negative.mean)}`);
  } else if (cfg.data?.startsWith('toy:')) {
    const r = toyReport(cfg.data.slice(4), samples);
    if (r) {
      subtitle = describeToyReport(r);
      log(subtitle);
    }
  }
  if (dataset.dim === 2) {
    const png = renderScatter({
      samples,
      reference: dataset.data,
      title: `${dataset.name}: ${SUMMARY_SAMPLES.toLocaleString('en-US')} samples, ${cfg.model !== 'exact:mixture' ? `${model.step.toLocaleString('en-US')} training steps` : 'exact score'}, ${samplerName(cfg.sampling)}`,
      subtitle,
    });
    const file = path.join(out, 'samples.png');
    writeFileAtomic(file, png);
    written.push(file);
    if (cfg.model === 'mlp') written.push(plotScore(model, dataset.data, out, cfg.sigmas.length - 1));
  } else {
    const file = path.join(out, 'samples.npy');
    writeFileAtomic(file, npyPieces(samples, [n, ...dataset.shape]));
    written.push(file);
    if (cfg.image) {
      const grid = path.join(out, 'samples.png');
      writeFileAtomic(grid, imageGrid(model, dataset.name, samples));
      written.push(grid);
    }
  }
  return written;
}

export async function train(flags: TrainFlags): Promise<number> {
  const { out, continuing, overwrite } = runDirectory(flags);
  const { model, dataset, steps, why } = setUp(flags);
  if (flags.sampleEvery !== undefined && !model.config.image) {
    throw new UsageError(`--sample-every draws grids of images, and ${dataset.name} holds ${dataset.dim}-D points`);
  }
  prepareRunDirectory(out, overwrite);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  describeRun(log, model, dataset, why);
  const logFile = path.join(out, 'log.jsonl');
  const lossLog = new LineLog(logFile);
  const checkpoint = path.join(out, 'checkpoint.safetensors');
  if (model.config.model !== 'exact:mixture' && steps > model.step) {
    const { interrupted } = await trainToSteps(flags, { model, dataset, steps, out, checkpoint, lossLog, continuing }, log);
    if (interrupted) return 130;
  } else {
    lossLog.close();
    saveCheckpoint(model, checkpoint);
  }
  const written = [checkpoint, logFile, ...(await summarize(model, dataset, out, log))];
  process.stdout.write(`${written.join('\n')}\n`);
  return 0;
}
