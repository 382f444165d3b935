/**
 * The shared backend conformance suite on every path of the fast CPU backend, against the
 * reference loops (ReferenceCpuBackend, cpu-reference.ts) in float64: the TypeScript fast kernels
 * (float32 and float64), and the WebAssembly SIMD kernels on 1 and 2 threads (float32). The GPU
 * backends run the same suite in gpu.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conv2d, CpuBackend, createWasmKernels, matmulNaive, randn, tensor, wasmSimdAvailable, withoutFusedKernels } from '@mofme/tensor';
import { backendConformanceCases } from '@mofme/tensor/testing';

const paths: [string, () => CpuBackend, 'float32' | 'float64'][] = [
  ['ts float32', () => new CpuBackend({ fastKernels: null }), 'float32'],
  ['ts float64', () => new CpuBackend({ fastKernels: null }), 'float64'],
];
if (wasmSimdAvailable()) {
  // mapMinSize 0: the suite's small elementwise cases take the WebAssembly elementwise kernels too
  paths.push(['wasm x1', () => new CpuBackend({ fastKernels: createWasmKernels({ threads: 1, mapMinSize: 0 }) }), 'float32']);
  // parallelMinFlops and parallelMinValues 0 force even tiny products and maps to be split between the threads
  paths.push(['wasm x2', () => new CpuBackend({ fastKernels: createWasmKernels({ threads: 2, parallelMinFlops: 0, parallelMinValues: 0, mapMinSize: 0 }) }), 'float32']);
} else {
  console.log('WebAssembly SIMD is not available here: the wasm conformance runs are skipped');
}

const backends: CpuBackend[] = [];
for (const [label, make, dtype] of paths) {
  const backend = make();
  backends.push(backend);
  for (const c of backendConformanceCases(backend, { dtype })) test(`[${label}] ${c.name}`, c.run);
}
// The optional fused kernels (softmax, layerNorm, GELU, Smooth L1, AdamW, FUSED_KERNELS in
// backend.ts) are shortcuts for compositions of primitives, which define them: run every op once
// more with the compositions (the fused kernels hidden) against the reference's fused kernels.
for (const c of backendConformanceCases(withoutFusedKernels(new CpuBackend({ fastKernels: null })), { dtype: 'float64' })) test(`[compositions, no fused kernels] ${c.name}`, c.run);
// the kernels made above own worker threads: stop them once every test has run
test.after(() => { for (const b of backends) b.fastKernels?.dispose(); });

test('conv2d takes the direct route on the WebAssembly path (float32) and im2col + matmul in float64', () => {
  if (!wasmSimdAvailable()) return;
  const backend = backends.find((b) => b.fastKernels)!;
  const route = (dtype: 'float32' | 'float64') => {
    const x = randn([1, 2, 5, 5], { dtype, backend, requiresGrad: true }), w = randn([3, 2, 3, 3], { dtype, backend, requiresGrad: true });
    return conv2d(x, w, null, { padding: 1 }).node?.op;
  };
  assert.is(route('float32'), 'conv2d');
  assert.is.not(route('float64'), 'conv2d');
});

test('an array too large to allocate is a one-line error naming the kernel, its operands, the size and what to do', () => {
  for (const backend of [new CpuBackend({ fastKernels: null }), new CpuBackend({ kernels: 'reference' }), new CpuBackend()]) {
    // 2^33 elements is past V8's typed-array limit: refused at once, nothing is reserved
    const oneLine = (pattern: RegExp) => (e: Error) => e instanceof RangeError && pattern.test(e.message) && !e.message.includes('\n');
    assert.throws(() => backend.fill(2 ** 33, 0, 'float32'), oneLine(
      /^out of memory in the cpu backend's fill kernel \(8589934592, 0, float32\): a float32 array of 8589934592 elements \(32768 MiB\) could not be allocated with \d+ MiB held by live tensors .*smaller batch or crop/));
    // through an op: a broadcast whose output is too large names the operands' shapes
    const a = tensor(new Float32Array(2 ** 17), { shape: [2 ** 17, 1], backend }), b = tensor(new Float32Array(2 ** 16), { shape: [1, 2 ** 16], backend });
    assert.throws(() => a.add(b), oneLine(
      /^out of memory in the cpu backend's binary kernel \(add, float32\[131072\], \[131072, 1\], float32\[65536\], \[1, 65536\], \[131072, 65536\]\): a float32 array of 8589934592 elements \(32768 MiB\)/));
  }
});

test("kernels: 'reference' runs the reference loops only (bit-identical to the naive matmul)", () => {
  const spec = { batch: 1, m: 33, k: 300, n: 41, batchA: 1, batchB: 1, transA: false, transB: true };
  const a = Float32Array.from({ length: 33 * 300 }, (_, i) => Math.sin(i * 0.37));
  const b = Float32Array.from({ length: 300 * 41 }, (_, i) => Math.cos(i * 0.11));
  const want = new Float32Array(33 * 41);
  matmulNaive(a, b, want, spec);
  const backend = new CpuBackend({ kernels: 'reference' });
  assert.is(backend.fastKernels, null);
  const got = backend.download(backend.matmul(backend.upload(a), backend.upload(b), spec));
  assert.equal(Array.from(got), Array.from(want));
  assert.match(backend.describe(), /reference loops/);
});

test('recycled buffers: kernels that accumulate still start from zero', () => {
  // fill the pool with garbage-filled arrays of the sizes the accumulating kernels will ask for
  const backend = new CpuBackend();
  const big = 1 << 15;
  for (let i = 0; i < 4; i++) backend.dispose(backend.fill(big, 123, 'float32'));
  const spec = { batch: 1, channels: 2, height: 128, width: 128, kh: 1, kw: 1, strideH: 1, strideW: 1, padH: 0, padW: 0, dilationH: 1, dilationW: 1, outH: 128, outW: 128, padValue: 0 };
  const ones = backend.fill(big, 1, 'float32');
  const back = backend.download(backend.col2im(ones, spec));
  if (back.some((v) => v !== 1)) throw new Error('col2im on a recycled buffer did not start from zero');
  const idx = backend.fill(big, 0, 'float32');
  const sums = backend.download(backend.scatterAdd(ones, idx, [1, big], 0, [1, big]));
  if (sums.some((v) => v !== 1)) throw new Error('scatterAdd on a recycled buffer did not start from zero');
  const reduced = backend.download(backend.reduce('sum', ones, [2, big / 2], [0]));
  if (reduced.some((v) => v !== 2)) throw new Error('reduce on a recycled buffer did not start from its identity');
  // no fastKernels.dispose() here: a default CpuBackend uses the process-wide shared kernels, and
  // disposing them broke every backend created before (the GPU suite's CPU references) in this process
});

test.run();
