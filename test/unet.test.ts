// The U-Net (W2) through the library and the command line: its size, training and exact resume,
// checkpoints checked against its layout, and the flags that choose it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { PNG } from 'pngjs';

import { NcsnModel, geometricSigmas, readCheckpoint, writeCheckpoint, CheckpointError } from '../src/index.js';
import { writeNpy } from '../src/data/npy.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ncsn-unet-'));
const bin = path.resolve(__dirname, '..', 'bin', 'ncsn-cuda.js');
const image8 = { channels: 1, height: 8, width: 8, low: 0, high: 1 };

// 8×8 images: the top half bright for even rows, the bottom half for odd ones
function halves(n: number): Float32Array {
  const data = new Float32Array(n * 64);
  for (let i = 0; i < n; i++) for (let j = 0; j < 64; j++) data[i * 64 + j] = j < 32 === (i % 2 === 0) ? 1 : 0;
  return data;
}

function small(seed = 0) {
  return NcsnModel.create({ model: 'unet', channels: 4, image: image8, dataDim: 64, sigmas: geometricSigmas(1, 0.01, 5), seed, dequantize: true, device: 'cpu' });
}

describe('the U-Net in the library', () => {
  it("has W2's parameter counts and needs its image layout", () => {
    const mnist = { channels: 1, height: 28, width: 28, low: 0, high: 1 };
    const sigmas = geometricSigmas(1, 0.01, 10);
    expect(NcsnModel.create({ model: 'unet', image: mnist, dataDim: 784, sigmas, device: 'cpu' }).paramCount).toBe(519_681);
    expect(() => NcsnModel.create({ model: 'unet', dataDim: 784, sigmas, device: 'cpu' })).toThrow(/image is missing, and model "unet" needs it: the layout of its input images/);
    expect(() => NcsnModel.create({ model: 'unet', image: { ...mnist, height: 30, width: 30 }, dataDim: 900, sigmas, device: 'cpu' })).toThrow(/divisible by 4/);
  });

  it('continues bit for bit from its checkpoint (native/tests/unet_test.cpp shows that it learns)', async () => {
    const data = { data: halves(64), rows: 64, dim: 64 };
    const whole = small();
    await whole.train(data, { steps: 40, batchSize: 8 });

    const first = small();
    await first.train(data, { steps: 20, batchSize: 8 });
    const file = path.join(dir, 'half.safetensors');
    first.save(file);
    const second = NcsnModel.load(file, { device: 'cpu' });
    expect(second.config.model).toBe('unet');
    await second.train(data, { steps: 20, batchSize: 8 });
    const a = whole.tensors();
    const b = second.tensors();
    expect(b.map((t) => t.name)).toEqual(a.map((t) => t.name));
    for (let t = 0; t < a.length; t++) expect(Buffer.from(b[t].data.buffer).equals(Buffer.from(a[t].data.buffer))).toBe(true);
  });

  it('refuses images whose activations the machine cannot hold, before allocating them', async () => {
    const side = 4096;
    const model = NcsnModel.create({ model: 'unet', image: { channels: 1, height: side, width: side, low: 0, high: 1 }, dataDim: side * side, sigmas: geometricSigmas(1, 0.01, 10), device: 'cpu', threads: 2 });
    const data = new Float32Array(2 * side * side).fill(0.5);
    // about 114 GB for one 4096×4096 image on each thread (the largest side a U-Net takes)
    await expect(model.train({ data, rows: 2, dim: side * side }, { steps: 1, batchSize: 2 })).rejects.toThrow(/training the unet: its activations for 1 row on each of 2 threads needs [\d.]+ GB of memory/);
    await expect(model.sample({ n: 1, stepsPerLevel: 1 })).rejects.toThrow(/sampling the unet: its activations/);
  });

  it('refuses a checkpoint whose tensors do not fit its config, naming the tensor', () => {
    const file = path.join(dir, 'fit.safetensors');
    small().save(file);
    const { tensors, metadata } = readCheckpoint(file);
    const bad = path.join(dir, 'bad.safetensors');
    const config = JSON.parse(metadata.config);
    writeCheckpoint(bad, tensors, { ...metadata, config: JSON.stringify({ ...config, channels: 8 }) });
    expect(() => NcsnModel.load(bad)).toThrow(CheckpointError);
    expect(() => NcsnModel.load(bad)).toThrow(/bad\.safetensors: tensor 'conv_in\.weight' is \[4, 1, 3, 3\] but the config \(U-Net of base width 8/);
    writeCheckpoint(bad, tensors, { ...metadata, config: JSON.stringify({ ...config, image: null }) });
    expect(() => NcsnModel.load(bad)).toThrow(/config\.image is missing, and model "unet" needs it/);
  });
});

describe('the U-Net on the command line', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8' });
  fs.writeFileSync(path.join(dir, 'halves.npy'), writeNpy(halves(64), [64, 8, 8]));

  it('trains on images with --model unet and draws a grid of samples', () => {
    const r = cli('train', '--data', 'halves.npy', '--model', 'unet', '--channels', '4', '--steps', '20', '--steps-per-level', '2', '--out', 'run');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/model: unet \(C = 4\), 11,537 parameters on cpu/);
    const png = PNG.sync.read(fs.readFileSync(path.join(dir, 'run', 'samples.png')));
    expect(png.width).toBeGreaterThan(8 * 8);
    const s = cli('sample', '--checkpoint', path.join('run', 'checkpoint.safetensors'), '--n', '3', '--steps-per-level', '1', '--out', 'three.npy');
    expect(s.status).toBe(0);
  });

  it('writes a grid every --sample-every steps', () => {
    const r = cli('train', '--data', 'halves.npy', '--model', 'unet', '--channels', '4', '--steps', '20', '--sample-every', '10', '--steps-per-level', '1', '--out', 'grids');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/step 10: wrote .*samples-10\.png/);
    expect(fs.readdirSync(path.join(dir, 'grids')).filter((f) => f.startsWith('samples')).sort()).toEqual(['samples-10.png', 'samples.npy', 'samples.png']);
    const toy = cli('train', '--sample-every', '10', '--steps', '20', '--out', 'toygrids');
    expect(toy.status).not.toBe(0);
    expect(toy.stderr).toMatch(/--sample-every draws grids of images, and toy:mixture holds 2-D points/);
    expect(fs.existsSync(path.join(dir, 'toygrids'))).toBe(false);
  });

  it('refuses --channels without the U-Net and the U-Net without images', () => {
    const c = cli('train', '--channels', '8', '--steps', '1');
    expect(c.status).not.toBe(0);
    expect(c.stderr).toMatch(/--channels is the U-Net's base width; --model mlp has none/);
    const u = cli('train', '--model', 'unet', '--steps', '1');
    expect(u.status).not.toBe(0);
    expect(u.stderr).toMatch(/--model unet takes images, and toy:mixture holds 2-D points/);
  });
});

describe('the U-Net on MNIST', () => {
  it('trains a small one whose loss falls at every noise level', () => {
    const r = spawnSync(process.execPath, [bin, 'train', '--data', 'mnist', '--channels', '8', '--steps', '300', '--batch-size', '16', '--steps-per-level', '1', '--out', 'mnist8'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const reports = fs.readFileSync(path.join(dir, 'mnist8', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { level_loss: (number | null)[] });
    const mean = (rows: typeof reports, level: number) => {
      const v = rows.map((x) => x.level_loss[level]).filter((x): x is number => x !== null);
      return v.reduce((a, b) => a + b, 0) / v.length;
    };
    // the last five reports against the first five: 0.14–0.18 at σ_1 and 0.95 at σ_L over seeds 0–2
    for (let level = 0; level < 10; level++) {
      expect(mean(reports.slice(-5), level) / mean(reports.slice(0, 5), level)).toBeLessThan(0.98);
    }
  });
});

describe('inpainting', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8' });

  it('keeps the known pixels exactly and fills in the others', async () => {
    const model = small();
    await model.train({ data: halves(64), rows: 64, dim: 64 }, { steps: 10, batchSize: 8 });
    const image = halves(1);
    const mask = new Float32Array(64).map((_, i) => (i % 8 < 4 ? 1 : 0));
    const out = await model.inpaint({ image, mask, n: 3, stepsPerLevel: 2, seed: 1 });
    expect(out.length).toBe(3 * 64);
    let filled = 0;
    for (let k = 0; k < 3; k++)
      for (let i = 0; i < 64; i++) {
        if (mask[i]) expect(out[k * 64 + i]).toBe(image[i]);
        else filled += out[k * 64 + i] !== image[i] ? 1 : 0;
      }
    expect(filled).toBeGreaterThan(90);
    await expect(model.inpaint({ image, mask: new Float32Array(10), n: 1 })).rejects.toThrow(/an image and a mask of 64 values each/);
    await expect(model.inpaint({ image, mask: new Float32Array(64).fill(0.5), n: 1 })).rejects.toThrow(/1 \(known\) and 0 \(to fill\) only/);
  });

  it('writes the image, its known part and the completions as one grid, and refuses what it cannot do', () => {
    const ck = path.join('run', 'checkpoint.safetensors');
    const r = cli('inpaint', '--checkpoint', ck, '--image', 'halves.npy', '--index', '3', '--mask-half', 'right', '--n', '4', '--steps-per-level', '1', '--no-graphs', '--out', 'fill.png');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/inpainted 4 completions/);
    // 6 images: 3 columns of 8·30 px with gaps of 15
    expect(PNG.sync.read(fs.readFileSync(path.join(dir, 'fill.png'))).width).toBe(80 + 3 * 240 + 2 * 15);
    const refused = (args: string[], message: RegExp) => {
      const x = cli('inpaint', '--checkpoint', ck, ...args);
      expect(x.status).not.toBe(0);
      expect(x.stderr).toMatch(message);
    };
    refused(['--image', 'halves.npy'], /--mask PNG or as --mask-half/);
    refused(['--image', 'halves.npy', '--mask-half', 'top', '--mask', 'm.png'], /one of them/);
    refused(['--image', 'halves.npy', '--index', '64', '--mask-half', 'top'], /--index 64: halves\.npy holds 64 images \(0 to 63\)/);
    refused(['--image', 'halves.npy', '--mask-half', 'top', '--out', 'fill.jpg'], /\.png/);
  });
});
