/**
 * The page's Web Worker: fetches the bundled weights once, opens a backend (backends.ts: WebGL2,
 * then WebAssembly, threaded where the page is cross-origin isolated, then plain CPU), and restores the images the page sends (engine.ts), posting
 * progress after every window. When a backend fails, at start or in the middle of an image (a
 * kernel that does not compile on this GPU, a lost context), the worker says so, moves to the next
 * backend and restores the image again from the start with a fresh model, so the result is the
 * same as if it had started there.
 */
/// <reference lib="webworker" />
import { CpuBackend, setDefaultBackend } from '@mofme/tensor';
import type { GlBackend } from '@mofme/tensor/gpu';
import weightsUrl from '../../cli/pretrained/model.safetensors?url';
import { openBackend, type OpenedBackend } from './backends';
import { buildModel, disposeModel, parseWeights, restoreImage, type Weights } from './engine';
import { BACKEND_ORDER, type BackendKind, type RestoreMessage, type Simulation, type WorkerReply } from './protocol';

const post = (m: WorkerReply, transfer: Transferable[] = []): void => (self as unknown as DedicatedWorkerGlobalScope).postMessage(m, transfer);
const oneLine = (e: unknown): string => String((e as Error)?.message ?? e).split('\n')[0]!.slice(0, 300);

let weights: Promise<Weights> | null = null;
let opened: OpenedBackend | null = null;
/** kinds that failed in this worker: never tried again */
const broken = new Set<BackendKind>();

async function loadWeights(): Promise<Weights> {
  post({ type: 'status', text: 'loading the weights…' });
  const response = await fetch(weightsUrl);
  if (!response.ok) throw new Error(`model.safetensors: HTTP ${response.status} from ${weightsUrl}`);
  return parseWeights(new Uint8Array(await response.arrayBuffer()));
}

/** Make `gpu.js` fail every kernel compilation from now on, as a GPU with a broken shader compiler would. */
function breakKernelCompilation(backend: GlBackend): void {
  backend.gpu.createKernel = (() => {
    throw new Error('Error compiling fragment shader: simulated by ?simulate=gpu-kernel-failure');
  }) as never;
}

/** The first backend at or after `prefer` that opens; announces it, and every one skipped. */
async function open(prefer: BackendKind, simulate?: Simulation): Promise<OpenedBackend> {
  for (const kind of BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(prefer))) {
    if (broken.has(kind)) continue;
    if (opened?.kind === kind) return opened;
    try {
      post({ type: 'status', text: `opening ${kind}…` });
      const o = await openBackend(kind);
      if (simulate === 'gpu-kernel-failure' && kind === 'webgl2') breakKernelCompilation(o.backend as GlBackend);
      setDefaultBackend(o.backend);
      post({ type: 'backend', kind, label: o.label, software: o.software, threads: o.threads });
      return (opened = o);
    } catch (e) {
      fail(kind, e);
    }
  }
  throw new Error('no backend could run here (see the messages above)');
}

function fail(kind: BackendKind, e: unknown): void {
  broken.add(kind);
  const next = BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(kind) + 1).find((k) => !broken.has(k)) ?? null;
  post({ type: 'fallback', from: kind, to: next, reason: oneLine(e) });
  if (opened?.kind === kind) {
    // a dropped WebAssembly backend stops its kernel threads (they would sit blocked for nothing)
    if (opened.backend instanceof CpuBackend) opened.backend.fastKernels?.dispose();
    opened = null;
  }
}

async function handleRestore(m: RestoreMessage): Promise<void> {
  weights ??= loadWeights();
  const w = await weights;
  let prefer = m.prefer;
  for (;;) {
    const o = await open(prefer, m.simulate);
    try {
      post({ type: 'status', text: `building the model on ${o.kind}…` });
      const model = buildModel(w, o.backend);
      post({ type: 'status', text: `restoring on ${o.kind}…` });
      let r;
      try {
        r = restoreImage(model, o.backend, m.image, {
          tile: m.tile, stride: m.stride, label: m.label,
          onTile: (done, total, tile) => post({ type: 'progress', done, total, tile }),
        });
      } finally {
        disposeModel(model);
      }
      post({
        type: 'done', image: r.image, tiles: r.tiles, totalMs: r.totalMs, routing: r.routing, summary: r.summary,
        backend: o.label, step: w.step,
      }, [r.image.data.buffer as ArrayBuffer]);
      return;
    } catch (e) {
      if (o.kind === 'cpu') throw e; // nothing left to fall back to: a real error
      fail(o.kind, e);
      prefer = BACKEND_ORDER[BACKEND_ORDER.indexOf(o.kind) + 1]!;
    }
  }
}

// one image at a time, in arrival order
let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<RestoreMessage>) => {
  queue = queue.then(() => handleRestore(event.data)).catch((e) => post({ type: 'error', message: oneLine(e) }));
};
