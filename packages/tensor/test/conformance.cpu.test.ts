/**
 * The shared backend conformance suite on every CPU kernel path, against the reference loops in
 * float64: the TypeScript blocked kernels (float32 and float64), and the WebAssembly SIMD kernels
 * on 1 and 2 threads (float32). The gpu.js backend runs the same suite in gpu.test.ts.
 */
import { test } from 'uvu';
import { CpuBackend, createWasmKernels, wasmSimdAvailable } from '@mofme/tensor';
import { backendConformanceCases } from '@mofme/tensor/testing';

const paths: [string, () => CpuBackend, 'float32' | 'float64'][] = [
  ['ts float32', () => new CpuBackend({ fastKernels: null }), 'float32'],
  ['ts float64', () => new CpuBackend({ fastKernels: null }), 'float64'],
];
if (wasmSimdAvailable()) {
  paths.push(['wasm x1', () => new CpuBackend({ fastKernels: createWasmKernels({ threads: 1 }) }), 'float32']);
  // parallelMinFlops 0 forces even tiny products to be split between the threads
  paths.push(['wasm x2', () => new CpuBackend({ fastKernels: createWasmKernels({ threads: 2, parallelMinFlops: 0 }) }), 'float32']);
} else {
  console.log('WebAssembly SIMD is not available here: the wasm conformance runs are skipped');
}

for (const [label, make, dtype] of paths) {
  const backend = make();
  for (const c of backendConformanceCases(backend, { dtype })) test(`[${label}] ${c.name}`, c.run);
  test(`[${label}] dispose kernels`, () => { backend.fastKernels?.dispose(); });
}

test.run();
