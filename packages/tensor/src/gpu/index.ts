/**
 * `@mofme/tensor/gpu`: the gpu.js backend, in its own entry point so that the core package never
 * loads gpu.js (or its native `gl` module) unless you ask for it.
 *
 *   import { createGpuBackend } from '@mofme/tensor/gpu';
 *   import { setDefaultBackend } from '@mofme/tensor';
 *   const gpu = createGpuBackend({ mode: 'auto' });   // throws, with the fix, if no GPU path works
 *   console.log(gpu.describe());                        // mode, renderer, precision, limits
 *   setDefaultBackend(gpu);
 *
 * A program that chooses its backend by name (the CLI's `--backend gpu`) calls `useBackend('gpu')` of
 * `@mofme/tensor` instead (device.ts), which loads this entry point then, in mode 'auto'.
 *
 * Modes:
 * - 'webgpu': Node, gpu.js's WebGPU compute kernels on Dawn (the npm package `webgpu`), run by a
 *   worker thread so the Backend stays synchronous (see webgpu.ts). A real GPU through Vulkan,
 *   Metal or D3D12, else Dawn's OpenGL ES backend over EGL (which Mesa can run on the CPU).
 * - 'headlessgl': Node with the native `gl` module and an X display (`xvfb-run -a` on servers).
 * - 'webgl2', 'webgl': browsers (bundle this package; gpu.js uses a canvas), in a page or in a Web
 *   Worker (an OffscreenCanvas: what a page should do, so that it stays responsive).
 * - 'gpu' / 'auto': the first of webgpu, headlessgl (Node) or webgl2, webgl (browsers) that
 *   really works here; `describe()` says which it got.
 * - 'cpu': gpu.js runs the same kernels as JavaScript. Only when named: it exists to debug
 *   kernels without a GPU, and says `isAccelerated: false`.
 * Never a silent fallback: if the requested GPU path is not available, createGpuBackend throws
 * an error naming what is missing (the `gl` build, the apt packages, the X display) and the fix.
 */
import { GPU } from 'gpu.js';
import { GlBackend, type GpuBackend } from './backend';
import { WebGpuBackend, WebGpuUnavailableError, WEBGPU_FIX } from './webgpu';
import { browserCanvasContext, detectBrowserWebGL, detectHeadlessGL, headlessGLDriver, HEADLESS_GL_FIX } from './detect';

export { GpuBackend, GlBackend, type GpuBackendInfo } from './backend';
export { browserCanvasContext, detectBrowserWebGL, detectHeadlessGL, headlessGLDriver, HEADLESS_GL_FIX, type BrowserWebGL, type Detection } from './detect';
export { WebGpuBackend, WebGpuUnavailableError, WEBGPU_FIX, type WebGpuBackendOptions } from './webgpu';

export type GpuMode = 'auto' | 'gpu' | 'headlessgl' | 'webgl' | 'webgl2' | 'webgpu' | 'cpu';

export interface GpuBackendOptions {
  /** which gpu.js path to use; default 'auto' (see the module comment) */
  mode?: GpuMode;
}

/** Can this gpu.js mode run here? The reason says what is missing when it cannot. */
function available(mode: 'headlessgl' | 'webgl2' | 'webgl'): { ok: boolean; reason: string; driver: { software: boolean | null; text: string } } {
  if (mode === 'headlessgl') {
    const d = detectHeadlessGL();
    // gpu.js asks the same question its own way; both must agree
    if (d.ok && !GPU.isHeadlessGLSupported) return { ok: false, reason: 'gpu.js reports headless-gl as unsupported although gl works (float textures missing?)', driver: { software: null, text: '' } };
    return { ...d, driver: d.ok ? headlessGLDriver() : { software: null, text: '' } };
  }
  const d = detectBrowserWebGL(mode);
  const driver = { software: d.software, text: d.ok ? `${d.renderer}${d.software ? ' (software rasteriser)' : ''}` : '' };
  if (!d.ok) return { ...d, driver };
  // gpu.js asks too (a page's canvas, or an OffscreenCanvas in a worker); both must agree
  const gpuJs = mode === 'webgl2' ? GPU.isWebGL2Supported : GPU.isWebGLSupported;
  return gpuJs ? { ok: true, reason: d.reason, driver } : { ok: false, reason: `gpu.js finds no usable ${mode} context although the browser gives one (${d.reason})`, driver };
}

/**
 * Create a gpu.js backend. Throws (never falls back) when the requested GPU path is unavailable.
 */
export function createGpuBackend(options: GpuBackendOptions = {}): GpuBackend {
  const mode = options.mode ?? 'auto';
  if (mode === 'cpu') return new GlBackend(new GPU({ mode: 'cpu' }), { software: true, text: 'gpu.js cpu mode: JavaScript, no GPU' });
  // a page, or a Web Worker with OffscreenCanvas (where a page should run the engine)
  const inBrowser = browserCanvasContext() !== null;
  const candidates: ('webgpu' | 'headlessgl' | 'webgl2' | 'webgl')[] = mode === 'auto' || mode === 'gpu'
    ? (inBrowser ? ['webgl2', 'webgl'] : ['webgpu', 'headlessgl'])
    : [mode];
  const reasons: string[] = [];
  for (const m of candidates) {
    if (m === 'webgpu') {
      if (inBrowser) { reasons.push('webgpu: the synchronous Backend cannot await WebGPU in a browser page; use webgl2'); continue; }
      try {
        return new WebGpuBackend();
      } catch (e) {
        reasons.push(`webgpu: ${e instanceof WebGpuUnavailableError ? e.reason : (e as Error).message}`);
        continue;
      }
    }
    const a = available(m);
    if (!a.ok) { reasons.push(`${m}: ${a.reason}`); continue; }
    const gpu = new GPU({ mode: m });
    // belt and braces: gpu.js must not have picked anything else
    if (gpu.mode !== m) throw new Error(`gpu backend: asked gpu.js for "${m}" and got "${String(gpu.mode)}"`);
    return new GlBackend(gpu, a.driver);
  }
  const fixes = [
    candidates.includes('webgpu') ? `for webgpu: ${WEBGPU_FIX}` : '',
    candidates.includes('headlessgl') ? `for headlessgl: ${HEADLESS_GL_FIX}` : '',
  ].filter(Boolean);
  throw new Error(`gpu backend: no GPU path is available for mode "${mode}", and it does not fall back to the CPU:\n  - ${reasons.join('\n  - ')}${fixes.length ? `\n  Fix ${fixes.join('; ')}` : ''}`);
}
