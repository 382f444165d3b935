/**
 * Why (not) a GPU: detecting which gpu.js paths really work here, with a reason a person can act on.
 *
 * gpu.js never fails loudly when a GPU path is missing: `gl` (headless-gl) is an optional
 * dependency that npm/pnpm silently drop when its native build fails, `require('gl')(w, h)`
 * returns null without an X display, and `new GPU()` then quietly runs on WebAssembly or plain
 * JavaScript. This module asks the same questions gpu.js asks, in order, and keeps the first
 * answer that failed, so the backend can refuse with "what is missing and how to fix it".
 */

/** Text of the fix, shared by the error messages, the test skip line and the README. */
export const HEADLESS_GL_FIX =
  'install the system packages (Debian/Ubuntu: apt-get install -y xvfb xauth libgl1-mesa-dri libxi-dev libglu1-mesa-dev libglew-dev pkg-config python3 make g++), ' +
  'rebuild headless-gl with the local Node headers (npm_config_nodedir=$(dirname $(dirname $(command -v node))) pnpm rebuild gl), ' +
  'and run under an X display: xvfb-run -a <command>';

export interface Detection {
  ok: boolean;
  /** why it is not available (or, when ok, what was found) */
  reason: string;
}

type NodeRequire = (id: string) => unknown;

/**
 * A `require` that resolves modules the way gpu.js itself does (from gpu.js's own folder: with
 * pnpm, `gl` is only visible from there). Null outside Node (browsers, bundlers).
 */
function gpuJsRequire(): NodeRequire | null {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown; versions?: { node?: string } } }).process;
  if (!proc?.versions?.node || typeof proc.getBuiltinModule !== 'function') return null;
  const mod = proc.getBuiltinModule('node:module') as { createRequire(from: string): NodeRequire & { resolve(id: string): string } };
  const here = mod.createRequire(import.meta.url);
  return mod.createRequire(here.resolve('gpu.js'));
}

/** Is gpu.js's `headlessgl` mode usable in this process? Never throws. */
export function detectHeadlessGL(): Detection {
  let req: NodeRequire | null;
  try {
    req = gpuJsRequire();
  } catch (e) {
    return { ok: false, reason: `gpu.js cannot be resolved (${(e as Error).message.split('\n')[0]}); run pnpm install` };
  }
  if (req === null) return { ok: false, reason: 'headless-gl runs only in Node; in a browser use mode "webgl2" or "webgl"' };
  let createContext: (w: number, h: number, opts?: object) => unknown;
  try {
    createContext = req('gl') as typeof createContext;
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    return { ok: false, reason: `the native module "gl" (headless-gl) is not installed or its build failed (${msg}); fix: ${HEADLESS_GL_FIX}` };
  }
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
  if (!env.DISPLAY) return { ok: false, reason: `no X display (DISPLAY is not set), so headless-gl cannot create a context; fix: run under xvfb-run -a (${HEADLESS_GL_FIX})` };
  let ctx: unknown;
  try {
    ctx = createContext(1, 1);
  } catch (e) {
    ctx = null;
  }
  if (!ctx) return { ok: false, reason: `headless-gl could not create a WebGL context on DISPLAY=${env.DISPLAY} (is the X server running, and is libgl1-mesa-dri installed?); fix: ${HEADLESS_GL_FIX}` };
  // free the probe context now: gpu.js makes its own
  (ctx as { getExtension(n: string): { destroy(): void } | null }).getExtension('STACKGL_destroy_context')?.destroy();
  return { ok: true, reason: `headless-gl works on DISPLAY=${env.DISPLAY}` };
}

/**
 * Is this a browser context that can give gpu.js a canvas: a page (a DOM) or a Web Worker with
 * OffscreenCanvas (no `window`, no `document`: gpu.js then draws on an OffscreenCanvas)? Node has
 * neither (a DOM emulation in Node counts as a page, and then finds no WebGL context).
 */
export function browserCanvasContext(): 'page' | 'worker' | null {
  const g = globalThis as { document?: unknown; WorkerGlobalScope?: unknown; OffscreenCanvas?: unknown };
  if (g.document !== undefined) return 'page';
  if (g.WorkerGlobalScope !== undefined && typeof g.OffscreenCanvas === 'function') return 'worker';
  return null;
}

/** Renderers that are CPU rasterisers: a browser's WebGL on them is "software". */
const SOFTWARE_RENDERERS = /swiftshader|llvmpipe|softpipe|software|microsoft basic render/i;

export interface BrowserWebGL extends Detection {
  /** the GL renderer as the driver names it (unmasked where the browser allows), '' when not ok */
  renderer: string;
  software: boolean | null;
}

/**
 * Does this browser context give a WebGL2 (or WebGL) context, and on what renderer? Asks a 1x1
 * canvas (OffscreenCanvas in a worker) the way gpu.js will, reads the unmasked renderer through
 * WEBGL_debug_renderer_info (browsers otherwise say just "WebKit WebGL"), and frees the context
 * at once (browsers allow only a few live ones). Never throws.
 */
export function detectBrowserWebGL(mode: 'webgl2' | 'webgl'): BrowserWebGL {
  const where = browserCanvasContext();
  const no = (reason: string): BrowserWebGL => ({ ok: false, reason, renderer: '', software: null });
  if (where === null) return no(`${mode} needs a browser page or a Web Worker with OffscreenCanvas (none here); in Node use mode "headlessgl"`);
  type GL = { getExtension(n: string): { UNMASKED_RENDERER_WEBGL?: number; loseContext?(): void } | null; getParameter(p: number): unknown; RENDERER: number };
  let gl: GL | null = null;
  try {
    const g = globalThis as unknown as { document?: { createElement(t: string): { getContext(k: string): GL | null } }; OffscreenCanvas: new (w: number, h: number) => { getContext(k: string): GL | null } };
    const canvas = where === 'page' ? g.document!.createElement('canvas') : new g.OffscreenCanvas(1, 1);
    gl = canvas.getContext(mode);
  } catch (e) {
    return no(`creating a ${mode} context threw: ${(e as Error).message.split('\n')[0]}`);
  }
  const api = mode === 'webgl2' ? 'WebGL2' : 'WebGL';
  if (!gl) return no(`this browser gives ${where === 'worker' ? 'this worker\'s OffscreenCanvas' : 'a canvas'} no ${api} context (GPU blocklisted or disabled?)`);
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(debug?.UNMASKED_RENDERER_WEBGL ?? gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext?.();
  const software = SOFTWARE_RENDERERS.test(renderer);
  return { ok: true, reason: `${api} in a browser ${where} on "${renderer}"`, renderer, software };
}

/**
 * What actually renders a headless-gl context. headless-gl reports its renderer as just "ANGLE"
 * and hides the driver, so we look at the X server instead: Xvfb has no hardware access, so GL on
 * an Xvfb display is always Mesa's software rasteriser (llvmpipe unless GALLIUM_DRIVER says
 * otherwise). On a real X server we cannot tell, and say so.
 */
export function headlessGLDriver(): { software: boolean | null; text: string } {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; getBuiltinModule?: (id: string) => unknown } }).process;
  const env = proc?.env ?? {};
  const display = (env.DISPLAY ?? '').replace(/^[^:]*:/, '').split('.')[0];
  const mesa = env.GALLIUM_DRIVER ?? 'llvmpipe';
  if (env.LIBGL_ALWAYS_SOFTWARE === '1' || env.LIBGL_ALWAYS_SOFTWARE === 'true') return { software: true, text: `software: Mesa ${mesa} (LIBGL_ALWAYS_SOFTWARE)` };
  try {
    const fs = proc?.getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined;
    if (fs && display) {
      for (const pid of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        let cmd = '';
        try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
        const argv = cmd.split('\0');
        if (/(^|\/)Xvfb$/.test(argv[0] ?? '') && argv.includes(`:${display}`)) {
          return { software: true, text: `software: Xvfb display :${display}, so Mesa ${mesa} on the CPU` };
        }
      }
    }
  } catch {
    // no /proc (macOS, Windows): fall through
  }
  return { software: null, text: `X display :${display || '?'}; driver not reported by headless-gl` };
}
