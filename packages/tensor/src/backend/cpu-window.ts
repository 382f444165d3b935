/**
 * im2col / col2im for the fast CPU backend, as run-length TypeScript loops (no WebAssembly: see below).
 *
 * Both are pure data movement (about one load and one store per column entry, no arithmetic
 * worth vectorising), so they are bound by memory bandwidth, not by instructions; moving them to
 * WebAssembly would add a copy of the image into wasm memory and of the columns back out, which
 * costs as much as the loop itself. What makes them fast in plain TypeScript is the loop order:
 * for each (channel, kernel row i, kernel column j, output row oh) the output row is one
 * contiguous run of `outW` columns, and the input positions it reads are an arithmetic sequence
 * on one input row. So the bounds test for the padding is done once per run (the valid range
 * [owLo, owHi) is computed, the two ends are filled with `padValue`), and the inner loop is a
 * branch-free strided copy (or add, for col2im) that V8 compiles to a few instructions.
 *
 * Layout (see WindowSpec in backend.ts): x [batch, channels, height, width] -> cols
 * [batch, channels*kh*kw, outH*outW], row index c*kh*kw + i*kw + j.
 */

import type { TypedArray, WindowSpec } from './backend';

/** The output columns ow in [lo, hi) read inside the image for kernel column offset iw0. */
function validRange(iw0: number, strideW: number, width: number, outW: number): [number, number] {
  // need 0 <= iw0 + ow*strideW <= width-1
  const lo = iw0 >= 0 ? 0 : Math.ceil(-iw0 / strideW);
  const hi = Math.min(outW, iw0 > width - 1 ? 0 : Math.floor((width - 1 - iw0) / strideW) + 1);
  return [Math.min(lo, outW), Math.max(hi, Math.min(lo, outW))];
}

/**
 * The one window walk both directions share: for every (batch, channel, kernel row i, kernel column
 * j, output row oh), `visit(col, pixel, lo, hi)` with `col` the first column entry of that output
 * row, `pixel` the input position its column ow = 0 would read (so ow reads pixel + ow*strideW; it
 * can be negative, left of a padded row's start) and [lo, hi) the columns that read inside the image;
 * `pixel` is null when the whole input row is padding.
 * The visitors hold the inner loops, so each stays a branch-free strided copy or add.
 */
function forEachWindowRun(s: WindowSpec, visit: (col: number, pixel: number | null, lo: number, hi: number) => void): void {
  const { batch, channels, height, width, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW, outH, outW } = s;
  const L = outH * outW;
  const rows = channels * kh * kw;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      const plane = (b * channels + c) * height * width;
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const iw0 = j * dilationW - padW;
          const [lo, hi] = validRange(iw0, strideW, width, outW);
          let col = (b * rows + (c * kh + i) * kw + j) * L;
          for (let oh = 0; oh < outH; oh++, col += outW) {
            const ih = oh * strideH - padH + i * dilationH;
            visit(col, ih < 0 || ih >= height ? null : plane + ih * width + iw0, lo, hi);
          }
        }
      }
    }
  }
}

/**
 * Sliding windows to columns. Works for Float32Array and Float64Array (returns the same kind),
 * into `out` when given (every entry is written).
 */
export function im2colFast<A extends TypedArray>(x: A, s: WindowSpec, out?: A): A {
  const { channels, kh, kw, strideW, outH, outW, padValue } = s;
  const cols = out ?? new (x.constructor as new (n: number) => A)(s.batch * channels * kh * kw * outH * outW);
  forEachWindowRun(s, (dst, src, lo, hi) => {
    if (src === null) {
      cols.fill(padValue, dst, dst + outW);
      return;
    }
    if (lo > 0) cols.fill(padValue, dst, dst + lo);
    if (hi < outW) cols.fill(padValue, dst + hi, dst + outW);
    if (strideW === 1) {
      for (let ow = lo; ow < hi; ow++) cols[dst + ow] = x[src + ow]!;
    } else {
      for (let ow = lo; ow < hi; ow++) cols[dst + ow] = x[src + ow * strideW]!;
    }
  });
  return cols;
}

/** The adjoint of im2colFast: every column entry is added to the pixel it was read from. */
export function col2imFast<A extends TypedArray>(cols: A, s: WindowSpec, out?: A): A {
  const { strideW } = s;
  // accumulates, so a recycled `out` is zeroed first
  const x: A = out ? (out.fill(0) as A) : new (cols.constructor as new (n: number) => A)(s.batch * s.channels * s.height * s.width);
  forEachWindowRun(s, (src, dst, lo, hi) => {
    if (dst === null) return;
    if (strideW === 1) {
      for (let ow = lo; ow < hi; ow++) x[dst + ow] += cols[src + ow]!;
    } else {
      for (let ow = lo; ow < hi; ow++) x[dst + ow * strideW] += cols[src + ow]!;
    }
  });
  return x;
}
