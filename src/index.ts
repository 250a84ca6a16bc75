// The public library API: create or load a model, train it on a dataset, sample from it, save it.
import { addon, type NativeModel, type NativeSampleOptions, type NativeSampleProgress, type NativeTensor } from './native.js';
import { readCheckpoint, writeCheckpoint, CheckpointError, type Tensor } from './checkpoint.js';
import { checkCheckpointConfig, networkConfig } from './checkpoint-config.js';
import {
  backendOptions,
  CALL_DEFAULTS,
  modelConfig,
  samplingSettings,
  type Backend,
  type Device,
  type ModelConfig,
  type ModelConfigInput,
  type Precision,
  type SamplingDefaults,
} from './config.js';

export { loadDataset, imageShape, DataError, TOY_NAMES, MIXTURE, type Dataset, type ImageShape, type NoiseDefaults } from './data/index.js';
export { geometricSigmas, langevinStep, levelsForOverlap, stepLrForLevels, shellOverlap } from './schedule.js';
export type { LevelsForOverlap, StepLrForLevels } from './schedule.js';
export { readCheckpoint, writeCheckpoint, CheckpointError, type Tensor } from './checkpoint.js';
export { renderScatter } from './render/scatter.js';
export { mixtureReport, toyReport, describeToyReport, type MixtureReport, type ModeStats, type ToyReport } from './metrics.js';
export { LIMITS } from './limits.js';
export { NcsnError, NativeLoadError } from './errors.js';
export { SAMPLING_DEFAULTS, MODEL_DEFAULTS, dataDefaults, type DataDefaults } from './config.js';
export { trainRun, saveCheckpoint, type TrainRunOptions, type TrainRunResult, type CheckpointOptions } from './training.js';
export type { Device, FirstLayer, ImageSpec, MixtureSpec, ModelConfig, ModelKind, Precision, SamplerKind, SamplingDefaults } from './config.js';

/** `sigmas`, and any other value of the config, whose default fills it otherwise. */
export type ModelOptions = ModelConfigInput & {
  device?: Device;
  /** Worker threads of the CPU backend; 0 means one per core. */
  threads?: number;
} & BackendOptions;

/** How a model computes on a GPU; it does not change what the model is. */
export interface BackendOptions {
  /**
   * 'tf32' runs the op-by-op matrix products and the U-Net's convolutions on the tensor cores (the
   * fused MLP kernels are FP32); 'bf16' the U-Net's convolutions, with FP32 accumulation.
   */
  precision?: Precision;
  /** Use the fused training kernel where the model's shape allows (default true). */
  fused?: boolean;
  /**
   * Record a training step, and a sampling step of the op-by-op path, once as a CUDA graph and
   * replay it (default true): one launch a step instead of one per op, with the same results bit
   * for bit. false launches every op, for debugging and for profilers that do not follow graphs.
   * The CPU records nothing.
   */
  graphs?: boolean;
}

export interface TrainingData {
  data: Float32Array;
  rows: number;
  dim: number;
}

export interface TrainProgress {
  step: number;
  loss: number;
  /** Mean DSM loss per noise level since the last report; null for a level no sample drew. */
  levelLoss: (number | null)[];
  stepsPerSecond: number;
}

export interface TrainOptions {
  /** Steps to run in this call. */
  steps: number;
  batchSize?: number;
  /** Report progress every this many steps. */
  reportEvery?: number;
  /** What it throws stops training after the current step and rejects the promise with it. */
  onProgress?: (p: TrainProgress) => void;
  /**
   * Aborting stops after the current step; the promise then resolves with cancelled: true. A signal
   * aborted before the call rejects it with the signal's reason, before any step.
   */
  signal?: AbortSignal;
}

export interface TrainResult {
  /** Steps run by this call, and the model's total. */
  steps: number;
  step: number;
  cancelled: boolean;
}

/** `step` of the stepsPerLevel steps of `level` (0-based) are done. */
export interface SamplerPosition {
  level: number;
  step: number;
}

export interface SampleOptions extends Partial<SamplingDefaults> {
  n?: number;
  seed?: number;
  /** Sample with the EMA of the weights (default) or the raw weights. */
  useEma?: boolean;
  /** Starting points, n × dataDim, instead of uniform ones. */
  init?: Float32Array;
  /** Use the backend's fused sampler kernel where it has one (default); false forces the op-by-op path. */
  fused?: boolean;
  /** What onProgress or onFrame throws stops sampling and rejects the promise with it. */
  onProgress?: (levelsDone: number, levels: number) => void;
  /** Call onFrame with the particles at the start, every `frameEvery` steps and at each level's end. */
  frameEvery?: number;
  onFrame?: (particles: Float32Array, at: SamplerPosition) => void;
  /**
   * Aborting stops after the current Langevin step (on a GPU's fused kernel, at the end of the
   * current level or frame) and rejects with an AbortError; so does a signal aborted before the call.
   */
  signal?: AbortSignal;
}

export interface InpaintOptions extends Omit<SampleOptions, 'sampler' | 'init'> {
  /** The image to complete: dataDim values (those where mask is 0 are not read). */
  image: Float32Array;
  /** 1 where the image is known, 0 where it is to be filled in: dataDim values. */
  mask: Float32Array;
}

// Call right after the native call has started its worker, which clears the cancel flag of any
// earlier run; an already aborted signal is refused before that, by signal.throwIfAborted().
function onAbort(signal: AbortSignal | undefined, cancel: () => void): () => void {
  if (!signal) return () => {};
  signal.addEventListener('abort', cancel);
  return () => signal.removeEventListener('abort', cancel);
}

// A progress callback whose first throw cancels the run; `failed` holds what it threw, which the
// call then rejects with. Later reports do not reach the callback.
function guarded<A extends unknown[]>(callback: (...args: A) => void, cancel: () => void) {
  const state: { failed: { error: unknown } | null; call: (...args: A) => void } = {
    failed: null,
    call: (...args: A) => {
      if (state.failed) return;
      try {
        callback(...args);
      } catch (error) {
        state.failed = { error };
        cancel();
      }
    },
  };
  return state;
}

/**
 * A model owns native memory and, on a CPU, worker threads until dispose() (or `using`) frees
 * them, or the garbage collector does. dispose() during train() or sample() cancels the call
 * (train resolves with cancelled: true, sample rejects with an AbortError) and frees everything
 * when it ends. Any use after dispose() throws.
 */
export class NcsnModel {
  readonly config: ModelConfig;
  private readonly native: NativeModel;
  private data: Float32Array | null = null;

  private constructor(config: ModelConfig, backend: Backend) {
    this.config = config;
    // every value explicit: the addon has no defaults of its own
    this.native = new addon.Model({
      ...networkConfig(config),
      dequantize: config.dequantize,
      seed: config.seed,
      lr: config.lr,
      beta1: config.beta1,
      beta2: config.beta2,
      eps: config.eps,
      emaDecay: config.emaDecay,
      ...backend,
      ...(config.mixture
        ? {
            mixtureMeans: config.mixture.means.flat(),
            mixtureWeights: config.mixture.weights,
            mixtureVariance: config.mixture.variance,
          }
        : {}),
    });
  }

  /** A new model with freshly initialised weights; every option is checked, and the rest take their defaults. */
  static create(options: ModelOptions): NcsnModel {
    const { device, threads, precision, fused, graphs, ...rest } = options;
    return new NcsnModel(modelConfig(rest), backendOptions({ device, threads, precision, fused, graphs }));
  }

  /**
   * A model with the weights, optimizer state, EMA and config of a checkpoint. Every config value
   * is checked, and the config against the tensors' shapes, before anything is allocated.
   */
  static load(file: string, options: { device?: Device; threads?: number } & BackendOptions = {}): NcsnModel {
    const { tensors, metadata } = readCheckpoint(file);
    let raw: unknown;
    try {
      raw = JSON.parse(metadata.config);
    } catch {
      throw new CheckpointError(`${file}: the checkpoint's config is not valid JSON`);
    }
    const step = Number(metadata.step);
    if (!Number.isSafeInteger(step) || step < 0) {
      throw new CheckpointError(`${file}: the checkpoint's step is ${JSON.stringify(metadata.step ?? null)}, not a whole number ≥ 0`);
    }
    const config = checkCheckpointConfig(file, raw, tensors);
    const backend = backendOptions(options);
    let model: NcsnModel;
    try {
      model = new NcsnModel(config, backend);
    } catch (e) {
      throw new CheckpointError(`${file}: ${(e as Error).message}`);
    }
    try {
      model.native.loadTensors(tensors as NativeTensor[], step);
    } catch (e) {
      throw new CheckpointError(`${file}: ${(e as Error).message}`);
    }
    return model;
  }

  get step(): number {
    return this.native.step;
  }
  get paramCount(): number {
    return this.native.paramCount;
  }
  /** FLOPs of one sample's forward pass in its matrix products and convolutions (an FMA counts 2). */
  get forwardFlops(): number {
    return this.native.forwardFlops;
  }
  /** 'cpu' or 'cuda:N'. */
  get backend(): string {
    return this.native.backend;
  }
  /** Why device 'auto' fell back to the CPU, or null. */
  get backendNotice(): string | null {
    return this.native.notice;
  }
  get threads(): number {
    return this.native.threads;
  }
  /** Steps run from recorded CUDA graphs since the model was made: 0 on the CPU, or with graphs off. */
  get graphReplays(): number {
    return this.native.graphReplays;
  }

  /** Frees the native memory and threads now (see the class comment for a call in progress). */
  dispose(): void {
    this.native.dispose();
    this.data = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get disposed(): boolean {
    return this.native.disposed;
  }

  /** Runs `steps` DSM training steps on `data`, handed to the native core once and kept there. */
  async train(data: TrainingData, options: TrainOptions): Promise<TrainResult> {
    if (data.dim !== this.config.dataDim) {
      throw new RangeError(`the data has dimension ${data.dim} but the model expects ${this.config.dataDim}`);
    }
    options.signal?.throwIfAborted();
    if (this.data !== data.data) {
      this.native.setData(data.data, data.rows, data.dim);
      this.data = data.data;
    }
    const onProgress = options.onProgress && guarded(options.onProgress, () => this.native.cancel());
    const running = this.native.train(
      { steps: options.steps, batchSize: options.batchSize ?? this.config.batchSize, reportEvery: options.reportEvery ?? CALL_DEFAULTS.reportEvery },
      onProgress?.call,
    );
    const stop = onAbort(options.signal, () => this.native.cancel());
    try {
      const result = await running;
      if (onProgress?.failed) throw onProgress.failed.error;
      return result;
    } finally {
      stop();
    }
  }

  /** Samples by the chosen sampler over the model's noise levels; returns n × dataDim values. */
  async sample(options: SampleOptions = {}): Promise<Float32Array> {
    return this.draw(options, {});
  }

  /**
   * NCSN's inpainting, by annealed Langevin: n completions of `image` where `mask` is 0. At each
   * level the known pixels are set to the image perturbed at that level, before its steps and
   * after every step, and to the image itself at the end. Returns n × dataDim values.
   */
  async inpaint(options: InpaintOptions): Promise<Float32Array> {
    const { image, mask, ...rest } = options;
    const d = this.config.dataDim;
    if (image.length !== d || mask.length !== d) {
      throw new RangeError(`inpainting needs an image and a mask of ${d} values each (got ${image.length} and ${mask.length})`);
    }
    return this.draw({ ...rest, sampler: 'ald' }, { inpaintImage: image, inpaintMask: mask });
  }

  private async draw(options: SampleOptions, inpainting: Pick<NativeSampleOptions, 'inpaintImage' | 'inpaintMask'>): Promise<Float32Array> {
    const { n = CALL_DEFAULTS.n, seed = CALL_DEFAULTS.seed, useEma = CALL_DEFAULTS.useEma, fused = CALL_DEFAULTS.fused } = options;
    const s = samplingSettings(this.config.sampling, options);
    const levels = this.config.sigmas.length;
    const { onProgress, onFrame } = options;
    if (onFrame && !options.frameEvery) throw new RangeError('onFrame needs frameEvery, the steps between frames');
    options.signal?.throwIfAborted();
    const report =
      onProgress || onFrame
        ? guarded((p: NativeSampleProgress) => {
            if (p.frame) onFrame?.(p.frame, { level: p.level, step: p.step });
            if (p.step === s.stepsPerLevel) onProgress?.(p.level + 1, levels);
          }, () => this.native.cancel())
        : undefined;
    const running = this.native.sample(
      {
        n,
        sampler: s.sampler,
        stepsPerLevel: s.stepsPerLevel,
        stepLr: s.stepLr,
        snr: s.snr,
        denoise: s.denoise,
        seed,
        initLow: s.initLow,
        initHigh: s.initHigh,
        useEma,
        fused,
        frameEvery: onFrame ? (options.frameEvery ?? 0) : 0,
        ...(options.init ? { init: options.init } : {}),
        ...inpainting,
      },
      report?.call,
    );
    const stop = onAbort(options.signal, () => this.native.cancel());
    try {
      const out = await running;
      if (report?.failed) throw report.failed.error;
      if (out.cancelled) throw new DOMException('sampling was aborted', 'AbortError');
      return out.samples;
    } finally {
      stop();
    }
  }

  /** The score s(x, σ_level) at n × dataDim points, with the EMA weights unless useEma is false. */
  score(points: Float32Array, level: number, useEma = true): Float32Array {
    return this.native.score(points, level, useEma);
  }

  /** Parameters, EMA ("ema.") and Adam moments ("optimizer.exp_avg[_sq].") under their names. */
  tensors(): Tensor[] {
    return this.native.tensors();
  }

  /** Writes the checkpoint atomically (a temporary file renamed into place). */
  save(file: string): void {
    writeCheckpoint(file, this.tensors(), { config: JSON.stringify(this.config), step: String(this.step) });
  }
}

/** Version, compiled backends, threads and devices of the native core. */
export function info() {
  return addon.info();
}
