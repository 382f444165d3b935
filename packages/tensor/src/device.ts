/**
 * Which backend new tensors live on when none is named.
 *
 * The default is the CPU backend. `setDefaultBackend` switches it (e.g. to the gpu.js backend
 * from `@mofme/tensor/gpu`); `withBackend` switches it for the duration of one function.
 */
import type { Backend } from './backend/backend';
import { CpuBackend, type FastKernels } from './backend/cpu';

let defaultBackend: Backend | null = null;
let fastKernelsFactory: (() => FastKernels | null) | null = null;

/**
 * Register how the default CPU backend obtains accelerated kernels (the WebAssembly module does
 * this when imported). Kept as a hook so that the core never depends on the fast path.
 */
export function registerFastKernels(factory: () => FastKernels | null): void {
  fastKernelsFactory = factory;
}

export function getDefaultBackend(): Backend {
  if (defaultBackend === null) {
    const useFast = (globalThis.process?.env?.MOFME_KERNELS ?? '') !== 'ts';
    defaultBackend = new CpuBackend({ fastKernels: useFast && fastKernelsFactory ? fastKernelsFactory() : null });
  }
  return defaultBackend;
}

export function setDefaultBackend(backend: Backend): void {
  defaultBackend = backend;
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
