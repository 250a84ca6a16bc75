// Noise levels: NCSN's geometric sequence σ_1 > … > σ_L.

export function geometricSigmas(sigmaBegin: number, sigmaEnd: number, levels: number): number[] {
  if (!(Number.isFinite(sigmaBegin) && Number.isFinite(sigmaEnd) && sigmaEnd > 0 && sigmaBegin > sigmaEnd)) {
    throw new RangeError(`noise levels need sigma-begin > sigma-end > 0 (got ${sigmaBegin} and ${sigmaEnd})`);
  }
  if (!Number.isInteger(levels) || levels < 2) {
    throw new RangeError(`the number of noise levels must be an integer ≥ 2 (got ${levels})`);
  }
  const a = Math.log(sigmaBegin);
  const b = Math.log(sigmaEnd);
  return Array.from({ length: levels }, (_, i) => Math.exp(a + ((b - a) * i) / (levels - 1)));
}

/** The Langevin step of level i in the paper's convention: α_i = ε σ_i² / σ_L². */
export function langevinStep(sigmas: readonly number[], i: number, stepLr: number): number {
  if (sigmas.length === 1) return stepLr;
  const r = sigmas[i] / sigmas[sigmas.length - 1];
  return stepLr * r * r;
}
