/**
 * Memory made ready ahead of time, on another thread: an arena for the CPU backend's new arrays
 * and the pages of the kernels' WebAssembly memory, touched by a helper thread while the caller
 * does something else (decodes a photo, loads a model).
 *
 * Why: the first time a process writes to a page of memory the operating system has to find and
 * zero a page and map it (a page fault). On the 2-core VM this project is measured on that costs
 * about 4-5 ms per MiB, a hundred times the cost of writing the same MiB again (a 64 MiB array:
 * 300 ms the first time, 3 ms the second). Inference runs into it once: the first window of a
 * restore allocates every intermediate fresh (73 MiB for the bundled model's 192-px windows, plus
 * 11 MiB of kernel scratch), and from the second window on the backend's pool recycles them. That
 * first window measured about 620 ms of CPU time instead of about 110 ms warm, 300 ms of it page
 * faults. A page is the process's, whichever thread faults it in, so a helper thread on the other
 * core can take those faults while the main thread is still busy elsewhere.
 *
 * How: the memory is a SharedArrayBuffer (the only memory two JavaScript threads can both see).
 * The helper writes one value per 4 KiB page, front to back (the order the arena hands it out),
 * with `Atomics.add(page, 0)`: an atomic read-modify-write that stores what it read, so it
 * faults the page in for writing without ever changing a value, even if the main thread is
 * already writing to the same page (the WebAssembly memory is in use while it is touched). If
 * the main thread gets to a page first it simply takes that fault itself, as it would have
 * without any of this. Node only (worker_threads); elsewhere nothing is touched in advance.
 */
import type { DType, TypedArray } from './backend';

/** The helper thread's whole program (plain JavaScript: no TypeScript loader starts in it). */
const TOUCH_SOURCE = /* js */ `
const { workerData } = require('node:worker_threads');
for (const buffer of workerData) {
  const words = new Int32Array(buffer);
  for (let i = 0; i < words.length; i += 1024) Atomics.add(words, i, 0);  // one word per 4 KiB page
}
`;

type NodeWorker = { unref(): void; once(event: string, listener: () => void): void };
type NodeWorkerCtor = new (src: string, opts: object) => NodeWorker;

function nodeWorkerConstructor(): NodeWorkerCtor | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return (proc?.getBuiltinModule?.('node:worker_threads') as { Worker?: NodeWorkerCtor } | undefined)?.Worker;
}

/** Whether `touchInBackground` can use a helper thread here (Node with worker_threads and SharedArrayBuffer). */
export function backgroundTouchAvailable(): boolean {
  return typeof SharedArrayBuffer === 'function' && nodeWorkerConstructor() !== undefined;
}

/**
 * Starts a helper thread that faults in every page of `buffers` (see the top of the file) and
 * returns at once; the promise settles when it is done (or could not start: this only ever saves
 * time, so a failure is not an error). The helper does not keep the process alive.
 */
export function touchInBackground(buffers: SharedArrayBuffer[]): Promise<void> {
  const Worker = nodeWorkerConstructor();
  if (!Worker || buffers.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    try {
      const worker = new Worker(TOUCH_SOURCE, { eval: true, execArgv: [], workerData: buffers });
      worker.unref();
      worker.once('exit', () => resolve());
      worker.once('error', () => resolve());
    } catch {
      resolve();
    }
  });
}

/** Arena offsets are rounded up to a cache line (and so suit Float64Array's 8-byte alignment). */
const ARENA_ALIGN = 64;

/**
 * A bump allocator over one SharedArrayBuffer: `take` hands out consecutive, zero-filled arrays
 * (never written before) until the buffer is used up, then undefined. It never takes anything
 * back: an array that is no longer needed goes to the backend's pool like any other, so the
 * arena's memory is reused through the pool and the arena holds at most its size.
 */
export class Arena {
  private next = 0;
  readonly buffer: SharedArrayBuffer;

  constructor(bytes: number) {
    this.buffer = new SharedArrayBuffer(Math.ceil(bytes / ARENA_ALIGN) * ARENA_ALIGN);
  }

  take(dtype: DType, size: number): TypedArray | undefined {
    const bytes = size * (dtype === 'float64' ? 8 : 4);
    if (this.next + bytes > this.buffer.byteLength) return undefined;
    const view = dtype === 'float64' ? new Float64Array(this.buffer, this.next, size) : new Float32Array(this.buffer, this.next, size);
    this.next = Math.ceil((this.next + bytes) / ARENA_ALIGN) * ARENA_ALIGN;
    return view;
  }

  /** bytes not handed out yet */
  get left(): number {
    return this.buffer.byteLength - this.next;
  }
}
