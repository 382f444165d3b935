/**
 * The shared backend conformance suite on the CPU backend's fast paths: the blocked matmul and the
 * shortcut loops in float32 and float64, checked against the reference loops in float64.
 * (The gpu.js and WebAssembly kernels run the same suite in their own test files.)
 */
import { test } from 'uvu';
import { CpuBackend } from '@mofme/tensor';
import { backendConformanceCases } from '@mofme/tensor/testing';

for (const dtype of ['float32', 'float64'] as const) {
  const backend = new CpuBackend({ kernels: 'fast' });
  for (const c of backendConformanceCases(backend, { dtype })) test(`[${dtype}] ${c.name}`, c.run);
}

test.run();
