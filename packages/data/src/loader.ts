/**
 * The streaming loader: turns a dataset (files or built-in) into an async stream of batches
 *
 *   { input, target: Float32Array (NCHW, [0,1]), shape: [B, 3, H, W], tasks, paths, ids, epoch, index }
 *
 * Order. Epoch e visits the dataset in the permutation Generator(mixSeed(seed, e)).permutation(n) (or in
 * order without `shuffle`). Sample j of epoch e gets itemSeed = mixSeed(seed, e, j), which decides its
 * crop corner, its dihedral mode and (built-in data) its weather realisation. The whole stream is
 * therefore a function of (dataset, options, seed) only.
 *
 * Resumption. `loader.position` is { epoch, index } of the NEXT batch (index = samples consumed in
 * that epoch). Save it with a checkpoint; `createLoader(ds, { ...opts, start: position })` continues
 * with exactly the batches the killed run would have seen next.
 *
 * Prefetch and memory. With `workers > 0`, samples are decoded and augmented in worker threads
 * (worker.ts) while the training thread computes. At most `prefetch` batches (prefetch × batchSize
 * samples) are requested ahead of the consumer, so the memory held in flight is bounded by
 * (prefetch + 1) × batchSize samples whatever the dataset size; `loader.stats.maxInFlight` records it.
 * With `workers: 0`, samples load on the main thread (sharp still decodes on libuv threads).
 *
 * Failures. A sample that cannot be loaded (unreadable, corrupt, size mismatch) throws, naming the
 * files, unless `policy: 'skip'`: then it is dropped (the batch is one smaller) and counted in
 * `loader.skipped`.
 */
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import type { Task } from './dataset';
import { Generator, mixSeed } from '@mofme/tensor';
import { loadSample, sourceLength, toSourceSpec, type AnyDataset, type Sample, type SampleRequest, type SourceSpec } from './pipeline';

export interface LoaderPosition { epoch: number; index: number }

export interface LoaderOptions {
  batchSize: number;
  /** random crop [height, width] (a number means square); without it all images must share one size */
  crop?: number | [number, number];
  /** resize to width×height before cropping (the official MoFME loader: { width: 720, height: 480 }) */
  resize?: { width: number; height: number };
  /** apply a random one of the 8 dihedral flips/rotations; default true when cropping */
  flips?: boolean;
  /** reshuffle every epoch; default true */
  shuffle?: boolean;
  /** default 0 */
  seed?: number;
  /** drop the last incomplete batch of an epoch; default true */
  dropLast?: boolean;
  /** worker threads for decoding/augmenting; default min(2, cores − 1); 0 = main thread */
  workers?: number;
  /** batches requested ahead of the consumer; default 2 (0 = load each batch on demand) */
  prefetch?: number;
  /** resume from this position */
  start?: LoaderPosition;
  /** failing samples: 'fail' (default) throws, 'skip' drops and counts them */
  policy?: 'fail' | 'skip';
}

export interface Batch {
  /** degraded images, NCHW float32 in [0,1] */
  input: Float32Array;
  /** clean images, NCHW float32 in [0,1] */
  target: Float32Array;
  shape: [number, number, number, number];
  tasks: Task[];
  paths: { input: string[]; target: string[] };
  ids: string[];
  /** position of this batch */
  epoch: number;
  index: number;
}

export interface Loader extends AsyncIterable<Batch> {
  readonly length: number;
  readonly batchSize: number;
  /** batches per epoch */
  readonly batchesPerEpoch: number;
  /** position of the next batch to be yielded */
  readonly position: LoaderPosition;
  /** samples dropped under policy 'skip' */
  readonly skipped: number;
  readonly stats: { maxInFlight: number; loaded: number };
  /** batches of one epoch (default: the current one), from the current position */
  epoch(e?: number): AsyncIterable<Batch>;
  /** an endless stream across epochs from the current position (also `for await (const b of loader)`) */
  stream(): AsyncIterable<Batch>;
  /** stops the worker threads (also done automatically when a stream ends) */
  close(): Promise<void>;
}

/**
 * How to start a worker: from dist, the bundled worker.js next to this module; from source (tsx, as
 * in tests), a one-line bootstrap that registers tsx's ESM hooks inside the new thread (hooks are
 * per thread, and a worker does not inherit the parent's `-r tsx`) and then imports worker.ts.
 */
function workerEntry(): { entry: string | URL; eval: boolean } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const ts = new URL('./worker.ts', here).href;
    let api = 'tsx/esm/api';
    try { api = import.meta.resolve('tsx/esm/api'); } catch { /* fall back to resolution from the cwd */ }
    return { entry: `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}); });`, eval: true };
  }
  const js = new URL('./worker.js', here);
  if (!existsSync(fileURLToPath(js))) throw new Error(`loader: worker file ${fileURLToPath(js)} is missing (rebuild @mofme/data)`);
  return { entry: js, eval: false };
}

/** A fixed pool of loader threads; each request is answered by whichever thread is least busy. */
class WorkerPool {
  private workers: { w: Worker; busy: number }[] = [];
  private pending = new Map<number, { resolve: (s: Sample) => void; reject: (e: Error) => void; worker: number }>();
  private nextId = 0;
  constructor(spec: SourceSpec, count: number) {
    const { entry, eval: isEval } = workerEntry();
    for (let i = 0; i < count; i++) {
      // Workers inherit the parent's node flags, but --input-type (from `node --input-type=module -e`)
      // is rejected for a file entry, so it is dropped.
      const execArgv = process.execArgv.filter((a) => !a.startsWith('--input-type'));
      const w = new Worker(entry, { workerData: { spec }, eval: isEval, execArgv });
      w.unref(); // never keep the process alive just for idle loader threads
      const slot = { w, busy: 0 };
      w.on('message', (m: { id: number; sample?: Sample; error?: string }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id); slot.busy--;
        if (m.error !== undefined) p.reject(new Error(m.error)); else p.resolve(m.sample!);
      });
      w.on('error', (e) => { for (const [id, p] of this.pending) if (p.worker === i) { this.pending.delete(id); p.reject(e); } });
      this.workers.push(slot);
    }
  }
  run(req: SampleRequest): Promise<Sample> {
    let k = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.workers[i]!.busy < this.workers[k]!.busy) k = i;
    const slot = this.workers[k]!;
    const id = this.nextId++;
    slot.busy++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: k });
      slot.w.postMessage({ id, req });
    });
  }
  async close(): Promise<void> { await Promise.all(this.workers.map((s) => s.w.terminate())); this.workers = []; }
}

export function createLoader(dataset: AnyDataset, opts: LoaderOptions): Loader {
  const spec = toSourceSpec(dataset);
  const n = sourceLength(spec);
  const B = opts.batchSize;
  if (!(Number.isInteger(B) && B > 0)) throw new Error(`createLoader: batchSize must be a positive integer, got ${B}`);
  if (n === 0) throw new Error('createLoader: the dataset is empty');
  const crop: [number, number] | undefined = opts.crop === undefined ? undefined : typeof opts.crop === 'number' ? [opts.crop, opts.crop] : opts.crop;
  const flips = opts.flips ?? crop !== undefined;
  const shuffle = opts.shuffle ?? true;
  const seed = opts.seed ?? 0;
  const dropLast = opts.dropLast ?? true;
  const workers = opts.workers ?? Math.max(0, Math.min(2, availableParallelism() - 1));
  const prefetch = Math.max(0, opts.prefetch ?? 2);
  const policy = opts.policy ?? 'fail';
  const batchesPerEpoch = dropLast ? Math.floor(n / B) : Math.ceil(n / B);
  if (batchesPerEpoch === 0) throw new Error(`createLoader: ${n} samples make no full batch of ${B} (set dropLast: false)`);
  const epochEnd = batchesPerEpoch * B > n ? n : batchesPerEpoch * B; // samples used per epoch

  let pos: LoaderPosition = { epoch: opts.start?.epoch ?? 0, index: opts.start?.index ?? 0 };
  if (pos.index >= epochEnd) pos = { epoch: pos.epoch + 1, index: 0 };
  let skipped = 0;
  const stats = { maxInFlight: 0, loaded: 0 };
  let pool: WorkerPool | null = null;
  let inFlight = 0;

  const permCache = new Map<number, Uint32Array>();
  const order = (e: number): Uint32Array => {
    let p = permCache.get(e);
    if (!p) {
      p = shuffle ? Uint32Array.from(new Generator(mixSeed(seed, e, 0x5eed)).permutation(n)) : Uint32Array.from({ length: n }, (_, i) => i);
      permCache.clear(); permCache.set(e, p); // keep one epoch's permutation: O(n) memory, not O(n·epochs)
    }
    return p;
  };

  const request = (e: number, j: number): Promise<Sample | null> => {
    const req: SampleRequest = { index: order(e)[j]!, epoch: e, itemSeed: mixSeed(seed, e, j), flips, ...(crop ? { crop } : {}), ...(opts.resize ? { resize: opts.resize } : {}) };
    if (workers > 0 && !pool) pool = new WorkerPool(spec, workers);
    inFlight++; stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    const p = pool ? pool.run(req) : loadSample(spec, req);
    return p.then(
      (s) => { inFlight--; stats.loaded++; return s; },
      (err: Error) => { inFlight--; if (policy === 'skip') { skipped++; return null; } throw err; },
    );
  };

  const assemble = (samples: (Sample | null)[], e: number, index: number): Batch => {
    const ok = samples.filter((s): s is Sample => s !== null);
    if (!ok.length) throw new Error(`loader: every sample of batch (epoch ${e}, index ${index}) failed and was skipped`);
    const { height: H, width: W } = ok[0]!;
    for (const s of ok) if (s.height !== H || s.width !== W) {
      throw new Error(`loader: cannot batch ${s.height}x${s.width} "${s.inputPath}" with ${H}x${W} "${ok[0]!.inputPath}" — set crop or resize, or batchSize 1`);
    }
    const per = 3 * H * W, input = new Float32Array(ok.length * per), target = new Float32Array(ok.length * per);
    ok.forEach((s, k) => { input.set(s.input, k * per); target.set(s.target, k * per); });
    return {
      input, target, shape: [ok.length, 3, H, W], tasks: ok.map((s) => s.task),
      paths: { input: ok.map((s) => s.inputPath), target: ok.map((s) => s.targetPath) }, ids: ok.map((s) => s.id), epoch: e, index,
    };
  };

  /** Core generator: batches from `pos` onward; stops after `stopEpoch` when given. */
  async function* run(stopEpoch?: number): AsyncGenerator<Batch> {
    // Queue of requested-but-not-yet-yielded batches: each is the list of its sample promises.
    const queue: { e: number; i: number; samples: Promise<Sample | null>[] }[] = [];
    let ne = pos.epoch, ni = pos.index; // next batch to request
    const requestNext = () => {
      if (stopEpoch !== undefined && ne > stopEpoch) return false;
      const end = Math.min(ni + B, epochEnd);
      const samples: Promise<Sample | null>[] = [];
      for (let j = ni; j < end; j++) samples.push(request(ne, j));
      // An unobserved rejection must not crash the process before we await it in order.
      for (const s of samples) s.catch(() => undefined);
      queue.push({ e: ne, i: ni, samples });
      ni = end;
      if (ni >= epochEnd) { ne++; ni = 0; }
      return true;
    };
    try {
      while (true) {
        while (queue.length < Math.max(1, prefetch + (prefetch > 0 ? 1 : 0)) && requestNext()) { /* fill the prefetch window */ }
        const head = queue.shift();
        if (!head) return;
        const batch = assemble(await Promise.all(head.samples), head.e, head.i);
        const after = head.i + head.samples.length;
        pos = after >= epochEnd ? { epoch: head.e + 1, index: 0 } : { epoch: head.e, index: after };
        yield batch;
      }
    } finally {
      // Drain outstanding requests so no worker keeps sending into a dead stream, then stop workers.
      await Promise.allSettled(queue.flatMap((q) => q.samples));
      if (pool) { await pool.close(); pool = null; }
    }
  }

  return {
    length: n, batchSize: B, batchesPerEpoch,
    get position() { return { ...pos }; },
    get skipped() { return skipped; },
    stats,
    epoch(e?: number) {
      if (e !== undefined && e !== pos.epoch) pos = { epoch: e, index: 0 };
      const stop = pos.epoch;
      return { [Symbol.asyncIterator]: () => run(stop) };
    },
    stream() { return { [Symbol.asyncIterator]: () => run() }; },
    [Symbol.asyncIterator]() { return run(); },
    async close() { if (pool) { await pool.close(); pool = null; } },
  };
}
