/**
 * Direct convolution on the WebAssembly SIMD kernels: forward, input gradient and filter
 * gradient, in bands of output rows so that scratch memory is bounded whatever the image size.
 *
 * im2col + matmul writes every input pixel kh*kw times into a column matrix (for a 3x3 filter,
 * nine copies of the image: 1 GiB for a batch of four 128-channel 240x240 images) and then
 * reads it back; for few channels (3 -> 16) copying the columns costs as much as multiplying
 * them. Here the image is read where it lies, through a table of tap offsets (conv-kernels.ts):
 *
 *   output rows      input band in WebAssembly memory (one per group, per band)
 *   oy0 ......       +--------------------------------------------+  <- rows oy0*s - pad ...
 *   |  R rows  |     | channel 0, zero-padded, width Wq           |     (R + (kh-1)d/s rows)
 *   oy0+R-1 ..       | channel 1 ...                              |
 *                    +--------------------------------------------+
 *   one task = one output row x 4 output channels; the kernel walks the row 8 pixels at a time:
 *     acc[4 ch][8 px] = bias;  for tap (c,i,j): acc += w[ch][tap] * band[row + off[tap] .. +8]
 *
 * 1. Plan: R output rows per band, so that the band of input (with its halo of (kh-1)*dilation
 *    rows) plus the band of output fit in BAND_BYTES (about L2); the last band is shorter.
 * 2. For each group, batch item and band: copy the input rows into the band, zero-padded, each
 *    row Wq = outW rounded up to 8 plus the filter's reach wide, so that every tile's reads stay
 *    inside its own row and padding needs no test in the kernel. A stride s is handled here too:
 *    each channel is split into s x s phase planes (rows y = s*k + py, columns x = s*k + px), in
 *    which the pixels a tap reads for consecutive outputs are again consecutive.
 * 3. Run the tasks (rows x blocks of 4 output channels) on all threads (pool.ts), then copy the
 *    output rows out.
 * The input gradient is the same forward pass over dy with the filter flipped and transposed
 * (stride 1: dx = conv(dy, flip(w)^T, padding (k-1)*dilation - padding)). The filter gradient
 * copies the same bands plus the matching rows of dy, and reduces over pixels (conv_dw).
 */

import type { ConvSpec } from '../backend';
import { CONV_OC, CONV_PX } from './conv-kernels';
import type { KernelExports } from './kernels';
import { OP, type Pool } from './pool';

/** What the convolution drivers need from the kernels object (index.ts). */
export interface ConvHost {
  readonly ex: KernelExports;
  readonly pool: Pool;
  readonly threads: number;
  readonly parallelMinFlops: number;
  /** input + output bytes of one band (default BAND_BYTES) */
  readonly bandBytes?: number;
  /** The memory as floats, grown to at least `bytes`; a clear error naming `what()` if it cannot be. */
  heap(bytes: number, what: () => string): Float32Array;
}

/**
 * Taps per pass over an output row: the tile loop reads 2 x 16 bytes from kh rows of every channel
 * for each tap; 16 channels of a 3x3 filter (144 taps, 48 input rows) keep those rows in L1, where
 * all 1152 taps of 128 channels would not (measured on 128 -> 128 channels at 120x120, one thread,
 * CPU time on the loaded 2-core machine: 28 GFLOP/s in one pass, 41 in chunks of 144).
 */
const TAP_CHUNK = 144;

/** Input + output bytes of one band: about the L2 cache, so a band's tasks share their rows there. */
const BAND_BYTES = 1 << 20;

/** A convolution in the drivers' terms: per-group channel counts, one input and output geometry. */
interface Geometry {
  batch: number;
  groups: number;
  cg: number; // input channels per group
  og: number; // output channels per group
  H: number; W: number;
  outH: number; outW: number;
  kh: number; kw: number;
  sH: number; sW: number;
  dH: number; dW: number;
  pH: number; pW: number; // may be negative (the input gradient crops)
}

interface Plan {
  K: number; // taps per output channel: cg*kh*kw
  nOB: number; // blocks of CONV_OC output channels
  outWp: number; // output row padded to a whole number of tiles
  Wq: number; // band row width
  R: number; // output rows per band
  Rb: number; // band rows per phase plane: R + the filter's reach
  planeFloats: number; // one phase plane of one channel
  bandFloats: number; // the whole input band
}

/** n rounded up to a multiple of 16, in float arithmetic: `(n + 15) & ~15` breaks past 2 GiB (32-bit signed) */
export const align16 = (n: number): number => Math.ceil(n / 16) * 16;

function geometryOf(spec: ConvSpec): Geometry {
  return {
    batch: spec.batch, groups: spec.groups, cg: spec.channels / spec.groups, og: spec.outChannels / spec.groups,
    H: spec.height, W: spec.width, outH: spec.outH, outW: spec.outW, kh: spec.kh, kw: spec.kw,
    sH: spec.strideH, sW: spec.strideW, dH: spec.dilationH, dW: spec.dilationW, pH: spec.padH, pW: spec.padW,
  };
}

/** Band plan: `outChannelsPerRow` rows of output (or dy) go with each output row of the band. */
function plan(g: Geometry, outChannelsPerRow: number, bandBytes: number): Plan {
  const K = g.cg * g.kh * g.kw;
  const nOB = Math.ceil(g.og / CONV_OC);
  const outWp = Math.ceil(g.outW / CONV_PX) * CONV_PX;
  const Wq = outWp + Math.floor(((g.kw - 1) * g.dW) / g.sW);
  const reach = Math.floor(((g.kh - 1) * g.dH) / g.sH);
  const inRow = g.cg * g.sH * g.sW * Wq * 4, outRow = outChannelsPerRow * outWp * 4;
  const R = Math.max(1, Math.min(g.outH, Math.floor(bandBytes / (inRow + outRow))));
  const Rb = R + reach;
  const planeFloats = Rb * Wq;
  return { K, nOB, outWp, Wq, R, Rb, planeFloats, bandFloats: g.cg * g.sH * g.sW * planeFloats };
}

/** The byte offset, from a pixel's place in the band, of each tap (c, i, j) in filter order. */
function writeOffsets(heapI32: Int32Array, at: number, g: Geometry, p: Plan, count: number): void {
  let t = at >>> 2;
  for (let c = 0; c < g.cg; c++) {
    for (let i = 0; i < g.kh; i++) {
      for (let j = 0; j < g.kw; j++) {
        const plane = (c * g.sH + ((i * g.dH) % g.sH)) * g.sW + ((j * g.dW) % g.sW);
        heapI32[t++] = ((plane * p.Rb + Math.floor((i * g.dH) / g.sH)) * p.Wq + Math.floor((j * g.dW) / g.sW)) * 4;
      }
    }
  }
  for (let k = g.cg * g.kh * g.kw; k < count; k++) heapI32[t++] = 0; // padding taps read pixel 0
}

/**
 * `rows` rows of `n` floats from `from` (starting at `fromAt`, a row every `fromRow` floats) to `to`
 * (at `toAt`, every `toRow`): one copy when both sides are contiguous (no padding columns).
 */
function copyRows(to: Float32Array, toAt: number, toRow: number, from: Float32Array, fromAt: number, fromRow: number, rows: number, n: number): void {
  if (toRow === n && fromRow === n) to.set(from.subarray(fromAt, fromAt + rows * n), toAt);
  else for (let r = 0; r < rows; r++) to.set(from.subarray(fromAt + r * fromRow, fromAt + r * fromRow + n), toAt + r * toRow);
}

/** Floats of staging a band copy needs (`copyBand`'s `stage`): the source rows of every channel of one band. */
const stageFloats = (g: Geometry, p: Plan): number => g.cg * p.Rb * g.W;

/**
 * Copies rows oy0 .. oy0+rows-1 of the band (each phase plane's rows) of group `grp` of batch item
 * `b` of x into the heap at float index `dst`, zero where the padded image is outside x.
 * Stride 1 (one plane per channel, the common case): the source rows of each channel are one
 * contiguous run of x, copied with one `set` to `stage` (float index, `stageFloats` long), and
 * the pad_rows kernel lays them out with their zero margins; a row-by-row copy from JavaScript
 * costs four calls a row (a view, a set, two fills), which measured 8-12 ms of a 100-ms window
 * of the bundled model (3072 rows per 16-channel 192-px convolution).
 */
function copyBand(ex: KernelExports, heap: Float32Array, dst: number, x: Float32Array, g: Geometry, p: Plan, b: number, grp: number, oy0: number, rows: number, stage: number): void {
  const { H, W, sH, sW, pH, pW } = g;
  const Wq = p.Wq;
  if (sH === 1 && sW === 1) {
    const y0 = oy0 - pH; // band row r reads image row y0 + r, band column xr image column xr - pW
    const rA = Math.min(rows, Math.max(0, -y0)), rB = Math.max(rA, Math.min(rows, H - y0)); // band rows [rA, rB) lie inside the image
    const lo = Math.min(Wq, Math.max(0, pW)), hi = Math.max(lo, Math.min(Wq, W + pW)); // and band columns [lo, hi)
    const n = rB - rA;
    for (let c = 0; c < g.cg; c++) {
      const from = ((b * g.groups + grp) * g.cg + c) * H * W + (y0 + rA) * W, plane = dst + c * p.planeFloats;
      if (n > 0) heap.set(x.subarray(from, from + n * W), stage + c * n * W);
      heap.fill(0, plane, plane + rA * Wq); // rows above the image
      heap.fill(0, plane + rB * Wq, plane + rows * Wq); // rows below it
    }
    if (n > 0) ex.pad_rows((stage + lo - pW) * 4, (dst + rA * Wq) * 4, g.cg, n, W * 4, Wq * 4, n * W * 4, p.planeFloats * 4, lo * 4, (hi - lo) * 4, (Wq - hi) * 4);
    return;
  }
  for (let c = 0; c < g.cg; c++) {
    const channel = ((b * g.groups + grp) * g.cg + c) * H * W;
    for (let py = 0; py < sH; py++) {
      for (let px = 0; px < sW; px++) {
        const planeDst = dst + ((c * sH + py) * sW + px) * p.planeFloats;
        // the band columns xr whose source column xr*sW + px - pW lies in [0, W)
        const lo = Math.min(Wq, Math.max(0, Math.ceil((pW - px) / sW)));
        const hi = Math.max(lo, Math.min(Wq, Math.floor((W - 1 + pW - px) / sW) + 1));
        for (let yr = 0; yr < rows; yr++) {
          const rowDst = planeDst + yr * Wq;
          const yy = (oy0 + yr) * sH + py - pH;
          if (yy < 0 || yy >= H || lo === hi) { heap.fill(0, rowDst, rowDst + Wq); continue; }
          if (lo > 0) heap.fill(0, rowDst, rowDst + lo);
          if (hi < Wq) heap.fill(0, rowDst + hi, rowDst + Wq);
          const src = channel + yy * W + px - pW;
          if (sW === 1) heap.set(x.subarray(src + lo, src + hi), rowDst + lo);
          else for (let xr = lo; xr < hi; xr++) heap[rowDst + xr] = x[src + xr * sW]!;
        }
      }
    }
  }
}

/**
 * out = conv(x, w) + bias for geometry `g`; w is [groups*og, cg, kh, kw] (PyTorch's layout).
 * `describe` names the call in an out-of-memory error.
 */
function forward(host: ConvHost, x: Float32Array, w: Float32Array, bias: Float32Array | null, g: Geometry, out: Float32Array, describe: () => string): Float32Array {
  const p = plan(g, g.og, host.bandBytes ?? BAND_BYTES);
  const { K, nOB, outWp, Wq, R } = p;
  const O = g.groups * g.og;
  // memory plan (bytes): tap offsets, weight panels, biases, input band, output band
  const offAt = 64;
  const wAt = align16(offAt + K * 4);
  const bAt = align16(wAt + nOB * K * CONV_OC * 4);
  const xAt = align16(bAt + nOB * CONV_OC * 4);
  const oAt = align16(xAt + p.bandFloats * 4 + 64);
  const stageAt = align16(oAt + nOB * CONV_OC * R * outWp * 4);
  const heap = host.heap(stageAt + stageFloats(g, p) * 4, describe);
  const heapI32 = new Int32Array(heap.buffer, 0, heap.length);
  writeOffsets(heapI32, offAt, g, p, K);
  const ldo = R * outWp * 4;
  for (let grp = 0; grp < g.groups; grp++) {
    // weight panels: [block][tap][4 channels], zero for channels past og
    for (let ob = 0; ob < nOB; ob++) {
      for (let r = 0; r < CONV_OC; r++) {
        const o = ob * CONV_OC + r;
        const panel = (wAt >>> 2) + ob * K * CONV_OC + r;
        const src = (grp * g.og + o) * K;
        for (let k = 0; k < K; k++) heap[panel + k * CONV_OC] = o < g.og ? w[src + k]! : 0;
        heap[(bAt >>> 2) + ob * CONV_OC + r] = o < g.og && bias ? bias[grp * g.og + o]! : 0;
      }
    }
    for (let b = 0; b < g.batch; b++) {
      for (let oy0 = 0; oy0 < g.outH; oy0 += R) {
        const rows = Math.min(R, g.outH - oy0);
        copyBand(host.ex, heap, xAt >>> 2, x, g, p, b, grp, oy0, rows + (p.Rb - R), stageAt >>> 2);
        const parallel = host.threads > 1 && 2 * rows * g.outW * g.og * K >= host.parallelMinFlops;
        host.pool.run(OP.CONV, [xAt, offAt, K, wAt, K * CONV_OC * 4, bAt, oAt, ldo, outWp / CONV_PX, Wq * 4, outWp * 4, nOB, TAP_CHUNK], rows * nOB, parallel);
        for (let o = 0; o < g.og; o++) {
          copyRows(out, ((b * O + grp * g.og + o) * g.outH + oy0) * g.outW, g.outW, heap, (oAt >>> 2) + o * R * outWp, outWp, rows, g.outW);
        }
      }
    }
  }
  return out;
}

const shapeOf = (s: ConvSpec): string =>
  `x [${s.batch}, ${s.channels}, ${s.height}, ${s.width}], weight [${s.outChannels}, ${s.channels / s.groups}, ${s.kh}, ${s.kw}]` +
  ` (stride ${s.strideH},${s.strideW}, padding ${s.padH},${s.padW}, dilation ${s.dilationH},${s.dilationW}, groups ${s.groups})`;

/** A one-line error when an operand is shorter than its spec says (a kernel must never read past it). */
function checkLengths(op: string, spec: ConvSpec, operands: [string, Float32Array | null, number][]): void {
  for (const [name, a, want] of operands) {
    if (a && a.length < want) throw new RangeError(`${op}: ${name} has ${a.length} values, ${shapeOf(spec)} needs ${want}`);
  }
}

const inputSize = (s: ConvSpec): number => s.batch * s.channels * s.height * s.width;
const outputSize = (s: ConvSpec): number => s.batch * s.outChannels * s.outH * s.outW;
const weightSize = (s: ConvSpec): number => (s.outChannels * s.channels * s.kh * s.kw) / s.groups;

/** out [batch, outChannels, outH, outW] = conv(x, weight) + bias, any stride, padding, dilation, groups. */
export function conv2dForward(host: ConvHost, x: Float32Array, w: Float32Array, bias: Float32Array | null, spec: ConvSpec, out?: Float32Array): Float32Array {
  checkLengths('conv2d', spec, [['input', x, inputSize(spec)], ['weight', w, weightSize(spec)], ['bias', bias, spec.outChannels]]);
  const result = out ?? new Float32Array(spec.batch * spec.outChannels * spec.outH * spec.outW);
  return forward(host, x, w, bias, geometryOf(spec), result, () => `conv2d ${shapeOf(spec)}`);
}

/**
 * dx [batch, channels, height, width] from dy; null for strides other than 1 (the op then uses
 * col2im). dx[c, y, x] = sum_{o,i,j} dy[o, y + pad - i*d, x + pad - j*d] w[o, c, i, j]: with
 * i' = kh-1-i that is a stride-1 convolution of dy with w'[c, o, i', j'] = w[o, c, kh-1-i', kw-1-j']
 * and padding d*(kh-1) - pad (negative padding crops).
 */
export function conv2dBackwardInput(host: ConvHost, dy: Float32Array, w: Float32Array, spec: ConvSpec, out?: Float32Array): Float32Array | null {
  if (spec.strideH !== 1 || spec.strideW !== 1) return null;
  checkLengths('conv2d input gradient', spec, [['output gradient', dy, outputSize(spec)], ['weight', w, weightSize(spec)]]);
  const G = spec.groups, cg = spec.channels / G, og = spec.outChannels / G, { kh, kw } = spec;
  const taps = kh * kw;
  const flipped = new Float32Array(w.length);
  for (let grp = 0; grp < G; grp++) {
    for (let o = 0; o < og; o++) {
      for (let c = 0; c < cg; c++) {
        const src = ((grp * og + o) * cg + c) * taps, dst = ((grp * cg + c) * og + o) * taps;
        for (let t = 0; t < taps; t++) flipped[dst + taps - 1 - t] = w[src + t]!;
      }
    }
  }
  const g: Geometry = {
    batch: spec.batch, groups: G, cg: og, og: cg, H: spec.outH, W: spec.outW, outH: spec.height, outW: spec.width,
    kh, kw, sH: 1, sW: 1, dH: spec.dilationH, dW: spec.dilationW,
    pH: spec.dilationH * (kh - 1) - spec.padH, pW: spec.dilationW * (kw - 1) - spec.padW,
  };
  const result = out ?? new Float32Array(spec.batch * spec.channels * spec.height * spec.width);
  return forward(host, dy, flipped, null, g, result, () => `conv2d input gradient, ${shapeOf(spec)}`);
}

/** dW [outChannels, channels/groups, kh, kw] = sum over batch and pixels of dy x (any stride). */
export function conv2dBackwardFilter(host: ConvHost, dy: Float32Array, x: Float32Array, spec: ConvSpec, out?: Float32Array): Float32Array {
  checkLengths('conv2d filter gradient', spec, [['output gradient', dy, outputSize(spec)], ['input', x, inputSize(spec)]]);
  const g = geometryOf(spec);
  const p = plan(g, Math.ceil(g.og / CONV_OC) * CONV_OC, host.bandBytes ?? BAND_BYTES);
  const { K, nOB, outWp, Wq, R } = p;
  const O = g.groups * g.og;
  const Kp = K + (K % 2); // taps go in pairs
  const nPairs = Kp / 2;
  const offAt = 64;
  const xAt = align16(offAt + Kp * 4);
  const dyAt = align16(xAt + p.bandFloats * 4 + 64);
  const dwAt = align16(dyAt + nOB * CONV_OC * R * outWp * 4);
  const end = dwAt + nOB * CONV_OC * Kp * 4;
  const stageAt = align16(end);
  const heap = host.heap(stageAt + stageFloats(g, p) * 4, () => `conv2d filter gradient, ${shapeOf(spec)}`);
  const heapI32 = new Int32Array(heap.buffer, 0, heap.length);
  writeOffsets(heapI32, offAt, g, p, Kp);
  // dy rows are zero past outW and for channels past og: they add nothing to the sums
  heap.fill(0, dyAt >>> 2, dwAt >>> 2);
  const result = out ?? new Float32Array(O * K);
  const ldo = R * outWp * 4;
  for (let grp = 0; grp < g.groups; grp++) {
    heap.fill(0, dwAt >>> 2, end >>> 2);
    for (let b = 0; b < g.batch; b++) {
      for (let oy0 = 0; oy0 < g.outH; oy0 += R) {
        const rows = Math.min(R, g.outH - oy0);
        copyBand(host.ex, heap, xAt >>> 2, x, g, p, b, grp, oy0, rows + (p.Rb - R), stageAt >>> 2);
        for (let o = 0; o < g.og; o++) {
          copyRows(heap, (dyAt >>> 2) + o * R * outWp, outWp, dy, ((b * O + grp * g.og + o) * g.outH + oy0) * g.outW, g.outW, rows, g.outW);
        }
        const parallel = host.threads > 1 && 2 * rows * g.outW * g.og * K >= host.parallelMinFlops;
        host.pool.run(OP.CONV_DW, [xAt, offAt, dyAt, ldo, rows, outWp * 4, Wq * 4, outWp * 4, dwAt, Kp * 4, nPairs], nOB * nPairs, parallel);
      }
    }
    for (let o = 0; o < g.og; o++) {
      const src = (dwAt >>> 2) + o * Kp;
      result.set(heap.subarray(src, src + K), (grp * g.og + o) * K);
    }
  }
  return result;
}
