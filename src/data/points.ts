// What every data source yields: n points of dimension d, row-major float32.
import { NcsnError } from '../errors.js';

export interface Points {
  data: Float32Array;
  rows: number;
  cols: number;
  /** The shape of one point as stored, e.g. [28, 28] for images; its product is cols. */
  shape: number[];
}

/** A problem with input data, reported to the user as one line. */
export class DataError extends NcsnError {
  override name = 'DataError';
  readonly code = 'ERR_NCSN_DATA';
}
