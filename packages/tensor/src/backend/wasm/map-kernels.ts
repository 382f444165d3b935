/**
 * Elementwise WebAssembly SIMD kernels: add, sub, mul, div (with broadcasting), relu and step.
 *
 * Why in WebAssembly: a JavaScript loop over a Float32Array does one element per iteration, about
 * 1.5 ns (3.7 MB added in 1.5 ms); relu and step are worse, 7 ns, because `x > 0 ? x : 0` is a
 * branch that random signs mispredict half the time. Here four lanes go per instruction, relu is
 * one branch-free `f32x4.pmax`, and the job is shared by the pool's threads (pool.ts). Copying the
 * operands into the kernels' memory and the result out costs a `TypedArray.set` each, a memcpy
 * (3.7 MB in about 0.1-0.3 ms), which is why the driver (index.ts) uses these only for arrays
 * large enough to pay for that.
 *
 * The results are bit-identical to the reference loops: a float32 add, subtract, multiply or
 * divide of two float32 values rounded once (here) equals the double operation rounded to float32
 * (JavaScript), because a double has more than twice float32's precision. relu is
 * `pmax(0, x) = 0 < x ? x : 0` and step is `(0 < x) & 1.0`, the reference's `x > 0 ? ... : 0`
 * lane by lane: NaN and -0 both give +0.
 *
 * One calling convention for every kernel, `map_<op>(table, entries)`: a table of runs, six i32 per
 * run (byte addresses and counts):
 *   z, x, xStep, y, yStep, n      z[t] = op(x[t], y[t]) for t < n
 * where an operand's step is 16 (it advances four floats per vector: a contiguous run) or 0 (it
 * stays put: the driver points it at a vector holding one value four times, a broadcast). A run is
 * swept four values at a time, then its last n % 4 values one by one (the scalar steps are the
 * vector steps / 4). Unary kernels ignore y. The table lets one call cover any broadcast the
 * driver can cut into runs (a bias added to every row, a value per channel of an image) and lets
 * the pool give each thread a slice of it.
 */

import { forRange, I, T, uleb, type Code, type FuncDef } from './emit';

/** Bytes per run in the table: z, x, xStep, y, yStep, n. */
export const RUN_BYTES = 24;

/** The SIMD and scalar instructions these kernels need beyond emit.ts's set (opcodes from the spec's tables). */
const simdOp = (op: number): Code => [0xfd, ...uleb(op)];
const X = {
  f32x4_sub: simdOp(0xe5),
  f32x4_div: simdOp(0xe7),
  /** lanes where a > b all ones */
  f32x4_gt: simdOp(0x44),
  v128_and: simdOp(0x4e),
  f32_sub: 0x93,
  f32_div: 0x95,
  /** a > b as an i32 */
  f32_gt: 0x5e,
};

/**
 * Each op as a vector body and a scalar body. With `a` (and `b`) pushed, both leave the result on
 * the stack; `zero` and `one` are v128 locals holding 0.0 and 1.0 in every lane.
 */
interface MapOp { vector: (a: Code, b: Code, zero: number, one: number) => Code; scalar: (a: Code, b: Code) => Code; binary: boolean }
const OPS = {
  add: { binary: true, vector: (a, b) => [a, b, I.f32x4_add], scalar: (a, b) => [a, b, I.f32_add] },
  sub: { binary: true, vector: (a, b) => [a, b, X.f32x4_sub], scalar: (a, b) => [a, b, X.f32_sub] },
  mul: { binary: true, vector: (a, b) => [a, b, I.f32x4_mul], scalar: (a, b) => [a, b, I.f32_mul] },
  div: { binary: true, vector: (a, b) => [a, b, X.f32x4_div], scalar: (a, b) => [a, b, X.f32_div] },
  // pmax(0, x) = 0 < x ? x : 0
  relu: { binary: false, vector: (a, _b, zero) => [I.get(zero), a, I.f32x4_pmax], scalar: (a) => [a, I.f32(0), a, I.f32(0), X.f32_gt, I.select] },
  step: { binary: false, vector: (a, _b, zero, one) => [a, I.get(zero), X.f32x4_gt, I.get(one), X.v128_and], scalar: (a) => [I.f32(1), I.f32(0), a, I.f32(0), X.f32_gt, I.select] },
} satisfies Record<string, MapOp>;

export type MapOpName = keyof typeof OPS;
/** The ops in the order of their kernel ids (the pool's MAP job names a kernel by its index here). */
export const MAP_OPS = Object.keys(OPS) as MapOpName[];
/** Export name of an op's kernel. */
export const mapKernelName = (op: MapOpName): string => `map_${op}`;

/** map_<op>(table, entries): see the header. */
function mapKernel(name: MapOpName): FuncDef {
  const { vector, scalar, binary } = OPS[name];
  const table = 0, entries = 1;
  const e = 2, end = 3, z = 4, x = 5, xs = 6, y = 7, ys = 8, n = 9, vecEnd = 10, zEnd = 11;
  const zero = 12, one = 13;
  const field = (k: number): Code => [I.get(e), I.i32_load(k * 4)];
  const xv: Code = [I.get(x), I.v128_load()], yv: Code = [I.get(y), I.v128_load()];
  const xf: Code = [I.get(x), I.f32_load()], yf: Code = [I.get(y), I.f32_load()];
  const advance = (p: number, step: number, shift: boolean): Code =>
    [I.get(p), I.get(step), ...(shift ? [I.i32(2), 0x76 /* i32.shr_u */] : []), I.i32_add, I.set(p)];
  return {
    name: mapKernelName(name),
    params: [T.i32, T.i32],
    results: [],
    locals: [...new Array<number>(10).fill(T.i32), T.v128, T.v128] as FuncDef['locals'],
    body: [
      I.v128_zero, I.set(zero), I.f32(1), I.f32x4_splat, I.set(one),
      I.get(table), I.get(entries), I.i32(RUN_BYTES), I.i32_mul, I.i32_add, I.set(end),
      forRange(e, I.get(table), I.get(end), I.i32(RUN_BYTES), [
        field(0), I.set(z), field(1), I.set(x), field(2), I.set(xs), field(3), I.set(y), field(4), I.set(ys), field(5), I.set(n),
        I.get(z), I.get(n), I.i32(-4), I.i32_and, I.i32(4), I.i32_mul, I.i32_add, I.set(vecEnd),
        I.get(z), I.get(n), I.i32(4), I.i32_mul, I.i32_add, I.set(zEnd),
        // four at a time (z is the loop variable; x and y follow it by their steps)
        forRange(z, I.get(z), I.get(vecEnd), I.i32(16), [
          I.get(z), vector(xv, binary ? yv : [], zero, one), I.v128_store(),
          advance(x, xs, false), binary ? advance(y, ys, false) : [],
        ]),
        // the last n % 4 one by one
        forRange(z, I.get(z), I.get(zEnd), I.i32(4), [
          I.get(z), scalar(xf, binary ? yf : []), I.f32_store(),
          advance(x, xs, true), binary ? advance(y, ys, true) : [],
        ]),
      ]),
    ],
  };
}

/** Every elementwise kernel, in MAP_OPS order. */
export function mapKernels(): FuncDef[] {
  return MAP_OPS.map(mapKernel);
}
