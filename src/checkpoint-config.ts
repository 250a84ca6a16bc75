// A checkpoint's config, checked value by value and against the tensors in the file before a model
// is made from it: a crafted or damaged config is a CheckpointError naming the file and the value,
// never a huge allocation or a model that disagrees with its weights.
import { CheckpointError, type Tensor } from './checkpoint.js';
import { LIMITS } from './limits.js';
import { addon, type NativeNetworkConfig } from './native.js';
import type { ModelConfig, SamplingDefaults } from './index.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v));

/** What makes the network of a config: the part the native layout and model take. */
export function networkConfig(c: ModelConfig): NativeNetworkConfig {
  return {
    kind: c.model,
    dataDim: c.dataDim,
    width: c.width,
    depth: c.depth,
    sigmas: c.sigmas,
    ...(c.model === 'unet' && c.image
      ? { imageChannels: c.image.channels, imageHeight: c.image.height, imageWidth: c.image.width, channels: c.channels }
      : {}),
  };
}

const GROUPS = ['', 'ema.', 'optimizer.exp_avg.', 'optimizer.exp_avg_sq.'];

export function checkCheckpointConfig(file: string, config: unknown, tensors: Tensor[]): ModelConfig {
  const fail = (why: string): never => {
    throw new CheckpointError(`${file}: ${why}`);
  };
  if (!isObject(config)) return fail('the config is not a JSON object');
  const c = config;
  const integer = (key: string, min: number, max: number) => {
    const v = c[key];
    if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) {
      fail(`config.${key} is ${show(v)}; it must be an integer from ${min} to ${max.toLocaleString('en-US')}`);
    }
    return v as number;
  };
  const number = (where: Json, key: string, ok: (v: number) => boolean, range: string, prefix = 'config.') => {
    const v = where[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) fail(`${prefix}${key} is ${show(v)}; it must be ${range}`);
    return v as number;
  };

  if (c.model !== 'mlp' && c.model !== 'unet' && c.model !== 'exact:mixture') {
    fail(`config.model is ${show(c.model)}; it must be "mlp", "unet" or "exact:mixture"`);
  }
  const sigmas = c.sigmas;
  if (!Array.isArray(sigmas) || sigmas.length < 1 || sigmas.length > LIMITS.levels) {
    fail(`config.sigmas must be a list of 1 to ${LIMITS.levels.toLocaleString('en-US')} noise levels`);
  }
  (sigmas as unknown[]).forEach((s, i) => {
    if (typeof s !== 'number' || !Number.isFinite(s) || s < 0 || (i > 0 && !(s < (sigmas as number[])[i - 1]))) {
      fail(`config.sigmas[${i}] is ${show(s)}; the noise levels must be finite, positive and strictly decreasing`);
    }
  });
  const dataDim = integer('dataDim', 1, LIMITS.dataDim);
  const width = integer('width', 1, LIMITS.width);
  const depth = integer('depth', 1, LIMITS.depth);
  const channels = integer('channels', 1, LIMITS.unetChannels);
  if (typeof c.dequantize !== 'boolean') fail(`config.dequantize is ${show(c.dequantize)}; it must be true or false`);
  integer('seed', 0, Number.MAX_SAFE_INTEGER);
  integer('batchSize', 1, Math.floor(LIMITS.elements / dataDim));
  number(c, 'lr', (v) => v > 0, 'a positive number');
  number(c, 'beta1', (v) => v >= 0 && v < 1, 'in [0, 1)');
  number(c, 'beta2', (v) => v >= 0 && v < 1, 'in [0, 1)');
  number(c, 'eps', (v) => v > 0, 'a positive number');
  number(c, 'emaDecay', (v) => v >= 0 && v < 1, 'in [0, 1)');
  if (c.data !== undefined && c.data !== null && typeof c.data !== 'string') fail(`config.data is ${show(c.data)}; it must be a string or null`);

  // checkpoints from before a sampling setting existed take its default, checked like the rest
  const sampling = c.sampling ?? {};
  if (!isObject(sampling)) return fail('config.sampling is not a JSON object');
  const s = 'config.sampling.';
  if (sampling.sampler !== undefined && sampling.sampler !== 'ald' && sampling.sampler !== 'pc') {
    fail(`${s}sampler is ${show(sampling.sampler)}; it must be "ald" or "pc"`);
  }
  const optional = (key: keyof SamplingDefaults, ok: (v: number) => boolean, range: string) => {
    if (sampling[key] !== undefined) number(sampling, key, ok, range, s);
  };
  optional('stepsPerLevel', (v) => Number.isInteger(v) && v >= 1 && v <= LIMITS.stepsPerLevel, `an integer from 1 to ${LIMITS.stepsPerLevel.toLocaleString('en-US')}`);
  optional('stepLr', (v) => v > 0, 'a positive number');
  optional('snr', (v) => v > 0, 'a positive number');
  optional('initLow', () => true, 'a finite number');
  optional('initHigh', () => true, 'a finite number');
  if (sampling.denoise !== undefined && typeof sampling.denoise !== 'boolean') fail(`${s}denoise is ${show(sampling.denoise)}; it must be true or false`);

  if (c.image !== undefined && c.image !== null) {
    const im = c.image;
    if (!isObject(im)) return fail('config.image is not a JSON object');
    const [ch, h, w] = [im.channels, im.height, im.width];
    if (![ch, h, w].every((v) => Number.isSafeInteger(v) && (v as number) >= 1) || (ch as number) * (h as number) * (w as number) !== dataDim) {
      fail(`config.image ${show(ch)}×${show(h)}×${show(w)} does not lay out dataDim = ${dataDim} values`);
    }
    if (!(number(im, 'low', () => true, 'a finite number', 'config.image.') < number(im, 'high', () => true, 'a finite number', 'config.image.'))) {
      fail('config.image.low must be below config.image.high');
    }
  }

  if (c.model === 'unet' && (c.image === undefined || c.image === null)) fail('config.model is "unet" but config.image, its input, is missing');
  if (c.model === 'mlp' || c.model === 'unet') {
    const levels = (sigmas as number[]).length;
    const network =
      c.model === 'mlp'
        ? `width ${width}, depth ${depth}, dataDim ${dataDim}`
        : `U-Net of base width ${channels} on ${show((c.image as Json).channels)}×${show((c.image as Json).height)}×${show((c.image as Json).width)} images`;
    let layout: { name: string; shape: number[] }[] = [];
    try {
      layout = addon.layout(networkConfig(config as unknown as ModelConfig));
    } catch (e) {
      fail(`the config (${network}) cannot make a model: ${(e as Error).message}`);
    }
    const byName = new Map(tensors.map((t) => [t.name, t.shape]));
    for (const prefix of GROUPS)
      for (const { name, shape } of layout) {
        const found = byName.get(prefix + name);
        if (!found) fail(`the config (${network}) needs a tensor '${prefix}${name}' that the file does not have`);
        if (found!.length !== shape.length || found!.some((d, i) => d !== shape[i])) {
          fail(`tensor '${prefix}${name}' is [${found!.join(', ')}] but the config (${network}, ${levels} levels) needs [${shape.join(', ')}]`);
        }
      }
    if (tensors.length !== layout.length * GROUPS.length) {
      const known = new Set(GROUPS.flatMap((p) => layout.map(({ name }) => p + name)));
      fail(`tensor '${tensors.find((t) => !known.has(t.name))!.name}' is not part of the config's model (${network})`);
    }
  } else {
    const m = c.mixture;
    if (!isObject(m) || !Array.isArray(m.means) || !Array.isArray(m.weights) || m.means.length !== m.weights.length || m.means.length === 0) {
      return fail('config.mixture needs as many means as weights, at least one');
    }
    if (!m.means.every((row) => Array.isArray(row) && row.length === dataDim && row.every((v) => typeof v === 'number' && Number.isFinite(v)))) {
      fail(`every config.mixture mean must be ${dataDim} finite numbers`);
    }
    if (!m.weights.every((v) => typeof v === 'number' && v > 0 && Number.isFinite(v))) fail('config.mixture.weights must be positive numbers');
    number(m, 'variance', (v) => v > 0, 'a positive number', 'config.mixture.');
  }
  return config as unknown as ModelConfig;
}
