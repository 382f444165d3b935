/**
 * Forward values against independent plain-JS references: each reference below is written from
 * the op's mathematical definition with ordinary loops over nested indices, sharing no code with
 * the engine (no strides, no backend kernels), and compared on random inputs from fast-check.
 */
import { test } from 'uvu';
import fc from 'fast-check';
import * as assert from 'uvu/assert';
import * as T from '@mofme/tensor';
import { assertAllClose, broadcastPairArb, numRuns, shapeArb, toTensor, valuesArb, type TensorData } from '@mofme/tensor/testing';

const runs = numRuns(30);
const f64 = (d: TensorData) => toTensor(d, { dtype: 'float64' });

/** value of d at a multi-index (row-major, computed directly) */
function at(d: TensorData, idx: number[]): number {
  let flat = 0;
  for (let i = 0; i < d.shape.length; i++) flat = flat * d.shape[i]! + idx[i]!;
  return d.values[flat]!;
}
/** all multi-indices of a shape in row-major order */
function indices(shape: number[]): number[][] {
  let out: number[][] = [[]];
  for (const s of shape) out = out.flatMap((p) => Array.from({ length: s }, (_, i) => [...p, i]));
  return out;
}

const unaryRefs: [string, (x: T.Tensor) => T.Tensor, (v: number) => number, { min?: number; max?: number }][] = [
  ['exp', T.exp, Math.exp, {}], ['log', T.log, Math.log, { min: 0.1, max: 5 }], ['sqrt', T.sqrt, Math.sqrt, { min: 0, max: 5 }],
  ['abs', T.abs, Math.abs, {}], ['relu', T.relu, (v) => Math.max(v, 0), {}], ['sigmoid', T.sigmoid, (v) => 1 / (1 + Math.exp(-v)), { min: -30, max: 30 }],
  ['tanh', T.tanh, Math.tanh, {}], ['neg', T.neg, (v) => -v, {}],
  // erf reference: numerical integration of 2/sqrt(pi) e^{-t^2} (Simpson, 2000 intervals)
  ['erf', T.erf, (v) => { const n = 2000, h = v / n; let s = 1 + Math.exp(-v * v); for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * Math.exp(-((i * h) ** 2)); return (2 / Math.sqrt(Math.PI)) * (h / 3) * s; }, { min: -4, max: 4 }],
];
for (const [name, op, ref, range] of unaryRefs) {
  test(`${name} matches Math`, () => {
    fc.assert(fc.property(shapeArb({ maxRank: 3 }).chain((s) => valuesArb(s, range)), (d) => {
      assertAllClose(op(f64(d)).data(), d.values.map(ref), { atol: 1e-10, rtol: 1e-10, label: name });
    }), { numRuns: runs });
  });
}

const binaryRefs: [string, (a: T.Tensor, b: T.Tensor) => T.Tensor, (a: number, b: number) => number][] = [
  ['add', T.add, (a, b) => a + b], ['sub', T.sub, (a, b) => a - b], ['mul', T.mul, (a, b) => a * b],
  ['div', T.div, (a, b) => a / b], ['maximum', T.maximum, Math.max], ['minimum', T.minimum, Math.min],
];
for (const [name, op, ref] of binaryRefs) {
  test(`${name} broadcasts like NumPy`, () => {
    fc.assert(fc.property(broadcastPairArb({ maxRank: 3 }).chain(([sa, sb]) => fc.tuple(valuesArb(sa), valuesArb(sb, { min: 0.5, max: 2 }))), ([a, b]) => {
      const rank = Math.max(a.shape.length, b.shape.length);
      const pa = [...Array(rank - a.shape.length).fill(1), ...a.shape], pb = [...Array(rank - b.shape.length).fill(1), ...b.shape];
      const out = pa.map((s, i) => Math.max(s, pb[i]!));
      const expected = indices(out).map((idx) => ref(
        at({ shape: pa, values: a.values }, idx.map((v, i) => (pa[i] === 1 ? 0 : v))),
        at({ shape: pb, values: b.values }, idx.map((v, i) => (pb[i] === 1 ? 0 : v))),
      ));
      const y = op(f64(a), f64(b));
      fc.pre(y.shape.join() === out.join());
      assertAllClose(y.data(), expected, { atol: 1e-12, rtol: 1e-12, label: name });
    }), { numRuns: runs });
  });
}

test('sum, mean, max, min, var over one axis', () => {
  fc.assert(fc.property(shapeArb({ minRank: 1, maxRank: 3, maxSide: 4 }).chain((s) => fc.tuple(valuesArb(s), fc.integer({ min: 0, max: s.length - 1 }))), ([d, axis]) => {
    const outShape = d.shape.filter((_, i) => i !== axis);
    const groups = indices(outShape).map((o) => Array.from({ length: d.shape[axis]! }, (_, j) => at(d, [...o.slice(0, axis), j, ...o.slice(axis)])));
    const x = f64(d);
    const sumRef = groups.map((g) => g.reduce((s, v) => s + v, 0));
    assertAllClose(T.sum(x, axis).data(), sumRef, { atol: 1e-12, label: 'sum' });
    assertAllClose(T.mean(x, axis).data(), sumRef.map((s, i) => s / groups[i]!.length), { atol: 1e-12, label: 'mean' });
    assertAllClose(T.max(x, axis).data(), groups.map((g) => Math.max(...g)), { atol: 0, label: 'max' });
    assertAllClose(T.min(x, axis).data(), groups.map((g) => Math.min(...g)), { atol: 0, label: 'min' });
    assertAllClose(T.argmax(x, axis).data(), groups.map((g) => g.indexOf(Math.max(...g))), { atol: 0, label: 'argmax' });
    if (d.shape[axis]! > 1) {
      const varRef = groups.map((g) => { const m = g.reduce((s, v) => s + v, 0) / g.length; return g.reduce((s, v) => s + (v - m) ** 2, 0) / (g.length - 1); });
      assertAllClose(T.variance(x, axis).data(), varRef, { atol: 1e-12, rtol: 1e-10, label: 'var' });
    }
  }), { numRuns: runs });
});

test('matmul (batched, broadcast) matches the triple loop', () => {
  fc.assert(fc.property(fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 }))
    .chain(([m, k, n, b]) => fc.tuple(valuesArb([b, m, k]), valuesArb([k, n]))), ([a, w]) => {
    const [b, m, k] = a.shape as [number, number, number], n = w.shape[1]!;
    const expected = indices([b, m, n]).map(([bi, i, j]) => { let s = 0; for (let p = 0; p < k; p++) s += at(a, [bi!, i!, p]) * at(w, [p, j!]); return s; });
    assertAllClose(T.matmul(f64(a), f64(w)).data(), expected, { atol: 1e-12, rtol: 1e-12, label: 'matmul' });
  }), { numRuns: runs });
});

test('conv2d matches the direct definition (stride, padding, dilation, groups)', () => {
  const arb = fc.record({ B: fc.integer({ min: 1, max: 2 }), G: fc.integer({ min: 1, max: 2 }), cg: fc.integer({ min: 1, max: 2 }), og: fc.integer({ min: 1, max: 2 }), k: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 2 }), p: fc.integer({ min: 0, max: 2 }), dl: fc.integer({ min: 1, max: 2 }), H: fc.integer({ min: 5, max: 7 }), W: fc.integer({ min: 5, max: 7 }) })
    .chain((c) => fc.tuple(fc.constant(c), valuesArb([c.B, c.G * c.cg, c.H, c.W]), valuesArb([c.G * c.og, c.cg, c.k, c.k]), valuesArb([c.G * c.og])));
  fc.assert(fc.property(arb, ([c, x, w, bias]) => {
    const OH = Math.floor((c.H + 2 * c.p - c.dl * (c.k - 1) - 1) / c.s) + 1, OW = Math.floor((c.W + 2 * c.p - c.dl * (c.k - 1) - 1) / c.s) + 1;
    const expected = indices([c.B, c.G * c.og, OH, OW]).map(([b, o, oy, ox]) => {
      const g = Math.floor(o! / c.og);
      let s = bias.values[o!]!;
      for (let ci = 0; ci < c.cg; ci++) for (let i = 0; i < c.k; i++) for (let j = 0; j < c.k; j++) {
        const y = oy! * c.s - c.p + i * c.dl, xx = ox! * c.s - c.p + j * c.dl;
        if (y >= 0 && y < c.H && xx >= 0 && xx < c.W) s += at(x, [b!, g * c.cg + ci, y, xx]) * at(w, [o!, ci, i, j]);
      }
      return s;
    });
    const y = T.conv2d(f64(x), f64(w), f64(bias), { stride: c.s, padding: c.p, dilation: c.dl, groups: c.G });
    assertAllClose(y.data(), expected, { atol: 1e-12, rtol: 1e-12, label: 'conv2d' });
  }), { numRuns: runs });
});

test('avgPool2d and maxPool2d match window loops', () => {
  fc.assert(fc.property(fc.tuple(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 2, max: 6 })).chain(([h, w]) => valuesArb([1, 2, h, w])), (x) => {
    const [, C, H, W] = x.shape as [number, number, number, number];
    const OH = Math.floor(H / 2), OW = Math.floor(W / 2);
    const win = (c: number, oy: number, ox: number) => [at(x, [0, c, 2 * oy, 2 * ox]), at(x, [0, c, 2 * oy, 2 * ox + 1]), at(x, [0, c, 2 * oy + 1, 2 * ox]), at(x, [0, c, 2 * oy + 1, 2 * ox + 1])];
    const idx = indices([C, OH, OW]);
    assertAllClose(T.avgPool2d(f64(x), 2).data(), idx.map(([c, i, j]) => win(c!, i!, j!).reduce((a, b) => a + b) / 4), { atol: 1e-12, label: 'avgPool2d' });
    assertAllClose(T.maxPool2d(f64(x), 2).data(), idx.map(([c, i, j]) => Math.max(...win(c!, i!, j!))), { atol: 0, label: 'maxPool2d' });
  }), { numRuns: runs });
});

test('softmax, logSoftmax and layerNorm match their formulas (also for large logits)', () => {
  fc.assert(fc.property(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 })).chain(([r, c]) => valuesArb([r, c], { min: -50, max: 50 })), (d) => {
    const [R, C] = d.shape as [number, number];
    const rows = Array.from({ length: R }, (_, i) => d.values.slice(i * C, (i + 1) * C));
    const soft = rows.flatMap((row) => { const m = Math.max(...row); const e = row.map((v) => Math.exp(v - m)); const s = e.reduce((a, b) => a + b); return e.map((v) => v / s); });
    assertAllClose(T.softmax(f64(d), -1).data(), soft, { atol: 1e-12, rtol: 1e-10, label: 'softmax' });
    assertAllClose(T.logSoftmax(f64(d), -1).data(), soft.map(Math.log), { atol: 1e-9, rtol: 1e-9, label: 'logSoftmax' });
    const ln = rows.flatMap((row) => { const m = row.reduce((a, b) => a + b) / C; const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / C; return row.map((x) => (x - m) / Math.sqrt(v + 1e-5)); });
    assertAllClose(T.layerNorm(f64(d), 1).data(), ln, { atol: 1e-10, rtol: 1e-10, label: 'layerNorm' });
  }), { numRuns: runs });
  // no overflow: softmax of huge logits is still a distribution
  const big = T.softmax(T.tensor([1000, 1001, 1002], { dtype: 'float32' })).data();
  assertAllClose(big, [0.09003057, 0.24472847, 0.66524096], { atol: 1e-6, label: 'softmax of large logits' });
});

test('movement ops: permute, flip, pad, slice, concat, gather and topk by index arithmetic', () => {
  fc.assert(fc.property(shapeArb({ minRank: 3, maxRank: 3, maxSide: 4 }).chain((s) => valuesArb(s, { distinct: true })), (d) => {
    const [A, B, C] = d.shape as [number, number, number];
    const x = f64(d);
    assertAllClose(T.permute(x, [2, 0, 1]).data(), indices([C, A, B]).map(([k, i, j]) => at(d, [i!, j!, k!])), { atol: 0, label: 'permute' });
    assertAllClose(T.flip(x, [0, 2]).data(), indices([A, B, C]).map(([i, j, k]) => at(d, [A - 1 - i!, j!, C - 1 - k!])), { atol: 0, label: 'flip' });
    assertAllClose(T.pad(x, [[1, 0], [0, 2]], 7).data(), indices([A + 1, B + 2, C]).map(([i, j, k]) => (i! < 1 || j! >= B ? 7 : at(d, [i! - 1, j!, k!]))), { atol: 0, label: 'pad' });
    assertAllClose(T.narrow(x, 1, B - 1, 1).data(), indices([A, 1, C]).map(([i, , k]) => at(d, [i!, B - 1, k!])), { atol: 0, label: 'narrow' });
    assertAllClose(T.concat([x, x], 2).data(), indices([A, B, 2 * C]).map(([i, j, k]) => at(d, [i!, j!, k! % C])), { atol: 0, label: 'concat' });
    const top = T.topk(x, 1, -1);
    const rows = indices([A, B]).map(([i, j]) => Array.from({ length: C }, (_, k) => at(d, [i!, j!, k])));
    assertAllClose(top.values.data(), rows.map((r) => Math.max(...r)), { atol: 0, label: 'topk values' });
    assertAllClose(top.indices.data(), rows.map((r) => r.indexOf(Math.max(...r))), { atol: 0, label: 'topk indices' });
  }), { numRuns: runs });
});

test('losses: l1, mse, smoothL1 match their definitions', () => {
  fc.assert(fc.property(shapeArb({ minRank: 1, maxRank: 2 }).chain((s) => fc.tuple(valuesArb(s), valuesArb(s))), ([p, t]) => {
    const d = p.values.map((v, i) => v - t.values[i]!);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assertAllClose([T.l1Loss(f64(p), f64(t)).item()], [mean(d.map(Math.abs))], { atol: 1e-12, label: 'l1' });
    assertAllClose([T.mseLoss(f64(p), f64(t)).item()], [mean(d.map((v) => v * v))], { atol: 1e-12, label: 'mse' });
    assertAllClose([T.smoothL1Loss(f64(p), f64(t)).item()], [mean(d.map((v) => (Math.abs(v) < 1 ? 0.5 * v * v : Math.abs(v) - 0.5)))], { atol: 1e-12, label: 'smoothL1' });
  }), { numRuns: runs });
});

test('psnrLoss: minus the mean PSNR of the images, each capped by the floor', () => {
  // two 1x2x2 "images": errors 0.1 everywhere (MSE 0.01 -> 20 dB) and exact (MSE 0 -> the floor's 30 dB)
  const pred = T.tensor([0.6, 0.6, 0.6, 0.6, 0.2, 0.3, 0.4, 0.5], { shape: [2, 1, 2, 2], dtype: 'float64' });
  const target = T.tensor([0.5, 0.5, 0.7, 0.7, 0.2, 0.3, 0.4, 0.5], { shape: [2, 1, 2, 2], dtype: 'float64' });
  const expected = (10 * Math.log10(0.01 + 1e-3) + 10 * Math.log10(0 + 1e-3)) / 2; // -(19.586 + 30) / 2
  assertAllClose([T.psnrLoss(pred, target).item()], [expected], { atol: 1e-12, label: 'psnrLoss' });
  // the gradient weighs an image by 1 / (MSE_i + floor): d/dpred = (10 / ln 10) * 2 d / (n_i (MSE_i + floor)) / N
  const p = T.tensor([0.6, 0.6, 0.6, 0.6, 0.2, 0.3, 0.4, 0.5], { shape: [2, 1, 2, 2], dtype: 'float64', requiresGrad: true });
  T.psnrLoss(p, target).backward();
  const k = 10 / Math.LN10 / 2;
  assertAllClose(p.grad!.data(), [0.1, 0.1, -0.1, -0.1].map((d) => (k * 2 * d) / (4 * 0.011)).concat([0, 0, 0, 0]), { atol: 1e-9, label: 'psnrLoss gradient' });
  assert.throws(() => T.psnrLoss(T.zeros([4]), T.zeros([4])), /expected a batch/);
});

test('dropout: seeded, identity in eval, keeps the expectation', () => {
  const x = T.ones([10000]);
  const g = new T.Generator(3);
  const y = T.dropout(x, 0.25, true, g).data();
  const zeros = y.filter((v) => v === 0).length;
  if (Math.abs(zeros / 10000 - 0.25) > 0.02) throw new Error(`dropout zeroed ${zeros / 100}% instead of ~25%`);
  if (!y.every((v) => v === 0 || Math.abs(v - 4 / 3) < 1e-6)) throw new Error('survivors must be scaled by 1/(1-p)');
  assertAllClose(T.dropout(x, 0.25, false).data(), x.data(), { label: 'eval dropout' });
  assertAllClose(T.dropout(x, 0.25, true, new T.Generator(3)).data(), y, { label: 'same seed, same mask' });
});

test('creation: arange, eye, full, randn statistics, nested arrays', () => {
  assertAllClose(T.arange(2, 8, 2).data(), [2, 4, 6], { label: 'arange' });
  assertAllClose(T.eye(2, 3).data(), [1, 0, 0, 0, 1, 0], { label: 'eye' });
  assertAllClose(T.full([2], 3.5).data(), [3.5, 3.5], { label: 'full' });
  const r = Array.from(T.randn([20000], { generator: new T.Generator(1) }).data());
  const m = r.reduce((a, b) => a + b, 0) / r.length, v = r.reduce((a, b) => a + (b - m) ** 2, 0) / r.length;
  if (Math.abs(m) > 0.03 || Math.abs(v - 1) > 0.05) throw new Error(`randn mean ${m} var ${v}`);
  const u = T.uniform([20000], -1, 3, { generator: new T.Generator(2) }).data();
  if (Math.min(...u) < -1 || Math.max(...u) >= 3) throw new Error('uniform out of range');
  const n = T.tensor([[1, 2, 3], [4, 5, 6]]);
  if (JSON.stringify(n.toArray()) !== '[[1,2,3],[4,5,6]]' || n.shape.join() !== '2,3') throw new Error('nested round trip');
});

test.run();
