/**
 * The fast CPU backend: the reference loops of `cpu-reference.ts`, with faster kernels where a
 * training step spends its time, and a buffer pool.
 *
 * `CpuBackend` extends `ReferenceCpuBackend` and overrides only what it makes faster; everything
 * else (gather, topk, argmax, ...) is the reference loop itself. The fast paths:
 * - storage: disposed large arrays are recycled through a pool instead of being reallocated;
 * - elementwise: one tight loop per op (the arithmetic inlined, no call per element), with the
 *   equal-shape and scalar cases as straight loops;
 * - reductions: the common "reduce a contiguous block of axes" case with unit-stride loops;
 * - matmul: WebAssembly SIMD on worker threads for float32 (`wasm/`), else a packed,
 *   register-tiled TypeScript kernel (`cpu-matmul.ts`);
 * - im2col / col2im: run-length loops (`cpu-window.ts`);
 * - conv2d and its two gradients: WebAssembly SIMD direct convolution for float32 where the
 *   kernels have it; otherwise null, and the op composes im2col + matmul;
 * - erf and GELU in float32: an erf accurate to float32 instead of the exact series;
 * - softmax and GELU in float32, forward and backward: the WebAssembly kernels of row-kernels.ts
 *   (their exp in double lanes: Math.exp costs more than the rest of a softmax together), and
 *   softmax's backward and LayerNorm's forward and backward in norm-kernels.ts, on both threads;
 * - add, sub, mul, div (broadcasting by runs), relu and step in float32 for arrays of 4096 values
 *   and more: the WebAssembly SIMD kernels of map-kernels.ts, on both threads.
 * The other row kernels (Smooth L1, the Adam step) are already one fused pass each in the
 * reference and are inherited as they are.
 * `new CpuBackend({ kernels: 'reference' })` switches every fast path off (each override then
 * calls the reference loop), for teaching and for bisecting a wrong result. The conformance suite
 * runs this backend, on each of its paths, against `ReferenceCpuBackend`.
 */
import {
  sizeOf,
  type BinaryOp, type ConvSpec, type DType, type MatmulSpec,
  type ReduceOp, type Shape, type Storage, type TypedArray, type UnaryOp, type WindowSpec,
} from './backend';
import { BINARY, broadcastStrides, CpuStorage, freshArray, GELU, ReferenceCpuBackend, UNARY, walkRows } from './cpu-reference';
import { matmulBlocked } from './cpu-matmul';
import { col2imFast, im2colFast } from './cpu-window';
import { FAST_MATMUL_MIN_WORK, sharedFastKernels, type FastKernels, type MapOpName } from './wasm';
import { Arena, backgroundTouchAvailable, touchInBackground } from './prefault';

export type { FastKernels };
export { erf } from './cpu-reference';

export interface CpuBackendOptions {
  /** 'reference' uses only the reference loops (slow; for teaching and for testing the fast paths) */
  kernels?: 'fast' | 'reference';
  /**
   * accelerated float32 kernels (matmul, convolution). Default: the process-wide WebAssembly SIMD
   * kernels (wasm/), unless MOFME_KERNELS=ts or SIMD is unavailable; null: none.
   */
  fastKernels?: FastKernels | null;
}

/** Arrays at least this long are recycled through the pool (smaller ones are cheap to allocate). */
const POOL_MIN_LENGTH = 1 << 14;

/**
 * out[o + t] = op(x[ia + t*sa], y[ib + t*sb]) for t < n: one row of a binary kernel.
 * Each op gets its own loop (rather than calling BINARY[op] per element) so the JIT compiles a
 * tight loop with the arithmetic inlined: about 10x faster than an indirect call per element.
 * The BINARY table (cpu-reference.ts) stays the definition; the conformance suite checks both agree.
 */
function binaryRow(op: BinaryOp, out: TypedArray, o: number, x: TypedArray, ia: number, sa: number, y: TypedArray, ib: number, sb: number, n: number): void {
  switch (op) {
    case 'add': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! + y[ib + t * sb]!; return;
    case 'sub': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! - y[ib + t * sb]!; return;
    case 'mul': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! * y[ib + t * sb]!; return;
    case 'div': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! / y[ib + t * sb]!; return;
    // comparisons (clamp is two of them and two wheres): 1 or 0, as the BINARY table says
    case 'gt': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! > y[ib + t * sb]! ? 1 : 0; return;
    case 'lt': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! < y[ib + t * sb]! ? 1 : 0; return;
    case 'ge': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! >= y[ib + t * sb]! ? 1 : 0; return;
    case 'le': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! <= y[ib + t * sb]! ? 1 : 0; return;
    case 'eq': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! === y[ib + t * sb]! ? 1 : 0; return;
    case 'ne': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! !== y[ib + t * sb]! ? 1 : 0; return;
    default: {
      const f = BINARY[op];
      for (let t = 0; t < n; t++) out[o + t] = f(x[ia + t * sa]!, y[ib + t * sb]!);
    }
  }
}

/**
 * erf to float32 accuracy: Numerical Recipes' Chebyshev fit of erfc (fractional error below
 * 1.2e-7 everywhere), about ten times cheaper than the exact series of `erf` (cpu-reference.ts),
 * which float64 keeps for the gradient checks.
 */
function erfFloat32(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const erfc = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - erfc : erfc - 1;
}

/** The binary ops with WebAssembly kernels (map-kernels.ts). */
const MAP_BINARY = new Set<BinaryOp>(['add', 'sub', 'mul', 'div']);

/** Whether an operand of `length` values is the trailing axes of the output (leading ones dropped): it repeats every `length` values. */
function endsLike(shape: Shape, outShape: Shape, length: number): boolean {
  let covered = 1;
  for (let d = 1; covered < length; d++) {
    const own = shape[shape.length - d], out = outShape[outShape.length - d];
    if (own === undefined || own !== out) return false;
    covered *= own;
  }
  return covered === length;
}

/**
 * A broadcast binary op as runs for FastKernels.map: (o, ia, sa, ib, sb, n) per innermost run of
 * the output, each operand advancing (1) or staying put (0); a row that continues the previous one
 * in both operands joins it (a bias per channel of an image is one run per channel, not per row).
 * Null where a run would stride through an operand, or where the walked runs are shorter than 16
 * values on average: walking costs about 100 ns a row, as much as the JavaScript row loop itself
 * (a bias over the last axes is cut into runs without a walk, however short its rows).
 */
function broadcastRuns(xLength: number, aShape: Shape, yLength: number, bShape: Shape, outShape: Shape, size: number): number[] | null {
  if (xLength === size && yLength === size) return [0, 0, 1, 0, 1, size];
  if (yLength === 1 && xLength === size) return [0, 0, 1, 0, 0, size];
  if (xLength === 1 && yLength === size) return [0, 0, 0, 0, 1, size];
  // a bias over the last axes (x [..., n] + b [n]): one run per repetition, no walk
  if (xLength === size && yLength >= 4 && endsLike(bShape, outShape, yLength)) {
    const runs: number[] = [];
    for (let o = 0; o < size; o += yLength) runs.push(o, o, 1, 0, 1, yLength);
    return runs;
  }
  const runs: number[] = [];
  let usable = true;
  walkRows(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)], (o, [ia, ib], n, [sa, sb]) => {
    if ((sa !== 0 && sa !== 1) || (sb !== 0 && sb !== 1)) usable = false;
    const last = runs.length - 6;
    if (last >= 0 && runs[last + 2] === sa && runs[last + 4] === sb &&
      ia === runs[last + 1]! + sa! * runs[last + 5]! && ib === runs[last + 3]! + sb! * runs[last + 5]!) {
      runs[last + 5]! += n;
    } else {
      runs.push(o, ia!, sa!, ib!, sb!, n);
    }
  });
  return usable && runs.length / 6 <= size / 16 ? runs : null;
}

/** out[i] = op(x[i]) with the common ops as tight loops (see binaryRow). */
function unaryLoop(op: UnaryOp, out: TypedArray, x: TypedArray): void {
  const n = x.length;
  switch (op) {
    case 'erf': if (x instanceof Float32Array) { for (let i = 0; i < n; i++) out[i] = erfFloat32(x[i]!); return; } break;
    case 'neg': for (let i = 0; i < n; i++) out[i] = -x[i]!; return;
    case 'exp': for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!); return;
    case 'sqrt': for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!); return;
    case 'relu': for (let i = 0; i < n; i++) { const v = x[i]!; out[i] = v > 0 ? v : 0; } return;
    case 'step': for (let i = 0; i < n; i++) out[i] = x[i]! > 0 ? 1 : 0; return;
    default:
  }
  const f = UNARY[op];
  for (let i = 0; i < n; i++) out[i] = f(x[i]!);
}

export class CpuBackend extends ReferenceCpuBackend {
  override readonly name: string = 'cpu';
  /**
   * Disposed arrays kept for reuse, by dtype and length. A training step allocates the same
   * large intermediates every step (activations, gradients); taking them back from a pool
   * instead of from the operating system saves the page faults and the zero-filling of fresh
   * memory, about half the cost of writing a large array once. Bounded by `poolLimitBytes`.
   */
  private pool = new Map<string, TypedArray[]>();
  private pooledBytes = 0;
  poolLimitBytes = 512 * 2 ** 20;
  /** where arrays the pool cannot give come from first, once `reserve` has made one (prefault.ts) */
  private arena: Arena | undefined;
  private readonly reference: boolean;
  fastKernels: FastKernels | null;

  constructor(options: CpuBackendOptions = {}) {
    super();
    this.reference = options.kernels === 'reference';
    this.fastKernels = options.fastKernels !== undefined ? options.fastKernels : this.reference ? null : sharedFastKernels() ?? null;
  }

  override describe(): string {
    const path = this.reference ? 'reference loops' : this.fastKernels ? `fast kernels: ${this.fastKernels.name}` : 'TypeScript blocked kernels';
    return `cpu (${path}; float32 and float64)`;
  }

  // ---- storage: the pool ----
  /** An array for a kernel's output: recycled if one of this length is pooled. Contents are garbage unless `zero`. */
  protected override alloc(dtype: DType, size: number, zero = false): TypedArray {
    if (size >= POOL_MIN_LENGTH && !this.reference) {
      const reuse = this.pool.get(`${dtype}:${size}`)?.pop();
      if (reuse) {
        this.pooledBytes -= reuse.byteLength;
        return zero ? reuse.fill(0) : reuse;
      }
      const fresh = this.arena?.take(dtype, size); // never written: zero-filled
      if (fresh) return fresh;
    }
    return freshArray(dtype, size, this.liveBytes);
  }

  /**
   * Get ready for a pass that will allocate about `bytes` of new arrays and use `scratchBytes` of
   * the fast kernels' scratch memory (e.g. the first window of a restore): a helper thread faults
   * that memory in now, while the caller goes on with something else (prefault.ts says why this
   * pays: fresh memory costs ~4-5 ms per MiB to touch the first time on the measured VM). The
   * arrays the pool cannot give are then taken from that memory until it is used up. Returns at
   * once; the promise settles when the helper is done (nothing needs to wait for it). Does
   * nothing where no helper thread can run (browsers) or on the reference path. Call it freely
   * for each pass: memory that is already there (arrays idle in the pool, what is left of the
   * arena, scratch already grown) is counted, and nothing happens when it covers the request, so
   * a warm process (the second photo, a benchmark's timed runs) starts no helper.
   */
  reserve(bytes: number, scratchBytes = 0): Promise<void> {
    if (this.reference || !backgroundTouchAvailable()) return Promise.resolve();
    // the scratch first: every kernel call uses it, from the first op on
    const scratch = scratchBytes > 0 ? this.fastKernels?.reserveScratch(scratchBytes) : undefined;
    const buffers = scratch ? [scratch] : [];
    if (bytes > this.pooledBytes + (this.arena?.left ?? 0)) {
      this.arena = new Arena(bytes);
      buffers.push(this.arena.buffer);
    }
    return touchInBackground(buffers);
  }

  override dispose(x: Storage): void {
    const data = (x as CpuStorage).data;
    super.dispose(x);
    if (data === null || this.reference) return;
    if (data.length >= POOL_MIN_LENGTH && this.pooledBytes + data.byteLength <= this.poolLimitBytes) {
      const key = `${data instanceof Float64Array ? 'float64' : 'float32'}:${data.length}`;
      const list = this.pool.get(key) ?? [];
      list.push(data);
      this.pool.set(key, list);
      this.pooledBytes += data.byteLength;
    }
  }

  // ---- elementwise ----
  override unary(op: UnaryOp, x: Storage): Storage {
    if (this.reference) return super.unary(op, x);
    const src = this.data(x);
    const out = this.alloc(x.dtype, src.length);
    const fast = this.fastKernels;
    if (fast && (op === 'relu' || op === 'step') && src instanceof Float32Array && src.length >= fast.mapMinSize && src.length > 0) {
      return this.wrap(fast.map(op, src, null, [0, 0, 1, 0, 0, src.length], out as Float32Array));
    }
    unaryLoop(op, out, src);
    return this.wrap(out);
  }

  override binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage {
    if (this.reference) return super.binary(op, a, aShape, b, bShape, outShape);
    const x = this.data(a), y = this.data(b);
    const size = sizeOf(outShape);
    const out = this.alloc(a.dtype, size);
    const fast = this.fastKernels;
    if (fast && MAP_BINARY.has(op) && x instanceof Float32Array && y instanceof Float32Array && size >= fast.mapMinSize && size > 0) {
      const runs = broadcastRuns(x.length, aShape, y.length, bShape, outShape, size);
      if (runs) return this.wrap(fast.map(op as MapOpName, x, y, runs, out as Float32Array));
    }
    if (x.length === size && y.length === size) binaryRow(op, out, 0, x, 0, 1, y, 0, 1, size);
    else if (y.length === 1 && x.length === size) binaryRow(op, out, 0, x, 0, 1, y, 0, 0, size);
    else if (x.length === 1 && y.length === size) binaryRow(op, out, 0, x, 0, 0, y, 0, 1, size);
    else {
      walkRows(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)], (o, [ia, ib], n, [sa, sb]) => {
        binaryRow(op, out, o, x, ia!, sa!, y, ib!, sb!, n);
      });
    }
    return this.wrap(out);
  }

  /**
   * where: with every operand full-size or a single value (a mask and a constant: clamp, masking)
   * one straight loop; other broadcasts as the reference.
   */
  override where(cond: Storage, condShape: Shape, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage {
    const c = this.data(cond), x = this.data(a), y = this.data(b), size = sizeOf(outShape);
    const simple = [c, x, y].every((v) => v.length === size || v.length === 1);
    if (this.reference || !simple) return super.where(cond, condShape, a, aShape, b, bShape, outShape);
    const out = this.alloc(a.dtype, size);
    const sc = c.length === 1 ? 0 : 1, sa = x.length === 1 ? 0 : 1, sb = y.length === 1 ? 0 : 1;
    for (let i = 0; i < size; i++) out[i] = c[i * sc]! !== 0 ? x[i * sa]! : y[i * sb]!;
    return this.wrap(out);
  }

  /** GELU in float32 with the float32 erf; float64 (and 'tanh') as the reference */
  override gelu(x: Storage, approximate: 'none' | 'tanh'): Storage {
    const src = this.data(x);
    if (this.reference || approximate !== 'none' || !(src instanceof Float32Array)) return super.gelu(x, approximate);
    const out = this.alloc('float32', src.length);
    // the same formula in WebAssembly double lanes (its exp 4x cheaper than Math.exp), else this loop
    if (this.fastKernels) return this.wrap(this.fastKernels.gelu(src, out as Float32Array));
    const f = GELU.none.f;
    for (let i = 0; i < src.length; i++) out[i] = f(src[i]!, erfFloat32);
    return this.wrap(out);
  }

  override geluBackward(x: Storage, grad: Storage, approximate: 'none' | 'tanh'): Storage {
    const src = this.data(x), g = this.data(grad);
    if (this.reference || approximate !== 'none' || !(src instanceof Float32Array)) return super.geluBackward(x, grad, approximate);
    const out = this.alloc('float32', src.length), df = GELU.none.df;
    if (this.fastKernels && g instanceof Float32Array) return this.wrap(this.fastKernels.geluBackward(src, g, out as Float32Array));
    for (let i = 0; i < src.length; i++) out[i] = g[i]! * df(src[i]!, erfFloat32);
    return this.wrap(out);
  }

  /** softmax rows in WebAssembly (row-kernels.ts: double lanes, the reference's float32 results); float64 as the reference */
  override softmax(x: Storage, rows: number, n: number, scale = 1): Storage {
    const src = this.data(x);
    if (this.reference || !this.fastKernels || !(src instanceof Float32Array)) return super.softmax(x, rows, n, scale);
    return this.wrap(this.fastKernels.softmax(src, rows, n, scale, this.alloc('float32', rows * n) as Float32Array));
  }

  /** softmax's backward in WebAssembly (norm-kernels.ts); float64 as the reference */
  override softmaxBackward(y: Storage, grad: Storage, rows: number, n: number, scale = 1): Storage {
    const f = this.reference ? null : this.float32(y, grad);
    if (!f) return super.softmaxBackward(y, grad, rows, n, scale);
    return this.wrap(this.fastKernels!.softmaxBackward(f[0]!, f[1]!, rows, n, scale, this.alloc('float32', rows * n) as Float32Array));
  }

  /** LayerNorm forward and backward in WebAssembly (norm-kernels.ts); float64 as the reference */
  override layerNorm(x: Storage, weight: Storage | null, bias: Storage | null, rows: number, n: number, eps: number): { out: Storage; stats: Storage } {
    const f = this.reference ? null : this.float32(x, weight, bias);
    if (!f) return super.layerNorm(x, weight, bias, rows, n, eps);
    const r = this.fastKernels!.layerNorm(f[0]!, weight ? f[1]! : null, bias ? f[2]! : null, rows, n, eps, this.alloc('float32', rows * n) as Float32Array, this.alloc('float32', rows * 2) as Float32Array);
    return { out: this.wrap(r.out), stats: this.wrap(r.stats) };
  }

  override layerNormBackward(grad: Storage, x: Storage, weight: Storage | null, stats: Storage, rows: number, n: number): { dx: Storage; dweight: Storage; dbias: Storage } {
    const f = this.reference ? null : this.float32(grad, x, weight, stats);
    if (!f) return super.layerNormBackward(grad, x, weight, stats, rows, n);
    const r = this.fastKernels!.layerNormBackward(f[0]!, f[1]!, weight ? f[2]! : null, f[3]!, rows, n, this.alloc('float32', rows * n) as Float32Array);
    return { dx: this.wrap(r.dx), dweight: this.wrap(r.dweight), dbias: this.wrap(r.dbias) };
  }

  // ---- reductions ----
  /**
   * The common case, reduced axes forming one contiguous block: x is [outer, n, inner] and the
   * reduction runs over the middle axis with unit-stride inner loops. Other axis sets: reference.
   */
  override reduce(op: ReduceOp, x: Storage, shape: Shape, axes: readonly number[]): Storage {
    const first = axes[0] ?? 0, last = axes[axes.length - 1] ?? -1;
    if (this.reference || axes.length === 0 || last - first + 1 !== axes.length) return super.reduce(op, x, shape, axes);
    const src = this.data(x);
    const outer = sizeOf(shape.slice(0, first)), n = sizeOf(shape.slice(first, last + 1)), inner = sizeOf(shape.slice(last + 1));
    const init = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
    const out = this.alloc(x.dtype, outer * inner).fill(init);
    if (inner === 1) {
      // reducing trailing axes: one running accumulator per output element
      for (let o = 0; o < outer; o++) {
        let acc = out[o]!;
        const xb = o * n;
        if (op === 'sum') for (let j = 0; j < n; j++) acc += src[xb + j]!;
        else if (op === 'max') for (let j = 0; j < n; j++) { const v = src[xb + j]!; if (v > acc || Number.isNaN(v)) acc = v; }
        else for (let j = 0; j < n; j++) { const v = src[xb + j]!; if (v < acc || Number.isNaN(v)) acc = v; }
        out[o] = acc;
      }
      return this.wrap(out);
    }
    for (let o = 0; o < outer; o++) {
      const ob = o * inner;
      for (let j = 0; j < n; j++) {
        const xb = (o * n + j) * inner;
        if (op === 'sum') for (let i = 0; i < inner; i++) out[ob + i] += src[xb + i]!;
        else if (op === 'max') for (let i = 0; i < inner; i++) { const v = src[xb + i]!; if (v > out[ob + i]! || Number.isNaN(v)) out[ob + i] = v; }
        else for (let i = 0; i < inner; i++) { const v = src[xb + i]!; if (v < out[ob + i]! || Number.isNaN(v)) out[ob + i] = v; }
      }
    }
    return this.wrap(out);
  }

  /**
   * Top-k indices by insertion into a k-long list per row (a router's k of E experts) instead of
   * the reference's two sorts per row. Same order: larger first, ties (equal values, or two
   * infinities of one sign) by the lower index. Rows with a NaN, whose order only the reference's
   * sort defines, go to the reference.
   */
  override topkIndices(x: Storage, shape: Shape, k: number): Storage {
    const src = this.data(x);
    if (this.reference || k > 16 || src.some(Number.isNaN)) return super.topkIndices(x, shape, k);
    const n = shape[shape.length - 1]!;
    const rows = n === 0 ? 0 : src.length / n;
    const out = this.alloc(x.dtype, rows * k);
    const bestValue = new Float64Array(k), bestIndex = new Int32Array(k);
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      let count = 0;
      for (let j = 0; j < n; j++) {
        const v = src[base + j]!;
        if (count === k && !(v > bestValue[k - 1]!)) continue; // an equal later value never displaces
        let p = count < k ? count++ : k - 1;
        while (p > 0 && v > bestValue[p - 1]!) { bestValue[p] = bestValue[p - 1]!; bestIndex[p] = bestIndex[p - 1]!; p--; }
        bestValue[p] = v;
        bestIndex[p] = j;
      }
      for (let t = 0; t < k; t++) out[r * k + t] = bestIndex[t]!;
    }
    return this.wrap(out);
  }

  // ---- linear algebra ----
  override matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    if (this.reference) return super.matmul(a, b, spec);
    const x = this.data(a), y = this.data(b);
    const work = spec.batch * spec.m * spec.n * spec.k;
    if (this.fastKernels && x instanceof Float32Array && y instanceof Float32Array && work >= FAST_MATMUL_MIN_WORK) {
      return this.wrap(this.fastKernels.matmul(x, y, spec, this.alloc('float32', spec.batch * spec.m * spec.n) as Float32Array));
    }
    // the blocked kernel pays for its packing only when there is enough work to amortise it
    if (spec.m * spec.n * spec.k < FAST_MATMUL_MIN_WORK) return super.matmul(a, b, spec);
    const out = this.alloc(a.dtype, spec.batch * spec.m * spec.n);
    matmulBlocked(x, y, out, spec);
    return this.wrap(out);
  }

  // ---- convolution: the direct WebAssembly kernels for float32; null (im2col + matmul) otherwise ----
  /** the float32 arrays behind the storages (a null storage reads as an empty array), or null when any is float64 or there are no fast kernels */
  private float32(...xs: (Storage | null)[]): Float32Array[] | null {
    if (!this.fastKernels) return null;
    const arrays = xs.map((s) => (s ? this.data(s) : new Float32Array(0)));
    return arrays.every((a): a is Float32Array => a instanceof Float32Array) ? arrays : null;
  }

  override conv2d(x: Storage, weight: Storage, bias: Storage | null, spec: ConvSpec): Storage | null {
    if (this.reference) return super.conv2d(x, weight, bias, spec);
    const f = this.float32(x, weight, bias);
    if (!f) return null;
    const out = this.alloc('float32', spec.batch * spec.outChannels * spec.outH * spec.outW) as Float32Array;
    return this.wrap(this.fastKernels!.conv2d(f[0]!, f[1]!, bias ? f[2]! : null, spec, out));
  }

  override conv2dBackwardInput(grad: Storage, weight: Storage, spec: ConvSpec): Storage | null {
    if (this.reference) return super.conv2dBackwardInput(grad, weight, spec);
    const f = this.float32(grad, weight);
    if (!f) return null;
    const out = this.wrap(this.alloc('float32', spec.batch * spec.channels * spec.height * spec.width));
    if (this.fastKernels!.conv2dBackwardInput(f[0]!, f[1]!, spec, this.data(out) as Float32Array)) return out;
    this.dispose(out); // no direct kernel for this stride: back to the pool
    return null;
  }

  override conv2dBackwardFilter(grad: Storage, x: Storage, spec: ConvSpec): Storage | null {
    if (this.reference) return super.conv2dBackwardFilter(grad, x, spec);
    const f = this.float32(grad, x);
    if (!f) return null;
    const out = this.alloc('float32', (spec.outChannels * spec.channels * spec.kh * spec.kw) / spec.groups) as Float32Array;
    return this.wrap(this.fastKernels!.conv2dBackwardFilter(f[0]!, f[1]!, spec, out));
  }

  // ---- movement ----
  /**
   * Strided read with the axes simplified first: axes of size 1 dropped, and neighbours merged
   * where one steps exactly over the other (a permute of [1, 900, 3, 4, 16] is then a 3-d walk),
   * then the last two axes as a plain double loop, so that short rows (a patch's 8 pixels) do not
   * pay a callback each as in the reference's row walk.
   */
  override strided(x: Storage, outShape: Shape, strides: readonly number[], offset: number): Storage {
    if (this.reference) return super.strided(x, outShape, strides, offset);
    const src = this.data(x);
    const shape: number[] = [], step: number[] = [];
    for (let d = 0; d < outShape.length; d++) {
      const n = outShape[d]!, s = strides[d]!;
      if (n === 1) continue;
      const k = shape.length - 1;
      // element (i_k, i_d) sits at i_k * step[k] + i_d * s = (i_k * n + i_d) * s when step[k] = n * s
      if (k >= 0 && step[k] === n * s) { shape[k] = shape[k]! * n; step[k] = s; } else { shape.push(n); step.push(s); }
    }
    const size = sizeOf(outShape);
    const out = this.alloc(x.dtype, size);
    if (size === 0) return this.wrap(out);
    while (shape.length < 2) { shape.unshift(1); step.unshift(0); }
    const rank = shape.length;
    const n0 = shape[rank - 1]!, s0 = step[rank - 1]!, n1 = shape[rank - 2]!, s1 = step[rank - 2]!;
    const outer = rank - 2, index = new Array<number>(outer).fill(0);
    let base = offset, o = 0;
    for (let block = size / (n0 * n1); block > 0; block--) {
      for (let i1 = 0; i1 < n1; i1++) {
        const row = base + i1 * s1;
        if (s0 === 1) for (let i0 = 0; i0 < n0; i0++) out[o++] = src[row + i0]!;
        // a broadcast along the last axis (a sum's gradient spread over its input): one fill
        else if (s0 === 0) { out.fill(src[row]!, o, o + n0); o += n0; }
        else for (let i0 = 0; i0 < n0; i0++) out[o++] = src[row + i0 * s0]!;
      }
      for (let d = outer - 1; d >= 0; d--) {
        index[d]!++;
        base += step[d]!;
        if (index[d]! < shape[d]!) break;
        base -= step[d]! * shape[d]!;
        index[d] = 0;
      }
    }
    return this.wrap(out);
  }

  override im2col(x: Storage, spec: WindowSpec): Storage {
    if (this.reference) return super.im2col(x, spec);
    const size = spec.batch * spec.channels * spec.kh * spec.kw * spec.outH * spec.outW;
    return this.wrap(im2colFast(this.data(x), spec, this.alloc(x.dtype, size)));
  }

  override col2im(cols: Storage, spec: WindowSpec): Storage {
    if (this.reference) return super.col2im(cols, spec);
    return this.wrap(col2imFast(this.data(cols), spec, this.alloc(cols.dtype, spec.batch * spec.channels * spec.height * spec.width)));
  }
}
