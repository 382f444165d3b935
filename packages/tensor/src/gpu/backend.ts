/**
 * The gpu.js backends: every primitive of `Backend` as a gpu.js kernel, with tensors kept on the
 * device between ops.
 *
 * `GpuBackend` (this file) holds everything that does not depend on how kernels reach the device:
 * which kernel each primitive runs (codegen.ts), the memory counter, size checks and disposal.
 * Two subclasses launch the kernels: `GlBackend` below (gpu.js's WebGL paths: headless GL in Node,
 * WebGL in browsers, and gpu.js's `cpu` mode), and `WebGpuBackend` (webgpu.ts), which drives
 * gpu.js's WebGPU compute kernels from a worker thread.
 *
 * Both keep every tensor on the device between ops as a gpu.js pipeline output (a texture on GL,
 * a storage buffer on WebGPU) and free it only on `dispose`; `memory()` counts what is alive.
 */
import { GPU, type IKernelRunShortcut, type Texture } from 'gpu.js';
import {
  sizeOf,
  type ArgReduceOp, type Backend, type BinaryOp, type DType, type MatmulSpec, type MemoryInfo,
  type ReduceOp, type Shape, type Storage, type TypedArray, type UnaryOp, type WindowSpec,
} from '../backend/backend';
import * as K from './codegen';
import type { KernelSource } from './codegen';

/**
 * Cache key: the source holds the output shape and the strides it reads with; the output size,
 * the argument kinds and the size of every input storage complete it. The input sizes matter
 * because gpu.js writes each input texture's width and height into the compiled shader as
 * constants: a kernel compiled for a 15-element input reads a 21-element input through the wrong
 * texel grid, silently. Sources alone do not pin them (a slice of the first row reads the same
 * way from a [2, 3] and a [5, 3] tensor), so one kernel is compiled per input-size tuple too.
 * (gpu.js's WebGPU kernels pass input sizes as uniforms, but one key for both keeps it simple.)
 */
export const keyOf = (k: KernelSource, inputSizes: readonly number[] = []): string => `${k.size}|${k.args.join(',')}|${inputSizes.join(',')}|${k.source}`;

/** Kernels compute indices in float32 (codegen.ts), which counts every integer exactly only up to 2^24. */
const FLOAT_EXACT_INDEX = 2 ** 24;

/** What a device-resident value is: a texture on GL paths, a Float32Array in gpu.js cpu mode. */
type DeviceData = Texture | Float32Array;

/** A tensor's storage on a gpu.js backend; `D` is the subclass's handle to the device data. */
class GpuStorage<D = unknown> implements Storage {
  readonly dtype = 'float32' as const;
  /** set by dispose; the device data is gone and any later use is an error */
  freed = false;
  /** `data` is null only for empty (size 0) storages, which need nothing on the device */
  constructor(readonly backend: GpuBackend<D>, readonly size: number, public data: D | null) {}
}

export interface GpuBackendInfo {
  /** gpu.js mode actually in use ('webgpu', 'headlessgl', 'webgl2', 'webgl', 'cpu') */
  mode: string;
  /** the gpu.js kernel class, the ground truth of which path runs ('HeadlessGLKernel', 'WebGPUKernel', ...) */
  kernelClass: string;
  /** GL RENDERER / VERSION strings, or the WebGPU adapter's description and backend */
  renderer: string;
  version: string;
  /** how it is really rendered, as far as we can tell (e.g. "software: Xvfb ... Mesa llvmpipe") */
  driver: string;
  software: boolean | null;
  precision: 'single';
  /** GL paths: the largest texture side (Infinity in cpu mode, 0 on WebGPU, which uses buffers) */
  maxTextureSize: number;
  /** the largest tensor, in elements, one texture (GL) or storage buffer binding (WebGPU) can hold */
  maxElements: number;
  /** the limits in words, for describe() */
  limits: string;
}

/**
 * The device-independent half of a gpu.js backend: every Backend primitive as "run this generated
 * kernel on these storages", the live-buffer counter and disposal. Subclasses say how a kernel is
 * launched (`launch`), how data goes up and down, and how device data is freed.
 */
export abstract class GpuBackend<D = unknown> implements Backend {
  abstract readonly name: string;
  abstract readonly isAccelerated: boolean;
  /** every new shape compiles new shaders (see keyOf): callers should prefer fixed shapes */
  readonly compilesPerShape = true;
  protected live = 0;
  protected liveBytes = 0;
  /** compile and run counters (kernels compiled, ms spent in their first calls, kernel calls) */
  protected readonly tally = { compiled: 0, compileMs: 0, calls: 0 };

  /** compile and run counters, for the bench and for curiosity */
  get stats(): { compiled: number; compileMs: number; calls: number } {
    return this.tally;
  }

  /** Mode, renderer and limits. */
  abstract info(): GpuBackendInfo;
  /** Run a kernel on device data and numbers; returns the new output's device data. */
  protected abstract launch(k: KernelSource, inputSizes: readonly number[], args: readonly (D | number)[]): D;
  /** Free one output's device data. */
  protected abstract free(data: D): void;
  /** Put a (non-empty) host array on the device. */
  protected abstract uploadData(data: Float32Array): D;
  /** Read `size` values of device data back to the host. */
  protected abstract readData(data: D, size: number): Float32Array;

  describe(): string {
    const i = this.info();
    return `gpu.js ${i.mode} (${i.kernelClass}), renderer "${i.renderer}"${i.version ? ` ${i.version}` : ''} [${i.driver}], ` +
      `float32 (precision "single"), ${i.limits}, ${this.stats.compiled} kernels compiled`;
  }

  /**
   * Float32 on a GPU: sums accumulate in float32 (the CPU reference accumulates in doubles) and
   * GPU transcendentals are allowed a few ulps more than libm, so allow 1e-3 relative, as
   * TensorFlow.js does for WebGL.
   */
  epsilon(dtype: DType): number {
    return dtype === 'float32' ? 1e-3 : NaN;
  }

  supports(dtype: DType): boolean {
    return dtype === 'float32';
  }

  /** Run a kernel on storages/numbers and wrap its output as a new storage. */
  protected run(k: KernelSource, ...args: (Storage | number)[]): GpuStorage<D> {
    if (k.size === 0) return this.wrap(0, null);
    this.checkSize(k.size);
    const inputSizes = args.flatMap((a) => (typeof a === 'number' ? [] : [a.size]));
    const out = this.launch(k, inputSizes, args.map((a) => (typeof a === 'number' ? a : this.dataOf(a))));
    this.tally.calls++;
    return this.wrap(k.size, out);
  }

  protected wrap(size: number, data: D | null): GpuStorage<D> {
    this.live++;
    this.liveBytes += size * 4;
    return new GpuStorage<D>(this, size, data);
  }

  protected own(x: Storage): GpuStorage<D> {
    if (!(x instanceof GpuStorage) || x.backend !== this) {
      throw new Error(`${this.name}: got a storage from backend '${x.backend.name}'; move the tensor with .to(backend) first`);
    }
    return x as GpuStorage<D>;
  }

  protected dataOf(x: Storage): D {
    const s = this.own(x);
    if (s.freed) throw new Error(`${this.name}: this storage was disposed and cannot be used any more`);
    if (s.data === null) throw new Error(`${this.name}: internal error: an empty storage reached a kernel`);
    return s.data;
  }

  protected checkSize(size: number): void {
    const { maxElements, limits } = this.info();
    if (size > FLOAT_EXACT_INDEX) {
      throw new Error(
        `${this.name}: a tensor of ${size} elements is too large for the GPU kernels, which index in float32 (exact only up to ${FLOAT_EXACT_INDEX} = 2^24 elements); ` +
        'split the work into smaller tensors (e.g. tile the image or use a smaller batch), or use the CPU backend for it',
      );
    }
    if (size > maxElements) {
      throw new Error(
        `${this.name}: a tensor of ${size} elements does not fit on this device (${limits}); ` +
        'split the work into smaller tensors (e.g. tile the image or use a smaller batch), or use the CPU backend for it',
      );
    }
  }

  // ---- storage ---------------------------------------------------------------------------------

  upload(data: TypedArray): Storage {
    if (!(data instanceof Float32Array)) {
      throw new Error(`${this.name}: only float32 is supported on the GPU (got ${data.constructor.name}); create the tensor with dtype 'float32'`);
    }
    if (data.length === 0) return this.wrap(0, null);
    this.checkSize(data.length);
    return this.wrap(data.length, this.uploadData(data));
  }

  download(x: Storage): Float32Array {
    const s = this.own(x);
    if (s.size === 0 && !s.freed) return new Float32Array(0);
    return this.readData(this.dataOf(s), s.size);
  }

  /**
   * Wait until `x` (and everything queued before it) has been computed. GPU work is queued, not
   * done, when an op returns; reading back one element waits for it without paying for a full
   * download. For timing kernels (the benches) and for nothing else.
   */
  finish(x: Storage): void {
    if (x.size === 0) return;
    const one = this.strided(x, [1], [1], 0);
    this.download(one);
    this.dispose(one);
  }

  fill(size: number, value: number, dtype: DType): Storage {
    this.checkDType(dtype);
    return this.run(K.fillKernel(size), value);
  }

  cast(x: Storage, dtype: DType): Storage {
    this.checkDType(dtype);
    const s = this.own(x);
    return this.run(K.copyKernel(s.size), s);
  }

  private checkDType(dtype: DType): void {
    if (dtype !== 'float32') throw new Error(`${this.name}: only float32 is supported on the GPU (asked for ${dtype})`);
  }

  dispose(x: Storage): void {
    const s = this.own(x);
    // disposing twice is harmless (tidy scopes and explicit disposes may overlap)
    if (s.freed) return;
    if (s.data !== null) this.free(s.data);
    s.data = null;
    s.freed = true;
    this.live--;
    this.liveBytes -= s.size * 4;
  }

  memory(): MemoryInfo {
    return { buffers: this.live, bytes: this.liveBytes };
  }

  // ---- elementwise -----------------------------------------------------------------------------

  unary(op: UnaryOp, x: Storage): Storage {
    return this.run(K.unaryKernel(op, x.size), x);
  }

  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage {
    if (sizeOf(outShape) === 0) return this.wrap(0, null);
    return this.run(K.binaryKernel(op, aShape, bShape, outShape), a, b);
  }

  where(cond: Storage, condShape: Shape, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape): Storage {
    if (sizeOf(outShape) === 0) return this.wrap(0, null);
    return this.run(K.whereKernel(condShape, aShape, bShape, outShape), cond, a, b);
  }

  // ---- reductions ------------------------------------------------------------------------------

  reduce(op: ReduceOp, x: Storage, shape: Shape, axes: readonly number[]): Storage {
    const outSize = sizeOf(shape.map((s, d) => (axes.includes(d) ? 1 : s)));
    if (x.size === 0) return this.fill(outSize, op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity, 'float32');
    // one pass per factor of MAX_LOOP_TERMS: each leaves [outSize, chunks] partials (see reduceKernel)
    let partial = this.run(K.reduceKernel(op, shape, axes), x);
    while (partial.size > outSize) {
      const next = this.run(K.reduceKernel(op, [outSize, partial.size / outSize], [1]), partial);
      this.dispose(partial);
      partial = next;
    }
    return partial;
  }

  argReduce(op: ArgReduceOp, x: Storage, shape: Shape, axis: number): Storage {
    if (shape[axis] === 0) throw new Error(`${this.name}: ${op} of an empty axis`);
    return this.run(K.argReduceKernel(op, shape, axis), x);
  }

  topkIndices(x: Storage, shape: Shape, k: number): Storage {
    const n = shape[shape.length - 1] ?? 1;
    const rows = n === 0 ? 0 : x.size / n;
    if (k > n) throw new Error(`${this.name}: topk k=${k} is larger than the last axis (${n})`);
    if (rows * k === 0) return this.wrap(0, null);
    const rank = this.run(K.topkRankKernel(rows, n), x);
    try {
      return this.run(K.topkSelectKernel(rows, n, k), rank);
    } finally {
      this.dispose(rank);
    }
  }

  // ---- linear algebra --------------------------------------------------------------------------

  matmul(a: Storage, b: Storage, spec: MatmulSpec): Storage {
    if (spec.k === 0) return this.fill(spec.batch * spec.m * spec.n, 0, 'float32');
    const out = spec.batch * spec.m * spec.n;
    const products = this.run(K.matmulKernel(spec), a, b);
    if (products.size === out) return products;
    // a long k was split into chunks: add the partial products, laid out [chunks, out]
    try {
      return this.reduce('sum', products, [products.size / out, out], [0]);
    } finally {
      this.dispose(products);
    }
  }

  // ---- movement --------------------------------------------------------------------------------

  strided(x: Storage, outShape: Shape, strides: readonly number[], offset: number): Storage {
    return this.run(K.stridedKernel(outShape, strides, offset), x);
  }

  pad(x: Storage, shape: Shape, pads: readonly (readonly [number, number])[], value: number): Storage {
    const outShape = shape.map((s, d) => s + pads[d]![0] + pads[d]![1]);
    if (x.size === 0) return this.fill(sizeOf(outShape), value, 'float32');
    return this.run(K.padKernel(shape, pads), x, value);
  }

  gather(x: Storage, xShape: Shape, axis: number, index: Storage, indexShape: Shape): Storage {
    return this.run(K.gatherKernel(xShape, axis, indexShape), x, index);
  }

  scatterAdd(src: Storage, index: Storage, indexShape: Shape, axis: number, outShape: Shape): Storage {
    if (sizeOf(indexShape) === 0) return this.fill(sizeOf(outShape), 0, 'float32');
    return this.run(K.scatterAddKernel(indexShape, axis, outShape), src, index);
  }

  im2col(x: Storage, spec: WindowSpec): Storage {
    if (x.size === 0) return this.fill(spec.batch * spec.channels * spec.kh * spec.kw * spec.outH * spec.outW, spec.padValue, 'float32');
    return this.run(K.im2colKernel(spec), x, spec.padValue);
  }

  col2im(cols: Storage, spec: WindowSpec): Storage {
    if (cols.size === 0) return this.fill(spec.batch * spec.channels * spec.height * spec.width, 0, 'float32');
    return this.run(K.col2imKernel(spec), cols);
  }
}

/**
 * gpu.js's WebGL paths (headless GL in Node, WebGL/WebGL2 in browsers) and its `cpu` mode.
 *
 * How data lives on the device: a storage owns one gpu.js output texture (float32, one value
 * per texel, laid out as a flat 1-D array). Every kernel is created with `pipeline: true` (return
 * the texture instead of reading it back) and `immutable: true` (return a *new* texture on each
 * call). Without `immutable`, a gpu.js kernel renders every call into the same texture, so a
 * second call silently overwrites the tensor the first call returned; that is the most
 * dangerous gpu.js pitfall for an autodiff engine, which keeps many outputs of the same kernel
 * alive for the backward pass. Textures are not garbage collected: `dispose` deletes them, and
 * `memory()` counts what is still alive so tests can prove a training step frees everything.
 *
 * Kernels are compiled lazily and cached by keyOf (source, sizes), i.e. one compiled program per
 * (op, shapes). A cached kernel also keeps its last output texture for reuse (gpu.js's design);
 * `releaseKernels()` frees them all.
 *
 * In gpu.js's `cpu` mode (allowed only when asked for by name: it is for debugging kernels, not a
 * fallback) the same kernels run as JavaScript and return Float32Arrays instead of textures.
 */
export class GlBackend extends GpuBackend<DeviceData> {
  readonly name: string;
  readonly isAccelerated: boolean;
  private readonly kernels = new Map<string, IKernelRunShortcut>();
  private infoCache: GpuBackendInfo | null = null;

  constructor(
    readonly gpu: GPU,
    private readonly driver: { software: boolean | null; text: string },
  ) {
    super();
    this.name = `gpujs-${gpu.mode}`;
    this.isAccelerated = gpu.mode !== 'cpu';
  }

  /** Mode, renderer and limits. Compiles one tiny kernel the first time to get at the GL context. */
  info(): GpuBackendInfo {
    if (this.infoCache) return this.infoCache;
    // gpu.js builds a kernel (and its GL context) on the first call: run a 1-element fill
    const probe = K.fillKernel(1);
    const out = this.kernel(probe)(0 as never) as unknown as DeviceData;
    if (!(out instanceof Float32Array)) out.delete();
    const built = this.kernels.get(keyOf(probe)) as unknown as { kernel: { constructor: { name: string }; context?: WebGLLike } };
    const kernel = built.kernel;
    const gl = kernel.context;
    const cpu = this.gpu.mode === 'cpu';
    const maxTextureSize = cpu || !gl ? Infinity : Number(gl.getParameter(gl.MAX_TEXTURE_SIZE));
    const maxElements = maxTextureSize * maxTextureSize;
    this.infoCache = {
      mode: String(this.gpu.mode),
      kernelClass: kernel.constructor.name,
      renderer: cpu || !gl ? 'JavaScript (gpu.js cpu mode, no GPU)' : String(gl.getParameter(gl.RENDERER)),
      version: cpu || !gl ? '' : String(gl.getParameter(gl.VERSION)),
      driver: this.driver.text,
      software: cpu ? true : this.driver.software,
      precision: 'single',
      maxTextureSize,
      maxElements,
      limits: Number.isFinite(maxTextureSize)
        ? `max texture ${maxTextureSize}x${maxTextureSize} (at most ${maxElements} elements per tensor)`
        : 'no texture limit',
    };
    return this.infoCache;
  }

  /**
   * The compiled kernel for a source. gpu.js compiles on the first *call*, so a new kernel's
   * first call is timed apart (stats.compileMs) from steady calls.
   */
  private kernel(k: KernelSource, inputSizes: readonly number[] = []): IKernelRunShortcut {
    const key = keyOf(k, inputSizes);
    const cached = this.kernels.get(key);
    if (cached) return cached;
    const glArray = this.gpu.mode === 'cpu' ? 'Array' : 'ArrayTexture(1)';
    const made = this.gpu.createKernel(k.source, {
      output: [k.size],
      pipeline: true,
      immutable: true,
      precision: 'single',
      // highp everywhere: index arithmetic in mediump (fp16) breaks above 2048 elements
      tactic: 'precision',
      // declared, not inferred: gpu.js would type a whole-number argument as Integer and then
      // recompile when a fractional value comes; storages are always float textures
      argumentTypes: k.args.map((a) => (a === 'number' ? 'Float' : a === 'host' ? 'Array' : glArray)),
    } as never) as IKernelRunShortcut;
    const run = ((...args: unknown[]) => {
      const t0 = performance.now();
      const out = (made as unknown as (...a: unknown[]) => unknown)(...args);
      this.tally.compileMs += performance.now() - t0;
      this.tally.compiled++;
      // later calls go straight to gpu.js
      this.kernels.set(key, made);
      return out;
    }) as unknown as IKernelRunShortcut;
    (run as unknown as { destroy(): void }).destroy = () => made.destroy();
    this.kernels.set(key, run);
    return run;
  }

  protected launch(k: KernelSource, inputSizes: readonly number[], args: readonly (DeviceData | number)[]): DeviceData {
    const out = this.kernel(k, inputSizes)(...(args as never[])) as unknown as DeviceData;
    // gpu.js cpu mode ignores `immutable` and returns the same array on every call: copy it
    return out instanceof Float32Array ? out.slice(0, k.size) : out;
  }

  protected free(data: DeviceData): void {
    if (!(data instanceof Float32Array)) data.delete();
  }

  /** Delete every cached kernel and the output texture each keeps (live storages stay valid). */
  releaseKernels(): void {
    for (const k of this.kernels.values()) k.destroy();
    this.kernels.clear();
  }

  protected uploadData(data: Float32Array): DeviceData {
    // a separate cache entry from the texture copy: gpu.js uploads the host array as a texture
    return this.launch(K.uploadKernel(data.length), [], [data]);
  }

  protected readData(data: DeviceData, size: number): Float32Array {
    const arr = data instanceof Float32Array ? data : (data.toArray() as Float32Array);
    // toArray may return a view into a larger readback buffer: copy exactly `size` values
    return Float32Array.from(arr.subarray(0, size));
  }
}

/** The few WebGL calls we make on gpu.js's context. */
interface WebGLLike {
  MAX_TEXTURE_SIZE: number;
  RENDERER: number;
  VERSION: number;
  getParameter(p: number): unknown;
}
