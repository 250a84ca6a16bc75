// The largest sizes a model accepts: the native core's Limits (native/core/limits.h), checked here
// too so that a crafted checkpoint or flag is refused before anything is allocated.
export const LIMITS = {
  dataDim: 2 ** 24,
  width: 65_536,
  depth: 1_000,
  /** The U-Net's base width C. */
  unetChannels: 1_024,
  levels: 10_000,
  /** Parameters, and values in one batch, sample or score call. */
  elements: 2 ** 31 - 1,
  stepsPerLevel: 1_000_000,
} as const;
