/**
 * Which engine backend the page's worker gets, in order of preference, and what to call it:
 *
 *   1. webgl2  gpu.js kernels on the user's GPU (packages/tensor/GPU.md), from an OffscreenCanvas in
 *              the worker. `createGpuBackend` looks for a DOM to decide it is in a browser, and a
 *              worker has none, so the worker builds the same `GlBackend` itself from a gpu.js GPU
 *              in mode 'webgl2', after checking that this worker really has a WebGL2 context.
 *   2. wasm    our WebAssembly SIMD kernels on the CPU backend (packages/tensor/src/backend/wasm).
 *   3. cpu     the CPU backend's plain TypeScript loops.
 *
 * A backend that opens but then fails (a kernel that does not compile or link on this GPU, a lost
 * context) is dropped for the next one; the page says which failed and why. The renderer string
 * comes from WEBGL_debug_renderer_info where the browser exposes it; SwiftShader, llvmpipe and
 * friends are CPU rasterisers, reported as "software".
 */
import { CpuBackend, createWasmKernels, wasmSimdAvailable, type Backend } from '@mofme/tensor';
import { GlBackend } from '@mofme/tensor/gpu';
import { GPU } from 'gpu.js';
import type { BackendKind } from './protocol';


export interface OpenedBackend {
  kind: BackendKind;
  backend: Backend;
  /** one line for the page, e.g. 'WebGL2 (gpu.js) on "ANGLE (..., SwiftShader ...)" (software)' */
  label: string;
  renderer: string;
  software: boolean;
}

const SOFTWARE_RENDERERS = /swiftshader|llvmpipe|softpipe|software|microsoft basic render/i;

/** The GL renderer as the driver names it (unmasked where allowed), or null when there is no WebGL2 here. */
function probeWebGL2(): { renderer: string; software: boolean } | null {
  if (typeof OffscreenCanvas === 'undefined') return null;
  const gl = new OffscreenCanvas(1, 1).getContext('webgl2');
  if (!gl) return null;
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext(); // browsers allow only a few live contexts
  return { renderer, software: SOFTWARE_RENDERERS.test(renderer) };
}

/** Open one backend; throws with a one-line reason when it cannot be used here. */
export function openBackend(kind: BackendKind): OpenedBackend {
  if (kind === 'webgl2') {
    const probe = probeWebGL2();
    if (!probe) throw new Error('this browser gives workers no WebGL2 context (no OffscreenCanvas WebGL2, or the GPU is blocklisted)');
    const gpu = new GPU({ mode: 'webgl2' });
    if (gpu.mode !== 'webgl2') throw new Error(`gpu.js chose "${String(gpu.mode)}" instead of webgl2`);
    const backend = new GlBackend(gpu, { software: probe.software, text: probe.software ? 'software rasteriser' : 'browser WebGL2' });
    backend.info(); // compiles and runs a 1-element kernel: fails here, not mid-image, on a broken context
    const label = `WebGL2 (gpu.js) on "${probe.renderer}"${probe.software ? ' (software: the GPU is emulated on the CPU)' : ''}`;
    return { kind, backend, label, renderer: probe.renderer, software: probe.software };
  }
  if (kind === 'wasm') {
    if (!wasmSimdAvailable()) throw new Error('this browser does not validate WebAssembly SIMD');
    // One thread: the kernels' worker pool (wasm/pool.ts) starts Node worker_threads and waits for
    // them synchronously; a browser worker cannot start a nested worker while it blocks, so the
    // pool would time out. Cross-origin isolation is still reported, since threads will need it.
    const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
    const kernels = createWasmKernels({ sharedMemory: false, threads: 1 });
    const backend = new CpuBackend({ fastKernels: kernels });
    return { kind, backend, label: `WebAssembly SIMD (${kernels.name}; page ${isolated ? '' : 'not '}cross-origin isolated)`, renderer: 'CPU', software: true };
  }
  const backend = new CpuBackend({ fastKernels: null });
  return { kind, backend, label: 'CPU (plain JavaScript loops)', renderer: 'CPU', software: true };
}
