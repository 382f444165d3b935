/**
 * Fast TypeScript paths of the CPU backend (cpu.ts) that the op table reaches only on a few
 * shapes, against the reference loops on random ones: the strided read (axes dropped and merged,
 * then a double loop) on random shapes, strides (negative and zero included) and offsets; top-k
 * by insertion on rows full of ties.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { CpuBackend, ReferenceCpuBackend } from '@mofme/tensor';

const fast = new CpuBackend({ fastKernels: null });
const reference = new ReferenceCpuBackend();

test('strided: the reference strided read on random shapes, strides and offsets', () => {
  const geometry = fc.array(fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: -7, max: 7 })), { minLength: 0, maxLength: 5 });
  fc.assert(fc.property(geometry, fc.boolean(), (axes, contiguousTail) => {
    const shape = axes.map(([n]) => n);
    // half the cases end in row-major strides (the mergeable axes a permute leaves)
    const strides = axes.map(([, s]) => s);
    if (contiguousTail && axes.length >= 2) { strides[axes.length - 1] = 1; strides[axes.length - 2] = shape[axes.length - 1]!; }
    // the offset that keeps every index inside a source of just the needed length
    let low = 0, high = 0;
    shape.forEach((n, d) => { const reach = (n - 1) * strides[d]!; if (reach < 0) low += reach; else high += reach; });
    const offset = -low, length = high - low + 1;
    const src = Float32Array.from({ length }, (_, i) => i * 0.5 - 3);
    const got = fast.download(fast.strided(fast.upload(src), shape, strides, offset));
    const want = reference.download(reference.strided(reference.upload(src), shape, strides, offset));
    assert.equal(Array.from(got), Array.from(want), `shape [${shape}] strides [${strides}] offset ${offset}`);
  }), { numRuns: 300 });
});

test('topkIndices: the reference order (ties and equal infinities by index) on random rows with many repeats', () => {
  const values = fc.constantFrom(-2, -1, 0, -0, 0.5, 1, 3, Infinity, -Infinity);
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9 }), fc.array(values, { minLength: 36, maxLength: 36 }), (rows, n, kWanted, pool) => {
    const k = Math.min(kWanted, n);
    const src = Float32Array.from({ length: rows * n }, (_, i) => pool[i % pool.length]!);
    const got = fast.download(fast.topkIndices(fast.upload(src), [rows, n], k));
    const want = reference.download(reference.topkIndices(reference.upload(src), [rows, n], k));
    assert.equal(Array.from(got), Array.from(want), `rows ${rows} n ${n} k ${k}: [${Array.from(src)}]`);
  }), { numRuns: 300 });
});

test.run();
