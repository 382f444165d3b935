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
import { CHUNK_KERNELS, defaultThreads, OP, Pool, ROW_KERNELS, workersAvailable } from './pool';
import { MAP_OPS, RUN_BYTES, type MapOpName } from './map-kernels';

export type { MapOpName };

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
  /**
   * the gradient of softmax(fround(scale * x)) rows from their output y and its gradient (the
   * reference loop's steps in double lanes, norm-kernels.ts); into `out` if given
   */
  softmaxBackward(y: Float32Array, grad: Float32Array, rows: number, n: number, scale: number, out?: Float32Array): Float32Array;
  /** LayerNorm over the last n values of each row and its (mean, rstd) per row (norm-kernels.ts); null weight: ones, null bias: zeros */
  layerNorm(x: Float32Array, weight: Float32Array | null, bias: Float32Array | null, rows: number, n: number, eps: number, out?: Float32Array, stats?: Float32Array): { out: Float32Array; stats: Float32Array };
  /** LayerNorm's gradients from the forward's stats (norm-kernels.ts) */
  layerNormBackward(grad: Float32Array, x: Float32Array, weight: Float32Array | null, stats: Float32Array, rows: number, n: number, dx?: Float32Array): { dx: Float32Array; dweight: Float32Array; dbias: Float32Array };
  /** grad * GELU'(x) for float32 values (row-kernels.ts: the CPU backend's float32 loop in double lanes); into `out` if given */
  geluBackward(x: Float32Array, grad: Float32Array, out?: Float32Array): Float32Array;
  /**
   * out[o + t] = op(x[ia + t*sa], y[ib + t*sb]) for t < n, for each run (o, ia, sa, ib, sb, n) of
   * `runs` (six numbers per run; sa and sb 0 or 1, the runs covering `out`); unary ops ignore y
   * (map-kernels.ts: float32 lanes, the reference's results bit for bit)
   */
  map(op: MapOpName, x: Float32Array, y: Float32Array | null, runs: readonly number[], out: Float32Array): Float32Array;
  /** outputs smaller than this are cheaper in the backend's own loops than copied here and back */
  readonly mapMinSize: number;
  /**
   * Grow the scratch memory to at least `bytes` now and return it if it grew and is shared (a
   * SharedArrayBuffer another thread can fault in ahead of use: prefault.ts), else undefined
   */
  reserveScratch(bytes: number): SharedArrayBuffer | undefined;
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
  /**
   * elementwise outputs (map, softmax, GELU) with fewer values than this stay on the calling
   * thread (default 2^15: a job hand-off costs a few microseconds, about what 32K values take);
   * tests set 0 to exercise the split
   */
  parallelMinValues?: number;
  /** see FastKernels.mapMinSize (default 4096); tests set 0 so that small cases take this path */
  mapMinSize?: number;
}

/** Rows / columns of C per GEMM task: 64 x 256 keeps a task's C block and A block in L2. */
const MC = 64;
const NC = 256;
/**
 * Largest run of an elementwise job (floats; a multiple of 4): long runs are cut into pieces of
 * this size so that the pool's threads get similar shares (64 KiB per operand, within L2).
 */
const MAP_CHUNK = 16384;
/**
 * Rows per task of LayerNorm's backward: each task sums its rows' dw and db in float32 as the
 * reference loop does, and the tasks' sums are added in double (64 rows: the float32 sums stay
 * short, and a [2048, 384] gradient has 32 tasks to share).
 */
const LAYER_NORM_BLOCK = 64;
/** Tasks per thread of an elementwise job: some slack for a thread the OS delays. */
const TASKS_PER_THREAD = 4;

/** The first n values of `values` at byte address `at` of the heap, or n copies of `otherwise` when there are none. */
function putOr(heap: Float32Array, values: Float32Array | null, at: number, n: number, otherwise: number): void {
  if (values) heap.set(values.subarray(0, n), at >>> 2);
  else heap.fill(otherwise, at >>> 2, (at >>> 2) + n);
}

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
  readonly parallelMinValues: number;
  readonly mapMinSize: number;
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
    this.parallelMinValues = opts.parallelMinValues ?? 2 ** 15;
    this.mapMinSize = opts.mapMinSize ?? 4096;
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
    return this.elementwise([x], rows * n, rows * n, () => `softmax [${rows}, ${n}]`,
      ([xp], yp) => this.rowsJob('softmax_rows', rows, n, scale, [xp!, yp]), out);
  }

  softmaxBackward(y: Float32Array, grad: Float32Array, rows: number, n: number, scale: number, out?: Float32Array): Float32Array {
    return this.elementwise([y, grad], rows * n, rows * n, () => `softmax backward [${rows}, ${n}]`,
      ([yp, gp], dxp) => this.rowsJob('softmax_backward_rows', rows, n, scale, [yp!, gp!, dxp]), out);
  }

  layerNorm(x: Float32Array, weight: Float32Array | null, bias: Float32Array | null, rows: number, n: number, eps: number, out?: Float32Array, stats?: Float32Array): { out: Float32Array; stats: Float32Array } {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    // memory plan: x, w, b, y, stats
    const size = rows * n, xp = 64, wp = align16(xp + size * 4), bp = align16(wp + n * 4), yp = align16(bp + n * 4), sp = align16(yp + size * 4);
    const heap = this.heap(sp + rows * 8, () => `layerNorm [${rows}, ${n}]`);
    heap.set(x.subarray(0, size), xp >>> 2);
    // a missing weight or bias is ones or zeros: times 1 and plus 0, as the reference loop does
    putOr(heap, weight, wp, n, 1);
    putOr(heap, bias, bp, n, 0);
    this.rowsJob('layer_norm_rows', rows, n, eps, [xp, wp, bp, yp, sp]);
    const view = new Float32Array(this.memory.buffer);
    const y = out ?? new Float32Array(size), st = stats ?? new Float32Array(rows * 2);
    y.set(view.subarray(yp >>> 2, (yp >>> 2) + size));
    st.set(view.subarray(sp >>> 2, (sp >>> 2) + rows * 2));
    return { out: y, stats: st };
  }

  layerNormBackward(grad: Float32Array, x: Float32Array, weight: Float32Array | null, stats: Float32Array, rows: number, n: number, dx?: Float32Array): { dx: Float32Array; dweight: Float32Array; dbias: Float32Array } {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    const size = rows * n, tasks = this.rowTasks(rows, n, true).tasks;
    // memory plan: g, x, w, stats, dx, then each task's dw and db accumulators (zeroed)
    const gp = 64, xp = align16(gp + size * 4), wp = align16(xp + size * 4), sp = align16(wp + n * 4), dxp = align16(sp + rows * 8);
    const dwp = align16(dxp + size * 4), dbp = align16(dwp + tasks * n * 4);
    const heap = this.heap(dbp + tasks * n * 4, () => `layerNorm backward [${rows}, ${n}]`);
    heap.set(grad.subarray(0, size), gp >>> 2);
    heap.set(x.subarray(0, size), xp >>> 2);
    putOr(heap, weight, wp, n, 1);
    heap.set(stats.subarray(0, rows * 2), sp >>> 2);
    heap.fill(0, dwp >>> 2, (dbp >>> 2) + tasks * n);
    this.rowsJob('layer_norm_backward_rows', rows, n, 0, [gp, xp, wp, sp, dxp, dwp, dbp], true);
    const view = new Float32Array(this.memory.buffer);
    const out = dx ?? new Float32Array(size);
    out.set(view.subarray(dxp >>> 2, (dxp >>> 2) + size));
    // the tasks' accumulators added up in double (one task: its float32 sums as they are)
    const dweight = new Float32Array(n), dbias = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let w = 0, b = 0;
      for (let t = 0; t < tasks; t++) { w += view[(dwp >>> 2) + t * n + j]!; b += view[(dbp >>> 2) + t * n + j]!; }
      dweight[j] = w;
      dbias[j] = b;
    }
    return { dx: out, dweight, dbias };
  }

  /**
   * How a ROWS job of `rows` rows of n values is cut: several rows per task, a few tasks per thread
   * when it is worth a hand-off. `fixed`: LAYER_NORM_BLOCK rows a task whatever the threads, for
   * the kernels whose tasks add up partial sums (the result then does not depend on the thread count).
   */
  private rowTasks(rows: number, n: number, fixed = false): { per: number; tasks: number; parallel: boolean } {
    const parallel = this.threads > 1 && rows * n >= this.parallelMinValues && rows > 1;
    const per = fixed ? LAYER_NORM_BLOCK : parallel ? Math.ceil(rows / (TASKS_PER_THREAD * this.threads)) : Math.max(rows, 1);
    return { per, tasks: Math.max(1, Math.ceil(rows / per)), parallel };
  }

  /** Runs a row kernel (pool.ts, ROW_KERNELS) over `rows` rows; `scalar` is its scale or eps. */
  private rowsJob(kernel: (typeof ROW_KERNELS)[number], rows: number, n: number, scalar: number, pointers: number[], fixed = false): void {
    if (rows === 0) return;
    const { per, tasks, parallel } = this.rowTasks(rows, n, fixed);
    const [lo, hi] = new Int32Array(new Float64Array([scalar]).buffer);
    this.pool.run(OP.ROWS, [ROW_KERNELS.indexOf(kernel), rows, per, n, lo!, hi!, ...pointers], tasks, parallel);
  }

  gelu(x: Float32Array, out?: Float32Array): Float32Array {
    return this.chunked('gelu_f32', [x], () => `gelu [${x.length}]`, out);
  }

  geluBackward(x: Float32Array, grad: Float32Array, out?: Float32Array): Float32Array {
    return this.chunked('gelu_backward_f32', [x, grad], () => `gelu backward [${x.length}]`, out);
  }

  /** a kernel of CHUNK_KERNELS (pool.ts) over the inputs (zero-padded to whole vectors), in slices shared by the threads */
  private chunked(name: (typeof CHUNK_KERNELS)[number][0], inputs: Float32Array[], what: () => string, out?: Float32Array): Float32Array {
    const size = inputs[0]!.length, padded = Math.ceil(size / 4) * 4;
    const parallel = this.threads > 1 && padded >= this.parallelMinValues;
    const chunk = parallel ? Math.ceil(padded / (TASKS_PER_THREAD * this.threads * 4)) * 4 : Math.max(padded, 4);
    return this.elementwise(inputs, size, padded, what,
      (pointers, yp) => this.pool.run(OP.CHUNKS, [CHUNK_KERNELS.findIndex(([k]) => k === name), padded, chunk, ...pointers, yp], Math.ceil(padded / chunk), parallel), out);
  }

  map(op: MapOpName, x: Float32Array, y: Float32Array | null, runs: readonly number[], out: Float32Array): Float32Array {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    const runCount = runs.length / 6;
    // the run table after cutting long runs into MAP_CHUNK pieces
    let entries = 0;
    for (let r = 0; r < runCount; r++) entries += Math.ceil(runs[r * 6 + 5]! / MAP_CHUNK);
    // memory plan (byte addresses): x, y, z, one broadcast vector per run and operand, the table
    const xp = 64, yp = align16(xp + x.length * 4), zp = align16(yp + (y?.length ?? 0) * 4);
    const splats = align16(zp + out.length * 4), table = splats + runCount * 32;
    const heap = this.heap(table + entries * RUN_BYTES, () => `${op} [${out.length}]`);
    heap.set(x, xp >>> 2);
    if (y) heap.set(y, yp >>> 2);
    const ints = new Int32Array(heap.buffer);
    let e = table >>> 2;
    for (let r = 0; r < runCount; r++) {
      const o = runs[r * 6]!, ia = runs[r * 6 + 1]!, sa = runs[r * 6 + 2]!, ib = runs[r * 6 + 3]!, sb = runs[r * 6 + 4]!, n = runs[r * 6 + 5]!;
      // an operand that stays put is read from a vector of its one value
      const xv = splats + r * 32, yv = xv + 16;
      if (sa === 0) heap.fill(x[ia]!, xv >>> 2, (xv >>> 2) + 4);
      if (sb === 0 && y) heap.fill(y[ib]!, yv >>> 2, (yv >>> 2) + 4);
      for (let t = 0; t < n; t += MAP_CHUNK) {
        ints[e++] = zp + (o + t) * 4;
        ints[e++] = sa === 0 ? xv : xp + (ia + t) * 4; ints[e++] = sa * 16;
        ints[e++] = sb === 0 ? yv : yp + (ib + t) * 4; ints[e++] = sb * 16;
        ints[e++] = Math.min(MAP_CHUNK, n - t);
      }
    }
    const parallel = this.threads > 1 && out.length >= this.parallelMinValues && entries > 1;
    const per = parallel ? Math.ceil(entries / (TASKS_PER_THREAD * this.threads)) : Math.max(entries, 1);
    this.pool.run(OP.MAP, [MAP_OPS.indexOf(op), table, entries, per], Math.ceil(entries / per), parallel);
    out.set(new Float32Array(this.memory.buffer, zp, out.length));
    return out;
  }

  /**
   * A kernel from `size` values of each input to as many: the inputs copied in (each zero-padded
   * to `padded`), `run(pointers, yp)` on the byte addresses, the result copied out into `out`
   * (any contents) or a fresh array.
   */
  private elementwise(inputs: Float32Array[], size: number, padded: number, what: () => string, run: (pointers: number[], yp: number) => void, out?: Float32Array): Float32Array {
    if (this.disposed) throw new Error('FastKernels used after dispose()');
    const pointers = inputs.map((_, i) => 64 + i * align16(padded * 4));
    const yp = 64 + inputs.length * align16(padded * 4);
    let heap = this.heap(yp + padded * 4, what);
    inputs.forEach((x, i) => {
      const at = pointers[i]! >>> 2;
      heap.set(x.length === size ? x : x.subarray(0, size), at);
      heap.fill(0, at + size, at + padded);
    });
    run(pointers, yp);
    heap = new Float32Array(this.memory.buffer);
    const y = heap.subarray(yp >>> 2, (yp >>> 2) + size);
    if (!out) return y.slice();
    out.set(y);
    return out;
  }

  reserveScratch(bytes: number): SharedArrayBuffer | undefined {
    if (bytes <= this.memory.buffer.byteLength) return undefined;
    const { buffer } = this.heap(bytes, () => `scratch reserved ahead (${bytes} bytes)`);
    return typeof SharedArrayBuffer === 'function' && buffer instanceof SharedArrayBuffer ? buffer : undefined;
  }

  dispose(): void {
    this.disposed = true;
    this.pool.dispose();
  }
}

/**
 * New kernels with their own memory and worker threads. Synchronous: compiles the module (a few
 * KiB) and starts the workers, which join the jobs once they are up (`started`; pool.ts).
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
