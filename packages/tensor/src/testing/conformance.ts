/**
 * The backend conformance suite: the same checks for every backend, against the CPU reference.
 *
 * `backendConformanceCases(makeBackend)` returns plain `{ name, run }` cases so that any test
 * runner can register them (uvu here: `for (const c of cases) test(c.name, c.run)`). Two layers:
 *  1. primitives: each Backend method on seeded random inputs vs the CPU reference loops;
 *  2. ops and gradients: every case of the op table (cases.ts), forward and backward, on the
 *     backend in its dtype vs the CPU backend in float64.
 * Tolerances scale with `backend.epsilon(dtype)`, so a float32 GPU is held to float32 accuracy.
 */
import fc from 'fast-check';
import type { Backend, DType, MatmulSpec, Shape, WindowSpec } from '../backend/backend';
import { ReferenceCpuBackend } from '../backend/cpu-reference';
import { Generator } from '../random';
import { tensor } from '../ops/creation';
import { sizeOf } from '../shape';
import { assertAllClose } from './close';
import { OP_CASES } from './cases';
import { toTensor } from './arbitraries';
import { longReductionCases } from './large';

export interface ConformanceCase {
  name: string;
  run: () => void;
}

export interface ConformanceOptions {
  /** dtype to test in (default float32) */
  dtype?: DType;
  /** samples per op case (default 3) */
  samples?: number;
  /** seed for the samples */
  seed?: number;
  /** names of op cases to skip, each with the reason (printed) */
  skip?: Record<string, string>;
  /** the largest long reduction to run (default 1e7; see large.ts) */
  largestReduction?: number;
}

const reference = new ReferenceCpuBackend();

export function backendConformanceCases(backend: Backend, options: ConformanceOptions = {}): ConformanceCase[] {
  const dtype = options.dtype ?? 'float32';
  const eps = backend.epsilon(dtype);
  const tol = { atol: eps * 10, rtol: eps * 10 };
  const gen = new Generator(options.seed ?? 1234);
  const randomArray = (n: number, lo = -2, hi = 2): Float64Array => Float64Array.from({ length: n }, () => gen.uniform(lo, hi));
  /** run a primitive on the backend and on the reference with the same inputs, compare */
  const same = (label: string, run: (b: Backend, up: (v: Float64Array) => ReturnType<Backend['upload']>) => ReturnType<Backend['upload']>, scale = 1): void => {
    const upload = (b: Backend) => (v: Float64Array) => b.upload(dtype === 'float64' ? Float64Array.from(v) : Float32Array.from(v));
    const got = backend.download(run(backend, upload(backend)));
    const want = reference.download(run(reference, (v) => reference.upload(Float64Array.from(v))));
    assertAllClose(got, want, { atol: tol.atol * scale, rtol: tol.rtol * scale, label: `${backend.name} ${label}` });
  };
  const cases: ConformanceCase[] = [];
  const add = (name: string, run: () => void): void => { cases.push({ name: `${backend.name}: ${name}`, run }); };

  // ---- storage ----
  add('upload/download round trip and fill', () => {
    const v = randomArray(37);
    same('upload', (b, up) => up(v));
    same('fill', (b) => b.fill(11, 2.5, dtype));
    const before = backend.memory().buffers;
    const s = backend.upload(Float32Array.from(v));
    if (backend.memory().buffers !== before + 1) throw new Error(`memory(): expected ${before + 1} live buffers after one upload, got ${backend.memory().buffers}`);
    backend.dispose(s);
    if (backend.memory().buffers !== before) throw new Error(`memory(): expected ${before} live buffers after dispose, got ${backend.memory().buffers}`);
  });

  // ---- elementwise ----
  for (const op of ['neg', 'exp', 'abs', 'sign', 'step', 'relu', 'sigmoid', 'tanh', 'erf', 'sin', 'cos'] as const) {
    add(`unary ${op}`, () => { const v = randomArray(50, -3, 3); same(op, (b, up) => b.unary(op, up(v))); });
  }
  for (const op of ['log', 'sqrt'] as const) {
    add(`unary ${op}`, () => { const v = randomArray(50, 0.1, 4); same(op, (b, up) => b.unary(op, up(v))); });
  }
  const shapePairs: [Shape, Shape, Shape][] = [[[2, 3], [2, 3], [2, 3]], [[2, 3], [1, 3], [2, 3]], [[4, 1, 3], [1, 5, 1], [4, 5, 3]], [[1], [3, 4], [3, 4]], [[], [2, 2], [2, 2]]];
  for (const op of ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) {
    add(`binary ${op} with broadcasting`, () => {
      for (const [sa, sb, so] of shapePairs) {
        const r = so.length;
        const pa = [...Array(r - sa.length).fill(1), ...sa], pb = [...Array(r - sb.length).fill(1), ...sb];
        // rounded values make ties (for eq/le/ge) likely; pow gets a positive base
        const va = randomArray(sizeOf(sa), op === 'pow' ? 0.2 : -2, 2).map((x) => (op === 'pow' ? x : Math.round(x * 2) / 2));
        const vb = randomArray(sizeOf(sb), op === 'div' ? 0.5 : -2, 2).map((x) => (op === 'div' || op === 'pow' ? x : Math.round(x * 2) / 2));
        same(`${op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, (b, up) => b.binary(op, up(va), pa, up(vb), pb, so), op === 'pow' ? 4 : 1);
      }
    });
  }
  add('where with broadcasting', () => {
    const c = randomArray(3).map((x) => (x > 0 ? 1 : 0)), a = randomArray(6), bv = randomArray(2);
    same('where', (b, up) => b.where(up(c), [1, 3], up(a), [2, 3], up(bv), [2, 1], [2, 3]));
  });

  // ---- reductions ----
  const rshape = [3, 4, 5];
  for (const op of ['sum', 'max', 'min'] as const) {
    for (const axes of [[0], [1], [2], [0, 2], [0, 1, 2]]) {
      add(`reduce ${op} over [${axes}]`, () => { const v = randomArray(60); same(op, (b, up) => b.reduce(op, up(v), rshape, axes), 2); });
    }
  }
  for (const op of ['argmax', 'argmin'] as const) {
    add(`${op}`, () => { const v = randomArray(60); for (const axis of [0, 1, 2]) same(`${op} axis ${axis}`, (b, up) => b.argReduce(op, up(v), rshape, axis)); });
  }
  // ---- long reductions and a long matmul, compared exactly (large.ts; issue 20: GPU loops were cut at 65535) ----
  cases.push(...longReductionCases(backend, options.largestReduction));
  add('topkIndices', () => { const v = randomArray(4 * 7); same('topk', (b, up) => b.topkIndices(up(v), [4, 7], 3)); });

  // ---- matmul ----
  const mm: MatmulSpec[] = [];
  for (const [m, k, n] of [[1, 1, 1], [3, 5, 7], [17, 9, 33], [64, 48, 40]] as const) {
    for (const transA of [false, true]) for (const transB of [false, true]) mm.push({ batch: 1, m, k, n, batchA: 1, batchB: 1, transA, transB });
  }
  mm.push({ batch: 3, m: 5, k: 6, n: 7, batchA: 3, batchB: 1, transA: false, transB: true });
  mm.push({ batch: 3, m: 5, k: 6, n: 7, batchA: 1, batchB: 3, transA: true, transB: false });
  mm.push({ batch: 2, m: 9, k: 130, n: 11, batchA: 2, batchB: 2, transA: false, transB: false });
  for (const spec of mm) {
    add(`matmul ${JSON.stringify(spec)}`, () => {
      const a = randomArray(spec.batchA * spec.m * spec.k), b = randomArray(spec.batchB * spec.k * spec.n);
      same('matmul', (be, up) => be.matmul(up(a), up(b), spec), Math.sqrt(spec.k));
    });
  }

  // ---- movement ----
  add('strided: permute, expand, slice, flip', () => {
    const v = randomArray(24);
    same('permute', (b, up) => b.strided(up(v), [4, 2, 3], [1, 12, 4], 0));
    same('expand', (b, up) => b.strided(up(v.subarray(0, 3)), [2, 3, 4], [0, 1, 0], 0));
    same('slice', (b, up) => b.strided(up(v), [1, 2, 2], [12, 4, 1], 13));
    same('flip', (b, up) => b.strided(up(v), [2, 3, 4], [12, 4, -1], 3));
  });
  add('pad', () => { const v = randomArray(12); same('pad', (b, up) => b.pad(up(v), [3, 4], [[1, 2], [0, 3]], -0.5)); });
  add('gather and scatterAdd', () => {
    const x = randomArray(12), idx = Float64Array.from([2, 0, 3, 3, 1, 1, 0, 2]);
    same('gather', (b, up) => b.gather(up(x), [3, 4], 1, up(idx.subarray(0, 6)), [3, 2]));
    same('gather axis 0', (b, up) => b.gather(up(x), [3, 4], 0, up(Float64Array.from([2, 0, 1, 1, 0, 2, 2, 1])), [2, 4]));
    const src = randomArray(8);
    same('scatterAdd', (b, up) => b.scatterAdd(up(src), up(idx), [2, 4], 1, [2, 5]));
  });
  const windows: Partial<WindowSpec>[] = [
    { kh: 3, kw: 3, padH: 1, padW: 1 }, { kh: 2, kw: 2, strideH: 2, strideW: 2 }, { kh: 3, kw: 2, dilationH: 2, dilationW: 1, padH: 2, padW: 0 },
  ];
  for (const w of windows) {
    add(`im2col/col2im ${JSON.stringify(w)}`, () => {
      const base = { batch: 2, channels: 3, height: 7, width: 6, strideH: 1, strideW: 1, padH: 0, padW: 0, dilationH: 1, dilationW: 1, padValue: 0, ...w } as WindowSpec;
      const outH = Math.floor((base.height + 2 * base.padH - base.dilationH * (base.kh - 1) - 1) / base.strideH) + 1;
      const outW = Math.floor((base.width + 2 * base.padW - base.dilationW * (base.kw - 1) - 1) / base.strideW) + 1;
      const spec = { ...base, outH, outW };
      const x = randomArray(2 * 3 * 7 * 6);
      same('im2col', (b, up) => b.im2col(up(x), spec));
      const cols = randomArray(2 * 3 * spec.kh * spec.kw * outH * outW);
      same('col2im', (b, up) => b.col2im(up(cols), spec), 4);
    });
  }

  // ---- every op of the table: forward and gradients vs the float64 reference ----
  const samples = options.samples ?? 3;
  OP_CASES.forEach((opCase, index) => {
    const skip = options.skip?.[opCase.name];
    if (skip) console.log(`conformance on ${backend.name}: op ${opCase.name} skipped: ${skip}`);
    add(`op ${opCase.name}: forward and gradients${skip ? ` (skipped: ${skip})` : ''}`, () => {
      if (skip) return;
      const inputsList = fc.sample(opCase.inputs, { seed: (options.seed ?? 1234) + index, numRuns: samples });
      for (const inputs of inputsList) {
        const run = (b: Backend, dt: DType) => {
          const xs = inputs.map((d, i) => toTensor(d, { backend: b, dtype: dt, requiresGrad: opCase.grad?.[i] ?? true }));
          const y = opCase.fn(...xs);
          const cot = new Generator(99);
          if (y.requiresGrad) y.backward(tensor(Float64Array.from({ length: y.size }, () => cot.uniform(-1, 1)), { shape: y.shape, dtype: dt, backend: b }));
          return { y: y.data(), grads: xs.map((x) => (x.grad ? x.grad.data() : null)) };
        };
        const got = run(backend, dtype);
        const want = run(reference, 'float64');
        const scale = (opCase.tolerance ?? 1) * 10;
        const shapes = inputs.map((d) => `[${d.shape.join(',')}]`).join(' ');
        assertAllClose(got.y, want.y, { atol: eps * scale, rtol: eps * scale, label: `${opCase.name} forward on ${shapes}` });
        got.grads.forEach((g, i) => {
          if (g && want.grads[i]) assertAllClose(g, want.grads[i]!, { atol: eps * scale * 4, rtol: eps * scale * 4, label: `${opCase.name} gradient of input ${i} on ${shapes}` });
        });
      }
    });
  });
  return cases;
}

