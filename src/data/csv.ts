// Comma-separated points: one per line, an optional header line, blank lines ignored.
import { DataError, type Points } from './points.js';

export function parseCsv(text: string, source: string): Points {
  const lines = text.split(/\r?\n/);
  const values: number[] = [];
  let cols = 0;
  let rows = 0;
  let first = true;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const fields = line.split(',').map((f) => f.trim());
    const numbers = fields.map((f) => (f === '' ? NaN : Number(f)));
    if (first) {
      first = false;
      // A header has no numbers at all; a first line with some is data, and its other fields are
      // reported below with their line and column rather than taken for a header.
      if (numbers.every((v, j) => Number.isNaN(v) && !/^[-+]?(nan|inf(inity)?)$/i.test(fields[j]))) {
        cols = fields.length;
        continue;
      }
    }
    if (cols === 0) cols = fields.length;
    if (fields.length !== cols) {
      throw new DataError(`${source}:${i + 1}: expected ${cols} fields but found ${fields.length}`);
    }
    numbers.forEach((v, j) => {
      if (!Number.isFinite(v)) {
        throw new DataError(`${source}:${i + 1}: column ${j + 1} ('${fields[j]}') is not a finite number`);
      }
      if (!Number.isFinite(Math.fround(v))) {
        throw new DataError(`${source}:${i + 1}: column ${j + 1} ('${fields[j]}') is beyond float32's range (±3.4e38)`);
      }
      values.push(v);
    });
    rows++;
  }
  if (rows === 0) throw new DataError(`${source}: no data rows`);
  return { data: Float32Array.from(values), rows, cols, shape: [cols] };
}

/** Rows per piece of csvPieces: a few hundred kilobytes of text. */
const CSV_PIECE_ROWS = 8192;

/** A CSV file of `rows` points as pieces of text in order, so that no one string holds a large file. */
export function* csvPieces(data: Float32Array, rows: number, cols: number): Generator<string> {
  yield `${Array.from({ length: cols }, (_, j) => `x${j}`).join(',')}\n`;
  for (let first = 0; first < rows; first += CSV_PIECE_ROWS) {
    const lines: string[] = [];
    for (let i = first; i < Math.min(rows, first + CSV_PIECE_ROWS); i++) lines.push(Array.from(data.subarray(i * cols, (i + 1) * cols)).join(','));
    yield `${lines.join('\n')}\n`;
  }
}
