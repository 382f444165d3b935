/**
 * Fast float32 kernels for the CPU backend: WebAssembly SIMD matmul on one or more threads.
 *
 * The CPU backend keeps its plain TypeScript kernels as the readable reference (and for float64);
 * when `fastKernelsEnabled()` it hands float32 matmuls to `FastKernels.matmul`, which is
 * synchronous like every backend kernel. What happens inside one call:
 *
 *   1. A and B are copied into the shared WebAssembly memory (one memcpy each; no transposes).
 *   2. PACK job: A is cut into 4-row panels and B into 8-column panels, k-major and zero-padded
 *      (kernels.ts explains why). Transposed operands only change how the packer gathers.
 *   3. GEMM job: blocks of C (64 rows x 256 columns) are shared out among the threads; each runs
 *      the 4x8 f32x4 micro-kernel over its panels, one k block of 256 at a time.
 *   4. The padded C is compacted in place (`memory.copy` per row) and copied out once.
 *
 * Jobs run on the main thread plus `threads - 1` workers (pool.ts); small products stay on the
 * main thread because waking a worker costs more than they do. Batch broadcasting (batchA or
 * batchB = 1) packs the shared operand once and gives every batch item the same panel pointer.
 *
 * Selection: `MOFME_KERNELS=ts` turns the fast path off (teaching, debugging, bisecting a wrong
 * result); `MOFME_THREADS=n` sets the default thread count of `sharedFastKernels()`.
 */

import type { ConvSpec, MatmulSpec } from '../backend';
import { align16, conv2dBackwardFilter, conv2dBackwardInput, conv2dForward, type ConvHost } from './conv';
import { assembleModule, I, T } from './emit';
import { KC, kernelModuleBytes, MAX_PAGES, MR, NR, type KernelExports } from './kernels';
import { defaultThreads, OP, Pool, workersAvailable } from './pool';

export interface FastKernels {
  /** e.g. 'wasm-simd x2 threads' */
  readonly name: string;
  /** threads taking part in a large job, the calling thread included */
  readonly threads: number;
  /** resolves with the threads really running; browsers start them only after the caller yields, so await it before the first call (pool.ts) */
  readonly started: Promise<number>;
  /** out[batch, m, n] = op(A) @ op(B) in float32; see MatmulSpec. Inputs are not modified; `out` (any contents) is written if given. */
  matmul(a: Float32Array, b: Float32Array, spec: MatmulSpec, out?: Float32Array): Float32Array;
  /** direct convolution (conv.ts), float32: out = conv(x, w) + bias; into `out` (any contents) if given */
  conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, spec: ConvSpec, out?: Float32Array): Float32Array;
  /** the input gradient; null where this geometry has no direct kernel (strides other than 1) */
  conv2dBackwardInput(dy: Float32Array, w: Float32Array, spec: ConvSpec, out?: Float32Array): Float32Array | null;
  /** the filter gradient [outChannels, channels/groups, kh, kw] */
  conv2dBackwardFilter(dy: Float32Array, x: Float32Array, spec: ConvSpec, out?: Float32Array): Float32Array;
  /**
   * softmax(fround(scale * x)) along each row of x viewed as [rows, n], float32, computed in
   * double lanes (row-kernels.ts); into `out` (any contents) if given
   */
  softmax(x: Float32Array, rows: number, n: number, scale: number, out?: Float32Array): Float32Array;
  /** exact GELU of float32 values (row-kernels.ts: the CPU backend's float32 formula in double lanes); into `out` if given */
  gelu(x: Float32Array, out?: Float32Array): Float32Array;
  /** stop the worker threads; the object must not be used afterwards */
  dispose(): void;
}

export interface FastKernelOptions {
  /** threads including the caller's; default os.availableParallelism() (1 where workers are unavailable) */
  threads?: number;
  /** products with fewer flops than this stay on the calling thread (default 2^21) */
  parallelMinFlops?: number;
  /**
   * false: a plain (unshared) memory and one thread, what a browser page without cross-origin
   * isolation gets. Default: shared wherever worker threads are available.
   */
  sharedMemory?: boolean;
  /** bytes of input + output per band of the direct convolution (default 1 MiB, about L2; tests use tiny bands to exercise the seams) */
  convBandBytes?: number;
}

/** Rows / columns of C per GEMM task: 64 x 256 keeps a task's C block and A block in L2. */
const MC = 64;
const NC = 256;

let simdCache: boolean | undefined;

/** True when this runtime validates a module using 128-bit SIMD (Node >= 16.4, current browsers). */
export function wasmSimdAvailable(): boolean {
  if (simdCache === undefined) {
    try {
      const probe = assembleModule(
        [{ name: 'f', params: [], results: [], locals: [T.v128], body: [I.v128_zero, I.set(0)] }],
        { min: 1, max: 1, shared: false },
      );
      simdCache = typeof WebAssembly === 'object' && WebAssembly.validate(probe);
    } catch {
      simdCache = false;
    }
  }
  return simdCache;
}

function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

let override: boolean | undefined;

/**
 * The API flag: false forces the TypeScript reference kernels, true uses the fast ones even when
 * MOFME_KERNELS=ts, undefined (the default) defers to the environment.
 */
export function setFastKernelsEnabled(on: boolean | undefined): void {
  override = on;
}

/**
 * Whether the CPU backend should use these kernels: the API flag if set, else false when
 * MOFME_KERNELS=ts (read on every call, so tests can flip it); always false without WASM SIMD.
 */
export function fastKernelsEnabled(): boolean {
  if (!wasmSimdAvailable()) return false;
  return override ?? env('MOFME_KERNELS')?.trim().toLowerCase() !== 'ts';
}


class WasmKernels implements FastKernels {
  readonly name: string;
  readonly threads: number;
  readonly started: Promise<number>;
  private readonly memory: WebAssembly.Memory;
  readonly ex: KernelExports;
  readonly pool: Pool;
  readonly parallelMinFlops: number;
  private disposed = false;
  private readonly host: ConvHost;

  constructor(opts: FastKernelOptions) {
    if (!wasmSimdAvailable()) throw new Error('WebAssembly SIMD is not available in this runtime');
    let threads = Math.max(1, Math.floor(opts.threads ?? defaultThreads()));
    const shared = opts.sharedMemory ?? workersAvailable();
    if (!shared || !workersAvailable()) threads = 1;
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared } as WebAssembly.MemoryDescriptor);
    const module = new WebAssembly.Module(kernelModuleBytes(shared));
    this.ex = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as KernelExports;
    this.pool = new Pool(this.ex, module, this.memory, threads);
    this.threads = this.pool.threads;
    this.started = this.pool.started;
    this.parallelMinFlops = opts.parallelMinFlops ?? 2 ** 21;
    this.name = `wasm-simd x${this.threads} thread${this.threads > 1 ? 's' : ''}`;
    this.host = { ex: this.ex, pool: this.pool, threads: this.threads, parallelMinFlops: this.parallelMinFlops, heap: (bytes, what) => this.heap(bytes, what), bandBytes: opts.convBandBytes };
  }

  /**
   * Grows the shared memory to at least `bytes` and returns a fresh float view of all of it.
   * Past wasm32's 4 GiB, or when the system refuses the memory, a one-line error names the call
   * (`what()`: op and shapes), the bytes asked and what to do, instead of a trap later.
   */
  private heap(bytes: number, what: () => string): Float32Array {
    const have = this.memory.buffer.byteLength;
    if (bytes > have) {
      const pages = Math.ceil((bytes - have) / 65536);
      const fail = (why: string): never => {
        throw new RangeError(`out of WebAssembly memory: ${what()} needs ${(bytes / 2 ** 20).toFixed(0)} MiB of kernel scratch (${why}); use a smaller batch or crop (--batch-size, --crop), or MOFME_KERNELS=ts to run without the WebAssembly kernels`);
      };
      if (have / 65536 + pages > MAX_PAGES) fail(`more than wasm32's 4 GiB limit; ${(have / 2 ** 20).toFixed(0)} MiB in use`);
      try {
        this.memory.grow(pages);
      } catch (e) {
        fail(`the system refused to grow it from ${(have / 2 ** 20).toFixed(0)} MiB: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return new Float32Array(this.memory.buffer);
  }

  matmul(a: Float32Array, b: Float32Array, spec: MatmulSpec, out?: Float32Array): Float32Array {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    const { batch, m, k, n, batchA, batchB, transA, transB } = spec;
    const outSize = batch * m * n;
    if (outSize === 0 || k === 0) return out ? out.fill(0, 0, outSize) : new Float32Array(outSize);
    const aSize = batchA * m * k, bSize = batchB * k * n;
    if (a.length < aSize || b.length < bSize) throw new RangeError('matmul: operand smaller than its spec');

    const mp = Math.ceil(m / MR), np = Math.ceil(n / NR);
    const mpPad = mp * MR, npPad = np * NR;
    // memory plan (byte addresses, 16-aligned): sources, packed operands, padded C
    const aSrc = 64;
    const bSrc = align16(aSrc + aSize * 4);
    const aPack = align16(bSrc + bSize * 4);
    const bPack = align16(aPack + batchA * mpPad * k * 4);
    const cOut = align16(bPack + batchB * npPad * k * 4);
    const end = cOut + batch * mpPad * npPad * 4;
    let heap = this.heap(end, () => `matmul [${batch}] ${transA ? `[${k}, ${m}]ᵀ` : `[${m}, ${k}]`} x ${transB ? `[${n}, ${k}]ᵀ` : `[${k}, ${n}]`}`);
    heap.set(a.length === aSize ? a : a.subarray(0, aSize), aSrc >>> 2);
    heap.set(b.length === bSize ? b : b.subarray(0, bSize), bSrc >>> 2);

    const parallel = this.threads > 1 && 2 * batch * m * n * k >= this.parallelMinFlops;

    // PACK: chunks of panels; one task per item when single-threaded
    const chunk = parallel ? Math.max(4, Math.ceil(Math.max(mp, np) / (4 * this.threads))) : 1 << 30;
    const aPer = Math.ceil(mp / chunk), bPer = Math.ceil(np / chunk);
    this.pool.run(OP.PACK, [
      aSrc, aPack, m, k, transA ? 0 : 1, mp, mpPad, m * k * 4, mpPad * k * 4, chunk, aPer, aPer * batchA,
      bSrc, bPack, n, transB ? 1 : 0, np, npPad, k * n * 4, npPad * k * 4, bPer,
    ], aPer * batchA + bPer * batchB, parallel);

    // GEMM: blocks of MC x NC of every output item
    // On several threads, make sure there are a few tasks per thread (dynamic scheduling needs
    // slack) and that they are of similar size: a 32 x 288 output as one 256-column block plus a
    // 32-column one would leave one thread with 8/9 of the work. So split the columns (then the
    // rows) evenly into more, smaller blocks when the default blocks are too few.
    let mcp = MC / MR, ncp = NC / NR;
    if (parallel) {
      const want = 4 * this.threads;
      const rowB = Math.ceil(mp / mcp);
      if (batch * rowB * Math.ceil(np / ncp) < want) {
        const cols = Math.min(np, Math.ceil(want / (batch * rowB)));
        ncp = Math.ceil(np / cols);
        if (batch * rowB * Math.ceil(np / ncp) < want) {
          const rows = Math.min(mp, Math.ceil(want / (batch * Math.ceil(np / ncp))));
          mcp = Math.ceil(mp / rows);
        }
      }
    }
    const rowBlocks = Math.ceil(mp / mcp), colBlocks = Math.ceil(np / ncp);
    this.pool.run(OP.GEMM, [
      aPack, bPack, cOut, mp, np, mpPad, npPad, k,
      batchA === 1 ? 0 : mpPad * k * 4, batchB === 1 ? 0 : npPad * k * 4, mpPad * npPad * 4,
      mcp, ncp, rowBlocks, colBlocks,
    ], batch * rowBlocks * colBlocks, parallel);

    if (m !== mpPad || n !== npPad) this.ex.compact(cOut, batch, m, n, npPad, mpPad);
    heap = new Float32Array(this.memory.buffer); // (memory cannot have grown, but views are cheap)
    const c = heap.subarray(cOut >>> 2, (cOut >>> 2) + outSize);
    if (!out) return c.slice();
    out.set(c);
    return out;
  }

  conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, spec: ConvSpec, out?: Float32Array): Float32Array {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    return conv2dForward(this.host, x, w, bias, spec, out);
  }

  conv2dBackwardInput(dy: Float32Array, w: Float32Array, spec: ConvSpec, out?: Float32Array): Float32Array | null {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    return conv2dBackwardInput(this.host, dy, w, spec, out);
  }

  conv2dBackwardFilter(dy: Float32Array, x: Float32Array, spec: ConvSpec, out?: Float32Array): Float32Array {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    return conv2dBackwardFilter(this.host, dy, x, spec, out);
  }

  softmax(x: Float32Array, rows: number, n: number, scale: number, out?: Float32Array): Float32Array {
    return this.elementwise(x, rows * n, rows * n, () => `softmax [${rows}, ${n}]`, (xp, yp) => this.ex.softmax_rows(xp, yp, rows, n, scale), out);
  }

  gelu(x: Float32Array, out?: Float32Array): Float32Array {
    // the kernel takes whole vectors: the input is zero-padded to a multiple of 4
    return this.elementwise(x, x.length, Math.ceil(x.length / 4) * 4, () => `gelu [${x.length}]`, (xp, yp, padded) => this.ex.gelu_f32(xp, yp, padded), out);
  }

  /**
   * A kernel from `size` values to as many: x copied in (zero-padded to `padded`), `run(xp, yp,
   * padded)` on the byte addresses, the result copied out into `out` (any contents) or a fresh array.
   */
  private elementwise(x: Float32Array, size: number, padded: number, what: () => string, run: (xp: number, yp: number, padded: number) => void, out?: Float32Array): Float32Array {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    const xp = 64, yp = align16(xp + padded * 4);
    let heap = this.heap(yp + padded * 4, what);
    heap.set(x.length === size ? x : x.subarray(0, size), xp >>> 2);
    heap.fill(0, (xp >>> 2) + size, (xp >>> 2) + padded);
    run(xp, yp, padded);
    heap = new Float32Array(this.memory.buffer);
    const y = heap.subarray(yp >>> 2, (yp >>> 2) + size);
    if (!out) return y.slice();
    out.set(y);
    return out;
  }

  dispose(): void {
    this.disposed = true;
    this.pool.dispose();
  }
}

/**
 * New kernels with their own memory and worker threads. Synchronous: compiles the module
 * (a few KiB, ~1 ms) and waits for the workers to start (tens of ms).
 */
export function createWasmKernels(opts: FastKernelOptions = {}): FastKernels {
  return new WasmKernels(opts);
}

let shared: FastKernels | undefined;

/**
 * The process-wide kernels the CPU backend should use, created on first call with
 * MOFME_THREADS (default: available cores) threads; undefined when `fastKernelsEnabled()` is false.
 */
export function sharedFastKernels(): FastKernels | undefined {
  if (!fastKernelsEnabled()) return undefined;
  if (!shared) {
    const t = Number(env('MOFME_THREADS'));
    shared = createWasmKernels(Number.isFinite(t) && t >= 1 ? { threads: t } : {});
  }
  return shared;
}

/**
 * Below this many multiply-adds (batch*m*n*k) a call costs more than it saves: a wasm matmul has
 * a fixed ~2-3 us (copies, two jobs, views), which the plain TypeScript loop beats up to about
 * 8x8x8 (measured: 8^3 wasm 3 us vs naive TS 4.7 us; 16^3 5 us vs 28 us). The CPU backend
 * should keep smaller products on its reference kernel.
 */
export const FAST_MATMUL_MIN_WORK = 4096;

/** Micro-kernel geometry, for documentation and tests. */
export const WASM_GEOMETRY = { MR, NR, KC, MC, NC } as const;
