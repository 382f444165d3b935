/**
 * Which engine backend the page's worker gets, in order of preference, and what to call it:
 *
 *   1. webgl2  gpu.js kernels on the user's GPU (packages/tensor/GPU.md): `createGpuBackend` of
 *              @mofme/tensor/gpu in mode 'webgl2', which knows a Web Worker with OffscreenCanvas
 *              is a browser and names the renderer (unmasked where the browser allows).
 *   2. wasm    our WebAssembly SIMD kernels on the CPU backend (packages/tensor/src/backend/wasm),
 *              on navigator.hardwareConcurrency threads when the page is cross-origin isolated
 *              (the pool's workers share the kernels' memory: SharedArrayBuffer), else on one.
 *   3. cpu     the CPU backend's plain TypeScript loops.
 *
 * A backend that opens but then fails (a kernel that does not compile or link on this GPU, a lost
 * context) is dropped for the next one; the page says which failed and why. SwiftShader, llvmpipe
 * and friends are CPU rasterisers: the GPU is emulated, and the label says "software".
 */
import { CpuBackend, createWasmKernels, wasmSimdAvailable, type Backend } from '@mofme/tensor';
import { createGpuBackend } from '@mofme/tensor/gpu';
import type { BackendKind } from './protocol';

export interface OpenedBackend {
  kind: BackendKind;
  backend: Backend;
  /** one line for the page, e.g. 'WebGL2 (gpu.js) on "ANGLE (..., SwiftShader ...)" (software: ...)' */
  label: string;
  /** the GL renderer; 'CPU' for the CPU backends */
  renderer: string;
  software: boolean;
  /** CPU threads the backend computes on (1 for WebGL2: the GPU does the work) */
  threads: number;
}

/** Open one backend (async: a threaded pool's workers start only once this worker yields); throws with a one-line reason when it cannot be used here. */
export async function openBackend(kind: BackendKind): Promise<OpenedBackend> {
  if (kind === 'webgl2') {
    const backend = createGpuBackend({ mode: 'webgl2' });
    const info = backend.info(); // compiles and runs a 1-element kernel: fails here, not mid-image, on a broken context
    const software = info.software === true;
    const renderer = info.driver.replace(/ \(software rasteriser\)$/, '');
    const label = `WebGL2 (gpu.js) on "${renderer}"${software ? ' (software: the GPU is emulated on the CPU)' : ''}`;
    return { kind, backend, label, renderer, software, threads: 1 };
  }
  if (kind === 'wasm') {
    if (!wasmSimdAvailable()) throw new Error('this browser does not validate WebAssembly SIMD');
    const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
    // threads: navigator.hardwareConcurrency by default; one (plain memory) where the page is not
    // isolated, since shared WebAssembly memory needs SharedArrayBuffer
    const kernels = createWasmKernels(isolated ? {} : { sharedMemory: false, threads: 1 });
    const threads = await kernels.started;
    const why = isolated ? (kernels.threads > 1 && threads === 1 ? ': its worker threads did not start' : '') : ': page not cross-origin isolated';
    const backend = new CpuBackend({ fastKernels: kernels });
    return { kind, backend, label: `WebAssembly SIMD, ${threads} thread${threads > 1 ? 's' : ''}${why}`, renderer: 'CPU', software: true, threads };
  }
  const backend = new CpuBackend({ fastKernels: null });
  return { kind, backend, label: 'CPU (plain JavaScript loops, 1 thread)', renderer: 'CPU', software: true, threads: 1 };
}
