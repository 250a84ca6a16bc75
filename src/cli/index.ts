// The ncsn-cuda command line: train, sample, inpaint, bench, plot, info.
import { Command, Option } from 'commander';
import { createRequire } from 'node:module';

import { info, MODEL_DEFAULTS, SAMPLING_DEFAULTS } from '../index.js';
import { TOY_NAMES } from '../data/index.js';
import {
  positiveInt,
  nonNegativeInt,
  positiveNumber,
  positiveNumberOrAuto,
  levelCountOrAuto,
  stepsPerLevel,
  unitInterval,
  device,
} from './options.js';
import { train } from './train.js';
import { sample } from './sample.js';
import { inpaint } from './inpaint.js';
import { bench } from './bench.js';
import { plotCommand } from './plot.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
const DEVICE_HELP = 'compute device: auto (the first usable GPU, else the CPU), cpu, cuda or cuda:N';
const SAMPLER_HELP = 'sampler: ald (annealed Langevin dynamics) or pc (reverse-diffusion predictor with a Langevin corrector)';
const STEP_LR_HELP =
  'ald step size ε, with α_i = ε σ_i²/σ_L² and x ← x + α_i/2·s + √α_i·z, or auto: from T and the noise levels, NCSNv2 Technique 4';
// GPU arithmetic: a backend option, never part of what a checkpoint is
const precisionOption = () =>
  new Option('--precision <p>', 'GPU matrix products and convolutions: fp32, or on the tensor cores tf32, or bf16 (the U-Net\'s convolutions)')
    .choices(['fp32', 'tf32', 'bf16'])
    .default('fp32');
// GPU launches, also a backend option: off for debugging and for profilers that do not follow graphs
const graphsOption = () =>
  new Option('--no-graphs', 'on a GPU, launch every op of a step instead of replaying the step recorded once as a CUDA graph (the same results; for debugging, and profilers that do not follow graphs)');
const SNR_HELP = 'pc corrector signal-to-noise ratio r: steps e = 2(r‖z‖/‖s‖)²';

function program(): Command {
  const p = new Command('ncsn-cuda')
    .description('Noise Conditional Score Networks: train by denoising score matching, sample by annealed Langevin dynamics or predictor-corrector')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)');

  p.command('train')
    .description('train a score network and write DIR/checkpoint.safetensors, DIR/log.jsonl and DIR/samples.png')
    .option('--data <spec>', `training data: ${TOY_NAMES.map((t) => `toy:${t}`).join(', ')}; mnist or mnist:test (MNIST's 60,000 training or 10,000 test digits); an IDX file of images (plain or .gz), a .png or a folder of .png images; or a .npy or .csv file of points (an .npy of shape (n, H, W) or (n, C, H, W) holds images) (default: toy:mixture)`)
    .addOption(new Option('--model <kind>', "score model: mlp (W1's noise-conditional MLP), unet (W2's conditional U-Net, for images), or exact:mixture (the exact score of toy:mixture, no training) (default: unet for MNIST, IDX and PNG images, else mlp)").choices(['mlp', 'unet', 'exact:mixture']))
    .option('--channels <C>', `the U-Net's base width C (default: ${MODEL_DEFAULTS.channels})`, positiveInt)
    .option('--steps <n>', 'training steps, the run\'s total (default: per dataset; 5,000 for toy:mixture and files, 40,000 for the other toys, 80,000 for toy:rings)', positiveInt)
    .option('--batch-size <n>', `samples per step (default: ${MODEL_DEFAULTS.batchSize})`, positiveInt)
    .option('--lr <x>', `Adam learning rate (default: ${MODEL_DEFAULTS.lr})`, positiveNumber)
    .option('--sigma-begin <x>', 'largest noise level σ_1, or auto: the largest distance between training points, NCSNv2 Technique 1 (default: per dataset; 20 for toy:mixture; auto for files)', positiveNumberOrAuto)
    .option('--sigma-end <x>', 'smallest noise level σ_L (default: per dataset; 1 for toy:mixture; σ_1/100 for files)', positiveNumber)
    .option('--levels <n>', 'number of geometric noise levels L, or auto: enough for neighbouring levels to overlap, NCSNv2 Technique 2 (default: per dataset; 10)', levelCountOrAuto)
    .addOption(new Option('--sampler <kind>', `${SAMPLER_HELP}, for samples.png and the checkpoint's default (default: ${SAMPLING_DEFAULTS.sampler})`).choices(['ald', 'pc']))
    .option('--steps-per-level <n>', `Langevin steps T (pc: corrector steps) at each level when sampling (default: ${SAMPLING_DEFAULTS.stepsPerLevel}; 200 for toy:rings)`, stepsPerLevel)
    .option('--step-lr <x>', `${STEP_LR_HELP} (default: 0.1 σ_L²)`, positiveNumberOrAuto)
    .option('--snr <x>', `${SNR_HELP} (default: ${SAMPLING_DEFAULTS.snr})`, positiveNumber)
    .option('--denoise', 'finish sampling with the denoising step x ← x + σ_L² s(x, σ_L) (default: on for images and the toys other than toy:mixture, else off)')
    .option('--no-denoise', 'do not finish sampling with the denoising step')
    .option('--ema <decay>', `decay of the exponential moving average of the weights, used for sampling (default: ${MODEL_DEFAULTS.emaDecay})`, unitInterval)
    .option('--seed <n>', `seed of every random draw: data, weights, batches, noise (default: ${MODEL_DEFAULTS.seed})`, nonNegativeInt)
    .option('--device <device>', DEVICE_HELP, device, 'auto')
    .addOption(precisionOption())
    .addOption(graphsOption())
    .option('--out <dir>', 'output directory (default: runs/<timestamp>, or DIR when resuming)')
    .option('--resume <dir>', 'continue the run in DIR from DIR/checkpoint.safetensors; --steps is then the run\'s total')
    .option('--overwrite', 'start a new run in an --out directory that holds another run\'s files, deleting those files first (without it, such a directory is refused)')
    .option('--checkpoint-every <n>', 'also write the checkpoint every n steps (default: only at the end)', positiveInt)
    .option('--sample-every <n>', 'images: also write DIR/samples-<step>.png, a grid of 64 samples, every n steps (each takes as long as the final one)', positiveInt)
    .option('--keep <n>', 'keep the n previous checkpoints as checkpoint-<step>.safetensors', nonNegativeInt, 0)
    .action(async (o) => {
      process.exitCode = await train(o);
    });

  p.command('sample')
    .description('draw samples from a checkpoint by annealed Langevin dynamics or the pc sampler; the output format follows the extension')
    .requiredOption('--checkpoint <file>', 'a checkpoint.safetensors written by train')
    .option('--n <n>', 'number of samples', positiveInt, 10000)
    .addOption(new Option('--sampler <kind>', `${SAMPLER_HELP} (default: the checkpoint's, ald)`).choices(['ald', 'pc']))
    .option('--steps-per-level <n>', 'Langevin steps T (pc: corrector steps) at each noise level (default: the checkpoint\'s, 100)', stepsPerLevel)
    .option('--step-lr <x>', `${STEP_LR_HELP} (default: the checkpoint's)`, positiveNumberOrAuto)
    .option('--snr <x>', `${SNR_HELP} (default: the checkpoint's, 0.16)`, positiveNumber)
    .option('--denoise', 'finish with the denoising step x ← x + σ_L² s(x, σ_L) (default: the checkpoint\'s: on for images and the toys other than toy:mixture, else off)')
    .option('--no-denoise', 'do not finish with the denoising step')
    .option('--animate <file.gif>', 'also record the sampling as an animated GIF: the particles for 2-D data, the grid for images')
    .option('--frames <n>', 'about this many frames in the animation', positiveInt, 100)
    .option('--seed <n>', 'seed of the starting points and the Langevin noise', nonNegativeInt, 0)
    .option('--out <file>', 'output file: .npy, .csv or .png (a scatter plot for 2-D data, a grid for images)', 'samples.npy')
    .option('--device <device>', DEVICE_HELP, device, 'auto')
    .addOption(precisionOption())
    .addOption(graphsOption())
    .action(async (o) => {
      process.exitCode = await sample(o);
    });

  p.command('inpaint')
    .description('complete the hidden part of an image from a checkpoint (NCSN\'s inpainting by annealed Langevin) and write the image, its known part and the completions as one grid')
    .requiredOption('--checkpoint <file>', 'a checkpoint.safetensors of a model trained on images')
    .requiredOption('--image <spec>', 'where the image comes from: mnist, mnist:test, an IDX file, a .png or a folder of them, or an .npy of images')
    .option('--index <k>', 'which image of --image, from 0', nonNegativeInt, 0)
    .option('--mask <file.png>', 'the known part as a PNG of the image\'s size: white is known, black is filled in')
    .addOption(new Option('--mask-half <half>', 'the half of the image that is hidden and filled in').choices(['left', 'right', 'top', 'bottom']))
    .option('--n <n>', 'number of completions', positiveInt, 8)
    .option('--steps-per-level <n>', 'Langevin steps T at each noise level (default: the checkpoint\'s, 100)', stepsPerLevel)
    .option('--step-lr <x>', `${STEP_LR_HELP} (default: the checkpoint's)`, positiveNumberOrAuto)
    .option('--seed <n>', 'seed of the starting points and the Langevin noise', nonNegativeInt, 0)
    .option('--out <file.png>', 'the grid', 'inpainting.png')
    .option('--device <device>', DEVICE_HELP, device, 'auto')
    .addOption(precisionOption())
    .addOption(graphsOption())
    .action(async (o) => {
      process.exitCode = await inpaint(o);
    });

  p.command('bench')
    .description('measure a workload of docs/workloads.md and print one JSON line')
    .addOption(new Option('--workload <name>', 'workload: w1 (the toy mixture and the MLP) or w2 (MNIST and the U-Net)').choices(['w1', 'w2']).default('w1'))
    .option('--device <device>', DEVICE_HELP, device, 'auto')
    .option('--repeats <n>', 'timings per figure; the best is reported', positiveInt, 3)
    .addOption(precisionOption())
    .action(async (o) => {
      process.exitCode = await bench(o);
    });

  p.command('plot')
    .description('draw DIR/loss.png (the loss per noise level over the steps) and, for 2-D data, DIR/score.png')
    .argument('<dir>', 'a run directory written by train')
    .option('--level <n>', 'noise level of score.png, 1 (largest σ) to L (default: L, the smallest)', positiveInt)
    .action((dir: string, o: { level?: number }) => {
      process.stdout.write(`${plotCommand(dir, o.level).join('\n')}\n`);
    });

  p.command('info')
    .description('version, compiled backends, threads and devices')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const i = info();
      if (o.json) {
        process.stdout.write(`${JSON.stringify(i)}\n`);
        return;
      }
      const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
      const lines = [
        `ncsn-cuda ${i.version}`,
        `backends: ${i.backends.join(', ')}`,
        `cpu threads: ${i.threads}`,
      ];
      if (i.cuda.runtimeVersion) {
        const v = (n: number) => `${Math.floor(n / 1000)}.${Math.floor((n % 1000) / 10)}`;
        lines.push(`cuda runtime: ${v(i.cuda.runtimeVersion)}, driver: ${i.cuda.driverVersion ? v(i.cuda.driverVersion) : 'none'}`);
        lines.push(`cuda architectures: ${i.cuda.architectures}`);
      }
      for (const d of i.devices) {
        lines.push(
          `gpu cuda:${d.index}: ${d.name}, compute ${d.computeCapability}, ${gib(d.memoryBytes)}, ${d.multiprocessors} SMs${d.usable ? '' : ` (unusable: ${d.problem})`}`,
        );
      }
      if (i.devices.length === 0) lines.push(`gpus: none (${i.cuda.problem})`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
  return p;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    // Bad input is reported in one line; a stack trace only when asked for.
    const err = e as Error;
    process.stderr.write(`ncsn-cuda: ${err.message}\n`);
    if (process.env.NCSN_DEBUG) process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  }
}
