/**
 * Row and elementwise kernels in WebAssembly SIMD: softmax along rows (and GELU, at the end),
 * computed in double precision two lanes at a time (f64x2), so that the float32 results are those
 * of the reference loop (cpu-reference.ts), which computes in JavaScript numbers (doubles) and
 * rounds each stored value to float32.
 *
 * Why double lanes rather than four float32 lanes: the reference's exp is JavaScript's Math.exp
 * (correctly rounded in double for practical purposes) and its sums run in double. An exp
 * polynomial in float32 would differ from it by an ulp or two in many elements; in double, with a
 * polynomial whose relative error (below 2.3e-13, see `expChains`) is far under half a float32 ulp
 * (6e-8), rounding the result to float32 gives the reference's value except in the rare element
 * whose exact value lies within 1e-13 of a rounding boundary (then it differs by one ulp). Half
 * the lanes, but Math.exp costs about 15 ns per call in V8, and this kernel about 4 ns per element
 * for the whole softmax (a [3600, 900] attention: 12 ms of CPU against 50-170 ms for the reference loop).
 *
 *   softmax_rows(xp, yp, rows, n, scale): for each row of n float32 values at xp (rows back to
 *   back), y = softmax(fround(scale * x)) into yp:
 *     1. m = max_j fround(scale * x_j)
 *     2. e_j = fround(exp(fround(scale * x_j) - m)), stored to y, total = sum_j e_j (in double)
 *     3. y_j = fround(e_j * (1 / total))
 * exactly the steps of the reference (`scale` folds attention's 1/sqrt(d) into the kernel: the
 * composition is mul then softmax, whose mul rounds its product to float32 first, as step 1 does).
 * A row is walked four values at a time (one load, two pairs of doubles whose exps are interleaved),
 * then a last pair and a last single value where n is not a multiple of four.
 */

import { forRange, I, inc, T, type Code, type FuncDef } from './emit';

/** v128.and (not among emit.ts's instructions): the SIMD opcode 0x4e */
const X_V128_AND: Code = [0xfd, 0x4e];

/** 1/k! for k = 0..10: the Taylor polynomial of exp on |r| <= ln2/2 (error r^11/11! < 2.3e-13 relative) */
const EXP_TAYLOR = Array.from({ length: 11 }, (_, k) => 1 / Array.from({ length: k }, (_, i) => i + 1).reduce((a, b) => a * b, 1));
/** ln 2 split in a high part with trailing zero bits (k * LN2_HI is exact for |k| < 2^11) and the rest */
const LN2_HI = 6.93147180369123816490e-01;
const LN2_LO = 1.90821492927058770002e-10;
/**
 * Below this the result is set to exp(EXP_FLOOR) instead: e^-700 ~ 1e-304 is still a normal double (the
 * 2^k construction below needs k >= -1022), and it is 0 once rounded to float32, as exp(-inf) is.
 */
const EXP_FLOOR = -700;
/**
 * 1.5 * 2^52 + 1023: adding it to d/ln2 (|d/ln2| < 2^50) lands in [2^52, 2^53), where doubles are
 * the integers, so the sum is rounded to the nearest integer k (plus the constant) in one add, and
 * its low mantissa bits are k + 1023, the biased exponent of 2^k: shifted left by 52 they are the
 * bits of the double 2^k. (Cheaper than f64x2.nearest and a float-to-int conversion.)
 */
const EXP_SHIFTER = 1.5 * 2 ** 52 + 1023;

/** the v128 locals of one exp chain: its input d, the shifted k (t), k, the reduced r and the result p */
interface ExpChain { d: number; t: number; k: number; r: number; p: number }
interface ExpConsts { log2e: number; ln2hi: number; ln2lo: number; shifter: number; floor: number; coef: number[] }

/**
 * exp of the f64x2 in each chain's `d`, into its `p`, the chains' steps interleaved (two chains give
 * the processor two independent dependency chains: the Horner steps of one wait on the previous).
 * exp(d) = 2^k * exp(r) with k = nearest(d / ln2) and r = d - k ln2 (|r| <= ln2/2, subtracted in two
 * parts so that r keeps its low bits); exp(r) is the Taylor polynomial of degree 10 (Horner), 2^k
 * comes from the bits of the shifted sum (EXP_SHIFTER). NaN stays NaN.
 */
function expChains(chains: ExpChain[], c: ExpConsts): Code {
  const each = (f: (ch: ExpChain) => Code): Code => chains.map(f);
  const coef = c.coef;
  const horner: Code[] = [each((ch) => [I.get(coef[coef.length - 1]!), I.set(ch.p)])];
  for (let i = coef.length - 2; i >= 0; i--) horner.push(each((ch) => [I.get(ch.p), I.get(ch.r), I.f64x2_mul, I.get(coef[i]!), I.f64x2_add, I.set(ch.p)]));
  return [
    each((ch) => [I.get(ch.d), I.get(c.floor), I.f64x2_pmax, I.set(ch.d)]), // d < floor ? floor : d (NaN kept)
    each((ch) => [I.get(ch.d), I.get(c.log2e), I.f64x2_mul, I.get(c.shifter), I.f64x2_add, I.set(ch.t)]),
    each((ch) => [I.get(ch.t), I.get(c.shifter), I.f64x2_sub, I.set(ch.k)]),
    each((ch) => [I.get(ch.d), I.get(ch.k), I.get(c.ln2hi), I.f64x2_mul, I.f64x2_sub, I.get(ch.k), I.get(c.ln2lo), I.f64x2_mul, I.f64x2_sub, I.set(ch.r)]),
    horner,
    each((ch) => [I.get(ch.p), I.get(ch.t), I.i32(52), I.i64x2_shl, I.f64x2_mul, I.set(ch.p)]),
  ];
}

/** softmax_rows(xp, yp, rows, n, scale): see the header. Pointers are byte addresses. */
export function softmaxRowsKernel(): FuncDef {
  const xp = 0, yp = 1, rows = 2, n = 3, scale = 4; // scale: f32
  let next = 5;
  const i32 = () => next++;
  const row = i32(), p = i32(), q = i32(), quadEnd = i32(), pairEnd = i32(), rowBytes = i32(), delta = i32();
  const firstV128 = next;
  const v128 = () => next++;
  const sc = v128(), acc = v128(), nan = v128(), mSplat = v128(), tSplat = v128(), v = v128();
  const chain = (): ExpChain => ({ d: v128(), t: v128(), k: v128(), r: v128(), p: v128() });
  const A = chain(), B = chain();
  const consts: ExpConsts = { log2e: v128(), ln2hi: v128(), ln2lo: v128(), shifter: v128(), floor: v128(), coef: EXP_TAYLOR.map(() => v128()) };
  const firstF64 = next;
  const total = next++;
  const locals = [
    ...new Array<number>(firstV128 - 5).fill(T.i32),
    ...new Array<number>(firstF64 - firstV128).fill(T.v128),
    T.f64,
  ] as FuncDef['locals'];

  const splat = (value: number, local: number): Code => [I.f64(value), I.f64x2_splat, I.set(local)];
  /** the four f32 on the stack times scale (rounded to f32, as mul stores it) into v */
  const scaledQuad: Code = [I.get(sc), I.f32x4_mul, I.set(v)];
  /** v's lanes 0-1 and 2-3 as doubles */
  const low = (x: number): Code => [I.get(x), I.f64x2_promote_low_f32x4];
  const high = (x: number): Code => [I.get(x), I.get(x), I.f32x4_shuffle(2, 3, 0, 1), I.f64x2_promote_low_f32x4];
  /** acc = pmax(acc, x); nan |= (x != x) */
  const maxOf = (x: number): Code => [I.get(acc), I.get(x), I.f32x4_pmax, I.set(acc), I.get(nan), I.get(x), I.get(x), I.f32x4_ne, I.v128_or, I.set(nan)];
  /** two pairs of f32 results (lanes 0-1 of each vector on the stack) as one vector */
  const join: Code = I.f32x4_shuffle(0, 1, 4, 5);

  /** a row pass: four values at a time, then a last pair (n & 2), then a last single value (n & 1) */
  const rowLoop = (quad: Code, pair: Code, single: Code): Code => [
    forRange(q, I.get(p), I.get(quadEnd), I.i32(16), quad),
    I.get(n), I.i32(2), I.i32_and, I.if([I.get(quadEnd), I.set(q), pair]),
    I.get(n), I.i32(1), I.i32_and, I.if([I.get(pairEnd), I.set(q), single]),
  ];
  /** e = fround(exp(x - m)) from chain.d = x (two doubles): leaves the f32 pair on the stack */
  const expOf = (chains: ExpChain[]): Code => [
    chains.map((ch) => [I.get(ch.d), I.get(mSplat), I.f64x2_sub, I.set(ch.d)]),
    expChains(chains, consts),
  ];
  const demoted = (ch: ExpChain): Code => [I.get(ch.p), I.f32x4_demote_f64x2_zero];
  /** acc += the rounded e of a chain (promoted back: the sum is of the stored float32 values) */
  const addTo = (ch: ExpChain): Code => [I.get(acc), demoted(ch), I.f64x2_promote_low_f32x4, I.f64x2_add, I.set(acc)];

  return {
    name: 'softmax_rows',
    params: [T.i32, T.i32, T.i32, T.i32, T.f32],
    results: [],
    locals,
    body: [
      I.get(scale), I.f32x4_splat, I.set(sc),
      EXP_TAYLOR.map((value, i) => splat(value, consts.coef[i]!)),
      splat(Math.LOG2E, consts.log2e), splat(LN2_HI, consts.ln2hi), splat(LN2_LO, consts.ln2lo), splat(EXP_SHIFTER, consts.shifter), splat(EXP_FLOOR, consts.floor),
      I.get(n), I.i32(4), I.i32_mul, I.set(rowBytes),
      I.get(yp), I.get(xp), I.i32_sub, I.set(delta), // y's address = x's + delta (wraps, as addresses do)
      forRange(row, I.i32(0), I.get(rows), I.i32(1), [
        I.get(xp), I.get(row), I.get(rowBytes), I.i32_mul, I.i32_add, I.set(p),
        I.get(p), I.get(n), I.i32(-4), I.i32_and, I.i32(4), I.i32_mul, I.i32_add, I.set(quadEnd),
        I.get(p), I.get(n), I.i32(-2), I.i32_and, I.i32(4), I.i32_mul, I.i32_add, I.set(pairEnd),
        // 1. the maximum m, in float32 lanes with maxps (one instruction; f32x4.max would be a
        // sequence, for its NaN rule), NaN tracked apart: Math.max's rule, a NaN anywhere makes m
        // NaN (and the row NaN). Tails are loaded repeated (a b a b, a a a a): harmless for a maximum.
        I.f32(-Infinity), I.f32x4_splat, I.set(acc), I.v128_zero, I.set(nan),
        rowLoop(
          [I.get(q), I.v128_load(), scaledQuad, maxOf(v)],
          [I.get(q), I.v128_load64_splat(), scaledQuad, maxOf(v)],
          [I.get(q), I.v128_load32_splat(), scaledQuad, maxOf(v)],
        ),
        I.get(acc), I.f32x4_extract_lane(0), I.get(acc), I.f32x4_extract_lane(1), I.f32_max,
        I.get(acc), I.f32x4_extract_lane(2), I.get(acc), I.f32x4_extract_lane(3), I.f32_max, I.f32_max,
        I.f64_promote_f32, I.f64(NaN), I.get(nan), I.v128_any_true, I.i32_eqz, I.select, I.f64x2_splat, I.set(mSplat),
        // 2. e = fround(exp(x - m)) into y; total = sum of e (the f32 values, in double)
        I.v128_zero, I.set(acc), I.f64(0), I.set(total),
        rowLoop(
          [
            I.get(q), I.v128_load(), scaledQuad, low(v), I.set(A.d), high(v), I.set(B.d),
            expOf([A, B]),
            I.get(q), I.get(delta), I.i32_add, demoted(A), demoted(B), join, I.v128_store(),
            addTo(A), addTo(B),
          ],
          [
            I.get(q), I.v128_load64_zero(), scaledQuad, low(v), I.set(A.d), expOf([A]),
            I.get(q), I.get(delta), I.i32_add, demoted(A), I.v128_store64_lane0(),
            addTo(A),
          ],
          [
            I.get(q), I.v128_load32_zero(), scaledQuad, low(v), I.set(A.d), expOf([A]),
            I.get(q), I.get(delta), I.i32_add, demoted(A), I.f32x4_extract_lane(0), I.f32_store(),
            demoted(A), I.f32x4_extract_lane(0), I.f64_promote_f32, I.set(total),
          ],
        ),
        // 3. y = fround(e * (1 / total)), in place in y (a multiply instead of a divide per value:
        // the two differ by an ulp of a double, invisible once rounded to float32 but in ~1e-9 of values)
        I.f64(1), I.get(total), I.get(acc), I.f64x2_extract_lane(0), I.f64_add, I.get(acc), I.f64x2_extract_lane(1), I.f64_add, I.f64_div, I.f64x2_splat, I.set(tSplat),
        inc(p, I.get(delta)), inc(quadEnd, I.get(delta)), inc(pairEnd, I.get(delta)),
        rowLoop(
          [
            I.get(q), I.v128_load(), I.set(v), I.get(q),
            low(v), I.get(tSplat), I.f64x2_mul, I.f32x4_demote_f64x2_zero,
            high(v), I.get(tSplat), I.f64x2_mul, I.f32x4_demote_f64x2_zero,
            join, I.v128_store(),
          ],
          [I.get(q), I.get(q), I.v128_load64_zero(), I.f64x2_promote_low_f32x4, I.get(tSplat), I.f64x2_mul, I.f32x4_demote_f64x2_zero, I.v128_store64_lane0()],
          [I.get(q), I.get(q), I.v128_load32_zero(), I.f64x2_promote_low_f32x4, I.get(tSplat), I.f64x2_mul, I.f32x4_demote_f64x2_zero, I.f32x4_extract_lane(0), I.f32_store()],
        ),
      ]),
    ],
  };
}

/**
 * The Chebyshev fit of erfc used by the CPU backend's float32 GELU (cpu.ts, `erfFloat32`,
 * Numerical Recipes): erfc(z) = t exp(-z^2 - 1.26551223 + t P(t)), t = 1 / (1 + z/2), with P's
 * coefficients below, innermost last.
 */
const ERFC_FIT = [1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277];

/**
 * gelu_f32(xp, yp, count): y = 0.5 x (1 + erf(x / sqrt 2)) for `count` float32 values (a multiple
 * of 4: the driver pads), every operation that of the CPU backend's float32 loop in the same order,
 * in double lanes, with its Math.exp replaced by `expChains`: the float32 results agree but for an
 * ulp in the rare value within 1e-13 of a rounding boundary.
 *
 * gelu_backward_f32(xp, gp, yp, count), `backward`: y = g GELU'(x) with the same loop's derivative,
 * GELU'(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi). Its second exp is exactly 0
 * below EXP_FLOOR (as Math.exp's result is there, to double precision), so that x = +-Infinity
 * gives Infinity * 0 = NaN as in the loop, not Infinity.
 */
export function geluKernel(backward = false): FuncDef {
  const xp = 0, gp = backward ? 1 : -1, yp = backward ? 2 : 1, count = backward ? 3 : 2;
  let next = count + 1;
  const q = next++, end = next++, delta = next++, gDelta = next++;
  const firstV128 = next;
  const v128 = () => next++;
  const v = v128();
  const chain = () => ({ d: v128(), t: v128(), k: v128(), r: v128(), p: v128(), x: v128(), u: v128(), tt: v128(), poly: v128(), erf: v128(), live: v128() });
  const A = chain(), B = chain();
  const consts: ExpConsts = { log2e: v128(), ln2hi: v128(), ln2lo: v128(), shifter: v128(), floor: v128(), coef: EXP_TAYLOR.map(() => v128()) };
  const one = v128(), half = v128(), sqrt1_2 = v128(), bias = v128(), minusHalf = v128(), sqrt2pi = v128();
  const fit = ERFC_FIT.map(() => v128());
  const locals = [
    ...new Array<number>(firstV128 - count - 1).fill(T.i32),
    ...new Array<number>(next - firstV128).fill(T.v128),
  ] as FuncDef['locals'];
  const splat = (value: number, local: number): Code => [I.f64(value), I.f64x2_splat, I.set(local)];
  const chains = [A, B];
  const each = (f: (ch: typeof A) => Code): Code => chains.map(f);
  const poly: Code[] = [each((ch) => [I.get(ch.tt), I.get(fit[fit.length - 1]!), I.f64x2_mul, I.set(ch.poly)])];
  for (let i = fit.length - 2; i >= 0; i--) poly.push(each((ch) => [I.get(ch.tt), I.get(fit[i]!), I.get(ch.poly), I.f64x2_add, I.f64x2_mul, I.set(ch.poly)]));
  /** the four f32 at `ptr` as two double pairs (lanes 0-1, 2-3) */
  const halves = (ptr: Code, lo: (ch: typeof A) => number): Code => [
    ptr, I.v128_load(), I.set(v),
    I.get(v), I.f64x2_promote_low_f32x4, I.set(lo(A)),
    I.get(v), I.get(v), I.f32x4_shuffle(2, 3, 0, 1), I.f64x2_promote_low_f32x4, I.set(lo(B)),
  ];
  // GELU'(x) = 0.5 (1 + erf) + (x e^{-x^2/2}) / sqrt(2 pi), then times g (loaded into ch.u, no longer needed)
  const derivative: Code = [
    each((ch) => [I.get(minusHalf), I.get(ch.x), I.f64x2_mul, I.get(ch.x), I.f64x2_mul, I.set(ch.d)]),
    each((ch) => [I.get(ch.d), I.get(consts.floor), I.f64x2_ge, I.set(ch.live)]), // e^d is 0 below the floor
    expChains(chains, consts),
    each((ch) => [
      I.get(half), I.get(one), I.get(ch.erf), I.f64x2_add, I.f64x2_mul,
      I.get(ch.x), I.get(ch.p), I.get(ch.live), X_V128_AND, I.f64x2_mul, I.get(sqrt2pi), I.f64x2_div,
      I.f64x2_add, I.set(ch.p),
    ]),
    halves([I.get(q), I.get(gDelta), I.i32_add], (ch) => ch.u),
    each((ch) => [I.get(ch.u), I.get(ch.p), I.f64x2_mul, I.set(ch.p)]),
  ];
  return {
    name: backward ? 'gelu_backward_f32' : 'gelu_f32',
    params: backward ? [T.i32, T.i32, T.i32, T.i32] : [T.i32, T.i32, T.i32],
    results: [],
    locals,
    body: [
      EXP_TAYLOR.map((value, i) => splat(value, consts.coef[i]!)),
      splat(Math.LOG2E, consts.log2e), splat(LN2_HI, consts.ln2hi), splat(LN2_LO, consts.ln2lo), splat(EXP_SHIFTER, consts.shifter), splat(EXP_FLOOR, consts.floor),
      splat(1, one), splat(0.5, half), splat(Math.SQRT1_2, sqrt1_2), splat(1.26551223, bias), splat(-0.5, minusHalf), splat(Math.sqrt(2 * Math.PI), sqrt2pi),
      ERFC_FIT.map((value, i) => splat(value, fit[i]!)),
      I.get(yp), I.get(xp), I.i32_sub, I.set(delta),
      backward ? [I.get(gp), I.get(xp), I.i32_sub, I.set(gDelta)] : [],
      I.get(xp), I.get(count), I.i32(4), I.i32_mul, I.i32_add, I.set(end),
      forRange(q, I.get(xp), I.get(end), I.i32(16), [
        halves(I.get(q), (ch) => ch.x),
        // u = x / sqrt 2; t = 1 / (1 + 0.5 |u|)
        each((ch) => [I.get(ch.x), I.get(sqrt1_2), I.f64x2_mul, I.set(ch.u)]),
        each((ch) => [I.get(one), I.get(one), I.get(half), I.get(ch.u), I.f64x2_abs, I.f64x2_mul, I.f64x2_add, I.f64x2_div, I.set(ch.tt)]),
        poly,
        // d = -|u| |u| - 1.26551223 + t P(t)
        each((ch) => [I.get(ch.u), I.f64x2_abs, I.f64x2_neg, I.get(ch.u), I.f64x2_abs, I.f64x2_mul, I.get(bias), I.f64x2_sub, I.get(ch.poly), I.f64x2_add, I.set(ch.d)]),
        expChains(chains, consts),
        // erfc = t e^d; erf = u >= 0 ? 1 - erfc : erfc - 1
        each((ch) => [I.get(ch.tt), I.get(ch.p), I.f64x2_mul, I.set(ch.p)]),
        each((ch) => [I.get(one), I.get(ch.p), I.f64x2_sub, I.get(ch.p), I.get(one), I.f64x2_sub, I.get(ch.u), I.v128_zero, I.f64x2_ge, I.v128_bitselect, I.set(ch.erf)]),
        // forward: y = 0.5 x (1 + erf); backward: y = g GELU'(x)
        backward ? derivative : each((ch) => [I.get(half), I.get(ch.x), I.f64x2_mul, I.get(one), I.get(ch.erf), I.f64x2_add, I.f64x2_mul, I.set(ch.p)]),
        I.get(q), I.get(delta), I.i32_add,
        I.get(A.p), I.f32x4_demote_f64x2_zero, I.get(B.p), I.f32x4_demote_f64x2_zero, I.f32x4_shuffle(0, 1, 4, 5),
        I.v128_store(),
      ]),
    ],
  };
}
