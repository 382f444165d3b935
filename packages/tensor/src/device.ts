/**
 * Which backend new tensors live on when none is named.
 *
 * The default is the CPU backend (with its WebAssembly SIMD kernels where available).
 * `useBackend(name)` is the one entry for a program that chooses by name (the CLI's `--backend`):
 * 'gpu' loads the gpu.js backend of `@mofme/tensor/gpu` here, on demand, so that importing the core
 * never loads gpu.js (or its native `gl` module) in a program that stays on the CPU.
 * `setDefaultBackend` installs a backend already built (e.g. a browser's, in a mode of its choosing);
 * `withBackend` switches it for the duration of one function.
 */
import type { Backend } from './backend/backend';
import { CpuBackend } from './backend/cpu';
import { profileFromEnvironment } from './profile';

let defaultBackend: Backend | null = null;

export function getDefaultBackend(): Backend {
  // the CPU backend picks its fast kernels itself (WebAssembly SIMD unless MOFME_KERNELS=ts)
  if (defaultBackend === null) {
    defaultBackend = new CpuBackend();
    profileFromEnvironment(defaultBackend); // MOFME_PROFILE=1: time its kernels, print at exit
  }
  return defaultBackend;
}

export function setDefaultBackend(backend: Backend): void {
  defaultBackend = backend;
  profileFromEnvironment(backend);
}

/** The backends a program can choose by name. */
const BACKEND_NAMES = ['cpu', 'gpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/**
 * Make the named backend the default and return it. 'cpu': the CPU backend. 'gpu': the gpu.js
 * backend in mode 'auto', the first GPU path that works here (WebGPU or headless GL in Node, WebGL2
 * or WebGL in a browser: gpu/index.ts); when none does it throws the reasons and the fix, and never
 * falls back to the CPU.
 */
export async function useBackend(name: BackendName): Promise<Backend> {
  if (name === 'cpu') {
    if (!(getDefaultBackend() instanceof CpuBackend)) setDefaultBackend(new CpuBackend());
    return getDefaultBackend();
  }
  if (name !== 'gpu') throw new Error(`useBackend: unknown backend ${JSON.stringify(name)}; choose one of ${BACKEND_NAMES.join(', ')}`);
  let gpu: typeof import('./gpu/index');
  try {
    gpu = await import('./gpu/index');
  } catch (e) {
    throw new Error(`cannot load the gpu.js backend (${(e as Error).message})`);
  }
  const backend = gpu.createGpuBackend({ mode: 'auto' });
  setDefaultBackend(backend);
  return backend;
}

export function withBackend<T>(backend: Backend, fn: () => T): T {
  const previous = defaultBackend;
  defaultBackend = backend;
  try {
    return fn();
  } finally {
    defaultBackend = previous;
  }
}
