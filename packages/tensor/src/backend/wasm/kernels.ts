/**
 * The matmul kernels, written as WebAssembly SIMD instruction sequences (see emit.ts).
 *
 * Why this shape (the GotoBLAS / BLIS recipe, scaled down to 128-bit SIMD):
 *
 * - SIMD: one `f32x4.mul` / `f32x4.add` does four multiply-adds' worth of work, and V8 maps them
 *   to single SSE/AVX instructions. WebAssembly SIMD has no fused multiply-add (that is in the
 *   "relaxed SIMD" proposal, not on by default in Node 20), so a multiply-add costs two
 *   instructions; the CPU can still issue about two of each per cycle.
 *
 * - Register-blocked micro-kernel: the innermost routine computes an MR x NR tile of C (MR = 4
 *   rows, NR = 8 columns = two f32x4 vectors) with all MR*NR/4 accumulators held in registers
 *   across the whole k loop. Per step of k it loads 2 vectors of B and broadcasts MR scalars of A
 *   (`v128.load32_splat`), then does MR*2 multiply-adds: 8 mul + 8 add for 6 loads. x86-64 has 16
 *   vector registers: 8 accumulators + 2 B vectors + 1 broadcast A fits with room to spare, so
 *   nothing spills to the stack inside the loop. The k loop is deliberately NOT unrolled: V8's
 *   optimizing compiler hoists all the loads of an unrolled body to its top, runs out of
 *   registers and spills accumulators (measured: 2x unrolled 18-22 GFLOP/s, plain 33-35).
 *
 * - Packing: before multiplying, A is copied into "row panels" (MR rows, k-major: for each k the
 *   MR values of that column, contiguous) and B into "column panels" (NR columns, k-major). The
 *   micro-kernel then reads both operands strictly sequentially, whatever the original layout:
 *   transposed and non-transposed operands differ only in how the packing routine gathers them,
 *   so all four transA/transB variants run the same micro-kernel, and no transposed copy is ever
 *   made in JavaScript. Panels are zero-padded to full MR / NR, so the micro-kernel never needs
 *   edge cases; C is computed with padded rows/columns and compacted afterwards.
 *
 * - Cache blocking: k is cut into blocks of KC = 256. One packed B micro-panel (KC x NR floats =
 *   8 KiB) stays in the L1 cache while the micro-kernel sweeps down a block of A panels (MC rows
 *   x KC = 64 KiB, in L2). The first k block stores into C, later ones add to it.
 *
 * Layout of a packed operand with R rows per panel (R = MR for A, NR for B), padded row count
 * Rp = panels * R: k block `kb` (starting at k0 = kb*KC, length kc) begins at float offset
 * k0 * Rp; inside it panel p begins at p * kc * R; inside that, element (row r, k0 + kk) is at
 * kk * R + r.
 */

import { assembleModule, forRange, I, inc, T, whileLoop, type Code, type FuncDef } from './emit';
import { convFilterGradKernel, convTileKernel, padRowsKernel } from './conv-kernels';
import { geluKernel, softmaxRowsKernel } from './row-kernels';
import { mapKernels } from './map-kernels';
import { layerNormBackwardKernel, layerNormKernel, softmaxBackwardKernel } from './norm-kernels';

/** rows of the micro-kernel tile */
export const MR = 4;
/** columns of the micro-kernel tile (two f32x4 vectors) */
export const NR = 8;
/** depth of a k block: KC * NR * 4 bytes of packed B must stay in L1 */
export const KC = 256;

/** Function indices inside the module (the order of `funcs` below). */
const F = { micro: 0 } as const;

/**
 * micro(ap, bp, cp, kc, ldcBytes, beta): C[MR x NR] (+)= Apanel[kc x MR]^T * Bpanel[kc x NR].
 * beta = 0 stores the tile, beta = 1 adds it to what C holds (later k blocks).
 */
function microKernel(): FuncDef {
  const ap = 0, bp = 1, cp = 2, kc = 3, ldc = 4, beta = 5;
  const n = 6; // i32 counter
  const NV = NR / 4; // vectors per row of the tile
  const acc = (r: number, v: number) => 7 + r * NV + v;
  const b = (v: number) => 7 + MR * NV + v;
  const a = 7 + MR * NV + NV;
  const crow = a + 1;

  // one step of k at unrolled position u: acc[r][v] += splat(A[r]) * B[v]
  const step = (u: number): Code => {
    const code: Code[] = [];
    for (let v = 0; v < NV; v++) code.push(I.get(bp), I.v128_load((u * NR + v * 4) * 4), I.set(b(v)));
    for (let r = 0; r < MR; r++) {
      code.push(I.get(ap), I.v128_load32_splat((u * MR + r) * 4), I.set(a));
      for (let v = 0; v < NV; v++) {
        code.push(I.get(acc(r, v)), I.get(a), I.get(b(v)), I.f32x4_mul, I.f32x4_add, I.set(acc(r, v)));
      }
    }
    return code;
  };

  const store = (accumulate: boolean): Code => {
    const code: Code[] = [];
    for (let r = 0; r < MR; r++) {
      code.push(I.get(cp), I.get(ldc), I.i32(r), I.i32_mul, I.i32_add, I.set(crow));
      for (let v = 0; v < NV; v++) {
        code.push(I.get(crow));
        if (accumulate) code.push(I.get(crow), I.v128_load(v * 16), I.get(acc(r, v)), I.f32x4_add);
        else code.push(I.get(acc(r, v)));
        code.push(I.v128_store(v * 16));
      }
    }
    return code;
  };

  return {
    name: 'micro',
    params: [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32],
    results: [],
    // accumulators start at zero: WebAssembly zero-initialises locals
    locals: [T.i32, ...new Array<number>(MR * NV + NV + 1).fill(T.v128), T.i32] as FuncDef['locals'],
    body: [
      // n = ap + kc*MR*4: the loop ends when ap reaches it (kc >= 1, so a do-while is safe)
      I.get(ap), I.get(kc), I.i32(MR * 4), I.i32_mul, I.i32_add, I.set(n),
      I.loop([
        step(0),
        inc(ap, I.i32(MR * 4)),
        inc(bp, I.i32(NR * 4)),
        I.get(ap), I.get(n), I.i32_lt_u, I.br_if(0),
      ]),
      I.get(beta),
      I.if(store(true), store(false)),
    ],
  };
}

/** min(KC, k - k0) into `dst` */
function kcLen(k: number, k0: number, dst: number): Code {
  return [I.i32(KC), I.get(k), I.get(k0), I.i32_sub, I.get(k), I.get(k0), I.i32_sub, I.i32(KC), I.i32_gt_u, I.select, I.set(dst)];
}

/**
 * gemm(pa, pb, c, mpPad, npPad, k, i0, i1, j0, j1): the C block made of row panels i0..i1 and
 * column panels j0..j1, over the whole depth k, from packed A and B. C has row stride npPad.
 * Loop order: k block, then column panel (its B micro-panel stays in L1), then row panel.
 */
function gemmBlock(): FuncDef {
  const pa = 0, pb = 1, c = 2, mpPad = 3, npPad = 4, k = 5, i0 = 6, i1 = 7, j0 = 8, j1 = 9;
  const k0 = 10, kc = 11, aBlk = 12, bBlk = 13, j = 14, i = 15, bp = 16, beta = 17;
  return {
    name: 'gemm',
    params: new Array<number>(10).fill(T.i32) as FuncDef['params'],
    results: [],
    locals: new Array<number>(8).fill(T.i32) as FuncDef['locals'],
    body: forRange(k0, I.i32(0), I.get(k), I.i32(KC), [
      kcLen(k, k0, kc),
      I.get(pa), I.get(k0), I.get(mpPad), I.i32_mul, I.i32(4), I.i32_mul, I.i32_add, I.set(aBlk),
      I.get(pb), I.get(k0), I.get(npPad), I.i32_mul, I.i32(4), I.i32_mul, I.i32_add, I.set(bBlk),
      I.get(k0), I.i32(0), I.i32_ne, I.set(beta),
      forRange(j, I.get(j0), I.get(j1), I.i32(1), [
        I.get(bBlk), I.get(j), I.get(kc), I.i32_mul, I.i32(NR * 4), I.i32_mul, I.i32_add, I.set(bp),
        forRange(i, I.get(i0), I.get(i1), I.i32(1), [
          // ap = aBlk + i*kc*MR*4
          I.get(aBlk), I.get(i), I.get(kc), I.i32_mul, I.i32(MR * 4), I.i32_mul, I.i32_add,
          I.get(bp),
          // cp = c + (i*MR*npPad + j*NR)*4
          I.get(c), I.get(i), I.i32(MR), I.i32_mul, I.get(npPad), I.i32_mul, I.get(j), I.i32(NR), I.i32_mul, I.i32_add,
          I.i32(4), I.i32_mul, I.i32_add,
          I.get(kc),
          I.get(npPad), I.i32(4), I.i32_mul,
          I.get(beta),
          I.call(F.micro),
        ]),
      ]),
    ]),
  };
}

/**
 * pack_R(src, dst, rows, k, rowMajor, p0, p1, rowsPad): packs panels p0..p1 (R rows each) of an
 * operand seen as `rows` x k, over every k block, in the layout described at the top.
 * rowMajor = 1: element (row, g) is src[row*k + g] (A untransposed, B transposed).
 * rowMajor = 0: element (row, g) is src[g*rows + row] (A transposed, B untransposed): a panel's
 * R values for one g are contiguous, so full panels are copied a vector at a time.
 * Rows past `rows` (only in the last panel) are written as zeros.
 */
function pack(name: string, R: number): FuncDef {
  const src = 0, dst = 1, rows = 2, k = 3, rowMajor = 4, p0 = 5, p1 = 6, rowsPad = 7;
  const k0 = 8, kc = 9, blk = 10, p = 11, g = 12, out = 13, row0 = 14, q = 15, row = 16, val = 17;
  const gEnd = 18, rowBytes = 19;

  const contiguous: Code[] = [];
  // q = src + (g*rows + row0)*4
  contiguous.push(I.get(src), I.get(g), I.get(rows), I.i32_mul, I.get(row0), I.i32_add, I.i32(4), I.i32_mul, I.i32_add, I.set(q));
  for (let v = 0; v < R / 4; v++) contiguous.push(I.get(out), I.get(q), I.v128_load(v * 16), I.v128_store(v * 16));

  // rowMajor, full panel: the R values for one g sit in R different rows (stride k floats).
  // Four g at a time: load 4 consecutive floats from each of 4 rows, transpose the 4x4 block
  // with 8 shuffles, store 4 vectors; for R = 8 do that for rows 0-3 and rows 4-7.
  const v = (i: number) => 20 + i; // v128 locals v(0..7)
  const transposed: Code[] = [];
  for (let h = 0; h < R / 4; h++) {
    // q = src + ((row0 + 4h)*k + g)*4
    transposed.push(I.get(src), I.get(row0), I.i32(4 * h), I.i32_add, I.get(k), I.i32_mul, I.get(g), I.i32_add, I.i32(4), I.i32_mul, I.i32_add, I.set(q));
    for (let r = 0; r < 4; r++) {
      transposed.push(I.get(q), I.v128_load(), I.set(v(r)));
      if (r < 3) transposed.push(inc(q, I.get(rowBytes)));
    }
    // [a0 b0 a1 b1], [a2 b2 a3 b3], [c0 d0 c1 d1], [c2 d2 c3 d3]
    transposed.push(
      I.get(v(0)), I.get(v(1)), I.f32x4_shuffle(0, 4, 1, 5), I.set(v(4)),
      I.get(v(0)), I.get(v(1)), I.f32x4_shuffle(2, 6, 3, 7), I.set(v(5)),
      I.get(v(2)), I.get(v(3)), I.f32x4_shuffle(0, 4, 1, 5), I.set(v(6)),
      I.get(v(2)), I.get(v(3)), I.f32x4_shuffle(2, 6, 3, 7), I.set(v(7)),
    );
    // columns g+0..g+3 of the four rows, each stored where its k step's panel row lives
    const cols = [[4, 6, 0, 1], [4, 6, 2, 3], [5, 7, 0, 1], [5, 7, 2, 3]] as const;
    cols.forEach(([x, y, l0, l1], t) => {
      transposed.push(I.get(out), I.get(v(x)), I.get(v(y)), I.f32x4_shuffle(l0, l1, l0 + 4, l1 + 4), I.v128_store(t * R * 4 + h * 16));
    });
  }
  // one g at a time (the last g % 4 of a block): R scalar loads down a column
  const strided: Code[] = [];
  strided.push(I.get(src), I.get(row0), I.get(k), I.i32_mul, I.get(g), I.i32_add, I.i32(4), I.i32_mul, I.i32_add, I.set(q));
  for (let r = 0; r < R; r++) {
    strided.push(I.get(out), I.get(q), I.f32_load(), I.f32_store(r * 4));
    if (r < R - 1) strided.push(inc(q, I.get(rowBytes)));
  }
  const rowMajorFull: Code = [
    I.get(k0), I.set(g),
    whileLoop([I.get(g), I.i32(4), I.i32_add, I.get(gEnd), I.i32_le_u], [
      transposed,
      inc(out, I.i32(4 * R * 4)),
      inc(g, I.i32(4)),
    ]),
    whileLoop([I.get(g), I.get(gEnd), I.i32_lt_u], [
      strided,
      inc(out, I.i32(R * 4)),
      inc(g, I.i32(1)),
    ]),
  ];

  const edge: Code[] = [];
  for (let r = 0; r < R; r++) {
    edge.push(
      I.f32(0), I.set(val),
      I.get(row0), I.i32(r), I.i32_add, I.tee(row), I.get(rows), I.i32_lt_u,
      I.if([
        I.get(rowMajor),
        I.if(
          [I.get(src), I.get(row), I.get(k), I.i32_mul, I.get(g), I.i32_add, I.i32(4), I.i32_mul, I.i32_add, I.f32_load(), I.set(val)],
          [I.get(src), I.get(g), I.get(rows), I.i32_mul, I.get(row), I.i32_add, I.i32(4), I.i32_mul, I.i32_add, I.f32_load(), I.set(val)],
        ),
      ]),
      I.get(out), I.get(val), I.f32_store(r * 4),
    );
  }

  // for g in k0..k0+kc: body; out += R*4
  const overG = (body: Code): Code =>
    forRange(g, I.get(k0), I.get(gEnd), I.i32(1), [body, inc(out, I.i32(R * 4))]);

  return {
    name,
    params: new Array<number>(8).fill(T.i32) as FuncDef['params'],
    results: [],
    locals: [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.f32, T.i32, T.i32, ...new Array<number>(8).fill(T.v128)] as FuncDef['locals'],
    body: [I.get(k), I.i32(4), I.i32_mul, I.set(rowBytes), forRange(k0, I.i32(0), I.get(k), I.i32(KC), [
      kcLen(k, k0, kc),
      I.get(k0), I.get(kc), I.i32_add, I.set(gEnd),
      I.get(dst), I.get(k0), I.get(rowsPad), I.i32_mul, I.i32(4), I.i32_mul, I.i32_add, I.set(blk),
      forRange(p, I.get(p0), I.get(p1), I.i32(1), [
        I.get(blk), I.get(p), I.get(kc), I.i32_mul, I.i32(R * 4), I.i32_mul, I.i32_add, I.set(out),
        I.get(p), I.i32(R), I.i32_mul, I.set(row0),
        // full panel?
        I.get(row0), I.i32(R), I.i32_add, I.get(rows), I.i32_le_u,
        I.if(
          [I.get(rowMajor), I.if(rowMajorFull, overG(contiguous))],
          overG(edge),
        ),
      ]),
    ])],
  };
}

/**
 * compact(c, batch, m, n, ldc, mpPad): C was computed with padded shape [batch, mpPad, ldc];
 * move the real [batch, m, n] values to the front, in place (memory.copy is a memmove, and every
 * destination lies at or before its source, so copying forward row by row is safe).
 */
function compact(): FuncDef {
  const c = 0, batch = 1, m = 2, n = 3, ldc = 4, mpPad = 5;
  const bi = 6, r = 7, src = 8, dst = 9;
  return {
    name: 'compact',
    params: new Array<number>(6).fill(T.i32) as FuncDef['params'],
    results: [],
    locals: [T.i32, T.i32, T.i32, T.i32],
    body: [
      I.get(c), I.set(dst),
      forRange(bi, I.i32(0), I.get(batch), I.i32(1), [
        I.get(c), I.get(bi), I.get(mpPad), I.i32_mul, I.get(ldc), I.i32_mul, I.i32(4), I.i32_mul, I.i32_add, I.set(src),
        forRange(r, I.i32(0), I.get(m), I.i32(1), [
          I.get(dst), I.get(src), I.get(n), I.i32(4), I.i32_mul, I.memory_copy,
          inc(dst, [I.get(n), I.i32(4), I.i32_mul]),
          inc(src, [I.get(ldc), I.i32(4), I.i32_mul]),
        ]),
      ]),
    ],
  };
}

/** Exports of the instantiated module, typed. Pointers are byte addresses in the shared memory. */
export interface KernelExports {
  micro(ap: number, bp: number, cp: number, kc: number, ldcBytes: number, beta: number): void;
  gemm(pa: number, pb: number, c: number, mpPad: number, npPad: number, k: number, i0: number, i1: number, j0: number, j1: number): void;
  pack_a(src: number, dst: number, rows: number, k: number, rowMajor: number, p0: number, p1: number, rowsPad: number): void;
  pack_b(src: number, dst: number, rows: number, k: number, rowMajor: number, p0: number, p1: number, rowsPad: number): void;
  compact(c: number, batch: number, m: number, n: number, ldc: number, mpPad: number): void;
  conv_tile(xp: number, offp: number, K: number, wp: number, bp: number, op: number, ldo: number, nt: number, beta: number): void;
  conv_dw(xb: number, offp: number, dyp: number, ldo: number, R: number, rowBytes: number, xRowBytes: number, dyRowBytes: number, dwp: number, ldw: number): void;
  pad_rows(src: number, dst: number, channels: number, rows: number, srcRow: number, dstRow: number, srcChannel: number, dstChannel: number, lo: number, copy: number, tail: number): void;
  softmax_rows(xp: number, yp: number, rows: number, n: number, scale: number): void;
  gelu_f32(xp: number, yp: number, count: number): void;
  gelu_backward_f32(xp: number, gp: number, yp: number, count: number): void;
  softmax_backward_rows(yp: number, gp: number, dxp: number, rows: number, n: number, scale: number): void;
  layer_norm_rows(xp: number, wp: number, bp: number, yp: number, statsp: number, rows: number, n: number, eps: number): void;
  layer_norm_backward_rows(gp: number, xp: number, wp: number, statsp: number, dxp: number, dwp: number, dbp: number, rows: number, n: number): void;
  /** the elementwise kernels of map-kernels.ts, map_add ... map_step, over a table of runs */
  [mapKernel: `map_${string}`]: (table: number, entries: number) => void;
}

/** Largest memory we let the module grow to: 65536 pages of 64 KiB = 4 GiB, wasm32's limit. */
export const MAX_PAGES = 65536;

/** The module's bytes. `shared` must match the memory it will be instantiated with. */
export function kernelModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  // (the matmul functions first: gemm calls micro by its index, 0)
  return assembleModule([microKernel(), gemmBlock(), pack('pack_a', MR), pack('pack_b', NR), compact(), convTileKernel(), convFilterGradKernel(), softmaxRowsKernel(), geluKernel(), geluKernel(true), softmaxBackwardKernel(), layerNormKernel(), layerNormBackwardKernel(), padRowsKernel(), ...mapKernels()], {
    min: 1,
    max: MAX_PAGES,
    shared,
  });
}
