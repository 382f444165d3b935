/**
 * Row kernels for the backward pass of softmax and for LayerNorm, in WebAssembly SIMD double lanes.
 *
 * The CPU backend's float32 path runs the reference loops (cpu-reference.ts) on float32 arrays:
 * every value is read as a double, the arithmetic is double, and results are rounded once when
 * stored. These kernels do the same steps in the same order in f64x2 lanes (two values per
 * instruction), so their results are the loops' results except where a sum over a row is added up
 * in a different order (two running sums, one per lane, joined at the end): those differ from the
 * loop's by a few double ulps, far below float32's rounding, so only a value within that distance of
 * a float32 rounding boundary can come out one float32 ulp apart.
 *
 * A row of n floats is swept four at a time as two pairs (8-byte loads, each promoted to two
 * doubles), a sum over the row kept in two accumulators, one per pair: an f64x2 add waits about
 * four cycles for the one before, so a single running sum bounds a sweep at two cycles a value;
 * with two the adds overlap (10-30 % off these kernels on [2048, 384]: they are then mostly bound
 * by memory). Then a last pair when n & 2, and the last value alone when n is odd.
 *
 *   softmax_backward_rows(yp, gp, dxp, rows, n, scale): per row, with y the softmax output and g its
 *     gradient, dot = sum_j g_j y_j, then dx_j = s fround(y_j (g_j - dot)) (the softmax gradient
 *     rounded as the composition stores it, then times s = fround(scale), mul's backward).
 *   layer_norm_rows(xp, wp, bp, yp, statsp, rows, n, eps): per row, mean = sum x / n, variance =
 *     sum (x - mean)^2 / n, rstd = 1 / sqrt(variance + eps), y_j = (x_j - mean) rstd w_j + b_j;
 *     stats gets (mean, rstd) as two float32 per row. w and b are always given (the driver passes
 *     ones and zeros for a missing one: times 1 and plus 0 is what the loop does then).
 *   layer_norm_backward_rows(gp, xp, wp, statsp, dxp, dwp, dbp, rows, n): per row, with mean and
 *     rstd from stats, xhat = (x - mean) rstd and d = g w: dx = rstd (d - mean(d) - xhat mean(d xhat)),
 *     and dw_j += g_j xhat_j, db_j += g_j added into float32 accumulators row after row, as the loop
 *     does (the driver gives each task its own accumulators and adds them up).
 */

import { forRange, I, inc, T, type Code, type FuncDef } from './emit';

/** instructions beyond emit.ts's set (opcodes from the spec's tables) */
const X = {
  f64_sub: 0xa1,
  f64_mul: 0xa2,
  f64_sqrt: 0x9f,
  f32_demote_f64: 0xb6,
  f64_convert_i32_u: 0xb8,
};

/** Locals of a kernel: parameters first, then i32 / f64 / v128 locals handed out by name. */
class Locals {
  private readonly extra: number[] = [];
  constructor(private readonly params: number) {}
  private add(type: number): number { this.extra.push(type); return this.params + this.extra.length - 1; }
  i32(): number { return this.add(T.i32); }
  f64(): number { return this.add(T.f64); }
  v128(): number { return this.add(T.v128); }
  types(): FuncDef['locals'] { return this.extra as FuncDef['locals']; }
}

/** two f32 at the address on the stack (plus `off` bytes) as an f64x2 */
const loadPair = (off: number): Code => [I.v128_load64_zero(off), I.f64x2_promote_low_f32x4];
/** an f64x2 on the stack rounded to two f32, stored at the address below it (plus `off` bytes) */
const storePair = (off: number): Code => [I.f32x4_demote_f64x2_zero, I.v128_store64_lane0(off)];
/** one f32 at the address on the stack as an f64 */
const loadOne: Code = [I.f32_load(), I.f64_promote_f32];
/** an f64x2 rounded to float32 and back (fround per lane) */
const roundPair: Code = [I.f32x4_demote_f64x2_zero, I.f64x2_promote_low_f32x4];
/** the sum of an f64x2's two lanes, plus the f64 below it on the stack */
const joinLanes = (v: number): Code => [I.get(v), I.f64x2_extract_lane(0), I.f64_add, I.get(v), I.f64x2_extract_lane(1), I.f64_add];

/** the byte sizes of a row, of its whole quads and of its whole pairs */
interface RowBytes { n: number; rowBytes: number; quadBytes: number; pairBytes: number }

/**
 * A sweep over one row (j a byte offset into it): `pair(off, second)` at j + off for the two pairs
 * of each quad (off 0, then off 8 with `second`, whose sums go to the second accumulator), then
 * `pair(0, false)` at the last pair when n & 2 and `single` at the last value when n is odd.
 */
function sweep(j: number, R: RowBytes, pair: (off: number, second: boolean) => Code, single: Code): Code {
  return [
    forRange(j, I.i32(0), I.get(R.quadBytes), I.i32(16), [pair(0, false), pair(8, true)]),
    I.get(R.n), I.i32(2), I.i32_and, I.if([I.get(R.quadBytes), I.set(j), pair(0, false)]),
    I.get(R.n), I.i32(1), I.i32_and, I.if([I.get(R.pairBytes), I.set(j), single]),
  ];
}

/** Common per-row setup: row byte sizes, and a forRange over the rows that moves the row pointers. */
function rowLoop(L: RowBytes & { row: number; rows: number }, advance: Code, body: Code): Code {
  const wholeBytes = (mask: number, into: number): Code => [I.get(L.n), I.i32(mask), I.i32_and, I.i32(4), I.i32_mul, I.set(into)];
  return [
    I.get(L.n), I.i32(4), I.i32_mul, I.set(L.rowBytes),
    wholeBytes(-4, L.quadBytes), wholeBytes(-2, L.pairBytes),
    forRange(L.row, I.i32(0), I.get(L.rows), I.i32(1), [body, advance]),
  ];
}

/** the two accumulators of a sweep added into the first, then its lanes added to the f64 on the stack */
const joinSums = (first: number, second: number): Code => [I.get(first), I.get(second), I.f64x2_add, I.set(first), joinLanes(first)];

/** softmax_backward_rows: see the header */
export function softmaxBackwardKernel(): FuncDef {
  const yp = 0, gp = 1, dxp = 2, rows = 3, n = 4, scale = 5;
  const L = new Locals(6);
  const row = L.i32(), rowBytes = L.i32(), quadBytes = L.i32(), pairBytes = L.i32(), j = L.i32();
  const R = { n, rowBytes, quadBytes, pairBytes };
  const dot = L.f64(), s = L.f64();
  const acc = L.v128(), acc2 = L.v128(), dotV = L.v128(), sV = L.v128();
  const at = (p: number): Code => [I.get(p), I.get(j), I.i32_add];
  /** s fround(y (g - dot)) from y and g pushed by the caller's code */
  const grad = (y: Code, g: Code, sub: Code, mul: Code, round: Code, dotOf: number, sOf: number): Code =>
    [I.get(sOf), y, g, I.get(dotOf), sub, mul, round, mul];
  return {
    name: 'softmax_backward_rows',
    params: [T.i32, T.i32, T.i32, T.i32, T.i32, T.f32],
    results: [],
    locals: L.types(),
    body: [
      I.get(scale), I.f64_promote_f32, I.set(s), I.get(s), I.f64x2_splat, I.set(sV),
      rowLoop({ row, rows, ...R }, [inc(yp, I.get(rowBytes)), inc(gp, I.get(rowBytes)), inc(dxp, I.get(rowBytes))], [
        // dot = sum g y
        I.v128_zero, I.set(acc), I.v128_zero, I.set(acc2), I.f64(0), I.set(dot),
        sweep(j, R,
          (off, second) => [I.get(second ? acc2 : acc), at(gp), loadPair(off), at(yp), loadPair(off), I.f64x2_mul, I.f64x2_add, I.set(second ? acc2 : acc)],
          [at(gp), loadOne, at(yp), loadOne, X.f64_mul, I.set(dot)]),
        I.get(dot), joinSums(acc, acc2), I.set(dot), I.get(dot), I.f64x2_splat, I.set(dotV),
        // dx = s fround(y (g - dot))
        sweep(j, R,
          (off) => [at(dxp), grad([at(yp), loadPair(off)], [at(gp), loadPair(off)], I.f64x2_sub, I.f64x2_mul, roundPair, dotV, sV), storePair(off)],
          [at(dxp), grad([at(yp), loadOne], [at(gp), loadOne], X.f64_sub, X.f64_mul, [X.f32_demote_f64, I.f64_promote_f32], dot, s), X.f32_demote_f64, I.f32_store()]),
      ]),
    ],
  };
}

/** layer_norm_rows: see the header */
export function layerNormKernel(): FuncDef {
  const xp = 0, wp = 1, bp = 2, yp = 3, statsp = 4, rows = 5, n = 6, eps = 7;
  const L = new Locals(8);
  const row = L.i32(), rowBytes = L.i32(), quadBytes = L.i32(), pairBytes = L.i32(), j = L.i32();
  const R = { n, rowBytes, quadBytes, pairBytes };
  const mean = L.f64(), variance = L.f64(), rstd = L.f64(), d = L.f64(), nf = L.f64();
  const acc = L.v128(), acc2 = L.v128(), meanV = L.v128(), rstdV = L.v128(), dv = L.v128();
  const at = (p: number): Code => [I.get(p), I.get(j), I.i32_add];
  const sumOf = (second: boolean): number => (second ? acc2 : acc);
  return {
    name: 'layer_norm_rows',
    params: [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.f64],
    results: [],
    locals: L.types(),
    body: [
      I.get(n), X.f64_convert_i32_u, I.set(nf),
      rowLoop({ row, rows, ...R }, [inc(xp, I.get(rowBytes)), inc(yp, I.get(rowBytes)), inc(statsp, I.i32(8))], [
        // mean
        I.v128_zero, I.set(acc), I.v128_zero, I.set(acc2), I.f64(0), I.set(mean),
        sweep(j, R, (off, second) => [I.get(sumOf(second)), at(xp), loadPair(off), I.f64x2_add, I.set(sumOf(second))], [at(xp), loadOne, I.set(mean)]),
        I.get(mean), joinSums(acc, acc2), I.get(nf), I.f64_div, I.set(mean), I.get(mean), I.f64x2_splat, I.set(meanV),
        // variance = sum (x - mean)^2 / n
        I.v128_zero, I.set(acc), I.v128_zero, I.set(acc2), I.f64(0), I.set(variance),
        sweep(j, R,
          (off, second) => [at(xp), loadPair(off), I.get(meanV), I.f64x2_sub, I.set(dv), I.get(sumOf(second)), I.get(dv), I.get(dv), I.f64x2_mul, I.f64x2_add, I.set(sumOf(second))],
          [at(xp), loadOne, I.get(mean), X.f64_sub, I.set(d), I.get(d), I.get(d), X.f64_mul, I.set(variance)]),
        I.get(variance), joinSums(acc, acc2), I.get(nf), I.f64_div, I.set(variance),
        I.f64(1), I.get(variance), I.get(eps), I.f64_add, X.f64_sqrt, I.f64_div, I.set(rstd), I.get(rstd), I.f64x2_splat, I.set(rstdV),
        // y = (x - mean) rstd w + b
        sweep(j, R,
          (off) => [at(yp), at(xp), loadPair(off), I.get(meanV), I.f64x2_sub, I.get(rstdV), I.f64x2_mul, at(wp), loadPair(off), I.f64x2_mul,
            at(bp), loadPair(off), I.f64x2_add, storePair(off)],
          [at(yp), at(xp), loadOne, I.get(mean), X.f64_sub, I.get(rstd), X.f64_mul, at(wp), loadOne, X.f64_mul,
            at(bp), loadOne, I.f64_add, X.f32_demote_f64, I.f32_store()]),
        I.get(statsp), I.get(mean), X.f32_demote_f64, I.f32_store(),
        I.get(statsp), I.get(rstd), X.f32_demote_f64, I.f32_store(4),
      ]),
    ],
  };
}

/** layer_norm_backward_rows: see the header */
export function layerNormBackwardKernel(): FuncDef {
  const gp = 0, xp = 1, wp = 2, statsp = 3, dxp = 4, dwp = 5, dbp = 6, rows = 7, n = 8;
  const L = new Locals(9);
  const row = L.i32(), rowBytes = L.i32(), quadBytes = L.i32(), pairBytes = L.i32(), j = L.i32();
  const R = { n, rowBytes, quadBytes, pairBytes };
  const mean = L.f64(), rstd = L.f64(), meanD = L.f64(), meanDX = L.f64(), nf = L.f64(), xh = L.f64(), dd = L.f64(), g = L.f64();
  const accD = L.v128(), accD2 = L.v128(), accDX = L.v128(), accDX2 = L.v128();
  const meanV = L.v128(), rstdV = L.v128(), meanDV = L.v128(), meanDXV = L.v128(), xhV = L.v128(), dV = L.v128(), gV = L.v128();
  const at = (p: number): Code => [I.get(p), I.get(j), I.i32_add];
  // xhat = (x - mean) rstd, g, d = g w: into xh / g / dd (scalar) or xhV / gV / dV (pairs)
  const pairTerms = (off: number): Code => [
    at(xp), loadPair(off), I.get(meanV), I.f64x2_sub, I.get(rstdV), I.f64x2_mul, I.set(xhV),
    at(gp), loadPair(off), I.set(gV), I.get(gV), at(wp), loadPair(off), I.f64x2_mul, I.set(dV),
  ];
  const oneTerms: Code = [
    at(xp), loadOne, I.get(mean), X.f64_sub, I.get(rstd), X.f64_mul, I.set(xh),
    at(gp), loadOne, I.set(g), I.get(g), at(wp), loadOne, X.f64_mul, I.set(dd),
  ];
  return {
    name: 'layer_norm_backward_rows',
    params: [T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32, T.i32],
    results: [],
    locals: L.types(),
    body: [
      I.get(n), X.f64_convert_i32_u, I.set(nf),
      rowLoop({ row, rows, ...R }, [inc(gp, I.get(rowBytes)), inc(xp, I.get(rowBytes)), inc(dxp, I.get(rowBytes)), inc(statsp, I.i32(8))], [
        I.get(statsp), loadOne, I.set(mean), I.get(statsp), I.f32_load(4), I.f64_promote_f32, I.set(rstd),
        I.get(mean), I.f64x2_splat, I.set(meanV), I.get(rstd), I.f64x2_splat, I.set(rstdV),
        // the row's sums of d and d xhat; dw += g xhat and db += g, each rounded to float32 as stored
        [accD, accD2, accDX, accDX2].map((a) => [I.v128_zero, I.set(a)]), I.f64(0), I.set(meanD), I.f64(0), I.set(meanDX),
        sweep(j, R, (off, second) => [
          pairTerms(off),
          I.get(second ? accD2 : accD), I.get(dV), I.f64x2_add, I.set(second ? accD2 : accD),
          I.get(second ? accDX2 : accDX), I.get(dV), I.get(xhV), I.f64x2_mul, I.f64x2_add, I.set(second ? accDX2 : accDX),
          at(dwp), at(dwp), loadPair(off), I.get(gV), I.get(xhV), I.f64x2_mul, I.f64x2_add, storePair(off),
          at(dbp), at(dbp), loadPair(off), I.get(gV), I.f64x2_add, storePair(off),
        ], [
          oneTerms,
          I.get(dd), I.set(meanD), I.get(dd), I.get(xh), X.f64_mul, I.set(meanDX),
          at(dwp), at(dwp), loadOne, I.get(g), I.get(xh), X.f64_mul, I.f64_add, X.f32_demote_f64, I.f32_store(),
          at(dbp), at(dbp), loadOne, I.get(g), I.f64_add, X.f32_demote_f64, I.f32_store(),
        ]),
        I.get(meanD), joinSums(accD, accD2), I.get(nf), I.f64_div, I.set(meanD), I.get(meanD), I.f64x2_splat, I.set(meanDV),
        I.get(meanDX), joinSums(accDX, accDX2), I.get(nf), I.f64_div, I.set(meanDX), I.get(meanDX), I.f64x2_splat, I.set(meanDXV),
        // dx = rstd (d - mean(d) - xhat mean(d xhat))
        sweep(j, R, (off) => [
          at(dxp), pairTerms(off), I.get(rstdV), I.get(dV), I.get(meanDV), I.f64x2_sub, I.get(xhV), I.get(meanDXV), I.f64x2_mul, I.f64x2_sub, I.f64x2_mul,
          storePair(off),
        ], [
          at(dxp), oneTerms, I.get(rstd), I.get(dd), I.get(meanD), X.f64_sub, I.get(xh), I.get(meanDX), X.f64_mul, X.f64_sub, X.f64_mul,
          X.f32_demote_f64, I.f32_store(),
        ]),
      ]),
    ],
  };
}
