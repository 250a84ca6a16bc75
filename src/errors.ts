// The errors the library throws for what its caller can fix. Each has a stable `code` to branch on;
// the messages name the problem for a person and may be reworded.

export abstract class NcsnError extends Error {
  abstract readonly code: string;
}

/** The native addon cannot be loaded: no prebuilt binary fits this machine and none could be built. */
export class NativeLoadError extends NcsnError {
  override name = 'NativeLoadError';
  readonly code = 'ERR_NCSN_NATIVE_LOAD';
}
