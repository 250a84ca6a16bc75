// The part of gifenc 1.0 (which ships no types) that the animation uses, after its README and source.
declare module 'gifenc' {
  /** Colours as [r, g, b], 0–255. */
  export type Palette = number[][];

  /** At most maxColors colours that represent the pixels (RGBA, four bytes each) well. */
  export function quantize(rgba: Uint8Array, maxColors: number): Palette;

  export interface FrameOptions {
    /** Required on the first frame, where it becomes the global colour table. */
    palette?: Palette;
    /** Milliseconds, stored in hundredths of a second. */
    delay?: number;
    /** On the first frame: 0 loops forever, −1 plays once, n > 0 repeats n times. */
    repeat?: number;
    transparent?: boolean;
    transparentIndex?: number;
    /** The GIF disposal method; without it a transparent frame gets 2 (clear to the background). */
    dispose?: number;
  }

  export interface Encoder {
    writeFrame(index: Uint8Array, width: number, height: number, options?: FrameOptions): void;
    /** Writes the trailer. */
    finish(): void;
    /** The bytes written so far, without a copy. */
    bytesView(): Uint8Array;
  }

  export function GIFEncoder(): Encoder;
}
