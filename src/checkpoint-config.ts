// A checkpoint's config, checked value by value (config.ts's schema) and against the tensors in the
// file before a model is made from it: a crafted or damaged config is a CheckpointError naming the file and the value,
// never a huge allocation or a model that disagrees with its weights.
import { CheckpointError, type Tensor } from './checkpoint.js';
import { checkpointConfig, type ModelConfig } from './config.js';
import { addon, type NativeNetworkConfig } from './native.js';

/** What makes the network of a config: the part the native layout and model take. */
export function networkConfig(c: ModelConfig): NativeNetworkConfig {
  return {
    kind: c.model,
    dataDim: c.dataDim,
    width: c.width,
    depth: c.depth,
    firstLayer: c.firstLayer,
    sigmas: c.sigmas,
    ...(c.model === 'unet' && c.image
      ? { imageChannels: c.image.channels, imageHeight: c.image.height, imageWidth: c.image.width, channels: c.channels }
      : {}),
  };
}

const GROUPS = ['', 'ema.', 'optimizer.exp_avg.', 'optimizer.exp_avg_sq.'];

export function checkCheckpointConfig(file: string, raw: unknown, tensors: Tensor[]): ModelConfig {
  const fail = (why: string): never => {
    throw new CheckpointError(`${file}: ${why}`);
  };
  const c = checkpointConfig(raw, fail);
  if (c.model === 'mlp' || c.model === 'unet') {
    const levels = c.sigmas.length;
    const network =
      c.model === 'mlp'
        ? `width ${c.width}, depth ${c.depth}${c.firstLayer === 'sin' ? ', sin first layer' : ''}, dataDim ${c.dataDim}`
        : `U-Net of base width ${c.channels} on ${c.image!.channels}×${c.image!.height}×${c.image!.width} images`;
    let layout: { name: string; shape: number[] }[] = [];
    try {
      layout = addon.layout(networkConfig(c));
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
  }
  return c;
}
