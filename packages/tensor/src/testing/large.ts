/**
 * Conformance cases with long reductions: sum, max and min over 1e3 .. 1e7 elements, and a
 * matmul whose inner dimension is 70 000. Part of `backendConformanceCases`, so every backend runs
 * them.
 *
 * Why they exist: a GPU kernel loops over the reduced elements, and Mesa's llvmpipe (the software
 * GPU of CI) silently stops a shader loop after 65535 iterations, so `sum` of 1e6 ones returned
 * 65405 (issue 20). The small shapes of the main suite never loop that long.
 *
 * Why the comparison is exact: the values are 0 and 1 (plus one planted extreme per reduced
 * row for max and min), so every partial sum is an integer below 2^24 and float32 adds them
 * exactly in any order. A relative tolerance would let a missing 0.5 % of the terms pass; zero
 * tolerance does not. Expected values come from plain loops here, not from a backend.
 */
import type { Backend, MatmulSpec, ReduceOp, Shape } from '../backend/backend';
import { Generator } from '../random';

/** Element counts of the long reductions (the largest is below 2^24, the GPU kernels' exact index range). */
const LONG_REDUCTION_SIZES = [1e3, 1e4, 1e5, 1e6, 1e7];

/**
 * The long-reduction cases for `backend`, each `{ name, run }`. `largest` caps the element count
 * (for gpu.js's debugging `cpu` mode, which runs kernels as plain JavaScript).
 */
export function longReductionCases(backend: Backend, largest = 1e7): { name: string; run: () => void }[] {
  const cases: { name: string; run: () => void }[] = [];
  for (const n of LONG_REDUCTION_SIZES.filter((s) => s <= largest)) {
    // all axes of a vector; the long axis of a [10, n/10] (contiguous rows); the long axis of a
    // [n/10, 10] (a strided column)
    // (1e7 only as a vector: each 1e7 case costs ~10 s on a software GPU)
    const layouts: [Shape, number[]][] = n >= 1e7 ? [[[n], [0]]] : [[[n], [0]], [[10, n / 10], [1]], [[n / 10, 10], [0]]];
    for (const op of ['sum', 'max', 'min'] as const) {
      cases.push({
        name: `${backend.name}: long reduce ${op} of ${n} elements (exact)`,
        run: () => { for (const [shape, axes] of layouts) checkReduce(backend, op, shape, axes, n); },
      });
    }
  }
  cases.push({ name: `${backend.name}: matmul with k = 70000 (exact)`, run: () => checkLongMatmul(backend) });
  return cases;
}

/** 0/1 values from a seeded generator, with one +3 and one -3 per reduced row for max/min. */
function values(op: ReduceOp, shape: Shape, axes: number[], seed: number): Float32Array {
  const gen = new Generator(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Float32Array.from({ length: n }, () => (gen.random() < 0.5 ? 0 : 1));
  if (op === 'sum') return v;
  const extreme = op === 'max' ? 3 : -3;
  forEachRow(shape, axes, (cell, at) => { v[at(gen.int(rowLength(shape, axes)))] = extreme; void cell; });
  return v;
}

const rowLength = (shape: Shape, axes: number[]): number => axes.reduce((p, d) => p * shape[d]!, 1);

/**
 * Calls `visit(cell, at)` for each output cell of reducing a 1-D or 2-D `shape` over one axis;
 * `at(j)` is the flat index of the cell's j-th reduced element.
 */
function forEachRow(shape: Shape, axes: number[], visit: (cell: number, at: (j: number) => number) => void): void {
  if (shape.length === 1) { visit(0, (j) => j); return; }
  const [rows, cols] = shape as [number, number];
  if (axes[0] === 1) for (let r = 0; r < rows; r++) visit(r, (j) => r * cols + j);
  else for (let c = 0; c < cols; c++) visit(c, (j) => j * cols + c);
}

function checkReduce(backend: Backend, op: ReduceOp, shape: Shape, axes: number[], n: number): void {
  const v = values(op, shape, axes, n + shape.length * 7 + axes[0]!);
  const want: number[] = [];
  forEachRow(shape, axes, (_, at) => {
    let acc = op === 'sum' ? 0 : v[at(0)]!;
    for (let j = op === 'sum' ? 0 : 1; j < rowLength(shape, axes); j++) {
      const x = v[at(j)]!;
      acc = op === 'sum' ? acc + x : op === 'max' ? Math.max(acc, x) : Math.min(acc, x);
    }
    want.push(acc);
  });
  const input = backend.upload(backend.supports('float32') ? v : Float64Array.from(v));
  const out = backend.reduce(op, input, shape, axes);
  const got = backend.download(out);
  backend.dispose(input);
  backend.dispose(out);
  const label = `${backend.name} ${op} of [${shape}] over axis ${axes}`;
  if (got.length !== want.length) throw new Error(`${label}: ${got.length} outputs, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new Error(`${label}: output ${i} is ${got[i]}, expected exactly ${want[i]}`);
  }
}

/** A [2, 70000] x [70000, 3] product (and the transposed-A layout) of small integers: exact in float32. */
function checkLongMatmul(backend: Backend): void {
  const k = 70000;
  const a = Float32Array.from({ length: 2 * k }, (_, i) => (i % 3) - 1);
  const b = Float32Array.from({ length: k * 3 }, (_, i) => (i % 5) - 2);
  for (const transA of [false, true]) {
    const spec: MatmulSpec = { batch: 1, m: 2, k, n: 3, batchA: 1, batchB: 1, transA, transB: false };
    const want: number[] = [];
    for (let r = 0; r < 2; r++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let t = 0; t < k; t++) acc += a[transA ? t * 2 + r : r * k + t]! * b[t * 3 + c]!;
        want.push(acc);
      }
    }
    const up = (x: Float32Array) => backend.upload(backend.supports('float32') ? x : Float64Array.from(x));
    const sa = up(a), sb = up(b);
    const out = backend.matmul(sa, sb, spec);
    const got = Array.from(backend.download(out));
    for (const s of [sa, sb, out]) backend.dispose(s);
    if (got.join() !== want.join()) throw new Error(`${backend.name} matmul k=${k} transA=${transA}: got [${got}], expected exactly [${want}]`);
  }
}
