/**
 * Which backend new tensors live on when none is named.
 *
 * The default is the CPU backend (with its WebAssembly SIMD kernels where available). `setDefaultBackend` switches it (e.g. to the gpu.js backend
 * from `@mofme/tensor/gpu`); `withBackend` switches it for the duration of one function.
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

export function withBackend<T>(backend: Backend, fn: () => T): T {
  const previous = defaultBackend;
  defaultBackend = backend;
  try {
    return fn();
  } finally {
    defaultBackend = previous;
  }
}
