/**
 * The direct-convolution kernels, as WebAssembly SIMD instruction sequences (see emit.ts).
 *
 * Convolution without im2col. The forward kernel is the matmul micro-kernel of kernels.ts with
 * its B operand replaced by an *indirection*: instead of a packed panel of im2col columns, it reads
 * the input image itself, at `pixel + offset[tap]`, where `offset` is a small table with one entry
 * per filter tap (c, i, j). The image band has been copied (zero-padded, see conv.ts) so that for
 * eight consecutive output pixels of one row the eight input values of a tap are contiguous: two
 * f32x4 loads. Per tap the kernel loads the offset, two vectors of input and four weights
 * (broadcast), and does 4 x 8 multiply-adds into eight accumulators held in registers across the
 * whole tap loop: the same 8 mul + 8 add per 7 loads as the GEMM micro-kernel, with no column
 * matrix written or read.
 *
 *   conv_tile: out[o0..o0+3][row][8t .. 8t+7] = bias + sum_tap w[o][tap] * band[row][8t + off[tap] ..]
 *
 * The filter gradient is a reduction over pixels instead: for four output channels and two taps,
 * dW[o][tap] = sum over (row, column) dy[o][row][col] * band[row][col + off[tap]]. Vectors run
 * along the pixels (four at a time), eight accumulators (4 channels x 2 taps) collect partial
 * sums, and each is reduced across its four lanes at the end and added to dW. The input gradient
 * needs no kernel of its own: it is a forward convolution of dy with the flipped, transposed
 * filter (conv.ts).
 */

import { forRange, I, inc, T, type Code, type FuncDef } from './emit';

/** output channels per tile (4 broadcast weights) */
export const CONV_OC = 4;
/** output pixels per tile (two f32x4 vectors) */
export const CONV_PX = 8;

/**
 * conv_tile(xp, offp, K, wp, bp, op, ldo, nt, beta): for t < nt, the tile of CONV_OC channels x
 * CONV_PX pixels starting at pixel 8t of one output row, over K taps. xp: band address of the
 * row's first pixel; offp: K byte offsets (i32); wp: K x 4 weights (tap-major); bp: 4 biases;
 * op: output address of channel o0's row; ldo: bytes between consecutive output channels.
 * beta = 0 starts the sums from the biases, beta = 1 from what the output holds (a later chunk of
 * taps: the driver cuts the taps into chunks so the input rows a tile reads stay in L1).
 */
export function convTileKernel(): FuncDef {
  const xp = 0, offp = 1, K = 2, wp = 3, bp = 4, op = 5, ldo = 6, nt = 7, beta = 8;
  const t = 9, xpt = 10, wq = 11, offq = 12, offEnd = 13, a = 14, opt = 15;
  const acc = (r: number, v: number) => 16 + r * 2 + v;
  const xv = (v: number) => 16 + CONV_OC * 2 + v;
  const w = 16 + CONV_OC * 2 + 2;

  const fromBias: Code[] = [];
  const fromOutput: Code[] = [];
  for (let r = 0; r < CONV_OC; r++) {
    for (let v = 0; v < 2; v++) {
      fromBias.push(I.get(bp), I.v128_load32_splat(r * 4), I.set(acc(r, v)));
      fromOutput.push(I.get(opt), I.get(ldo), I.i32(r), I.i32_mul, I.i32_add, I.v128_load(v * 16), I.set(acc(r, v)));
    }
  }
  const tap: Code[] = [
    I.get(xpt), I.get(offq), I.i32_load(), I.i32_add, I.set(a),
    I.get(a), I.v128_load(0), I.set(xv(0)),
    I.get(a), I.v128_load(16), I.set(xv(1)),
  ];
  for (let r = 0; r < CONV_OC; r++) {
    tap.push(I.get(wq), I.v128_load32_splat(r * 4), I.set(w));
    for (let v = 0; v < 2; v++) tap.push(I.get(acc(r, v)), I.get(w), I.get(xv(v)), I.f32x4_mul, I.f32x4_add, I.set(acc(r, v)));
  }
  const store: Code[] = [];
  for (let r = 0; r < CONV_OC; r++) {
    for (let v = 0; v < 2; v++) {
      store.push(I.get(opt), I.get(ldo), I.i32(r), I.i32_mul, I.i32_add, I.get(acc(r, v)), I.v128_store(v * 16));
    }
  }
  return {
    name: 'conv_tile',
    params: new Array<number>(9).fill(T.i32) as FuncDef['params'],
    results: [],
    locals: [...new Array<number>(7).fill(T.i32), ...new Array<number>(CONV_OC * 2 + 3).fill(T.v128)] as FuncDef['locals'],
    body: forRange(t, I.i32(0), I.get(nt), I.i32(1), [
      I.get(op), I.get(t), I.i32(CONV_PX * 4), I.i32_mul, I.i32_add, I.set(opt),
      I.get(beta), I.if(fromOutput, fromBias),
      I.get(xp), I.get(t), I.i32(CONV_PX * 4), I.i32_mul, I.i32_add, I.set(xpt),
      I.get(wp), I.set(wq),
      I.get(offp), I.set(offq),
      I.get(offp), I.get(K), I.i32(4), I.i32_mul, I.i32_add, I.set(offEnd),
      // the tap loop (K >= 1, so a do-while), deliberately not unrolled (see kernels.ts)
      I.loop([
        tap,
        inc(wq, I.i32(CONV_OC * 4)),
        inc(offq, I.i32(4)),
        I.get(offq), I.get(offEnd), I.i32_lt_u, I.br_if(0),
      ]),
      store,
    ]),
  };
}

/**
 * conv_dw(xb, offp, dyp, ldo, R, rowBytes, xRowBytes, dyRowBytes, dwp, ldw): adds to dW[o0+r][g0+t]
 * (r < 4, t < 2) the sum over R rows and `rowBytes / 4` pixels per row of
 * dy[o0+r][row][p] * band[row][p + off[g0+t]]. xb: band address of row 0, pixel 0; offp: address
 * of off[g0]; dyp: dy band address of channel o0; ldo: bytes between dy channels; dwp: address of
 * dW[o0][g0]; ldw: bytes between dW rows. rowBytes is a multiple of 16 (dy rows are zero-padded).
 */
export function convFilterGradKernel(): FuncDef {
  const xb = 0, offp = 1, dyp = 2, ldo = 3, R = 4, rowBytes = 5, xRowBytes = 6, dyRowBytes = 7, dwp = 8, ldw = 9;
  const row = 10, p = 11, xa0 = 12, xa1 = 13, d0 = 14; // d0..d3: dy row pointers of the 4 channels
  const addr = 18;
  const acc = (r: number, t: number) => 19 + r * 2 + t;
  const dv = (r: number) => 19 + 8 + r;
  const xv = (t: number) => 19 + 12 + t;

  const inner: Code[] = [];
  for (let t = 0; t < 2; t++) inner.push(I.get(t === 0 ? xa0 : xa1), I.get(p), I.i32_add, I.v128_load(), I.set(xv(t)));
  for (let r = 0; r < 4; r++) {
    inner.push(I.get(d0 + r), I.get(p), I.i32_add, I.v128_load(), I.set(dv(r)));
    for (let t = 0; t < 2; t++) inner.push(I.get(acc(r, t)), I.get(dv(r)), I.get(xv(t)), I.f32x4_mul, I.f32x4_add, I.set(acc(r, t)));
  }
  const finish: Code[] = [];
  for (let r = 0; r < 4; r++) {
    for (let t = 0; t < 2; t++) {
      // dW[r][t] += lane0 + lane1 + lane2 + lane3
      finish.push(
        I.get(dwp), I.get(ldw), I.i32(r), I.i32_mul, I.i32_add, I.tee(addr),
        I.get(addr), I.f32_load(t * 4),
        I.get(acc(r, t)), I.f32x4_extract_lane(0), I.get(acc(r, t)), I.f32x4_extract_lane(1), I.f32_add,
        I.get(acc(r, t)), I.f32x4_extract_lane(2), I.get(acc(r, t)), I.f32x4_extract_lane(3), I.f32_add,
        I.f32_add, I.f32_add,
        I.f32_store(t * 4),
      );
    }
  }
  const setup: Code[] = [
    I.get(xb), I.get(offp), I.i32_load(0), I.i32_add, I.set(xa0),
    I.get(xb), I.get(offp), I.i32_load(4), I.i32_add, I.set(xa1),
  ];
  for (let r = 0; r < 4; r++) setup.push(I.get(dyp), I.get(ldo), I.i32(r), I.i32_mul, I.i32_add, I.set(d0 + r));
  const nextRow: Code[] = [inc(xa0, I.get(xRowBytes)), inc(xa1, I.get(xRowBytes))];
  for (let r = 0; r < 4; r++) nextRow.push(inc(d0 + r, I.get(dyRowBytes)));
  return {
    name: 'conv_dw',
    params: new Array<number>(10).fill(T.i32) as FuncDef['params'],
    results: [],
    locals: [...new Array<number>(9).fill(T.i32), ...new Array<number>(8 + 4 + 2).fill(T.v128)] as FuncDef['locals'],
    body: [
      setup,
      forRange(row, I.i32(0), I.get(R), I.i32(1), [
        forRange(p, I.i32(0), I.get(rowBytes), I.i32(16), inner),
        nextRow,
      ]),
      finish,
    ],
  };
}

/**
 * pad_rows(src, dst, channels, rows, srcRow, dstRow, srcChannel, dstChannel, lo, copy, tail):
 * lays rows of an image out as a band of wider, zero-margined rows (the stride-1 case of conv.ts's
 * band copy). For each channel and row: `lo` zero bytes, `copy` bytes from the source row, `tail`
 * zero bytes; src/dst advance by srcRow/dstRow bytes a row and srcChannel/dstChannel a channel.
 * memory.copy and memory.fill are the runtime's memmove and memset: a row costs one call each
 * here instead of four JavaScript calls (a subarray view, a set and two fills).
 */
export function padRowsKernel(): FuncDef {
  const src = 0, dst = 1, channels = 2, rows = 3, srcRow = 4, dstRow = 5, srcChannel = 6, dstChannel = 7, lo = 8, copy = 9, tail = 10;
  const c = 11, r = 12, s = 13, d = 14;
  return {
    name: 'pad_rows',
    params: new Array<number>(11).fill(T.i32) as FuncDef['params'],
    results: [],
    locals: new Array<number>(4).fill(T.i32) as FuncDef['locals'],
    body: forRange(c, I.i32(0), I.get(channels), I.i32(1), [
      I.get(src), I.get(c), I.get(srcChannel), I.i32_mul, I.i32_add, I.set(s),
      I.get(dst), I.get(c), I.get(dstChannel), I.i32_mul, I.i32_add, I.set(d),
      forRange(r, I.i32(0), I.get(rows), I.i32(1), [
        I.get(d), I.i32(0), I.get(lo), I.memory_fill,
        I.get(d), I.get(lo), I.i32_add, I.get(s), I.get(copy), I.memory_copy,
        I.get(d), I.get(lo), I.i32_add, I.get(copy), I.i32_add, I.i32(0), I.get(tail), I.memory_fill,
        inc(s, I.get(srcRow)),
        inc(d, I.get(dstRow)),
      ]),
    ]),
  };
}
