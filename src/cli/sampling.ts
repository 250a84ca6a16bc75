// The sampling flags shared by `train` (the checkpoint's defaults) and `sample` (this draw).
import type { SamplerKind, SamplingDefaults } from '../index.js';
import { stepLrForLevels } from '../schedule.js';

export interface SamplingFlags {
  sampler?: SamplerKind;
  stepsPerLevel?: number;
  stepLr?: number | 'auto';
  snr?: number;
  denoise?: boolean;
}

/** The settings with the flags applied; `stepLrNote` says how `--step-lr auto` chose ε. */
export function applySamplingFlags(
  base: SamplingDefaults,
  sigmas: readonly number[],
  flags: SamplingFlags,
): { sampling: SamplingDefaults; stepLrNote: string | null } {
  const sampling = { ...base };
  if (flags.sampler !== undefined) sampling.sampler = flags.sampler;
  if (flags.stepsPerLevel !== undefined) sampling.stepsPerLevel = flags.stepsPerLevel;
  if (flags.snr !== undefined) sampling.snr = flags.snr;
  if (flags.denoise !== undefined) sampling.denoise = flags.denoise;
  if (flags.stepLr === 'auto') {
    sampling.stepLr = stepLrForLevels(sigmas, sampling.stepsPerLevel).stepLr;
    return { sampling, stepLrNote: `ε for T = ${sampling.stepsPerLevel} steps per level (NCSNv2 Technique 4)` };
  }
  if (flags.stepLr !== undefined) sampling.stepLr = flags.stepLr;
  return { sampling, stepLrNote: null };
}

/** The sampler in a few words, for picture titles. */
export function samplerName(s: SamplingDefaults): string {
  return s.sampler === 'pc' ? `predictor-corrector (snr ${s.snr})` : 'annealed Langevin';
}

/** The sampler with its settings, for the log. */
export function describeSampler(s: SamplingDefaults): string {
  const settings = s.sampler === 'pc' ? `T = ${s.stepsPerLevel} corrector steps per level` : `T = ${s.stepsPerLevel}, ε = ${Number(s.stepLr.toPrecision(3))}`;
  return `${samplerName(s)}, ${settings}${s.denoise ? ', denoised' : ''}`;
}
