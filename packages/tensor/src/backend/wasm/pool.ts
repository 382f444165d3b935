/**
 * Worker threads over one shared WebAssembly memory, driven synchronously from the main thread.
 *
 * Every thread (the main thread plus threads-1 workers) instantiates the same compiled module
 * over the same shared `WebAssembly.Memory`, so a pointer means the same bytes everywhere and no
 * data is ever posted between threads. A job is a list of independent tasks (pack these panels,
 * compute that block of C). The main thread describes the job in a small control block (an
 * Int32Array over a SharedArrayBuffer), wakes the workers, and then works on the job itself;
 * every thread claims the next task with `Atomics.add(ctrl, NEXT, 1)` until none are left
 * (dynamic scheduling: a thread that is slowed by the OS simply claims fewer tasks).
 *
 * Synchronisation, with no busy-waiting when idle:
 * - Idle workers sleep in `Atomics.wait(ctrl, GEN, seenGeneration)` (a futex: no CPU used).
 * - To post a job the main thread closes the task counter (NEXT = CLOSED, so a straggler from the
 *   previous job cannot claim anything while the description is half-written), writes the job,
 *   sets DONE = 0 and NEXT = 0, then bumps GEN and `Atomics.notify`s. Seq-cst atomics order the
 *   plain writes of the description before NEXT = 0, so whoever claims a task sees the whole job.
 * - After each task a thread increments DONE; the one that completes the job notifies. The main
 *   thread, once it finds no task left, sleeps in `Atomics.wait(ctrl, DONE, ...)` (allowed on
 *   Node's main thread) until DONE = nTasks. It waits for tasks, never for threads: a worker the
 *   OS has not scheduled yet simply takes no part (on a loaded machine that is the difference
 *   between 1x and a stall of milliseconds), and when it does wake up it finds the job closed or
 *   helps with whatever job is current.
 * - Right after a job, threads watch for the next one for a few tens of microseconds before going
 *   to sleep (jobs come in bursts: pack then gemm, forward then backward).
 *
 * The worker's code is a plain-JavaScript string: no file to locate, so it behaves the same from
 * the TypeScript sources (tsx), the bundled dist and a Vite bundle, and no TypeScript loader has
 * to start in the worker. The task loop (`RUNNER`) and the worker's life (`SERVE`) are strings
 * used by every side: the calling thread builds `runTasks` with `new Function`, the workers
 * include both in their source, so they can never disagree on the job layout.
 *
 * Two kinds of worker, one protocol:
 * - Node: `new Worker(source, { eval: true })` from node:worker_threads, the module and memory in
 *   `workerData`. The constructor returns at once: a worker takes 50-90 ms to start, time the
 *   caller spends loading a model or decoding a photo instead of waiting (a job posted before
 *   then runs on the threads already there, tasks being claimed, not assigned); `started`
 *   resolves once each worker is ready, failed or timed out. Workers are `unref()`ed (they never
 *   keep the process alive).
 * - Browsers: a classic Web Worker from a Blob URL, given the module and memory by postMessage.
 *   Only where the calling thread is itself a worker (a page's main thread may not Atomics.wait)
 *   and the page is cross-origin isolated (else there is no SharedArrayBuffer, hence no shared
 *   memory: one thread). A browser starts a nested worker only once its creator returns to its
 *   event loop, so the constructor cannot wait for them: `started` resolves when they are ready,
 *   and callers await it before the first job. Until then a job simply runs on fewer threads
 *   (tasks are claimed, never assigned), so nothing depends on when a worker joins.
 * Both stop on `dispose()`.
 */

import type { KernelExports } from './kernels';
import { MAP_OPS, mapKernelName, RUN_BYTES } from './map-kernels';

/**
 * The kernels a CHUNKS job can run, by index, with how many arrays each takes: each is
 * f(pointers..., count) over `count` floats of every array (the output's pointer last).
 */
/** The row kernels of a ROWS job, by index (the task loop calls each with its own arguments). */
export const ROW_KERNELS = ['softmax_rows', 'softmax_backward_rows', 'layer_norm_rows', 'layer_norm_backward_rows'] as const;

export const CHUNK_KERNELS = [['gelu_f32', 2], ['gelu_backward_f32', 3]] as const;

/** Indices in the Int32 control block. Job parameters start at P. */
const C = {
  GEN: 0,
  DONE: 1,
  NEXT: 2,
  STOP: 3,
  OP: 4,
  NTASKS: 5,
  ERROR: 6,
  P: 7,
} as const;
const CONTROL_INTS = 64;

/**
 * Bounded spin before sleeping: ~20k atomic loads, a few tens of microseconds. Waking a sleeping
 * thread through the OS takes about as long, so a thread that just finished a job watches for
 * the next one briefly (the next job usually follows at once) and then sleeps in Atomics.wait:
 * an idle pool uses no CPU.
 */
const SPIN = 20_000;

/** NEXT while no job is open: far above any task count, and adding to it cannot overflow soon. */
const CLOSED = 0x3fffffff;

/** Job kinds. */
export const OP = { PACK: 1, GEMM: 2, CONV: 3, CONV_DW: 4, MAP: 5, ROWS: 6, CHUNKS: 7 } as const;

/**
 * The task loop, `runTasks(ex, c)`, as JavaScript source shared by the main thread and workers.
 * PACK parameters (from P): aSrc aDst m k aRowMajor mp mpPad aSrcStride aDstStride chunk
 *   aTasksPerItem aTasks | bSrc bDst n bRowMajor np npPad bSrcStride bDstStride bTasksPerItem
 *   (a task packs `chunk` panels of one stored batch item of A, or of B)
 * GEMM parameters (from P): pa pb c mp np mpPad npPad k aStride bStride cStride mcp ncp
 *   rowBlocks colBlocks
 *   (a task computes mcp row panels x ncp column panels of one output batch item)
 * CONV parameters (from P): xb offp K wp0 wStride bp0 op0 ldo nt xRowBytes outRowBytes nOB chunk
 *   (a task is one output row of one block of 4 output channels: conv_tile over the row, once
 *   per chunk of `chunk` taps)
 * CONV_DW parameters (from P): xb offp dyp0 ldo R rowBytes xRowBytes dyRowBytes dwp0 ldw nPairs
 *   (a task is one block of 4 output channels x one pair of taps: conv_dw over the band)
 * MAP parameters (from P): kernel table entries perTask
 *   (a task is `perTask` runs of the table, given to map-kernels.ts's kernel number `kernel`)
 * ROWS parameters (from P): kernel rows rowsPerTask n scalarLo scalarHi p0 p1 ...
 *   (a task is `rowsPerTask` rows of a row kernel, ROW_KERNELS[kernel]: softmax_rows,
 *   softmax_backward_rows, layer_norm_rows, layer_norm_backward_rows; the scalar (softmax's scale,
 *   LayerNorm's eps) is a double as two i32 halves; row arrays start at the task's first row,
 *   LayerNorm's stats 8 bytes a row, its dw and db accumulators n floats a task)
 * CHUNKS parameters (from P): kernel count chunk p0 p1 [p2]
 *   (a task is `chunk` floats, a multiple of 4, of CHUNK_KERNELS[kernel](p0, p1, [p2,] count))
 * Pointers are unsigned byte addresses, read back with `>>> 0`.
 */
const RUNNER = /* js */ `
function runTasks(ex, c) {
  const P = ${C.P};
  for (;;) {
    const t = Atomics.add(c, ${C.NEXT}, 1);
    // read the job only after claiming: the claim is ordered after the main thread's writes
    const nTasks = c[${C.NTASKS}];
    if (t >= nTasks) return;
    try {
      if (c[${C.OP}] === ${OP.PACK}) {
        const aTasks = c[P + 11];
        if (t < aTasks) {
          const per = c[P + 10], item = Math.floor(t / per), p0 = (t % per) * c[P + 9];
          const p1 = Math.min(c[P + 5], p0 + c[P + 9]);
          ex.pack_a((c[P] >>> 0) + item * c[P + 7], (c[P + 1] >>> 0) + item * c[P + 8],
            c[P + 2], c[P + 3], c[P + 4], p0, p1, c[P + 6]);
        } else {
          const u = t - aTasks, per = c[P + 20], item = Math.floor(u / per), p0 = (u % per) * c[P + 9];
          const p1 = Math.min(c[P + 16], p0 + c[P + 9]);
          ex.pack_b((c[P + 12] >>> 0) + item * c[P + 18], (c[P + 13] >>> 0) + item * c[P + 19],
            c[P + 14], c[P + 3], c[P + 15], p0, p1, c[P + 17]);
        }
      } else if (c[${C.OP}] === ${OP.CONV}) {
        const nOB = c[P + 11], row = Math.floor(t / nOB), ob = t % nOB, K = c[P + 2], chunk = c[P + 12];
        const xp = (c[P] >>> 0) + row * c[P + 9], wp = (c[P + 3] >>> 0) + ob * c[P + 4];
        const op = (c[P + 6] >>> 0) + ob * 4 * c[P + 7] + row * c[P + 10];
        for (let k0 = 0; k0 < K; k0 += chunk) {
          ex.conv_tile(xp, (c[P + 1] >>> 0) + k0 * 4, Math.min(chunk, K - k0), wp + k0 * 16, (c[P + 5] >>> 0) + ob * 16, op, c[P + 7], c[P + 8], k0 > 0 ? 1 : 0);
        }
      } else if (c[${C.OP}] === ${OP.CONV_DW}) {
        const nPairs = c[P + 10], ob = Math.floor(t / nPairs), pair = t % nPairs;
        ex.conv_dw(c[P] >>> 0, (c[P + 1] >>> 0) + pair * 8, (c[P + 2] >>> 0) + ob * 4 * c[P + 3], c[P + 3], c[P + 4],
          c[P + 5], c[P + 6], c[P + 7], (c[P + 8] >>> 0) + ob * 4 * c[P + 9] + pair * 8, c[P + 9]);
      } else if (c[${C.OP}] === ${OP.MAP}) {
        const per = c[P + 3], e0 = t * per;
        ex[${JSON.stringify(MAP_OPS.map(mapKernelName))}[c[P]]]((c[P + 1] >>> 0) + e0 * ${RUN_BYTES}, Math.min(c[P + 2], e0 + per) - e0);
      } else if (c[${C.OP}] === ${OP.ROWS}) {
        const kernel = c[P], per = c[P + 2], r0 = t * per, rows = Math.min(c[P + 1], r0 + per) - r0, n = c[P + 3];
        const scalar = new Float64Array(new Int32Array([c[P + 4], c[P + 5]]).buffer)[0];
        const q = (i) => c[P + 6 + i] >>> 0, row = (i) => q(i) + r0 * n * 4;
        if (kernel === 0) ex.softmax_rows(row(0), row(1), rows, n, scalar);
        else if (kernel === 1) ex.softmax_backward_rows(row(0), row(1), row(2), rows, n, scalar);
        else if (kernel === 2) ex.layer_norm_rows(row(0), q(1), q(2), row(3), q(4) + r0 * 8, rows, n, scalar);
        else ex.layer_norm_backward_rows(row(0), row(1), q(2), q(3) + r0 * 8, row(4), q(5) + t * n * 4, q(6) + t * n * 4, rows, n);
      } else if (c[${C.OP}] === ${OP.CHUNKS}) {
        const [name, arity] = ${JSON.stringify(CHUNK_KERNELS)}[c[P]], chunk = c[P + 2], o = t * chunk;
        const pointers = [];
        for (let i = 0; i < arity; i++) pointers.push((c[P + 3 + i] >>> 0) + o * 4);
        ex[name](...pointers, Math.min(c[P + 1], o + chunk) - o);
      } else {
        const rowBlocks = c[P + 13], colBlocks = c[P + 14], perItem = rowBlocks * colBlocks;
        const bi = Math.floor(t / perItem), rem = t % perItem;
        const ib = Math.floor(rem / colBlocks), jb = rem % colBlocks;
        const i0 = ib * c[P + 11], i1 = Math.min(c[P + 3], i0 + c[P + 11]);
        const j0 = jb * c[P + 12], j1 = Math.min(c[P + 4], j0 + c[P + 12]);
        ex.gemm((c[P] >>> 0) + bi * c[P + 8], (c[P + 1] >>> 0) + bi * c[P + 9], (c[P + 2] >>> 0) + bi * c[P + 10],
          c[P + 5], c[P + 6], c[P + 7], i0, i1, j0, j1);
      }
    } catch (e) {
      // count the task anyway, or the main thread would wait forever; it reports ERROR
      Atomics.store(c, ${C.ERROR}, 1);
      try { console.error('mofme wasm kernels, task ' + t + ':', e); } catch {}
    }
    if (Atomics.add(c, ${C.DONE}, 1) === nTasks - 1) Atomics.notify(c, ${C.DONE});
  }
}
`;

/** What a worker is given: the compiled kernels, the shared memory, the control block's buffer. */
interface WorkerStart {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: SharedArrayBuffer | ArrayBuffer;
  generation: number;
}

/**
 * A worker's life, `serve(start, ready)`: instantiate the kernels over the shared memory, say it
 * is ready (`ready()` posts a message to its creator), then run every job it
 * is woken for until STOP. It never returns before STOP, so a browser worker's event loop is
 * blocked from then on, which is fine: it has nothing else to do, and terminate() still works.
 */
const SERVE = /* js */ `
function serve(start, ready) {
  const c = new Int32Array(start.control);
  const ex = new WebAssembly.Instance(start.module, { env: { memory: start.memory } }).exports;
  ready();
  let seen = start.generation;
  for (;;) {
    for (let i = 0; i < ${SPIN} && Atomics.load(c, ${C.GEN}) === seen; i++);   // brief watch
    Atomics.wait(c, ${C.GEN}, seen);                                             // then sleep
    seen = Atomics.load(c, ${C.GEN});
    if (Atomics.load(c, ${C.STOP}) !== 0) break;
    runTasks(ex, c);
  }
}
`;

/** The Node worker's whole program (CommonJS, evaluated from this string). */
const NODE_WORKER_SOURCE = `${RUNNER}${SERVE}
const threads = require('node:worker_threads');
serve(threads.workerData, () => threads.parentPort.postMessage('ready'));
`;

/** The browser worker's whole program (a classic worker script); the start comes as its first message. */
const WEB_WORKER_SOURCE = `${RUNNER}${SERVE}
self.onmessage = (event) => {
  self.onmessage = null;
  serve(event.data, () => self.postMessage('ready'));
};
`;

type RunTasks = (ex: KernelExports, c: Int32Array) => void;
const runTasks = new Function(`${RUNNER}; return runTasks;`)() as RunTasks;

interface WorkerLike {
  terminate(): unknown;
}
interface NodeWorker extends WorkerLike {
  unref(): void;
  once(event: 'message' | 'error', listener: (e: { message?: string }) => void): void;
}
type NodeWorkerCtor = new (src: string, opts: object) => NodeWorker;

/** The Web Worker API as far as the pool uses it. */
interface WebWorker extends WorkerLike {
  postMessage(message: unknown): void;
  onmessage: ((event: unknown) => void) | null;
  onerror: ((event: { message?: string; preventDefault?: () => void }) => void) | null;
}
type WebWorkerCtor = new (url: string, opts?: object) => WebWorker;

/** node:worker_threads without a static import, so browsers can load this file. */
function nodeWorkerConstructor(): NodeWorkerCtor | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const wt = proc?.getBuiltinModule?.('node:worker_threads') as { Worker?: NodeWorkerCtor } | undefined;
  return wt?.Worker;
}

/**
 * The Web Worker constructor where this browser context can run a threaded pool: it must be a
 * worker (WorkerGlobalScope; a page's main thread may not Atomics.wait), cross-origin isolated
 * (SharedArrayBuffer, hence shared WebAssembly memory), and able to start nested workers from a
 * Blob URL. Undefined elsewhere, Node included (it has worker_threads).
 */
function webWorkerConstructor(): WebWorkerCtor | undefined {
  const g = globalThis as {
    WorkerGlobalScope?: unknown; crossOriginIsolated?: boolean;
    Worker?: unknown; Blob?: unknown; URL?: { createObjectURL?: unknown };
  };
  const usable = nodeWorkerConstructor() === undefined && g.WorkerGlobalScope !== undefined && g.crossOriginIsolated === true &&
    typeof SharedArrayBuffer === 'function' && typeof g.Worker === 'function' && typeof g.Blob === 'function' &&
    typeof g.URL?.createObjectURL === 'function';
  return usable ? (g.Worker as WebWorkerCtor) : undefined;
}

/** Cores the OS lets us use (Node: os.availableParallelism; browsers: navigator.hardwareConcurrency). */
export function defaultThreads(): number {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const os = proc?.getBuiltinModule?.('node:os') as { availableParallelism?: () => number; cpus?: () => unknown[] } | undefined;
  const n = os?.availableParallelism?.() ?? os?.cpus?.().length
    ?? (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, n | 0);
}

/** Can this thread run a pool of more than one thread (Node worker_threads, or an isolated browser worker)? */
export function workersAvailable(): boolean {
  return typeof SharedArrayBuffer === 'function' && typeof Atomics.wait === 'function' &&
    (nodeWorkerConstructor() !== undefined || webWorkerConstructor() !== undefined);
}

/** The main thread's side: the control block, the workers, and `run` to execute one job. */
export class Pool {
  readonly ctrl: Int32Array;
  private workers: WorkerLike[] = [];
  /** participating threads, main included (browsers: those asked for; see `started`) */
  readonly threads: number;
  /**
   * Resolves with the threads really running, the calling one included, once every worker is
   * ready or has failed or timed out. Nothing has to wait for it: until then jobs run on the
   * threads already there (browsers start their workers only once the caller yields).
   */
  readonly started: Promise<number>;

  constructor(
    readonly ex: KernelExports,
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    threads: number,
    readyTimeoutMs = 10_000,
  ) {
    // (a plain ArrayBuffer where SharedArrayBuffer is missing: one thread, no waiting needed)
    this.ctrl = new Int32Array(typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(CONTROL_INTS * 4) : new ArrayBuffer(CONTROL_INTS * 4));
    const Worker = threads > 1 ? nodeWorkerConstructor() : undefined;
    const WebWorker = threads > 1 && !Worker ? webWorkerConstructor() : undefined;
    if (WebWorker) {
      this.started = this.startWebWorkers(WebWorker, module, memory, threads - 1, readyTimeoutMs);
      this.threads = this.workers.length + 1;
      return;
    }
    const ready: Promise<boolean>[] = [];
    for (let w = 0; Worker && w < threads - 1; w++) {
      const worker = new Worker(NODE_WORKER_SOURCE, {
        eval: true,
        // the worker is plain JS: don't start tsx (or any other --import) inside it
        execArgv: [],
        workerData: { module, memory, control: this.ctrl.buffer, generation: 0 },
      });
      worker.unref();
      this.workers.push(worker);
      // no waiting here (see the top of the file): a worker that never starts simply takes no task
      ready.push(new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), readyTimeoutMs);
        (timer as { unref?: () => void }).unref?.();
        worker.once('message', () => { clearTimeout(timer); resolve(true); });
        worker.once('error', (e) => {
          clearTimeout(timer);
          console.error(`mofme wasm kernels: worker ${w + 1} failed to start: ${e.message ?? 'unknown error'}`);
          resolve(false);
        });
      }));
    }
    this.threads = this.workers.length + 1;
    this.started = Promise.all(ready).then((ok) => 1 + ok.filter(Boolean).length);
  }

  /**
   * Starts `count` Web Workers from one Blob URL and resolves with 1 + those that said ready
   * within `timeoutMs` (one that fails to start is terminated and reported on the console; the
   * jobs run without it). A worker that is merely late still joins when it starts: harmless.
   */
  private startWebWorkers(Ctor: WebWorkerCtor, module: WebAssembly.Module, memory: WebAssembly.Memory, count: number, timeoutMs: number): Promise<number> {
    const url = URL.createObjectURL(new Blob([WEB_WORKER_SOURCE], { type: 'text/javascript' }));
    const start: WorkerStart = { module, memory, control: this.ctrl.buffer, generation: 0 };
    const waits: Promise<boolean>[] = [];
    for (let w = 0; w < count; w++) {
      const worker = new Ctor(url, { name: `mofme-wasm-${w + 1}` });
      this.workers.push(worker);
      waits.push(new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        worker.onmessage = () => { clearTimeout(timer); resolve(true); };
        worker.onerror = (e) => {
          e.preventDefault?.();
          clearTimeout(timer);
          console.error(`mofme wasm kernels: worker ${w + 1} failed to start: ${e.message ?? 'unknown error'}`);
          worker.terminate();
          resolve(false);
        };
      }));
      worker.postMessage(start);
    }
    return Promise.all(waits).then((ok) => {
      URL.revokeObjectURL(url);
      return 1 + ok.filter(Boolean).length;
    });
  }

  /**
   * Runs one job to completion: `params` go to ctrl[P..], `nTasks` tasks are shared by the main
   * thread and (if `parallel`) the workers. Returns when every task is done.
   */
  run(op: number, params: readonly number[], nTasks: number, parallel: boolean): void {
    const c = this.ctrl;
    Atomics.store(c, C.NEXT, CLOSED);
    c[C.OP] = op;
    c[C.NTASKS] = nTasks;
    for (let i = 0; i < params.length; i++) c[C.P + i] = params[i]! | 0;
    Atomics.store(c, C.ERROR, 0);
    Atomics.store(c, C.DONE, 0);
    Atomics.store(c, C.NEXT, 0);
    if (parallel && nTasks > 1 && this.workers.length > 0) {
      Atomics.add(c, C.GEN, 1);
      Atomics.notify(c, C.GEN);
    }
    runTasks(this.ex, c);
    // every task is claimed; sleep until the ones still running elsewhere are done
    for (let i = 0; i < SPIN && Atomics.load(c, C.DONE) < nTasks; i++);
    for (let done = Atomics.load(c, C.DONE); done < nTasks; done = Atomics.load(c, C.DONE)) {
      Atomics.wait(c, C.DONE, done);
    }
    Atomics.store(c, C.NEXT, CLOSED);
    if (Atomics.load(c, C.ERROR) !== 0) throw new Error('mofme wasm kernels: a task failed (see stderr)');
  }

  dispose(): void {
    if (this.workers.length === 0) return;
    Atomics.store(this.ctrl, C.STOP, 1);
    Atomics.add(this.ctrl, C.GEN, 1);
    Atomics.notify(this.ctrl, C.GEN);
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }
}
