/**
 * The reference backend: every primitive of `backend.ts` as a plain loop over typed arrays.
 *
 * This file is the specification. Each kernel is written to be read and trusted, not to be fast:
 * one element at a time, through the definition tables (`UNARY`, `BINARY`) and the index walks
 * below, with no pool, no special cases and no WebAssembly. Every other path (the fast CPU backend
 * in `cpu.ts`, the WebAssembly SIMD kernels in `wasm/`, the GPU backends) is tested against these
 * loops by the shared conformance suite (`testing/conformance.ts`), so a faster kernel may be as
 * clever as it likes as long as it agrees with what is written here.
 *
 * Storage is a Float32Array or Float64Array; float64 exists so that gradients can be checked
 * against finite differences tightly. `new ReferenceCpuBackend()` (or `new CpuBackend({ kernels:
 * 'reference' })`) runs a model on these loops alone: slow, but the answer to "is the fast kernel
 * wrong?".
 */
import {
  sizeOf, stridesOf, wrapKernels,
  type AdamStep, type ArgReduceOp, type Backend, type BinaryOp, type ConvSpec, type DType, type MatmulSpec, type MemoryInfo,
  type ReduceOp, type Shape, type Storage, type TypedArray, type UnaryOp, type WindowSpec,
} from './backend';

/** A typed array owned by a CPU backend; `data` is null once disposed. */
export class CpuStorage implements Storage {
  constructor(readonly backend: Backend, public data: TypedArray | null) {}
  get size(): number { return this.buf.length; }
  get dtype(): DType { return this.buf instanceof Float64Array ? 'float64' : 'float32'; }
  get buf(): TypedArray {
    if (this.data === null) throw new Error('cpu backend: this storage was disposed and cannot be used any more');
    return this.data;
  }
}

/**
 * A new zero-filled array; when the runtime cannot allocate it, a one-line error with the size,
 * the memory already held by live tensors and what to do, instead of V8's bare RangeError.
 */
export function freshArray(dtype: DType, size: number, liveBytes = 0): TypedArray {
  try {
    return dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
  } catch (e) {
    const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
    throw new RangeError(`out of memory: a ${dtype} array of ${size} elements (${mib(size * (dtype === 'float64' ? 8 : 4))}) could not be allocated with ${mib(liveBytes)} held by live tensors (${e instanceof Error ? e.message : String(e)}); use a smaller batch or crop, or free tensors (tidy) you no longer need`);
  }
}

/** The RangeErrors of an allocation that failed: ours (freshArray) and V8's own. */
const ALLOCATION_FAILED = /^out of memory: |Array buffer allocation failed|Invalid typed array length|Invalid array buffer length/;

/** A kernel's argument as a reader wants it in an error: storages by dtype and size, shapes, the convolution and matmul specs. */
function describeArgument(a: unknown): string | undefined {
  if (a instanceof CpuStorage) return a.data ? `${a.dtype}[${a.data.length}]` : 'a disposed storage';
  if (typeof a === 'number' || typeof a === 'string') return String(a);
  if (Array.isArray(a) && a.every((v) => typeof v === 'number')) return `[${a.join(', ')}]`;
  if (typeof a !== 'object' || a === null) return undefined;
  if ('outChannels' in a) {
    const c = a as ConvSpec;
    return `x [${c.batch}, ${c.channels}, ${c.height}, ${c.width}] -> [${c.batch}, ${c.outChannels}, ${c.outH}, ${c.outW}] (${c.kh}x${c.kw} filter, groups ${c.groups})`;
  }
  if ('transA' in a) {
    const m = a as MatmulSpec;
    return `[${m.batch}] [${m.m}, ${m.k}] x [${m.k}, ${m.n}]`;
  }
  return undefined;
}

/**
 * Wraps every kernel method of `backend` (BACKEND_KERNELS) so that an allocation that fails inside
 * it (freshArray's error, or V8's RangeError from a typed array made in the kernel) becomes one
 * line naming the kernel, its operands (dtype and size of each storage, the shapes, the
 * convolution or matmul geometry), the bytes asked where known, and what to do. Other errors pass
 * through unchanged, and an error already named by an inner kernel is not named twice.
 */
function nameKernelsInMemoryErrors(backend: ReferenceCpuBackend): void {
  // (a function, not an arrow: `this` stays whoever it is called on, e.g. trace.ts's
  // withoutFusedKernels view, an Object.create(backend) whose storages must be its own)
  wrapKernels(backend, (name, kernel) => function (this: unknown, ...args: unknown[]) {
    try {
      return kernel.apply(this, args);
    } catch (e) {
      if (!(e instanceof RangeError) || e.message.startsWith('out of memory in ') || !ALLOCATION_FAILED.test(e.message)) throw e;
      const operands = args.map(describeArgument).filter((d) => d !== undefined).join(', ');
      const what = e.message.startsWith('out of memory: ') ? e.message.slice('out of memory: '.length)
        : `${e.message}; use a smaller batch or crop, or free tensors (tidy) you no longer need`;
      throw new RangeError(`out of memory in the cpu backend's ${name} kernel (${operands}): ${what}`);
    }
  });
}

/** How a value is rounded when stored in an array of `dtype` (what a kernel's output does to a double). */
function roundingOf(dtype: DType): (v: number) => number {
  return dtype === 'float32' ? Math.fround : (v) => v;
}

// ---------------------------------------------------------------------------------------------
// Scalar definitions of the elementwise ops
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

export const UNARY: Record<UnaryOp, (x: number) => number> = {
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

export const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
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

/** GELU and its derivative, exact (x Φ(x), Φ the normal CDF) or with PyTorch's tanh approximation. */
export const GELU = {
  none: {
    f: (x: number, erfOf = erf) => 0.5 * x * (1 + erfOf(x * Math.SQRT1_2)),
    // Φ(x) + x φ(x), φ(x) = e^{-x^2/2} / sqrt(2 pi)
    df: (x: number, erfOf = erf) => 0.5 * (1 + erfOf(x * Math.SQRT1_2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
  },
  tanh: {
    // u = sqrt(2/pi) (x + 0.044715 x^3): 0.5 x (1 + tanh u)
    f: (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
    df: (x: number) => {
      const t = Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * Math.sqrt(2 / Math.PI) * (1 + 3 * 0.044715 * x * x);
    },
  },
} as const;

/** The reductions as (accumulator, value) -> accumulator, from their identity. NaN wins max and min. */
const REDUCE: Record<ReduceOp, { init: number; step: (acc: number, v: number) => number }> = {
  sum: { init: 0, step: (acc, v) => acc + v },
  max: { init: -Infinity, step: (acc, v) => (v > acc || Number.isNaN(v) ? v : acc) },
  min: { init: Infinity, step: (acc, v) => (v < acc || Number.isNaN(v) ? v : acc) },
};

// ---------------------------------------------------------------------------------------------
// Index walks shared by the kernels (and by the fast backend)
// ---------------------------------------------------------------------------------------------

/**
 * Strides for reading an input of shape `inShape` while walking an output of shape `outShape`
 * (same rank): broadcast axes (size 1 in the input) get stride 0, so the same element is reused.
 */
export function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const strides = stridesOf(inShape);
  return outShape.map((s, d) => (inShape[d] === 1 && s !== 1 ? 0 : strides[d]!));
}

/**
 * Walk every index of `shape` in row-major order, one row (the last axis) at a time:
 * `visit(outOffset, offsets, length, rowStrides)` where offsets[t] is the flat position in the t-th
 * input of the row's first element and rowStrides[t] its stride along the last axis. The outer
 * axes advance like an odometer (the last of them turns fastest and carries into the one before).
 */
export function walkRows(shape: Shape, strides: readonly (readonly number[])[], visit: (outOffset: number, offsets: number[], length: number, rowStrides: number[]) => void): void {
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

/**
 * The definition of a convolution as an index relation: for every output element (b, o, oy, ox)
 * and every tap (c, i, j) of its group's filter that lands inside the image,
 * `visit(outIndex, inputIndex, weightIndex)` (flat positions in out, x and weight).
 * Forward, input gradient and filter gradient are the three ways of summing over this relation:
 *   out[o] += x[i] * w[k],   dx[i] += dout[o] * w[k],   dw[k] += dout[o] * x[i].
 */
function forEachConvTap(spec: ConvSpec, visit: (outIndex: number, inputIndex: number, weightIndex: number) => void): void {
  const { batch, channels: C, height: H, width: W, kh, kw, outH, outW, outChannels: O, groups } = spec;
  const Cg = C / groups, Og = O / groups;
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oy = 0; oy < outH; oy++) {
        for (let ox = 0; ox < outW; ox++) {
          const outIndex = ((b * O + o) * outH + oy) * outW + ox;
          for (let c = 0; c < Cg; c++) {
            for (let i = 0; i < kh; i++) {
              const y = oy * spec.strideH - spec.padH + i * spec.dilationH;
              if (y < 0 || y >= H) continue;
              for (let j = 0; j < kw; j++) {
                const x = ox * spec.strideW - spec.padW + j * spec.dilationW;
                if (x < 0 || x >= W) continue;
                visit(outIndex, ((b * C + g * Cg + c) * H + y) * W + x, ((o * Cg + c) * kh + i) * kw + j);
              }
            }
          }
        }
      }
    }
  }
}

/** out[b,i,j] = sum_p A(b,i,p) B(b,p,j): the definition of matmul. */
export function matmulNaive(a: TypedArray, b: TypedArray, out: TypedArray, spec: MatmulSpec): void {
  const { batch, m, k, n, batchA, batchB, transA, transB } = spec;
  for (let bi = 0; bi < batch; bi++) {
    const aOff = (batchA === 1 ? 0 : bi) * m * k;
    const bOff = (batchB === 1 ? 0 : bi) * k * n;
    const oOff = bi * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[aOff + p * m + i]! : a[aOff + i * k + p]!;
          const bv = transB ? b[bOff + j * k + p]! : b[bOff + p * n + j]!;
          acc += av * bv;
        }
        out[oOff + i * n + j] = acc;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

export class ReferenceCpuBackend implements Backend {
  readonly name: string = 'cpu-reference';
  readonly isAccelerated = false;
  protected live = 0;
  protected liveBytes = 0;

  constructor() {
    nameKernelsInMemoryErrors(this);
  }

  describe(): string { return 'cpu (reference loops; float32 and float64)'; }
  epsilon(dtype: DType): number { return dtype === 'float64' ? 1e-12 : 1e-5; }
  supports(_dtype: DType): boolean { return true; }

  // ---- storage ----
  /** A fresh, zero-filled array for a kernel's output (the fast backend recycles instead). */
  protected alloc(dtype: DType, size: number, _zero = false): TypedArray {
    return freshArray(dtype, size, this.liveBytes);
  }
  protected wrap(data: TypedArray): CpuStorage {
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
    s.data = null;
  }
  memory(): MemoryInfo { return { buffers: this.live, bytes: this.liveBytes }; }

  // ---- elementwise ----
  unary(op: UnaryOp, x: Storage): Storage {
    const src = this.data(x);
    const out = this.alloc(x.dtype, src.length);
    const f = UNARY[op];
    for (let i = 0; i < src.length; i++) out[i] = f(src[i]!);
    return this.wrap(out);
  }

  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage {
    const x = this.data(a), y = this.data(b);
    const out = this.alloc(a.dtype, sizeOf(outShape));
    const f = BINARY[op];
    walkRows(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)], (o, [ia, ib], n, [sa, sb]) => {
      for (let t = 0; t < n; t++) out[o + t] = f(x[ia! + t * sa!]!, y[ib! + t * sb!]!);
    });
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
  /** Walk the input; each element lands in the output cell with the reduced axes zeroed. */
  reduce(op: ReduceOp, x: Storage, shape: Shape, axes: readonly number[]): Storage {
    const src = this.data(x);
    const outShape = shape.map((s, d) => (axes.includes(d) ? 1 : s));
    const { init, step } = REDUCE[op];
    const out = this.alloc(x.dtype, sizeOf(outShape)).fill(init);
    // along a row of the input the output position moves by `so` (0 if the last axis is reduced)
    walkRows(shape, [broadcastStrides(outShape, shape)], (i, [o], n, [so]) => {
      for (let t = 0; t < n; t++) out[o! + t * so!] = step(out[o! + t * so!]!, src[i + t]!);
    });
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
    const out = this.alloc(a.dtype, spec.batch * spec.m * spec.n);
    matmulNaive(this.data(a), this.data(b), out, spec);
    return this.wrap(out);
  }

  conv2d(x: Storage, weight: Storage, bias: Storage | null, spec: ConvSpec): Storage | null {
    const src = this.data(x), w = this.data(weight), bv = bias ? this.data(bias) : null;
    const plane = spec.outH * spec.outW;
    const out = this.alloc(x.dtype, spec.batch * spec.outChannels * plane, true);
    if (bv) for (let i = 0; i < out.length; i++) out[i] = bv[Math.floor(i / plane) % spec.outChannels]!;
    forEachConvTap(spec, (o, i, k) => { out[o] += src[i]! * w[k]!; });
    return this.wrap(out);
  }

  conv2dBackwardInput(grad: Storage, weight: Storage, spec: ConvSpec): Storage | null {
    const g = this.data(grad), w = this.data(weight);
    const dx = this.alloc(grad.dtype, spec.batch * spec.channels * spec.height * spec.width, true);
    forEachConvTap(spec, (o, i, k) => { dx[i] += g[o]! * w[k]!; });
    return this.wrap(dx);
  }

  conv2dBackwardFilter(grad: Storage, x: Storage, spec: ConvSpec): Storage | null {
    const g = this.data(grad), src = this.data(x);
    const dw = this.alloc(grad.dtype, (spec.outChannels * spec.channels * spec.kh * spec.kw) / spec.groups, true);
    forEachConvTap(spec, (o, i, k) => { dw[k] += g[o]! * src[i]!; });
    return this.wrap(dw);
  }

  // ---- row kernels ----
  softmax(x: Storage, rows: number, n: number, scale = 1): Storage {
    const src = this.data(x);
    const out = this.alloc(x.dtype, rows * n);
    // scale * x rounded to the dtype, as the composition's mul(x, scale) stores it
    const round = roundingOf(x.dtype), s = round(scale);
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let max = -Infinity;
      for (let j = 0; j < n; j++) max = Math.max(max, round(s * src[o + j]!));
      let total = 0;
      for (let j = 0; j < n; j++) { out[o + j] = Math.exp(round(s * src[o + j]!) - max); total += out[o + j]!; }
      for (let j = 0; j < n; j++) out[o + j] = out[o + j]! / total;
    }
    return this.wrap(out);
  }

  softmaxBackward(y: Storage, grad: Storage, rows: number, n: number, scale = 1): Storage {
    const yv = this.data(y), g = this.data(grad);
    const dx = this.alloc(y.dtype, rows * n);
    const round = roundingOf(y.dtype), s = round(scale);
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let dot = 0;
      for (let j = 0; j < n; j++) dot += g[o + j]! * yv[o + j]!;
      // the softmax gradient, rounded as the composition stores it, then mul's backward (times scale)
      for (let j = 0; j < n; j++) dx[o + j] = s * round(yv[o + j]! * (g[o + j]! - dot));
    }
    return this.wrap(dx);
  }

  layerNorm(x: Storage, weight: Storage | null, bias: Storage | null, rows: number, n: number, eps: number): { out: Storage; stats: Storage } {
    const src = this.data(x), w = weight ? this.data(weight) : null, b = bias ? this.data(bias) : null;
    const out = this.alloc(x.dtype, rows * n), stats = this.alloc(x.dtype, rows * 2);
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let mean = 0;
      for (let j = 0; j < n; j++) mean += src[o + j]!;
      mean /= n;
      let variance = 0;
      for (let j = 0; j < n; j++) variance += (src[o + j]! - mean) ** 2;
      variance /= n;
      const rstd = 1 / Math.sqrt(variance + eps);
      for (let j = 0; j < n; j++) out[o + j] = (src[o + j]! - mean) * rstd * (w ? w[j]! : 1) + (b ? b[j]! : 0);
      stats[2 * r] = mean;
      stats[2 * r + 1] = rstd;
    }
    return { out: this.wrap(out), stats: this.wrap(stats) };
  }

  /**
   * With xhat = (x - mean) rstd and dxhat = dy * weight, per row:
   * dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) (the mean and the variance depend on
   * every x of the row, which gives the two subtracted terms).
   */
  layerNormBackward(grad: Storage, x: Storage, weight: Storage | null, stats: Storage, rows: number, n: number): { dx: Storage; dweight: Storage; dbias: Storage } {
    const g = this.data(grad), src = this.data(x), w = weight ? this.data(weight) : null, st = this.data(stats);
    const dx = this.alloc(x.dtype, rows * n), dw = this.alloc(x.dtype, n, true), db = this.alloc(x.dtype, n, true);
    for (let r = 0; r < rows; r++) {
      const o = r * n, mean = st[2 * r]!, rstd = st[2 * r + 1]!;
      let meanD = 0, meanDX = 0;
      for (let j = 0; j < n; j++) {
        const xhat = (src[o + j]! - mean) * rstd, d = g[o + j]! * (w ? w[j]! : 1);
        meanD += d;
        meanDX += d * xhat;
        dw[j] += g[o + j]! * xhat;
        db[j] += g[o + j]!;
      }
      meanD /= n;
      meanDX /= n;
      for (let j = 0; j < n; j++) {
        const xhat = (src[o + j]! - mean) * rstd, d = g[o + j]! * (w ? w[j]! : 1);
        dx[o + j] = rstd * (d - meanD - xhat * meanDX);
      }
    }
    return { dx: this.wrap(dx), dweight: this.wrap(dw), dbias: this.wrap(db) };
  }

  gelu(x: Storage, approximate: 'none' | 'tanh'): Storage {
    const src = this.data(x), out = this.alloc(x.dtype, src.length), f = GELU[approximate].f;
    for (let i = 0; i < src.length; i++) out[i] = f(src[i]!);
    return this.wrap(out);
  }

  geluBackward(x: Storage, grad: Storage, approximate: 'none' | 'tanh'): Storage {
    const src = this.data(x), g = this.data(grad), out = this.alloc(x.dtype, src.length), df = GELU[approximate].df;
    for (let i = 0; i < src.length; i++) out[i] = g[i]! * df(src[i]!);
    return this.wrap(out);
  }

  smoothL1(pred: Storage, target: Storage, beta: number): Storage {
    const p = this.data(pred), t = this.data(target), out = this.alloc(pred.dtype, p.length);
    for (let i = 0; i < p.length; i++) {
      const d = p[i]! - t[i]!, ad = Math.abs(d);
      out[i] = ad < beta ? (0.5 * d * d) / beta : ad - 0.5 * beta;
    }
    return this.wrap(out);
  }

  smoothL1Backward(pred: Storage, target: Storage, grad: Storage, beta: number): Storage {
    const p = this.data(pred), t = this.data(target), g = this.data(grad), out = this.alloc(pred.dtype, p.length);
    for (let i = 0; i < p.length; i++) {
      const d = p[i]! - t[i]!;
      out[i] = g[i]! * (Math.abs(d) < beta ? d / beta : Math.sign(d));
    }
    return this.wrap(out);
  }

  adamStep(param: Storage, grad: Storage, m: Storage | null, v: Storage | null, s: AdamStep): { param: Storage; m: Storage; v: Storage } {
    const p = this.data(param), g = this.data(grad), m0 = m ? this.data(m) : null, v0 = v ? this.data(v) : null;
    const size = p.length;
    const pOut = this.alloc(param.dtype, size), mOut = this.alloc(param.dtype, size), vOut = this.alloc(param.dtype, size);
    const bc1 = 1 - s.beta1 ** s.t, bc2 = 1 - s.beta2 ** s.t;
    for (let i = 0; i < size; i++) {
      const decayed = s.decoupled ? p[i]! * (1 - s.lr * s.weightDecay) : p[i]!;
      const gi = s.decoupled ? g[i]! : g[i]! + s.weightDecay * p[i]!;
      mOut[i] = s.beta1 * (m0 ? m0[i]! : 0) + (1 - s.beta1) * gi;
      vOut[i] = s.beta2 * (v0 ? v0[i]! : 0) + (1 - s.beta2) * gi * gi;
      pOut[i] = decayed - (s.lr / bc1) * (mOut[i]! / (Math.sqrt(vOut[i]!) / Math.sqrt(bc2) + s.eps));
    }
    return { param: this.wrap(pOut), m: this.wrap(mOut), v: this.wrap(vOut) };
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
    walkRows(shape, [outStrides], (i, [o], n) => { for (let t = 0; t < n; t++) out[shift + o! + t] = src[i + t]!; });
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
    const out = this.alloc(x.dtype, spec.batch * spec.channels * spec.kh * spec.kw * spec.outH * spec.outW);
    forEachWindowTap(spec, (o, pixel) => { out[o] = pixel >= 0 ? src[pixel]! : spec.padValue; });
    return this.wrap(out);
  }

  col2im(cols: Storage, spec: WindowSpec): Storage {
    const src = this.data(cols);
    const out = this.alloc(cols.dtype, spec.batch * spec.channels * spec.height * spec.width, true);
    // the exact mirror of im2col: every column entry read from a pixel is added back there
    forEachWindowTap(spec, (o, pixel) => { if (pixel >= 0) out[pixel] += src[o]!; });
    return this.wrap(out);
  }
}
