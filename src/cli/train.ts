// `ncsn-cuda train`: train a score network by DSM, then write a checkpoint, a log and samples.
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';

import { NcsnModel, SAMPLING_DEFAULTS, type Device, type ModelKind, type Precision, type TrainProgress } from '../index.js';
import { imageShape, isBuiltinDataset, loadDataset, type Dataset, type NoiseDefaults } from '../data/index.js';
import { npyPieces } from '../data/npy.js';
import { geometricSigmas, levelsForOverlap } from '../schedule.js';
import { copyFileAtomic, LineLog, writeFileAtomic } from '../io/files.js';
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
  out?: string;
  resume?: string;
  overwrite?: boolean;
  checkpointEvery?: number;
  sampleEvery?: number;
  keep: number;
}

// NCSN's settings for images of pixels in [0, 1] (docs/workloads.md W2): σ 1 → 0.01 over 10 levels,
// and its step size, ε = 4e-5 in our convention (step_lr = 2e-5 in the released code).
const PIXEL_DEFAULTS: NoiseDefaults = { sigmaBegin: 1, sigmaEnd: 0.01, levels: 10, steps: 5000 };
const PIXEL_STEP_LR = 4e-5;

// The U-Net for images of pixels whose sides it can halve twice; the MLP for everything else (an
// .npy of images too, whose scale is unknown: --model unet takes those on request).
function defaultModel(ds: Dataset): ModelKind {
  return ds.image && ds.image.height % 4 === 0 && ds.image.width % 4 === 0 ? 'unet' : 'mlp';
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
    const model = NcsnModel.load(path.join(flags.resume, 'checkpoint.safetensors'), { device: flags.device, precision: flags.precision });
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
  const seed = flags.seed ?? 0;
  const dataset = loadDataset(data, { seed });
  const kind = flags.model ?? defaultModel(dataset);
  if (kind === 'exact:mixture' && data !== 'toy:mixture') {
    throw new UsageError('--model exact:mixture is the exact score of toy:mixture; use it with --data toy:mixture');
  }
  if (kind !== 'unet' && flags.channels !== undefined) throw new UsageError(`--channels is the U-Net's base width; --model ${kind} has none`);
  const pixels = dataset.image !== undefined;
  const d = dataset.defaults ?? (pixels ? PIXEL_DEFAULTS : null);
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

  let levels = typeof flags.levels === 'number' ? flags.levels : (d?.levels ?? 10);
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

  // α_L = ε = 0.1 σ_L² unless asked otherwise: W1's ε = 0.1 at σ_L = 1, the same ratio at any scale;
  // NCSN's own for images of pixels.
  const defaultStepLr = pixels ? PIXEL_STEP_LR : 0.1 * sigmaEnd * sigmaEnd;
  const { sampling, stepLrNote } = applySamplingFlags(
    { ...SAMPLING_DEFAULTS, stepLr: defaultStepLr },
    sigmas,
    flags,
  );
  if (stepLrNote) reasons.push(stepLrNote);
  else if (flags.stepLr === undefined) reasons.push(pixels ? "ε = 4e-5, NCSN's for images" : 'ε = 0.1 σ_L²');
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
  // toys start where their data lie, pixels from U(0, 1) as NCSN does, other files a little wider
  const [initLow, initHigh] = pixels ? [0, 1] : d ? [-8, 8] : padded([low, high]);
  const model = NcsnModel.create({
    model: kind,
    // the U-Net's base width: W2's for a CPU (its GPU kernels, and C = 64 there, are to come)
    channels: flags.channels ?? 32,
    ...(kind === 'mlp' && d?.depth !== undefined ? { depth: d.depth } : {}),
    dequantize: pixels,
    dataDim: dataset.dim,
    sigmas,
    seed,
    lr: flags.lr ?? 1e-3,
    batchSize: flags.batchSize ?? 128,
    emaDecay: flags.ema ?? 0.999,
    // a file is named by its whole path, so that --resume and plot find it from any directory
    data: isBuiltinDataset(data) ? data : path.resolve(data),
    image,
    sampling: { ...sampling, initLow, initHigh },
    device: flags.device,
    precision: flags.precision,
  });
  return { model, dataset, steps: flags.steps ?? d?.steps ?? 5000, why };
}

export async function train(flags: TrainFlags): Promise<number> {
  // The destination is settled before any work: a run directory is only ever continued (--resume)
  // or replaced (--overwrite), never mixed with a new run.
  const out = flags.out ?? flags.resume ?? timestampDir();
  const continuing = flags.resume !== undefined && path.resolve(out) === path.resolve(flags.resume);
  const overwrite = flags.overwrite ?? false;
  if (continuing && overwrite) throw new UsageError(`--overwrite would delete the run that --resume ${flags.resume} continues`);
  checkRunDirectory(out, { continuing, overwrite });
  const { model, dataset, steps, why } = setUp(flags);
  if (flags.sampleEvery !== undefined && !model.config.image) {
    throw new UsageError(`--sample-every draws grids of images, and ${dataset.name} holds ${dataset.dim}-D points`);
  }
  prepareRunDirectory(out, overwrite);
  const cfg = model.config;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (model.backendNotice) log(`note: ${model.backendNotice}`);
  const im = cfg.image;
  log(
    `data: ${dataset.name}, ${dataset.rows.toLocaleString('en-US')} ${im ? `images of ${im.channels}×${im.height}×${im.width}, values ${fmt(im.low)} (black) to ${fmt(im.high)} (white)` : `points in ${dataset.dim}-D`}`,
  );
  log(
    `model: ${cfg.model}${cfg.model === 'unet' ? ` (C = ${cfg.channels})` : ''}${cfg.model === 'mlp' ? ` (width ${cfg.width}, ${cfg.depth} hidden layers)` : ''}${cfg.model !== 'exact:mixture' ? `, ${model.paramCount.toLocaleString('en-US')} parameters` : ''} on ${model.backend} (${model.threads} threads)`,
  );
  log(
    `noise: ${cfg.sigmas.length} geometric levels from ${fmt(cfg.sigmas[0])} to ${fmt(cfg.sigmas[cfg.sigmas.length - 1])}; sampling: ${describeSampler(cfg.sampling)} (${why})`,
  );

  const logFile = path.join(out, 'log.jsonl');
  const lossLog = new LineLog(logFile);
  const checkpoint = path.join(out, 'checkpoint.safetensors');
  // the step of the checkpoint in `out` known to be good: the one resumed from, then each one saved
  let savedStep: number | null = continuing ? model.step : null;
  const save = () => {
    if (flags.keep > 0 && savedStep !== null && savedStep !== model.step) {
      // the checkpoint about to be replaced is kept as checkpoint-<its step>; the oldest beyond --keep go
      copyFileAtomic(checkpoint, path.join(out, `checkpoint-${savedStep}.safetensors`));
      const old = fs
        .readdirSync(out)
        .map((f) => /^checkpoint-(\d+)\.safetensors$/.exec(f))
        .filter((m): m is RegExpExecArray => m !== null)
        .sort((x, y) => Number(y[1]) - Number(x[1]));
      for (const m of old.slice(flags.keep)) fs.rmSync(path.join(out, m[0]));
    }
    model.save(checkpoint);
    savedStep = model.step;
  };

  if (cfg.model !== 'exact:mixture' && steps > model.step) {
    const todo = steps - model.step;
    log(
      `training: ${flags.resume ? `from step ${model.step.toLocaleString('en-US')} ` : ''}to step ${steps.toLocaleString('en-US')}, batch ${cfg.batchSize}, Adam lr ${cfg.lr}, EMA ${cfg.emaDecay} (sampling uses the EMA)`,
    );
    const reportEvery = Math.max(1, Math.min(100, Math.floor(steps / 50)));
    const every = flags.checkpointEvery ?? todo;
    const bar = process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { format: 'train |{bar}| {value}/{total} steps | loss {loss} | {rate} steps/s | eta {eta_formatted}', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : null;
    bar?.start(steps, model.step, { loss: '-', rate: '-' });
    let lastPrinted = model.step;
    const abort = new AbortController();
    let interrupted = false;
    // The first Ctrl-C (or SIGTERM) finishes the step and saves; a second one leaves at once.
    const onSignal = () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      abort.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const started = Date.now();
    const startStep = model.step;
    let last: TrainProgress | null = null;
    // a log line that cannot be written stops the run: the log would no longer tell its loss
    let logFailure: Error | null = null;
    try {
      while (model.step < steps && !interrupted) {
        // checkpoints land on multiples of --checkpoint-every, sample grids on those of --sample-every
        const next = (k: number) => (Math.floor(model.step / k) + 1) * k;
        const segment = Math.min(steps, next(every), flags.sampleEvery ? next(flags.sampleEvery) : Infinity) - model.step;
        await model.train(dataset, {
          steps: segment,
          reportEvery,
          signal: abort.signal,
          onProgress: (p) => {
            last = p;
            try {
              lossLog.append(JSON.stringify({ step: p.step, loss: p.loss, level_loss: p.levelLoss, steps_per_s: p.stepsPerSecond }));
            } catch (e) {
              logFailure ??= e as Error;
              abort.abort();
              return;
            }
            if (bar) bar.update(p.step, { loss: p.loss.toFixed(4), rate: Math.round(p.stepsPerSecond) });
            else if (p.step - lastPrinted >= steps / 10 || p.step === steps) {
              lastPrinted = p.step;
              log(`step ${p.step}/${steps}  loss ${p.loss.toFixed(4)}  ${Math.round(p.stepsPerSecond)} steps/s`);
            }
          },
        });
        if (logFailure) throw logFailure;
        if (model.step % every === 0 || model.step >= steps || interrupted) save();
        if (flags.sampleEvery && model.step % flags.sampleEvery === 0 && model.step < steps && !interrupted) {
          const file = path.join(out, `samples-${model.step}.png`);
          writeFileAtomic(file, await sampleGrid(model, dataset.name));
          log(`step ${model.step}: wrote ${file}`);
        }
      }
      lossLog.close();
    } catch (e) {
      bar?.stop();
      const kept = savedStep !== null ? ` The last good checkpoint is ${checkpoint} (step ${savedStep}).` : '';
      throw new UsageError(`${(e as Error).message}.${kept}`);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    bar?.stop();
    const seconds = (Date.now() - started) / 1000;
    const finalLoss = (last as TrainProgress | null)?.loss;
    const done = model.step - startStep;
    log(
      `trained ${done.toLocaleString('en-US')} steps in ${seconds.toFixed(1)} s (${fmt(done / seconds)} steps/s)${finalLoss !== undefined ? `, final loss ${finalLoss.toFixed(4)}` : ''}`,
    );
    if (interrupted) {
      log(`interrupted at step ${model.step}: wrote ${checkpoint}`);
      log(`resume with: npx ncsn-cuda train --resume ${out}${flags.steps !== undefined ? ` --steps ${steps}` : ''}`);
      return 130;
    }
  } else {
    lossLog.close();
    save();
  }

  const started = Date.now();
  const n = cfg.image ? SUMMARY_IMAGES : SUMMARY_SAMPLES;
  const samples = await model.sample({ n, seed: cfg.seed });
  const s = model.config.sampling;
  log(
    `sampled ${n.toLocaleString('en-US')} ${cfg.image ? 'images' : 'points'} by ${describeSampler(s)} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  const written = [checkpoint, logFile];
  if (fs.statSync(logFile).size > 0) written.push(plotRun(out));
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
  process.stdout.write(`${written.join('\n')}\n`);
  return 0;
}
