/**
 * Row kernels in WebAssembly SIMD: softmax along rows, computed in double precision two lanes at
 * a time (f64x2), so that the float32 results are those of the reference loop (cpu-reference.ts),
 * which computes in JavaScript numbers (doubles) and rounds each stored value to float32.
 *
 * Why double lanes rather than four float32 lanes: the reference's exp is JavaScript's Math.exp
 * (correctly rounded in double for practical purposes) and its sums run in double. An exp
 * polynomial in float32 would differ from it by an ulp or two in many elements; in double, with a
 * polynomial whose relative error (below 1e-14, see `expF64x2`) is far under half a float32 ulp
 * (6e-8), rounding the result to float32 gives the reference's value except in the rare element
 * whose exact value lies within 1e-14 of a rounding boundary (then it differs by one ulp). Half
 * the lanes, but Math.exp costs about 15 ns per call in V8 and this about 2 ns per element.
 *
 *   softmax_rows(xp, yp, rows, n, scale): for each row of n float32 values at xp (rows back to
 *   back), y = softmax(fround(scale * x)) into yp:
 *     1. m = max_j fround(scale * x_j)
 *     2. e_j = fround(exp(fround(scale * x_j) - m)), stored to y, total = sum_j e_j (in double)
 *     3. y_j = fround(e_j / total)
 * exactly the steps of the reference (`scale` folds attention's 1/sqrt(d) into the kernel: the
 * composition is mul then softmax, whose mul rounds its product to float32 first, as step 1 does).
 * A row is walked two values at a time (an 8-byte load promoted to two doubles); an odd last value
 * goes through the same code with one lane, the other lane ignored.
 */

import { forRange, I, inc, T, type Code, type FuncDef } from './emit';

/** 1/k! for k = 0..11: the Taylor polynomial of exp on |r| <= ln2/2 (error r^12/12! < 1e-14 relative) */
const EXP_TAYLOR = Array.from({ length: 12 }, (_, k) => 1 / Array.from({ length: k }, (_, i) => i + 1).reduce((a, b) => a * b, 1));
/** ln 2 split in a high part with trailing zero bits (k * LN2_HI is exact for |k| < 2^11) and the rest */
const LN2_HI = 6.93147180369123816490e-01;
const LN2_LO = 1.90821492927058770002e-10;
/**
 * Below this the result is set to exp(EXP_FLOOR) instead: e^-700 ~ 1e-304 is still a normal double (the
 * 2^k construction below needs k >= -1022), and it is 0 once rounded to float32, as exp(-inf) is.
 */
const EXP_FLOOR = -700;

/**
 * Code computing exp of the f64x2 on the stack, leaving it on the stack. `c(k)` reads the local
 * holding splat(EXP_TAYLOR[k]); `k`, `r` are scratch v128 locals; `consts` the locals of
 * [LOG2E, LN2_HI, LN2_LO, 1023, EXP_FLOOR] splats.
 * exp(d) = 2^k * exp(r) with k = nearest(d / ln2) and r = d - k ln2 (|r| <= ln2/2, in two steps so
 * that r keeps its low bits); 2^k is built from its bits, (k + 1023) << 52.
 */
function expF64x2(d: number, k: number, r: number, c: (i: number) => number, consts: { log2e: number; ln2hi: number; ln2lo: number; bias: number; floor: number }): Code {
  const horner: Code[] = [I.get(c(EXP_TAYLOR.length - 1))];
  for (let i = EXP_TAYLOR.length - 2; i >= 0; i--) horner.push(I.get(r), I.f64x2_mul, I.get(c(i)), I.f64x2_add);
  return [
    I.get(consts.floor), I.f64x2_max, I.set(d), // NaN stays NaN (max propagates it)
    I.get(d), I.get(consts.log2e), I.f64x2_mul, I.f64x2_nearest, I.set(k),
    I.get(d), I.get(k), I.get(consts.ln2hi), I.f64x2_mul, I.f64x2_sub, I.get(k), I.get(consts.ln2lo), I.f64x2_mul, I.f64x2_sub, I.set(r),
    horner,
    I.get(k), I.get(consts.bias), I.f64x2_add, I.i32x4_trunc_sat_f64x2_s_zero, I.i64x2_extend_low_i32x4_s, I.i32(52), I.i64x2_shl,
    I.f64x2_mul,
  ];
}

/** softmax_rows(xp, yp, rows, n, scale): see the header. Pointers are byte addresses. */
export function softmaxRowsKernel(): FuncDef {
  const xp = 0, yp = 1, rows = 2, n = 3, scale = 4; // scale: f32
  let next = 5;
  const i32 = () => next++;
  const row = i32(), p = i32(), q = i32(), pairEnd = i32(), rowBytes = i32(), delta = i32();
  const firstV128 = next;
  const v128 = () => next++;
  const sc = v128(), acc = v128(), mSplat = v128(), tSplat = v128(), d = v128(), k = v128(), r = v128(), e = v128();
  const coef = EXP_TAYLOR.map(() => v128());
  const consts = { log2e: v128(), ln2hi: v128(), ln2lo: v128(), bias: v128(), floor: v128() };
  const firstF64 = next;
  const total = next++;
  const locals = [
    ...new Array<number>(firstV128 - 5).fill(T.i32),
    ...new Array<number>(firstF64 - firstV128).fill(T.v128),
    T.f64,
  ] as FuncDef['locals'];

  const splat = (v: number, local: number): Code => [I.f64(v), I.f64x2_splat, I.set(local)];
  const exp = expF64x2(d, k, r, (i) => coef[i]!, consts);
  /** fround(scale * x) for the f32 lanes on the stack, promoted: two doubles */
  const scaled: Code = [I.get(sc), I.f32x4_mul, I.f64x2_promote_low_f32x4];
  /** e = fround(exp(fround(scale * x) - m)) as two f32 lanes, from the f32 lanes on the stack */
  const expOf: Code = [scaled, I.get(mSplat), I.f64x2_sub, exp, I.f32x4_demote_f64x2_zero, I.set(e)];

  const rowLoop = (pair: Code, single: Code): Code => [
    forRange(q, I.get(p), I.get(pairEnd), I.i32(8), pair),
    // an odd last value: the same code with one lane (q = pairEnd now)
    I.get(n), I.i32(1), I.i32_and, I.if(single),
  ];

  return {
    name: 'softmax_rows',
    params: [T.i32, T.i32, T.i32, T.i32, T.f32],
    results: [],
    locals,
    body: [
      I.get(scale), I.f32x4_splat, I.set(sc),
      EXP_TAYLOR.map((v, i) => splat(v, coef[i]!)),
      splat(Math.LOG2E, consts.log2e), splat(LN2_HI, consts.ln2hi), splat(LN2_LO, consts.ln2lo), splat(1023, consts.bias), splat(EXP_FLOOR, consts.floor),
      I.get(n), I.i32(4), I.i32_mul, I.set(rowBytes),
      I.get(yp), I.get(xp), I.i32_sub, I.set(delta), // y's address = x's + delta (wraps, as addresses do)
      forRange(row, I.i32(0), I.get(rows), I.i32(1), [
        I.get(xp), I.get(row), I.get(rowBytes), I.i32_mul, I.i32_add, I.set(p),
        I.get(p), I.get(n), I.i32(-2), I.i32_and, I.i32(4), I.i32_mul, I.i32_add, I.set(pairEnd),
        // 1. the maximum m (a lone last value is loaded into both lanes: harmless for a maximum)
        I.f64(-Infinity), I.f64x2_splat, I.set(acc),
        rowLoop(
          [I.get(acc), I.get(q), I.v128_load64_zero(), scaled, I.f64x2_max, I.set(acc)],
          [I.get(acc), I.get(q), I.v128_load32_splat(), scaled, I.f64x2_max, I.set(acc)],
        ),
        I.get(acc), I.f64x2_extract_lane(0), I.get(acc), I.f64x2_extract_lane(1), I.f64_max, I.f64x2_splat, I.set(mSplat),
        // 2. e = fround(exp(x - m)) into y; total = sum of e (the f32 values, in double)
        I.v128_zero, I.set(acc), I.f64(0), I.set(total),
        rowLoop(
          [
            I.get(q), I.v128_load64_zero(), expOf,
            I.get(q), I.get(delta), I.i32_add, I.get(e), I.v128_store64_lane0(),
            I.get(acc), I.get(e), I.f64x2_promote_low_f32x4, I.f64x2_add, I.set(acc),
          ],
          [
            I.get(q), I.v128_load32_zero(), expOf,
            I.get(q), I.get(delta), I.i32_add, I.get(e), I.f32x4_extract_lane(0), I.f32_store(),
            I.get(e), I.f32x4_extract_lane(0), I.f64_promote_f32, I.set(total),
          ],
        ),
        I.get(total), I.get(acc), I.f64x2_extract_lane(0), I.f64_add, I.get(acc), I.f64x2_extract_lane(1), I.f64_add, I.f64x2_splat, I.set(tSplat),
        // 3. y = fround(e / total), in place in y
        inc(p, I.get(delta)), inc(pairEnd, I.get(delta)),
        rowLoop(
          [I.get(q), I.get(q), I.v128_load64_zero(), I.f64x2_promote_low_f32x4, I.get(tSplat), I.f64x2_div, I.f32x4_demote_f64x2_zero, I.v128_store64_lane0()],
          [I.get(q), I.get(q), I.v128_load32_zero(), I.f64x2_promote_low_f32x4, I.get(tSplat), I.f64x2_div, I.f32x4_demote_f64x2_zero, I.f32x4_extract_lane(0), I.f32_store()],
        ),
      ]),
    ],
  };
}
