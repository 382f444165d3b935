/**
 * How createGpuBackend decides it is in a browser, tested in Node with stand-ins for the browser's
 * globals. A page's Web Worker has no `window` and no `document`, only OffscreenCanvas; it must
 * still count as a browser (gpu.js draws on an OffscreenCanvas there), get the browser's WebGL
 * modes and never Node's, and name the renderer it finds. The real thing runs in headless
 * Chromium in apps/web's browser test; this file pins the decisions on every machine.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { browserCanvasContext, createGpuBackend, detectBrowserWebGL } from '../src/gpu/index';

const SWIFTSHADER = 'ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)';
const UNMASKED_RENDERER_WEBGL = 0x9246;
const RENDERER = 0x1f01;

interface FakeGL {
  lost: boolean;
  asked: string[];
}

/**
 * Pretends to be a Web Worker: WorkerGlobalScope and an OffscreenCanvas whose contexts are made by
 * `context(kind)` (null: no such context). Returns what the canvases were asked, and an undo.
 */
function pretendWorker(context: (kind: string) => object | null): { asked: string[]; undo: () => void } {
  const g = globalThis as Record<string, unknown>;
  const asked: string[] = [];
  g.WorkerGlobalScope = function WorkerGlobalScope() {};
  g.OffscreenCanvas = class {
    constructor(readonly width: number, readonly height: number) {}
    getContext(kind: string): object | null {
      asked.push(kind);
      return context(kind);
    }
  };
  return { asked, undo: () => { delete g.WorkerGlobalScope; delete g.OffscreenCanvas; } };
}

/** A WebGL context that reports `renderer` (through the debug extension when `unmasked`). */
function fakeGL(renderer: string, unmasked: boolean, state: FakeGL): object {
  return {
    RENDERER,
    getExtension(name: string) {
      state.asked.push(name);
      if (name === 'WEBGL_debug_renderer_info') return unmasked ? { UNMASKED_RENDERER_WEBGL } : null;
      if (name === 'WEBGL_lose_context') return { loseContext: () => { state.lost = true; } };
      return null;
    },
    getParameter(p: number) {
      if (p === UNMASKED_RENDERER_WEBGL) return renderer;
      if (p === RENDERER) return 'WebKit WebGL';
      throw new Error(`unexpected getParameter(${p})`);
    },
  };
}

test('Node is no browser: the WebGL modes say so and point to headlessgl', () => {
  assert.is(browserCanvasContext(), null);
  const d = detectBrowserWebGL('webgl2');
  assert.is(d.ok, false);
  assert.match(d.reason, /needs a browser page or a Web Worker .*"headlessgl"/);
  assert.throws(() => createGpuBackend({ mode: 'webgl2' }), /webgl2: webgl2 needs a browser page or a Web Worker/);
});

test('a Web Worker (OffscreenCanvas, no document) is a browser: webgl2 is probed there, not refused for want of a DOM', () => {
  const w = pretendWorker(() => null); // a worker whose GPU is blocklisted: no contexts at all
  try {
    assert.is(browserCanvasContext(), 'worker');
    assert.throws(() => createGpuBackend({ mode: 'webgl2' }), /webgl2: this browser gives this worker's OffscreenCanvas no WebGL2 context/);
    assert.equal(w.asked, ['webgl2']);
    // auto in a browser tries the browser's modes only: never WebGPU (async) or Node's headless GL
    let message = '';
    try {
      createGpuBackend({ mode: 'auto' });
    } catch (e) {
      message = (e as Error).message;
    }
    assert.match(message, /- webgl2: [^\n]*OffscreenCanvas no WebGL2 context[^\n]*\n {2}- webgl: [^\n]*OffscreenCanvas no WebGL context/);
    assert.not.match(message, /headlessgl|webgpu/);
  } finally {
    w.undo();
  }
  assert.is(browserCanvasContext(), null);
});

test('the renderer is read unmasked where allowed, CPU rasterisers count as software, and the probe context is freed', () => {
  for (const [renderer, unmasked, expected, software] of [
    [SWIFTSHADER, true, SWIFTSHADER, true],
    ['ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 (0x00002503) Direct3D11 vs_5_0 ps_5_0, D3D11)', true, 'ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 (0x00002503) Direct3D11 vs_5_0 ps_5_0, D3D11)', false],
    ['llvmpipe (LLVM 15.0.6, 256 bits)', true, 'llvmpipe (LLVM 15.0.6, 256 bits)', true],
    // a browser that hides the driver: the masked name, not a guess
    [SWIFTSHADER, false, 'WebKit WebGL', false],
  ] as const) {
    const state: FakeGL = { lost: false, asked: [] };
    const w = pretendWorker((kind) => (kind === 'webgl2' ? fakeGL(renderer, unmasked, state) : null));
    try {
      const d = detectBrowserWebGL('webgl2');
      assert.is(d.ok, true, d.reason);
      assert.is(d.renderer, expected);
      assert.is(d.software, software, renderer);
      assert.match(d.reason, /WebGL2 in a browser worker on "/);
      assert.ok(state.lost, 'the probe context was not released');
      assert.is(detectBrowserWebGL('webgl').ok, false); // this fake has WebGL2 only
    } finally {
      w.undo();
    }
  }
});

test.run();
