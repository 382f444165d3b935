/**
 * The WebGPU path: gpu.js's WebGPU compute kernels behind the same synchronous Backend interface.
 *
 * The problem: WebGPU is asynchronous by design. gpu.js's WebGPU kernels return Promises, the
 * first call of a kernel builds its pipeline asynchronously, and reading a buffer back
 * (`mapAsync`) can only finish on a later turn of the event loop. The Backend interface is
 * synchronous (`download` returns an array), like PyTorch's `.item()`, and autodiff code is much
 * simpler that way.
 *
 * The way out: the device lives in a worker thread. The main thread never touches WebGPU:
 * - every op posts a message ("run this kernel source on buffers 12 and 15, call the result 16")
 *   and returns at once with a handle, so a chain of ops queues up without waiting;
 * - the worker takes messages strictly in order, awaits each kernel, and keeps the output
 *   buffers in a table by handle;
 * - `download` posts a read and then *blocks* the main thread on `Atomics.wait` until the worker
 *   has copied the values into shared memory and flipped a flag. Blocking the main thread is
 *   fine here because nothing the worker needs runs on it.
 * An error inside the worker (a shader that does not compile, a lost device) is kept and thrown
 * by the next `download`, naming the kernel, as WebGL reports errors late too. The worker skips all
 * later work after an error (their inputs may be missing), so from then on every read throws it:
 * a broken backend never returns a silently wrong tensor; create a new one.
 *
 * Getting an adapter in Node: the npm package `webgpu` (Google's Dawn) provides `navigator.gpu`.
 * We try its default backend first (Vulkan, Metal or D3D12: a real GPU), then Dawn's OpenGL ES
 * backend at the `compatibility` feature level over EGL without a display (`EGL_PLATFORM=
 * surfaceless`), which also runs on Mesa's llvmpipe when there is no GPU, as in CI.
 *
 * Node only: in a browser, gpu.js's WebGPU kernels could be awaited directly, but the synchronous
 * Backend interface cannot; use mode 'webgl2' there.
 */
import { GpuBackend, keyOf, type GpuBackendInfo } from './backend';
import * as K from './codegen';
import type { KernelSource } from './codegen';

/** A tensor's data on the WebGPU device: the worker's name for one output buffer. */
interface WebGpuHandle { readonly id: number }

/** One way to ask Dawn for an adapter. */
interface AdapterAttempt { name: string; flags: string[]; compatibility: boolean }
const ATTEMPTS: AdapterAttempt[] = [
  { name: 'default backend (Vulkan/Metal/D3D12)', flags: [], compatibility: false }, // tried first: a real GPU
  { name: 'OpenGL ES backend, compatibility feature level', flags: ['backend=opengles'], compatibility: true },
];

/** What the worker reports about its adapter. */
interface AdapterInfo { backend: string; vendor: string; architecture: string; device: string; description: string; maxStorageBufferBindingSize: number }

/** The backend's description of an adapter: names, whether it is a software renderer, limits. */
function describeAdapter(a: AdapterInfo): GpuBackendInfo {
  const software = /llvmpipe|lavapipe|swiftshader|softpipe/i.test(`${a.description} ${a.device} ${a.architecture}`);
  const maxElements = Math.floor(a.maxStorageBufferBindingSize / 4);
  return {
    mode: 'webgpu',
    kernelClass: 'WebGPUKernel',
    renderer: [a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || 'unknown adapter',
    version: `Dawn, ${a.backend}`,
    driver: software ? 'software: a CPU rasteriser (Mesa llvmpipe/lavapipe or SwiftShader), not a GPU' : 'hardware adapter',
    software,
    precision: 'single',
    maxTextureSize: 0,
    maxElements,
    limits: `max storage buffer binding ${a.maxStorageBufferBindingSize} bytes (at most ${maxElements} elements per tensor)`,
  };
}

/** Thrown when no WebGPU adapter opens here; `reason` says why, without the fix text. */
export class WebGpuUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`gpu backend: mode "webgpu" is not available: ${reason}. ${WEBGPU_FIX}`);
  }
}

/** Text of the fix, for the error when WebGPU is not available. */
export const WEBGPU_FIX =
  'WebGPU in Node needs the npm package "webgpu" (a dependency of @mofme/tensor; on Linux it needs glibc 2.34+) and either a GPU ' +
  'with a Vulkan driver (Debian/Ubuntu: apt-get install -y libvulkan1 mesa-vulkan-drivers) or EGL for its OpenGL ES backend ' +
  '(apt-get install -y libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri, which also runs on the CPU through Mesa llvmpipe)';

/**
 * The worker, as plain JavaScript run with `eval: true` (no file to locate, no TypeScript loader
 * in the worker; the same in src and dist). Control words in shared memory: ctl[0] is the reply
 * state (0 waiting, 1 done, 2 failed), ctl[1] the length of the reply text.
 */
const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const ctl = new Int32Array(workerData.control);
const text = new Uint8Array(workerData.text);
const counters = new Float64Array(workerData.counters); // [kernels compiled, ms spent in first calls]
const handles = new Map();
const kernels = new Map();
let gpu = null;
let failure = null;

function answer(state, message) {
  const bytes = new TextEncoder().encode(message || '');
  const n = Math.min(bytes.length, text.length);
  text.set(bytes.subarray(0, n));
  Atomics.store(ctl, 1, n);
  Atomics.store(ctl, 0, state);
  Atomics.notify(ctl, 0);
}

async function init() {
  const { create, globals } = require(workerData.webgpuPath);
  Object.assign(globalThis, globals);
  const tried = [];
  for (const a of workerData.attempts) {
    try {
      const api = create(a.flags);
      const options = a.compatibility ? { featureLevel: 'compatibility' } : {};
      const adapter = await api.requestAdapter(options);
      if (!adapter) { tried.push(a.name + ': no adapter'); continue; }
      globalThis.navigator = { gpu: {
        requestAdapter: (o) => api.requestAdapter(Object.assign({}, o || {}, options)),
        getPreferredCanvasFormat: () => 'rgba8unorm',
      } };
      const { GPU } = require(workerData.gpuJsPath);
      gpu = new GPU({ mode: 'webgpu' });
      if (gpu.mode !== 'webgpu') throw new Error('gpu.js picked mode ' + gpu.mode + ' instead of webgpu');
      const info = adapter.info || {};
      return JSON.stringify({
        backend: a.name, vendor: info.vendor || '', architecture: info.architecture || '', device: info.device || '',
        description: info.description || '', maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
      });
    } catch (e) {
      tried.push(a.name + ': ' + (e && e.message ? e.message : String(e)).split('\n')[0]);
    }
  }
  throw new Error('no WebGPU adapter: ' + tried.join('; '));
}

// kernels by the main thread's id; a kernel's source and argument kinds come with its first run only
function kernelFor(m) {
  let k = kernels.get(m.kernel);
  if (k) return { k, first: false };
  k = gpu.createKernel(m.source, {
    output: [m.size], pipeline: true, immutable: true, precision: 'single',
    argumentTypes: m.kinds.map((a) => (a === 'number' ? 'Float' : a === 'host' ? 'Array' : 'WebGPUBuffer')),
  });
  k.label = 'kernel ' + (m.source.match(/^function\(([^)]*)\)/) || ['?'])[0] + ' -> ' + m.size + ' values';
  kernels.set(m.kernel, k);
  return { k, first: true };
}

async function launch(m) {
  const { k, first } = kernelFor(m);
  const args = m.inputs.map((a) => {
    if (a.value !== undefined) return a.value;
    if (a.data !== undefined) return a.data;
    const h = handles.get(a.id);
    if (!h) throw new Error('internal error: buffer #' + a.id + ' is not on the device');
    return h;
  });
  const t0 = performance.now();
  const out = await k(...args);
  if (first) { counters[0] += 1; counters[1] += performance.now() - t0; }
  handles.set(m.out, out);
}

async function handle(m) {
  if (m.op === 'init') {
    try { answer(1, await init()); } catch (e) { answer(2, e.message); }
    return;
  }
  if (m.op === 'shutdown') {
    // release every buffer and kernel, then the device, before the thread goes away: a thread
    // killed while Dawn and the GL driver still hold resources can crash the process at exit
    try {
      for (const h of handles.values()) h.delete();
      handles.clear();
      if (gpu) await gpu.destroy();
      gpu = null;
      answer(1);
    } catch (e) {
      answer(2, 'shutdown: ' + e.message);
    }
    return;
  }
  if (m.op === 'free') {
    const h = handles.get(m.id);
    if (h) { h.delete(); handles.delete(m.id); }
    return;
  }
  if (m.op === 'read') {
    if (failure) return answer(2, failure);
    try {
      const values = await handles.get(m.id).toArray();
      new Float32Array(m.buffer, 0, m.size).set(values.length === m.size ? values : values.subarray(0, m.size));
      answer(1);
    } catch (e) {
      answer(2, 'reading buffer #' + m.id + ': ' + e.message);
    }
    return;
  }
  if (failure) return; // after a failure the table is incomplete: skip work until the error is read
  try {
    await launch(m);
  } catch (e) {
    const k = kernels.get(m.kernel);
    failure = (k && k.label ? k.label : 'kernel #' + m.kernel) + ' failed on the WebGPU device: ' + (e && e.message ? e.message : String(e));
  }
}

let queue = Promise.resolve();
parentPort.on('message', (m) => { queue = queue.then(() => handle(m)); });
`;

interface WorkerLike {
  postMessage(message: unknown): void;
  unref(): void;
  terminate(): Promise<number>;
}

type NodeRequire = ((id: string) => unknown) & { resolve(id: string): string };

/**
 * The WebGPU backends not yet destroyed. When the process exits, each is shut down in its worker
 * first: Node would otherwise kill the worker threads while Dawn and the GL driver still hold the
 * device, and with headless GL in the same process that crashed the process at exit (seen as exit
 * code 139 or 134 after every test had passed).
 */
const live = new Set<WebGpuBackend>();
let exitHookInstalled = false;

export interface WebGpuBackendOptions {
  /** milliseconds to wait for one reply of the worker before giving up (default 10 minutes) */
  timeoutMs?: number;
}

/**
 * gpu.js's WebGPU kernels, run by a worker thread; see the module comment. Create it with
 * `createGpuBackend({ mode: 'webgpu' })`.
 */
export class WebGpuBackend extends GpuBackend<WebGpuHandle> {
  readonly name = 'gpujs-webgpu';
  readonly isAccelerated = true;
  private readonly worker: WorkerLike;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(8));
  private readonly text = new Uint8Array(new SharedArrayBuffer(8192));
  private readonly compileCounters = new Float64Array(new SharedArrayBuffer(16));
  private readBuffer = new SharedArrayBuffer(4 * 1024);
  private nextId = 1;
  /** the worker's id of each kernel (by keyOf), so a source crosses to the worker only once */
  private readonly kernelIds = new Map<string, number>();
  private readonly description: GpuBackendInfo;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(options: WebGpuBackendOptions = {}) {
    super();
    this.timeoutMs = options.timeoutMs ?? 600_000;
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown; env?: Record<string, string | undefined>; platform?: string } }).process;
    const wt = proc?.getBuiltinModule?.('node:worker_threads') as { Worker: new (src: string, o: object) => WorkerLike } | undefined;
    const mod = proc?.getBuiltinModule?.('node:module') as { createRequire(from: string): NodeRequire } | undefined;
    if (!wt || !mod) throw new Error('gpu backend: mode "webgpu" needs Node (worker threads); in a browser use mode "webgl2"');
    const here = mod.createRequire(import.meta.url);
    let webgpuPath: string, gpuJsPath: string;
    try {
      webgpuPath = here.resolve('webgpu');
      gpuJsPath = here.resolve('gpu.js');
    } catch (e) {
      throw new WebGpuUnavailableError((e as Error).message.split('\n')[0]!);
    }
    // Dawn's OpenGL ES backend finds EGL through Mesa; without a display it needs the surfaceless
    // platform. Set for the whole process (the worker's env is a copy; the native code reads the real one).
    if (proc?.env && proc.platform === 'linux' && !proc.env.EGL_PLATFORM) proc.env.EGL_PLATFORM = 'surfaceless';
    // Dawn's default backend on Linux is Vulkan; without a Vulkan loader it only prints a warning
    // and finds nothing, so skip it (and the warning) when no libvulkan is installed.
    const fs = proc?.getBuiltinModule?.('node:fs') as { existsSync(p: string): boolean } | undefined;
    const vulkanDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/local/lib'];
    const noVulkan = proc?.platform === 'linux' && fs !== undefined && !vulkanDirs.some((d) => fs.existsSync(`${d}/libvulkan.so.1`));
    const attempts = ATTEMPTS.filter((a) => !(noVulkan && a.flags.length === 0));
    this.worker = new wt.Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: { control: this.ctl.buffer, text: this.text.buffer, counters: this.compileCounters.buffer, webgpuPath, gpuJsPath, attempts },
    });
    this.worker.unref();
    const reply = this.request({ op: 'init' });
    if (reply.failed) {
      void this.worker.terminate();
      throw new WebGpuUnavailableError(reply.text);
    }
    this.description = describeAdapter(JSON.parse(reply.text) as AdapterInfo);
    live.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      (proc as { once?(event: string, fn: () => void): void }).once?.('exit', () => WebGpuBackend.shutdownAll());
    }
  }

  /** Post a message that expects a reply, and block until the worker gives it. */
  private request(message: Record<string, unknown>, timeoutMs = this.timeoutMs): { failed: boolean; text: string } {
    if (this.closed && message.op !== 'shutdown') throw new Error(`${this.name}: this backend was destroyed`);
    Atomics.store(this.ctl, 0, 0);
    this.worker.postMessage(message);
    const deadline = performance.now() + timeoutMs;
    while (Atomics.load(this.ctl, 0) === 0) {
      if (performance.now() > deadline) {
        throw new Error(`${this.name}: the WebGPU worker did not answer "${String(message.op)}" within ${timeoutMs} ms`);
      }
      Atomics.wait(this.ctl, 0, 0, 1000);
    }
    const n = Atomics.load(this.ctl, 1);
    return { failed: Atomics.load(this.ctl, 0) === 2, text: new TextDecoder().decode(this.text.slice(0, n)) };
  }

  override get stats(): { compiled: number; compileMs: number; calls: number } {
    return { compiled: this.compileCounters[0]!, compileMs: this.compileCounters[1]!, calls: this.tally.calls };
  }

  info(): GpuBackendInfo {
    return this.description;
  }

  protected launch(k: KernelSource, inputSizes: readonly number[], args: readonly (WebGpuHandle | number)[]): WebGpuHandle {
    return this.post(k, inputSizes, args.map((a) => (typeof a === 'number' ? { value: a } : { id: a.id })));
  }

  private post(k: KernelSource, inputSizes: readonly number[], inputs: object[]): WebGpuHandle {
    if (this.closed) throw new Error(`${this.name}: this backend was destroyed`);
    const out = { id: this.nextId++ };
    const key = keyOf(k, inputSizes);
    const known = this.kernelIds.get(key);
    const kernel = known ?? this.kernelIds.size + 1;
    if (known === undefined) this.kernelIds.set(key, kernel);
    this.worker.postMessage(known === undefined
      ? { op: 'run', kernel, source: k.source, size: k.size, kinds: k.args, inputs, out: out.id }
      : { op: 'run', kernel, inputs, out: out.id });
    return out;
  }

  protected free(data: WebGpuHandle): void {
    if (!this.closed) this.worker.postMessage({ op: 'free', id: data.id });
  }

  protected uploadData(data: Float32Array): WebGpuHandle {
    // postMessage clones the array, so later writes by the caller cannot reach the device
    return this.post(K.uploadKernel(data.length), [data.length], [{ data }]);
  }

  protected readData({ id }: WebGpuHandle, size: number): Float32Array {
    if (this.readBuffer.byteLength < size * 4) this.readBuffer = new SharedArrayBuffer(size * 4);
    const reply = this.request({ op: 'read', id, size, buffer: this.readBuffer });
    if (reply.failed) throw new Error(`${this.name}: ${reply.text}`);
    return new Float32Array(this.readBuffer, 0, size).slice();
  }

  /**
   * Release the device and stop the worker; the backend cannot be used afterwards. Also done for
   * every live WebGPU backend when the process exits (see `live` above), so forgetting it is safe.
   */
  async destroy(): Promise<void> {
    this.shutdown();
    await this.worker.terminate();
  }

  /** Synchronous part of destroy: free everything on the device, in the worker, and wait for it. */
  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    live.delete(this);
    try {
      this.request({ op: 'shutdown' }, 30_000);
    } catch {
      // a worker that does not answer is terminated anyway
    }
  }

  /** For the process-exit hook. */
  static shutdownAll(): void {
    for (const b of [...live]) b.shutdown();
  }
}
