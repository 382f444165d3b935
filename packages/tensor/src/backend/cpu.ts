/**
 * The CPU backend: the readable reference implementation of every primitive in `backend.ts`.
 *
 * Each kernel is a plain loop over typed arrays, written to be read and trusted; every other
 * backend (gpu.js, the WebAssembly kernels) is tested against these loops. Where speed matters
 * for training, a faster kernel sits beside its reference and is selected at run time:
 * - matmul: a packed, register-tiled TypeScript kernel (`cpu-matmul.ts`), or optional "fast
 *   kernels" (WebAssembly SIMD with worker threads, see `wasm/`) for float32;
 * - binary ops: a direct loop when both shapes are equal or one side is a scalar.
 * Storage is a Float32Array or Float64Array; float64 exists so that gradients can be checked
 * against finite differences tightly.
 */
import {
  sizeOf, stridesOf,
  type ArgReduceOp, type Backend, type BinaryOp, type DType, type MatmulSpec, type MemoryInfo,
  type ReduceOp, type Shape, type Storage, type TypedArray, type UnaryOp, type WindowSpec,
} from './backend';
import { matmulBlocked, matmulNaive } from './cpu-matmul';
import { FAST_MATMUL_MIN_WORK, sharedFastKernels, type FastKernels } from './wasm';

export type { FastKernels };

export interface CpuBackendOptions {
  /** 'reference' uses only the naive loops (slow; for teaching and for testing the fast paths) */
  kernels?: 'fast' | 'reference';
  /**
   * accelerated float32 kernels for matmul, im2col and col2im. Default: the process-wide
   * WebAssembly SIMD kernels (wasm/), unless MOFME_KERNELS=ts or SIMD is unavailable; null: none.
   */
  fastKernels?: FastKernels | null;
}

class CpuStorage implements Storage {
  constructor(readonly backend: CpuBackend, public data: TypedArray | null) {}
  get size(): number { return this.buf.length; }
  get dtype(): DType { return this.buf instanceof Float64Array ? 'float64' : 'float32'; }
  get buf(): TypedArray {
    if (this.data === null) throw new Error('cpu backend: this storage was disposed and cannot be used any more');
    return this.data;
  }
}

const freshArray = (dtype: DType, size: number): TypedArray => (dtype === 'float64' ? new Float64Array(size) : new Float32Array(size));

/** Arrays at least this long are recycled through the pool (smaller ones are cheap to allocate). */
const POOL_MIN_LENGTH = 1 << 14;

// ---------------------------------------------------------------------------------------------
// Scalar math used by the elementwise kernels
// ---------------------------------------------------------------------------------------------

/**
 * erf(x) to double precision. For |x| < 3 the series erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (1*3*...*(2n+1))
 * (all terms positive, so no cancellation); beyond, the continued fraction of erfc converges fast.
 * Accuracy matters: float64 gradient checks compare finite differences of this function with
 * its analytic derivative 2/sqrt(pi) e^{-x^2}.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax, sum = ax;
    for (let n = 1; n < 200 && term > 1e-17 * sum; n++) {
      term *= (2 * ax * ax) / (2 * n + 1);
      sum += term;
    }
    const r = (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  // erfc(x) = e^{-x^2}/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated bottom-up
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN),
  step: (x) => (x > 0 ? 1 : 0),
  relu: (x) => (x > 0 ? x : 0),
  // written so that exp never overflows: for x < 0 use e^x / (1 + e^x)
  sigmoid: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  tanh: Math.tanh,
  erf,
  sin: Math.sin,
  cos: Math.cos,
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => Math.pow(a, b),
  // Math.max/min propagate NaN, as torch.maximum/minimum do
  max: (a, b) => Math.max(a, b),
  min: (a, b) => Math.min(a, b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

/**
 * Strides for reading an input of shape `inShape` while walking an output of shape `outShape`
 * (same rank): broadcast axes (size 1 in the input) get stride 0, so the same element is reused.
 */
function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const strides = stridesOf(inShape);
  return outShape.map((s, d) => (inShape[d] === 1 && s !== 1 ? 0 : strides[d]!));
}

/**
 * Walk every index of `shape` in row-major order, one row (the last axis) at a time:
 * `visit(outOffset, offsets, length, rowStrides)` where offsets[t] is the flat position in the t-th
 * input of the row's first element and rowStrides[t] its stride along the last axis. The outer
 * axes advance like an odometer (the last of them turns fastest and carries into the one before);
 * the kernels then run a tight loop along the row, so the bookkeeping costs once per row, not
 * once per element.
 */
function walkRows(shape: Shape, strides: readonly (readonly number[])[], visit: (outOffset: number, offsets: number[], length: number, rowStrides: number[]) => void): void {
  const rank = shape.length;
  if (rank === 0) { visit(0, strides.map(() => 0), 1, strides.map(() => 0)); return; }
  const n = shape[rank - 1]!;
  const rows = n === 0 ? 0 : sizeOf(shape) / n;
  const index = new Array<number>(rank - 1).fill(0);
  const offsets = strides.map(() => 0);
  const rowStrides = strides.map((s) => s[rank - 1]!);
  for (let r = 0; r < rows; r++) {
    visit(r * n, offsets, n, rowStrides);
    for (let d = rank - 2; d >= 0; d--) {
      index[d]!++;
      for (let t = 0; t < strides.length; t++) offsets[t]! += strides[t]![d]!;
      if (index[d]! < shape[d]!) break;
      for (let t = 0; t < strides.length; t++) offsets[t]! -= strides[t]![d]! * shape[d]!;
      index[d] = 0;
    }
  }
}

/**
 * out[o + t] = op(x[ia + t*sa], y[ib + t*sb]) for t < n: one row of a binary kernel.
 * Each op gets its own loop (rather than calling BINARY[op] per element) so the JIT compiles a
 * tight loop with the arithmetic inlined: about 10x faster than an indirect call per element.
 * The BINARY table above stays the definition; the conformance suite checks both agree.
 */
function binaryRow(op: BinaryOp, out: TypedArray, o: number, x: TypedArray, ia: number, sa: number, y: TypedArray, ib: number, sb: number, n: number): void {
  switch (op) {
    case 'add': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! + y[ib + t * sb]!; return;
    case 'sub': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! - y[ib + t * sb]!; return;
    case 'mul': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! * y[ib + t * sb]!; return;
    case 'div': for (let t = 0; t < n; t++) out[o + t] = x[ia + t * sa]! / y[ib + t * sb]!; return;
    default: {
      const f = BINARY[op];
      for (let t = 0; t < n; t++) out[o + t] = f(x[ia + t * sa]!, y[ib + t * sb]!);
    }
  }
}

/** out[i] = op(x[i]) with the common ops as tight loops (see binaryRow). */
function unaryLoop(op: UnaryOp, out: TypedArray, x: TypedArray): void {
  const n = x.length;
  switch (op) {
    case 'neg': for (let i = 0; i < n; i++) out[i] = -x[i]!; return;
    case 'exp': for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!); return;
    case 'sqrt': for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!); return;
    case 'relu': for (let i = 0; i < n; i++) { const v = x[i]!; out[i] = v > 0 ? v : 0; } return;
    case 'step': for (let i = 0; i < n; i++) out[i] = x[i]! > 0 ? 1 : 0; return;
    default: {
      const f = UNARY[op];
      for (let i = 0; i < n; i++) out[i] = f(x[i]!);
    }
  }
}

/**
 * The geometry shared by im2col and its adjoint col2im: for every entry o of the column matrix
 * [batch, C*kh*kw, outH*outW] (in order), the flat input pixel it reads, or -1 in the padding.
 * Row c*kh*kw + i*kw + j holds kernel tap (c, i, j) at every output position (oy, ox), which
 * reads pixel (oy*stride - pad + i*dilation, ox*stride - pad + j*dilation) of channel c.
 */
function forEachWindowTap(spec: WindowSpec, visit: (o: number, pixel: number) => void): void {
  const { batch, channels: C, height: H, width: W, kh, kw, outH, outW } = spec;
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < C; c++) {
      const plane = (b * C + c) * H * W;
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          for (let oy = 0; oy < outH; oy++) {
            const y = oy * spec.strideH - spec.padH + i * spec.dilationH;
            const rowInside = y >= 0 && y < H;
            for (let ox = 0; ox < outW; ox++, o++) {
              const xx = ox * spec.strideW - spec.padW + j * spec.dilationW;
              visit(o, rowInside && xx >= 0 && xx < W ? plane + y * W + xx : -1);
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly isAccelerated = false;
  private live = 0;
  private liveBytes = 0;
  /**
   * Disposed arrays kept for reuse, by dtype and length. A training step allocates the same
   * large intermediates every step (im2col columns, activations); taking them back from a pool
   * instead of from the operating system saves the page faults and the zero-filling of fresh
   * memory, about half the cost of writing a large array once. Bounded by `poolLimitBytes`.
   */
  private pool = new Map<string, TypedArray[]>();
  private pooledBytes = 0;
  poolLimitBytes = 512 * 2 ** 20;
  private readonly reference: boolean;
  fastKernels: FastKernels | null;

  constructor(options: CpuBackendOptions = {}) {
    this.reference = options.kernels === 'reference';
    this.fastKernels = options.fastKernels !== undefined ? options.fastKernels : this.reference ? null : sharedFastKernels() ?? null;
  }

  describe(): string {
    const path = this.reference ? 'reference loops' : this.fastKernels ? `fast kernels: ${this.fastKernels.name}` : 'TypeScript blocked kernels';
    return `cpu (${path}; float32 and float64)`;
  }
  epsilon(dtype: DType): number { return dtype === 'float64' ? 1e-12 : 1e-5; }
  supports(_dtype: DType): boolean { return true; }

  // ---- storage ----
  /** An array for a kernel's output: recycled if one of this length is pooled. Contents are garbage unless `zero`. */
  private alloc(dtype: DType, size: number, zero = false): TypedArray {
    if (size >= POOL_MIN_LENGTH) {
      const reuse = this.pool.get(`${dtype}:${size}`)?.pop();
      if (reuse) {
        this.pooledBytes -= reuse.byteLength;
        return zero ? reuse.fill(0) : reuse;
      }
    }
    return freshArray(dtype, size);
  }
  private wrap(data: TypedArray): CpuStorage {
    this.live++;
    this.liveBytes += data.byteLength;
    return new CpuStorage(this, data);
  }
  /** the typed array behind a storage (the CPU backend's own; other backends must download) */
  data(x: Storage): TypedArray {
    if (!(x instanceof CpuStorage) || x.backend !== this) throw new Error(`cpu backend: got a storage from backend '${x.backend.name}'; move the tensor with .to(backend) first`);
    return x.buf;
  }
  upload(data: TypedArray): Storage {
    const out = this.alloc(data instanceof Float64Array ? 'float64' : 'float32', data.length);
    out.set(data);
    return this.wrap(out);
  }
  download(x: Storage): TypedArray { return this.data(x).slice(); }
  fill(size: number, value: number, dtype: DType): Storage { return this.wrap(this.alloc(dtype, size).fill(value)); }
  cast(x: Storage, dtype: DType): Storage {
    const src = this.data(x);
    const out = this.alloc(dtype, src.length);
    out.set(src);
    return this.wrap(out);
  }
  dispose(x: Storage): void {
    const s = x as CpuStorage;
    if (s.data === null) return;
    this.live--;
    this.liveBytes -= s.data.byteLength;
    const data = s.data;
    s.data = null;
    if (data.length >= POOL_MIN_LENGTH && this.pooledBytes + data.byteLength <= this.poolLimitBytes) {
      const key = `${data instanceof Float64Array ? 'float64' : 'float32'}:${data.length}`;
      const list = this.pool.get(key) ?? [];
      list.push(data);
      this.pool.set(key, list);
      this.pooledBytes += data.byteLength;
    }
  }
  memory(): MemoryInfo { return { buffers: this.live, bytes: this.liveBytes }; }

  // ---- elementwise ----
  unary(op: UnaryOp, x: Storage): Storage {
    const src = this.data(x);
    const out = this.alloc(x.dtype, src.length);
    unaryLoop(op, out, src);
    return this.wrap(out);
  }

  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage {
    const x = this.data(a), y = this.data(b);
    const size = sizeOf(outShape);
    const out = this.alloc(a.dtype, size);
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

  where(cond: Storage, condShape: Shape, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage {
    const c = this.data(cond), x = this.data(a), y = this.data(b);
    const out = this.alloc(a.dtype, sizeOf(outShape));
    const strides = [condShape, aShape, bShape].map((s) => broadcastStrides(s, outShape));
    walkRows(outShape, strides, (o, [ic, ia, ib], n, [sc, sa, sb]) => {
      for (let t = 0; t < n; t++) out[o + t] = c[ic! + t * sc!] !== 0 ? x[ia! + t * sa!]! : y[ib! + t * sb!]!;
    });
    return this.wrap(out);
  }

  // ---- reductions ----
  reduce(op: ReduceOp, x: Storage, shape: Shape, axes: readonly number[]): Storage {
    const src = this.data(x);
    const outShape = shape.map((s, d) => (axes.includes(d) ? 1 : s));
    const init = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
    const out = this.alloc(x.dtype, sizeOf(outShape)).fill(init);
    // walk the input; each element lands in the output cell with the reduced axes zeroed
    // common case: the reduced axes are one contiguous block, so x is [outer, n, inner] and the
    // reduction runs over the middle axis with unit-stride inner loops
    const first = axes[0] ?? 0, last = axes[axes.length - 1] ?? -1;
    if (axes.length > 0 && last - first + 1 === axes.length) {
      const outer = sizeOf(shape.slice(0, first)), n = sizeOf(shape.slice(first, last + 1)), inner = sizeOf(shape.slice(last + 1));
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
    const outStrides = broadcastStrides(outShape, shape);
    // general case: walk the input row by row; along a row the output position moves by `so` (0 if the last axis is reduced)
    if (op === 'sum') {
      walkRows(shape, [outStrides], (i, [o], n, [so]) => { for (let t = 0; t < n; t++) out[o! + t * so!] += src[i + t]!; });
    } else if (op === 'max') {
      walkRows(shape, [outStrides], (i, [o], n, [so]) => {
        for (let t = 0; t < n; t++) { const v = src[i + t]!, j = o! + t * so!; if (v > out[j]! || Number.isNaN(v)) out[j] = v; }
      });
    } else {
      walkRows(shape, [outStrides], (i, [o], n, [so]) => {
        for (let t = 0; t < n; t++) { const v = src[i + t]!, j = o! + t * so!; if (v < out[j]! || Number.isNaN(v)) out[j] = v; }
      });
    }
    return this.wrap(out);
  }

  argReduce(op: ArgReduceOp, x: Storage, shape: Shape, axis: number): Storage {
    const src = this.data(x);
    const n = shape[axis]!;
    const inner = sizeOf(shape.slice(axis + 1));
    const outer = sizeOf(shape.slice(0, axis));
    const out = this.alloc(x.dtype, outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = 0, bestValue = src[o * n * inner + i]!;
        for (let j = 1; j < n; j++) {
          const v = src[(o * n + j) * inner + i]!;
          // strict comparison: ties keep the first index, as NumPy and PyTorch do
          if (op === 'argmax' ? v > bestValue : v < bestValue) { best = j; bestValue = v; }
        }
        out[o * inner + i] = best;
      }
    }
    return this.wrap(out);
  }

  topkIndices(x: Storage, shape: Shape, k: number): Storage {
    const src = this.data(x);
    const n = shape[shape.length - 1]!;
    const rows = n === 0 ? 0 : src.length / n;
    const out = this.alloc(x.dtype, rows * k);
    const order = [...Array(n).keys()];
    for (let r = 0; r < rows; r++) {
      const base = r * n;
      order.sort((i, j) => src[base + j]! - src[base + i]! || i - j);
      for (let t = 0; t < k; t++) out[r * k + t] = order[t]!;
      order.sort((i, j) => i - j);
    }
    return this.wrap(out);
  }

  // ---- linear algebra ----
  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    const x = this.data(a), y = this.data(b);
    const size = spec.batch * spec.m * spec.n;
    const work = spec.batch * spec.m * spec.n * spec.k;
    if (this.fastKernels && !this.reference && x instanceof Float32Array && y instanceof Float32Array && work >= FAST_MATMUL_MIN_WORK) {
      return this.wrap(this.fastKernels.matmul(x, y, spec, this.alloc('float32', spec.batch * spec.m * spec.n) as Float32Array));
    }
    const out = this.alloc(a.dtype, size);
    // the blocked kernel pays for its packing only when there is enough work to amortise it
    const big = spec.m * spec.n * spec.k >= FAST_MATMUL_MIN_WORK;
    (this.reference || !big ? matmulNaive : matmulBlocked)(x, y, out, spec);
    return this.wrap(out);
  }

  // ---- movement ----
  strided(x: Storage, outShape: Shape, strides: readonly number[], offset: number): Storage {
    const src = this.data(x);
    const out = this.alloc(x.dtype, sizeOf(outShape));
    walkRows(outShape, [strides], (i, [o], n, [so]) => {
      const base = offset + o!;
      for (let t = 0; t < n; t++) out[i + t] = src[base + t * so!]!;
    });
    return this.wrap(out);
  }

  pad(x: Storage, shape: Shape, pads: readonly (readonly [number, number])[], value: number): Storage {
    const src = this.data(x);
    const outShape = shape.map((s, d) => s + pads[d]![0] + pads[d]![1]);
    const out = this.alloc(x.dtype, sizeOf(outShape)).fill(value);
    // each input element moves to the output cell shifted by the "before" padding of every axis
    const outStrides = stridesOf(outShape);
    const shift = pads.reduce((acc, [before], d) => acc + before * outStrides[d]!, 0);
    walkRows(shape, [outStrides], (i, [o], n) => { out.set(src.subarray(i, i + n), shift + o!); });
    return this.wrap(out);
  }

  gather(x: Storage, xShape: Shape, axis: number, index: Storage, indexShape: Shape): Storage {
    const src = this.data(x), idx = this.data(index);
    const out = this.alloc(x.dtype, sizeOf(indexShape));
    const xStrides = stridesOf(xShape);
    // walk the index tensor; read x at the same position except along `axis`, where the index says
    const along = xStrides[axis]!;
    const base = xStrides.map((s, d) => (d === axis ? 0 : s));
    const n = xShape[axis]!;
    walkRows(indexShape, [base], (i, [o], len, [so]) => {
      for (let t = 0; t < len; t++) {
        const j = idx[i + t]!;
        if (!(j >= 0 && j < n && Number.isInteger(j))) throw new Error(`gather: index ${j} is out of range for axis ${axis} of size ${n}`);
        out[i + t] = src[o! + t * so! + j * along]!;
      }
    });
    return this.wrap(out);
  }

  scatterAdd(src: Storage, index: Storage, indexShape: Shape, axis: number, outShape: Shape): Storage {
    const s = this.data(src), idx = this.data(index);
    const out = this.alloc(src.dtype, sizeOf(outShape), true);
    const outStrides = stridesOf(outShape);
    const along = outStrides[axis]!;
    const base = outStrides.map((st, d) => (d === axis ? 0 : st));
    const n = outShape[axis]!;
    walkRows(indexShape, [base], (i, [o], len, [so]) => {
      for (let t = 0; t < len; t++) {
        const j = idx[i + t]!;
        if (!(j >= 0 && j < n && Number.isInteger(j))) throw new Error(`scatterAdd: index ${j} is out of range for axis ${axis} of size ${n}`);
        out[o! + t * so! + j * along] += s[i + t]!;
      }
    });
    return this.wrap(out);
  }

  im2col(x: Storage, spec: WindowSpec): Storage {
    const src = this.data(x);
    if (this.fastKernels?.im2col && !this.reference && src instanceof Float32Array) return this.wrap(this.fastKernels.im2col(src, spec, this.alloc('float32', spec.batch * spec.channels * spec.kh * spec.kw * spec.outH * spec.outW) as Float32Array));
    const out = this.alloc(x.dtype, spec.batch * spec.channels * spec.kh * spec.kw * spec.outH * spec.outW);
    forEachWindowTap(spec, (o, pixel) => { out[o] = pixel >= 0 ? src[pixel]! : spec.padValue; });
    return this.wrap(out);
  }

  col2im(cols: Storage, spec: WindowSpec): Storage {
    const src = this.data(cols);
    if (this.fastKernels?.col2im && !this.reference && src instanceof Float32Array) return this.wrap(this.fastKernels.col2im(src, spec, this.alloc('float32', spec.batch * spec.channels * spec.height * spec.width) as Float32Array));
    const out = this.alloc(cols.dtype, spec.batch * spec.channels * spec.height * spec.width, true);
    // the exact mirror of im2col: every column entry read from a pixel is added back there
    forEachWindowTap(spec, (o, pixel) => { if (pixel >= 0) out[pixel] += src[o]!; });
    return this.wrap(out);
  }
}

export function createCpuBackend(options: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(options);
}
