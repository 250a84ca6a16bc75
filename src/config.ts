// The configuration of a model, once: its TypeScript types, its defaults and its validation, used by
// NcsnModel.create (options), NcsnModel.load (a checkpoint's config) and the CLI (through both).
// Keys that checkpoints from before a setting existed lack take its default here, so old files load.
// The addon takes every value explicitly from what this produces and refuses a missing one.
import { z } from 'zod';

import { LIMITS } from './limits.js';
import { MIXTURE, type NoiseDefaults } from './data/toy.js';
import type { Dataset } from './data/index.js';

const grouped = (n: number) => n.toLocaleString('en-US');

// Each schema below says what its value must be in one message, the same for every way it fails
// (missing, wrong type, out of range), so that an error reads "<key> is <value>; it must be …".
const must = (what: string) => ({ errorMap: () => ({ message: `it must be ${what}` }) });

const integer = (min: number, max: number) => z.number(must(`an integer from ${grouped(min)} to ${grouped(max)}`)).int().min(min).max(max);
const positive = () => z.number(must('a positive number')).finite().positive();
const finite = () => z.number(must('a finite number')).finite();
const unitInterval = () => z.number(must('in [0, 1)')).min(0).lt(1);
const boolean = () => z.boolean(must('true or false'));
const oneOf = <const T extends [string, ...string[]]>(values: T) => {
  const names = values.map((v) => JSON.stringify(v));
  return z.enum(values, must(`${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`));
};

/**
 * 'mlp': the noise-conditional MLP of W1, for points. 'unet': the conditional U-Net of W2, for
 * images. 'exact:mixture': the exact score of a Gaussian mixture.
 */
const MODEL_KINDS = ['mlp', 'unet', 'exact:mixture'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];
/** The MLP's first hidden layer: softplus like the others (W1), or sin, learned Fourier features of the input. */
const FIRST_LAYERS = ['softplus', 'sin'] as const;
export type FirstLayer = (typeof FIRST_LAYERS)[number];
/**
 * 'ald': annealed Langevin dynamics (NCSN). 'pc': the VE predictor-corrector sampler (Song et al.
 * 2021), a Langevin corrector sized by `snr` then a reverse-diffusion predictor at each level.
 */
const SAMPLER_KINDS = ['ald', 'pc'] as const;
export type SamplerKind = (typeof SAMPLER_KINDS)[number];
/** How a GPU multiplies: FP32, or on the tensor cores with TF32 or BF16 inputs and FP32 accumulation. */
const PRECISIONS = ['fp32', 'tf32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];
/** 'auto' takes the first usable GPU and falls back to the CPU; 'cuda' is 'cuda:0'. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

const samplingFields = {
  sampler: oneOf([...SAMPLER_KINDS]),
  /** T, the Langevin steps (ald) or corrector steps (pc) at each noise level. */
  stepsPerLevel: integer(1, LIMITS.stepsPerLevel),
  /** ald's ε in the paper's convention: α_i = ε σ_i² / σ_L², x ← x + (α_i/2) s(x, σ_i) + √α_i z. */
  stepLr: positive(),
  /** pc's corrector signal-to-noise ratio: step e = 2 (snr ‖z‖ / ‖s‖)², norms averaged over the batch. */
  snr: positive(),
  /** Finish with the denoising step x ← x + σ_L² s(x, σ_L) (pc: its last predictor step without noise). */
  denoise: boolean(),
  /** ald's particles start uniform in [initLow, initHigh] in every coordinate; pc's from N(0, σ_1² I). */
  initLow: finite(),
  initHigh: finite(),
};

/** A model's sampling settings, each required. */
export type SamplingDefaults = z.output<z.ZodObject<typeof samplingFields>>;

/** What a model samples with unless its config or the call says otherwise (W1's settings). */
export const SAMPLING_DEFAULTS: Readonly<SamplingDefaults> = {
  sampler: 'ald',
  stepsPerLevel: 100,
  stepLr: 0.1,
  snr: 0.16,
  denoise: false,
  initLow: -8,
  initHigh: 8,
};

const samplingSchema = z
  .object({
    sampler: samplingFields.sampler.default(SAMPLING_DEFAULTS.sampler),
    stepsPerLevel: samplingFields.stepsPerLevel.default(SAMPLING_DEFAULTS.stepsPerLevel),
    stepLr: samplingFields.stepLr.default(SAMPLING_DEFAULTS.stepLr),
    snr: samplingFields.snr.default(SAMPLING_DEFAULTS.snr),
    denoise: samplingFields.denoise.default(SAMPLING_DEFAULTS.denoise),
    initLow: samplingFields.initLow.default(SAMPLING_DEFAULTS.initLow),
    initHigh: samplingFields.initHigh.default(SAMPLING_DEFAULTS.initHigh),
  }, must('an object'))
  .superRefine((s, ctx) => {
    if (!(s.initLow < s.initHigh)) ctx.addIssue({ code: 'custom', path: ['initHigh'], message: `it must be above initLow (${s.initLow})` });
  });

const imageSchema = z.object(
  {
    channels: integer(1, LIMITS.dataDim),
    height: integer(1, LIMITS.dataDim),
    width: integer(1, LIMITS.dataDim),
    /** The values drawn as black and white. */
    low: finite(),
    high: finite(),
  },
  must('an object { channels, height, width, low, high }'),
);
/** An image layout whose product is dataDim, and the values drawn as black and white. */
export type ImageSpec = z.output<typeof imageSchema>;

const mixtureSchema = z.object(
  {
    means: z.array(z.array(finite(), must('a list of finite numbers')), must('a list of points')).min(1, 'it must hold at least one mean'),
    weights: z.array(positive(), must('a list of positive numbers')),
    variance: positive(),
  },
  must('an object { means, weights, variance }'),
);
/** A Gaussian mixture Σ w_k N(μ_k, variance·I). */
export type MixtureSpec = z.output<typeof mixtureSchema>;

const sigmasSchema = z
  .array(z.number(must('a number')), must(`a list of 1 to ${grouped(LIMITS.levels)} noise levels`))
  .min(1, `it must be a list of 1 to ${grouped(LIMITS.levels)} noise levels`)
  .max(LIMITS.levels, `it must be a list of 1 to ${grouped(LIMITS.levels)} noise levels`)
  .superRefine((sigmas, ctx) => {
    const bad = sigmas.findIndex((s, i) => !Number.isFinite(s) || s < 0 || (i > 0 && !(s < sigmas[i - 1])));
    if (bad >= 0) ctx.addIssue({ code: 'custom', path: [bad], message: 'the noise levels must be finite, positive and strictly decreasing' });
  });

/** The defaults of a model's training settings and network (W1's), as NcsnModel.create fills them. */
export const MODEL_DEFAULTS = {
  model: 'mlp' as ModelKind,
  dataDim: 2,
  width: 128,
  depth: 2,
  firstLayer: 'softplus' as FirstLayer,
  channels: 32,
  dequantize: false,
  seed: 0,
  lr: 1e-3,
  batchSize: 128,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  emaDecay: 0.999,
} as const;

const modelConfigSchema = z
  .object(
    {
      model: oneOf([...MODEL_KINDS]).default(MODEL_DEFAULTS.model),
      dataDim: integer(1, LIMITS.dataDim).default(MODEL_DEFAULTS.dataDim),
      /** Hidden width and number of hidden layers of the MLP. */
      width: integer(1, LIMITS.width).default(MODEL_DEFAULTS.width),
      depth: integer(1, LIMITS.depth).default(MODEL_DEFAULTS.depth),
      /** The MLP's first hidden layer: softplus like the others (W1), or sin, learned Fourier features of the input. */
      firstLayer: oneOf([...FIRST_LAYERS]).default(MODEL_DEFAULTS.firstLayer),
      /** The U-Net's base width C (W2: 32 on a CPU, 64 on a GPU); its input is `image`. */
      channels: integer(1, LIMITS.unetChannels).default(MODEL_DEFAULTS.channels),
      /** The data are 8-bit pixels in [0, 1]: each training batch is dequantised, x·255/256 + U(0, 1)/256. */
      dequantize: boolean().default(MODEL_DEFAULTS.dequantize),
      /** Noise levels σ_1 > … > σ_L. */
      sigmas: sigmasSchema,
      seed: integer(0, Number.MAX_SAFE_INTEGER).default(MODEL_DEFAULTS.seed),
      lr: positive().default(MODEL_DEFAULTS.lr),
      /** Samples per training step, the default of train(), which refuses a batch of more than LIMITS.elements values. */
      batchSize: integer(1, LIMITS.elements).default(MODEL_DEFAULTS.batchSize),
      beta1: unitInterval().default(MODEL_DEFAULTS.beta1),
      beta2: unitInterval().default(MODEL_DEFAULTS.beta2),
      eps: positive().default(MODEL_DEFAULTS.eps),
      emaDecay: unitInterval().default(MODEL_DEFAULTS.emaDecay),
      /** The dataset spec the model is trained on, when known. */
      data: z.string(must('a string or null')).nullable().default(null),
      sampling: samplingSchema.default({}),
      /** exact:mixture only: the mixture whose perturbed score it computes (W1's unless given). */
      mixture: mixtureSchema.nullable().default(null),
      /** When a point is an image: how pictures draw it, and the U-Net's input layout. */
      image: imageSchema.nullable().default(null),
    },
    must('an object'),
  )
  .superRefine((c, ctx) => {
    const fail = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message, params: { sentence: true } });
    if (c.image) {
      const { channels: ch, height: h, width: w, low, high } = c.image;
      if (ch * h * w !== c.dataDim) fail(['image'], `${ch}×${h}×${w} does not lay out dataDim = ${c.dataDim} values`);
      if (!(low < high)) fail(['image'], `needs low < high, the values drawn black and white (got ${low} and ${high})`);
    }
    if (c.model === 'unet' && !c.image) fail(['image'], 'is missing, and model "unet" needs it: the layout of its input images');
    const m = c.mixture;
    if (c.model === 'exact:mixture' && m) {
      if (m.means.length !== m.weights.length) fail(['mixture'], `needs as many weights as means (got ${m.weights.length} and ${m.means.length})`);
      const bad = m.means.findIndex((row) => row.length !== c.dataDim);
      if (bad >= 0) fail(['mixture', 'means', bad], `has ${m.means[bad].length} coordinates; every mean must have dataDim = ${c.dataDim}`);
    }
  })
  // only exact:mixture has a mixture: W1's unless another is given
  .transform((c) => ({ ...c, mixture: c.model === 'exact:mixture' ? (c.mixture ?? w1Mixture()) : null }));

function w1Mixture(): MixtureSpec {
  return { means: MIXTURE.means.map((row) => [...row]), weights: [...MIXTURE.weights], variance: MIXTURE.variance };
}

/** A model's whole configuration: what its checkpoint stores. */
export type ModelConfig = z.output<typeof modelConfigSchema>;
/** What NcsnModel.create takes of the configuration: `sigmas`, and any other value, whose default fills it otherwise. */
export type ModelConfigInput = Omit<z.input<typeof modelConfigSchema>, 'sampling'> & { sampling?: Partial<SamplingDefaults> };

const backendSchema = z.object({
  device: z
    .string(must('auto, cpu, cuda or cuda:N'))
    .regex(/^(auto|cpu|cuda|cuda:\d{1,4})$/)
    .default('auto'),
  /** Worker threads of the CPU backend; 0 means one per core. */
  threads: integer(0, 4096).default(0),
  precision: oneOf([...PRECISIONS]).default('fp32'),
  fused: boolean().default(true),
  graphs: boolean().default(true),
});
/** Where and how a model computes, with its defaults filled; it does not change what the model is. */
export type Backend = { device: Device; threads: number; precision: Precision; fused: boolean; graphs: boolean };

const show = (v: unknown) =>
  Array.isArray(v) ? `a list of ${v.length} values` : typeof v === 'number' ? String(v) : v === undefined ? 'missing' : (JSON.stringify(v) ?? String(v));

/** The value at `path` inside `input`, for the message. */
function valueAt(input: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((v, key) => (v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined), input);
}

/** "config.sigmas[1]" from ['sigmas', 1] and the prefix 'config.'. */
function where(prefix: string, path: (string | number)[]): string {
  const at = path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
  return `${prefix}${at}`.replace(/\.$/, '') || 'the config';
}

/** The first problem of a failed parse as one sentence: "<prefix><key> is <value>; it must be …". */
export function describeConfigError(error: z.ZodError, input: unknown, prefix: string): string {
  const issue = error.issues[0];
  const at = where(prefix, issue.path);
  if (issue.code === 'custom' && (issue.params as { sentence?: boolean } | undefined)?.sentence) return `${at} ${issue.message}`;
  return `${at} is ${show(valueAt(input, issue.path))}; ${issue.message}`;
}

function parse<S extends z.ZodTypeAny>(schema: S, input: unknown, fail: (message: string, issue: z.ZodIssue) => never, prefix: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) fail(describeConfigError(result.error, input, prefix), result.error.issues[0]);
  return result.data;
}

// Options of the API: a value of the wrong type is a TypeError, one out of range a RangeError.
const apiFailure = (message: string, issue: z.ZodIssue): never => {
  throw issue.code === 'invalid_type' && issue.received !== 'undefined' ? new TypeError(message) : new RangeError(message);
};

/** The config of NcsnModel.create's options, its defaults filled and every value checked. */
export function modelConfig(options: ModelConfigInput): ModelConfig {
  return parse(modelConfigSchema, options, apiFailure, '');
}

/** The backend options with their defaults, checked. */
export function backendOptions(options: Partial<Backend>): Backend {
  return parse(backendSchema, options, apiFailure, '') as Backend;
}

/** A model's sampling settings overridden by a call's, checked. */
export function samplingSettings(base: SamplingDefaults, call: Partial<SamplingDefaults>): SamplingDefaults {
  const merged = { ...base };
  for (const [key, value] of Object.entries(call)) if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  return parse(samplingSchema, merged, apiFailure, '');
}

/**
 * A checkpoint's config, its missing keys defaulted (checkpoints from before a setting existed)
 * and every value checked; `fail` throws with the sentence, which names the value as `config.<key>`.
 */
export function checkpointConfig(raw: unknown, fail: (message: string) => never): ModelConfig {
  return parse(modelConfigSchema, raw, (message) => fail(message), 'config.');
}

/** What train() and sample() take unless a call says otherwise. */
export const CALL_DEFAULTS = {
  /** Steps between train()'s progress reports. */
  reportEvery: 100,
  /** Samples one sample() call draws. */
  n: 1000,
  seed: 0,
  useEma: true,
  fused: true,
} as const;

// The defaults that differ with the data, for a run that starts from a dataset (ncsn-cuda train):
// W1's mixture and the other toys carry their own noise settings (data/toy.ts), images of pixels
// take NCSN's, and points from a file take what their own spread says.

/** NCSN's settings for images of pixels in [0, 1] (docs/workloads.md W2): σ 1 → 0.01 over 10 levels. */
export const IMAGE_NOISE: Readonly<NoiseDefaults> = { sigmaBegin: 1, sigmaEnd: 0.01, levels: 10, steps: 5000 };
/** NCSN's step size for images, ε = 4e-5 in our convention (step_lr = 2e-5 in the released code). */
export const IMAGE_STEP_LR = 4e-5;

export interface DataDefaults {
  /** The noise levels, steps, MLP depth and denoising of a toy or of images; null for points of a file. */
  noise: NoiseDefaults | null;
  /** Noise levels and training steps where `noise` is null (σ_1 from NCSNv2's Technique 1, σ_L = σ_1/100). */
  levels: number;
  steps: number;
  model: ModelKind;
  dequantize: boolean;
  /** ald's ε for the smallest level σ_L. */
  stepLr: (sigmaEnd: number) => number;
  /** ald's starting box; null: the data's extent and a tenth more on each side. */
  init: [number, number] | null;
}

/** What a run on `dataset` takes where nothing else is said. */
export function dataDefaults(dataset: Pick<Dataset, 'defaults' | 'image'>): DataDefaults {
  const pixels = dataset.image !== undefined;
  return {
    noise: dataset.defaults ?? (pixels ? IMAGE_NOISE : null),
    levels: 10,
    steps: 5000,
    // the U-Net for images of pixels whose sides it can halve twice; the MLP for everything else (an
    // .npy of images too, whose scale is unknown: model 'unet' takes those on request)
    model: dataset.image && dataset.image.height % 4 === 0 && dataset.image.width % 4 === 0 ? 'unet' : 'mlp',
    dequantize: pixels,
    // α_L = ε = 0.1 σ_L²: W1's ε = 0.1 at σ_L = 1, the same ratio at any scale; NCSN's own for pixels
    stepLr: pixels ? () => IMAGE_STEP_LR : (sigmaEnd) => 0.1 * sigmaEnd * sigmaEnd,
    // toys start where their data lie, pixels from U(0, 1) as NCSN does
    init: pixels ? [0, 1] : dataset.defaults ? [SAMPLING_DEFAULTS.initLow, SAMPLING_DEFAULTS.initHigh] : null,
  };
}
