/**
 * The Backend interface: the small set of primitive kernels every device must implement.
 *
 * Everything the engine can do (autodiff, conv2d, softmax, layerNorm, attention, losses, ...) is
 * composed in `ops/` from these primitives, so a new device only has to implement this file's
 * interface to run, and train, every model. `cpu-reference.ts` is the readable reference
 * implementation, plain loops; every other backend (the fast CPU backend in `cpu.ts`, the
 * WebAssembly kernels, the GPU backends) is tested against it with the shared conformance suite
 * (`@mofme/tensor/testing`).
 *
 * Conventions shared by all kernels:
 * - Data is dense, contiguous and row-major ("C order"). A `Storage` is an opaque handle that
 *   knows its element count and dtype but not its shape: shapes travel beside it as arguments,
 *   so the same storage can be viewed under several shapes (a reshape costs nothing).
 * - Kernels never mutate their inputs; they return a new storage the caller owns.
 * - Index tensors (argmax results, gather/scatter indices, top-k indices) hold integers stored
 *   in the tensor's float dtype. Float32 represents every integer up to 2^24 exactly, far more
 *   than any axis we index.
 * - Booleans (comparison results, masks) are 1 and 0 in the float dtype.
 */

export type DType = 'float32' | 'float64';
export type TypedArray = Float32Array | Float64Array;
export type Shape = readonly number[];

/** Device memory handle. Only the backend that made it may read it. */
export interface Storage {
  readonly backend: Backend;
  /** number of elements */
  readonly size: number;
  readonly dtype: DType;
}

/** Elementwise functions of one argument. `step` is the Heaviside step (x > 0 ? 1 : 0), relu's derivative. */
export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'abs' | 'sign' | 'step'
  | 'relu' | 'sigmoid' | 'tanh' | 'erf' | 'sin' | 'cos';

/** Elementwise functions of two arguments, broadcast NumPy-style. Comparisons return 1 or 0. */
export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'max' | 'min'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

export type ReduceOp = 'sum' | 'max' | 'min';
export type ArgReduceOp = 'argmax' | 'argmin';

/**
 * Batched matrix multiply: out[bi] = op(A[bi]) @ op(B[bi]) for bi in 0..batch-1.
 * A is stored as [batchA, m, k] (or [batchA, k, m] when `transA`), B as [batchB, k, n]
 * (or [batchB, n, k] when `transB`). batchA and batchB are each `batch` or 1: a batch of 1 is
 * broadcast (stride 0), so a weight matrix is never copied per batch item.
 * Out is [batch, m, n]. The transposed forms let the backward pass run with no copies.
 */
export interface MatmulSpec {
  batch: number;
  m: number;
  k: number;
  n: number;
  batchA: number;
  batchB: number;
  transA: boolean;
  transB: boolean;
}

/**
 * Sliding-window geometry shared by im2col and col2im (and so by conv2d and the pools).
 * Input [batch, channels, height, width]; output columns [batch, channels*kh*kw, outH*outW], row
 * index c*kh*kw + i*kw + j (PyTorch's `unfold` order, so a conv weight [O, C, kh, kw] reshaped to
 * [O, C*kh*kw] multiplies it directly). Positions that fall in the padding read `padValue`.
 */
export interface WindowSpec {
  batch: number;
  channels: number;
  height: number;
  width: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilationH: number;
  dilationW: number;
  outH: number;
  outW: number;
  /** value read in the padding: 0 for convolution, -Infinity for max pooling */
  padValue: number;
}

/**
 * A 2-d convolution (cross-correlation, NCHW): the window geometry of the input plus the output
 * channels and groups. x [batch, channels, height, width], weight [outChannels, channels/groups,
 * kh, kw], out [batch, outChannels, outH, outW]; output channel o of group g = o / (outChannels /
 * groups) reads input channels g*channels/groups ... (g+1)*channels/groups - 1. `padValue` is 0.
 */
export interface ConvSpec extends WindowSpec {
  outChannels: number;
  groups: number;
}

export interface MemoryInfo {
  /** live storages made by this backend and not yet disposed */
  buffers: number;
  bytes: number;
}

export interface Backend {
  readonly name: string;
  /** true when kernels run on an accelerator; the CPU backend says false */
  readonly isAccelerated: boolean;
  /**
   * True when every new tensor shape costs a kernel compilation (the gpu.js backend bakes shapes
   * into its shaders). Code with a choice between data-dependent shapes and fixed ones, such as
   * sparse vs dense expert execution, should pick fixed shapes on such a backend.
   */
  readonly compilesPerShape?: boolean;
  /** a human-readable description: device, mode, precision, limits */
  describe(): string;
  /** the relative error a float32 kernel of this backend may show against the CPU reference */
  epsilon(dtype: DType): number;
  /** the dtypes this backend can store (gpu backends are float32 only) */
  supports(dtype: DType): boolean;

  // ---- storage ----
  /** copy host data in */
  upload(data: TypedArray): Storage;
  /** copy device data out (a fresh array the caller may keep) */
  download(x: Storage): TypedArray;
  /** `size` copies of `value` */
  fill(size: number, value: number, dtype: DType): Storage;
  cast(x: Storage, dtype: DType): Storage;
  /** free device memory now; using the storage afterwards is an error */
  dispose(x: Storage): void;
  memory(): MemoryInfo;

  // ---- elementwise ----
  unary(op: UnaryOp, x: Storage): Storage;
  /** aShape and bShape have the rank of outShape (left-padded with 1s) and broadcast to it */
  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage;
  /** out = cond != 0 ? a : b, all three broadcast to outShape (same rank) */
  where(cond: Storage, condShape: Shape, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage;

  // ---- reductions (output keeps the reduced axes with size 1) ----
  reduce(op: ReduceOp, x: Storage, shape: Shape, axes: readonly number[]): Storage;
  argReduce(op: ArgReduceOp, x: Storage, shape: Shape, axis: number): Storage;
  /** indices of the k largest entries along the last axis, largest first (ties: lower index first) */
  topkIndices(x: Storage, shape: Shape, k: number): Storage;

  // ---- linear algebra ----
  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage;

  // ---- movement ----
  /**
   * Strided read: out[i0..id] = x[offset + sum_d i_d * strides[d]] for out of shape `outShape`.
   * One primitive covers permute (permuted strides), expand (stride 0), slice (offset) and flip
   * (negative stride).
   */
  strided(x: Storage, outShape: Shape, strides: readonly number[], offset: number): Storage;
  /** constant padding: pads[d] = [before, after] elements on axis d */
  pad(x: Storage, shape: Shape, pads: readonly (readonly [number, number])[], value: number): Storage;
  /**
   * torch.gather: out has index's shape; out[.., i_axis, ..] = x[.., index[.., i_axis, ..], ..].
   * index has x's rank; its other axes are at most x's sizes.
   */
  gather(x: Storage, xShape: Shape, axis: number, index: Storage, indexShape: Shape): Storage;
  /** the adjoint of gather: out = zeros(outShape); out[.., index[..], ..] += src[..] */
  scatterAdd(src: Storage, index: Storage, indexShape: Shape, axis: number, outShape: Shape): Storage;
  /** sliding windows to columns, see WindowSpec */
  im2col(x: Storage, spec: WindowSpec): Storage;
  /** the adjoint of im2col: each column entry is added back to the pixel it was read from */
  col2im(cols: Storage, spec: WindowSpec): Storage;

  // ---- optional fused kernels ----
  // A backend may compute a whole convolution in one kernel instead of im2col + matmul (which
  // writes kh*kw copies of the input). Each returns null where it has no such kernel for this
  // geometry or dtype, and the op then composes the convolution from the primitives above.
  /** out = conv(x, weight) + bias (bias [outChannels] or null) */
  conv2d?(x: Storage, weight: Storage, bias: Storage | null, spec: ConvSpec): Storage | null;
  /** dL/dx [batch, channels, height, width] from dL/dout and the weight */
  conv2dBackwardInput?(grad: Storage, weight: Storage, spec: ConvSpec): Storage | null;
  /** dL/dweight [outChannels, channels/groups, kh, kw] from dL/dout and the input */
  conv2dBackwardFilter?(grad: Storage, x: Storage, spec: ConvSpec): Storage | null;

  // Row kernels: x viewed as [rows, n], the op along each row. One pass over memory instead of
  // the five to ten kernels (and intermediate arrays) of the composed op. Ops fall back to the
  // composition where a backend lacks them.
  /**
   * y = softmax(scale * x) along each row (the row maximum subtracted first, so exp never
   * overflows). `scale` (default 1) is attention's 1/sqrt(d) folded in: the definition is the
   * composition mul(x, scale) then softmax, so the product is rounded to the dtype first.
   */
  softmax?(x: Storage, rows: number, n: number, scale?: number): Storage;
  /**
   * dx = scale * (y * (dy - sum_j dy_j y_j)) along each row, from the softmax output y: the
   * gradient of the composition, each factor rounded to the dtype as its two ops would
   */
  softmaxBackward?(y: Storage, grad: Storage, rows: number, n: number, scale?: number): Storage;
  /**
   * y = (x - mean) / sqrt(var + eps) * weight + bias along each row (biased variance; weight and
   * bias [n] or null); stats [rows, 2] holds (mean, 1 / sqrt(var + eps)) for the backward
   */
  layerNorm?(x: Storage, weight: Storage | null, bias: Storage | null, rows: number, n: number, eps: number): { out: Storage; stats: Storage };
  /** dx, and d(weight) = sum over rows of dy * xhat and d(bias) = sum over rows of dy (both [n]) */
  layerNormBackward?(grad: Storage, x: Storage, weight: Storage | null, stats: Storage, rows: number, n: number): { dx: Storage; dweight: Storage; dbias: Storage };
  /** GELU elementwise: x Φ(x) (exact, with erf) or its tanh approximation */
  gelu?(x: Storage, approximate: 'none' | 'tanh'): Storage;
  /** dy * GELU'(x) */
  geluBackward?(x: Storage, grad: Storage, approximate: 'none' | 'tanh'): Storage;
  /** the elementwise Smooth L1 loss of pred - target (same sizes): 0.5 d^2 / beta where |d| < beta, |d| - beta/2 elsewhere */
  smoothL1?(pred: Storage, target: Storage, beta: number): Storage;
  /** d(loss)/d(pred) = grad * (|d| < beta ? d / beta : sign(d)); d/d(target) is its negative */
  smoothL1Backward?(pred: Storage, target: Storage, grad: Storage, beta: number): Storage;
  /**
   * One Adam / AdamW step for one parameter, every moment in one pass: returns the new parameter
   * and moments (see AdamStep); the inputs are not modified.
   */
  adamStep?(param: Storage, grad: Storage, m: Storage | null, v: Storage | null, step: AdamStep): { param: Storage; m: Storage; v: Storage };
}

/**
 * The optional fused kernels above, by name: each has a composition of primitives that defines it
 * (the ops fall back to it), so a backend may lack any of them. Listed once here for the code that
 * treats them as a set: the profiler times them as elementwise work, and `withoutFusedKernels`
 * (trace.ts) hides them so that a trace records only primitives. The convolution kernels are not
 * in this set: they are primitives of their own, with their own ONNX translation.
 */
export const FUSED_KERNELS = [
  'softmax', 'softmaxBackward', 'layerNorm', 'layerNormBackward', 'gelu', 'geluBackward',
  'smoothL1', 'smoothL1Backward', 'adamStep',
] as const satisfies readonly (keyof Backend)[];

/**
 * Every kernel method of a backend, by name: what the profiler times (profile.ts) and what the CPU
 * backend wraps to name the kernel and its operands in an out-of-memory error (cpu-reference.ts).
 */
export const BACKEND_KERNELS = [
  'upload', 'download', 'fill', 'cast', 'unary', 'binary', 'where', 'reduce', 'argReduce', 'topkIndices',
  'matmul', 'strided', 'pad', 'gather', 'scatterAdd', 'im2col', 'col2im',
  'conv2d', 'conv2dBackwardInput', 'conv2dBackwardFilter',
  ...FUSED_KERNELS,
] as const satisfies readonly (keyof Backend)[];

type KernelMethod = (...args: unknown[]) => unknown;

/**
 * Replace, in place, each kernel method `backend` has (BACKEND_KERNELS) by `wrap(name, kernel)`:
 * the one walk behind the profiler's timing and the CPU backend's out-of-memory messages. In
 * place, not a Proxy: storages point back at their backend object and every op calls kernels
 * through that reference.
 */
export function wrapKernels(backend: object, wrap: (name: (typeof BACKEND_KERNELS)[number], kernel: KernelMethod) => KernelMethod): void {
  const target = backend as Record<string, KernelMethod | undefined>;
  for (const name of BACKEND_KERNELS) {
    const kernel = target[name];
    if (typeof kernel === 'function') target[name] = wrap(name, kernel);
  }
}

/**
 * The scalars of one Adam step (torch.optim semantics): m <- b1 m + (1 - b1) g,
 * v <- b2 v + (1 - b2) g^2, p <- p' - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), where
 * p' = p (1 - lr wd) for AdamW (`decoupled`) and g includes + wd p for Adam. m, v null: zeros.
 */
export interface AdamStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  /** 1 on the first step */
  t: number;
}

/** Row-major strides of a contiguous array of the given shape. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return strides;
}

/** Number of elements of a shape (1 for a scalar, 0 if any axis is empty). */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}
