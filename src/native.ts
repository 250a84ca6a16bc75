// The only file that touches the addon: loads it with node-gyp-build and gives its surface types.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { buildFromSource, findToolchain } from './addon-build.js';
import { NativeLoadError } from './errors.js';

/**
 * What makes a network: its kind, sizes and noise levels. The addon takes every value explicitly
 * (the defaults are src/config.ts's) and refuses a missing one: mlp needs width and depth, unet the
 * images' layout and C.
 */
export interface NativeNetworkConfig {
  kind: 'mlp' | 'unet' | 'exact:mixture';
  dataDim: number;
  width?: number;
  depth?: number;
  firstLayer?: 'softplus' | 'sin';
  /** unet: the images' layout and the base width C. */
  imageChannels?: number;
  imageHeight?: number;
  imageWidth?: number;
  channels?: number;
  sigmas: number[];
}

export interface NativeModelConfig extends NativeNetworkConfig {
  seed: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  emaDecay: number;
  device: string;
  threads: number;
  precision: 'fp32' | 'tf32' | 'bf16';
  fused: boolean;
  /** GPU: record a training or sampling step once as a CUDA graph and replay it. */
  graphs: boolean;
  /** exact:mixture only, and required there. */
  mixtureMeans?: number[];
  mixtureWeights?: number[];
  mixtureVariance?: number;
  /** 8-bit pixels: each training batch is dequantised, x·255/256 + U(0, 1)/256. */
  dequantize: boolean;
}

export interface NativeTrainProgress {
  step: number;
  loss: number;
  stepsPerSecond: number;
  /** Mean loss per noise level over the report window; null where no sample drew the level. */
  levelLoss: (number | null)[];
  levelCount: number[];
}

export interface NativeTrainResult {
  steps: number;
  step: number;
  cancelled: boolean;
}

export interface NativeSampleOptions {
  n: number;
  sampler: 'ald' | 'pc';
  stepsPerLevel: number;
  stepLr: number;
  snr: number;
  denoise: boolean;
  /** Steps between progress reports that carry the particles; 0: reports at level ends, no particles. */
  frameEvery: number;
  seed: number;
  initLow: number;
  initHigh: number;
  useEma: boolean;
  fused: boolean;
  /** Starting points instead of uniform ones (optional: absent means none). */
  init?: Float32Array;
  /** Inpainting: the known image (dataDim values) and its mask (1 known, 0 to fill). */
  inpaintImage?: Float32Array;
  inpaintMask?: Float32Array;
}

/** `step` of the steps of `level` (0-based) are done; step 0 of level 0 is the start. */
export interface NativeSampleProgress {
  level: number;
  step: number;
  frame?: Float32Array;
}

export interface NativeTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface NativeModel {
  readonly step: number;
  readonly paramCount: number;
  /** FLOPs of one sample's forward pass in its matrix products and convolutions. */
  readonly forwardFlops: number;
  readonly backend: string;
  /** Why device 'auto' chose the CPU, or null. */
  readonly notice: string | null;
  readonly threads: number;
  /** Steps the backend has run from recorded CUDA graphs since the model was made. */
  readonly graphReplays: number;
  setData(data: Float32Array, rows: number, cols: number): void;
  train(
    options: { steps: number; batchSize: number; reportEvery: number },
    onProgress?: (p: NativeTrainProgress) => void,
  ): Promise<NativeTrainResult>;
  sample(
    options: NativeSampleOptions,
    onProgress?: (p: NativeSampleProgress) => void,
  ): Promise<{ samples: Float32Array; cancelled: boolean }>;
  cancel(): void;
  tensors(): NativeTensor[];
  score(points: Float32Array, level: number, useEma?: boolean): Float32Array;
  loadTensors(tensors: NativeTensor[], step: number): void;
  /** Frees the model now, or when the running train or sample call ends (which it cancels). */
  dispose(): void;
  readonly disposed: boolean;
}

export interface NativeGpu {
  index: number;
  name: string;
  computeCapability: string;
  memoryBytes: number;
  multiprocessors: number;
  usable: boolean;
  problem: string | null;
}

export interface NativeInfo {
  version: string;
  backends: string[];
  threads: number;
  cuda: { driverVersion?: number; runtimeVersion?: number; architectures?: string; problem: string | null };
  devices: NativeGpu[];
}

interface Addon {
  Model: new (config: NativeModelConfig) => NativeModel;
  random(options: { kind: 'normal' | 'uniform'; seed: number; n: number; stream: number; offset: number }): Float32Array;
  philox(counter: number[], key: number[]): number[];
  /** The CPU's measured FP32 FMA rate in GFLOP/s on this many threads (takes about 0.2 s). */
  fmaPeak(threads: number): number;
  /** The parameter tensors a config makes, its sizes checked, without making it (RangeError when too large). */
  layout(config: NativeNetworkConfig): { name: string; shape: number[] }[];
  info(): NativeInfo;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nodeGypBuild = createRequire(import.meta.url)('node-gyp-build') as (dir: string) => unknown;

function loadError(e: unknown): string {
  return (e as Error).message.split('\n')[0].trim();
}

/** The prebuilt binaries the package holds, as `platform-arch`. */
function prebuildsHeld(): string[] {
  try {
    return fs.readdirSync(path.join(root, 'prebuilds'));
  } catch {
    return [];
  }
}

/**
 * The addon: the package's own build if there is one (a git clone builds it), else the prebuilt
 * binary for this platform, else one built from source here when CMake and a C++ compiler are at
 * hand (minutes, once, said on stderr); otherwise a NativeLoadError that says what is missing.
 */
function loadAddon(): Addon {
  let firstError: unknown;
  try {
    return nodeGypBuild(root) as Addon;
  } catch (e) {
    firstError = e;
  }
  const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
  const libc = process.platform !== 'linux' ? '' : glibc ? ` (glibc ${glibc})` : ' (musl)';
  const platform = `${process.platform}-${process.arch}${libc}`;
  const held = prebuildsHeld();
  const why = `no prebuilt binary of ncsn-cuda fits ${platform}: the package holds ${held.length ? held.join(', ') : 'none'} (${loadError(firstError)})`;
  const toolchain = findToolchain();
  if ('missing' in toolchain) {
    throw new NativeLoadError(
      `${why}, and building one from source needs CMake ≥ 3.18 and a C++17 compiler on the PATH; missing: ${toolchain.missing.join(', ')}`,
      { cause: firstError },
    );
  }
  process.stderr.write(
    `ncsn-cuda: ${why}; building the addon from source with ${toolchain.cmake} and ${toolchain.compiler} into ${path.join(root, 'build')} ` +
      '(once: minutes, and about 20 more where nvcc on the PATH adds the CUDA kernels)\n',
  );
  const status = buildFromSource(root);
  if (status !== 0) throw new NativeLoadError(`${why}; the build from source failed (exit ${status}, its output above)`, { cause: firstError });
  try {
    return nodeGypBuild(root) as Addon;
  } catch (e) {
    throw new NativeLoadError(`the addon built from source in ${path.join(root, 'build')} does not load: ${loadError(e)}`, { cause: e });
  }
}

export const addon = loadAddon();
