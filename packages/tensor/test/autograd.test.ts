/**
 * Autograd on small graphs whose gradients are computed by hand (micrograd style): fan-out, reuse,
 * broadcasting, noGrad, detach, accumulation, retained and freed graphs, error messages, tidy.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  tensor, scalar, noGrad, tidy, keep, zeros, randn, Generator, CpuBackend, setDetectAnomaly, Tensor, sum, mul,
} from '@mofme/tensor';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);
const f64 = { dtype: 'float64' as const, requiresGrad: true };

test('chain rule through a small expression (micrograd example values)', () => {
  // micrograd's README expression, rebuilt: every intermediate derivative checked by hand below
  const a = scalar(-4, f64), b = scalar(2, f64);
  let c = a.add(b);                        // -2
  let d = a.mul(b).add(b.pow(3));          // -8 + 8 = 0
  c = c.add(c.add(1));                     // c + c + 1 = -3
  c = c.add(c.add(1)).add(a.neg());        // -3 + (-2) + 4 = -1
  d = d.add(d.mul(2)).add(b.add(a).relu()); // 0
  d = d.add(d.mul(3)).add(b.sub(a).relu()); // 6
  const e = c.sub(d);                      // -7
  const f = e.pow(2);                      // 49
  let g = f.div(2);                        // 24.5
  g = g.add(scalar(10, { dtype: 'float64' }).div(f)); // 24.5 + 10/49
  g.backward();
  close(g.item(), 24.70408163265306);
  // dg/da and dg/db as printed by micrograd's README (computed with PyTorch there)
  close(a.grad!.item(), 138.83381924198252, 1e-9);
  close(b.grad!.item(), 645.5772594752186, 1e-9);
});

test('fan-out accumulates: y = x*x + x has dy/dx = 2x + 1', () => {
  const x = tensor([1, -2, 3], f64);
  x.mul(x).add(x).sum().backward();
  assert.equal(Array.from(x.grad!.data()), [3, -3, 7]);
});

test('broadcast gradients are summed back to the input shape', () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]], f64); // [2, 3]
  const b = tensor([10, 20, 30], f64);            // [3] broadcast over rows
  const c = tensor([[2], [3]], f64);              // [2, 1] broadcast over columns
  a.mul(b).add(c).sum().backward();
  assert.equal(Array.from(b.grad!.data()), [5, 7, 9]);      // column sums of a
  assert.equal(Array.from(c.grad!.data()), [3, 3]);         // each row has 3 entries
  assert.equal(b.grad!.shape, [3]);
  assert.equal(c.grad!.shape, [2, 1]);
});

test('grads accumulate across backward calls until zeroed', () => {
  const x = tensor([2], f64);
  x.mul(3).sum().backward();
  x.mul(3).sum().backward();
  assert.equal(Array.from(x.grad!.data()), [6]);
});

test('backward twice through a freed graph is a clear error; retainGraph allows it', () => {
  const x = tensor([1, 2], f64);
  const y = x.exp().sum();
  y.backward(undefined, { retainGraph: true });
  y.backward();
  close(x.grad!.data()[0]!, 2 * Math.E);
  assert.throws(() => y.backward(), /already freed/);
});

test('backward on a tensor that needs no grad, or non-scalar without a gradient, explains itself', () => {
  assert.throws(() => tensor([1, 2]).sum().backward(), /does not require grad/);
  assert.throws(() => tensor([1, 2], f64).mul(2).backward(), /pass the upstream gradient/);
  const x = tensor([1, 2], f64);
  const y = x.mul(x);
  y.backward(tensor([1, 10], { dtype: 'float64' }));
  assert.equal(Array.from(x.grad!.data()), [2, 40]);
});

test('noGrad records nothing; detach cuts the graph', () => {
  const x = tensor([1, 2], f64);
  const y = noGrad(() => x.mul(2));
  assert.is(y.requiresGrad, false);
  assert.is(y.node, null);
  const z = x.detach().mul(x);
  z.sum().backward();
  assert.equal(Array.from(x.grad!.data()), [1, 2]); // only the non-detached factor contributes
});

test('repeated backward of the same computation is deterministic', () => {
  const run = () => {
    const g = new Generator(5);
    const w = randn([4, 3], { dtype: 'float64', generator: g, requiresGrad: true });
    const x = randn([2, 4], { dtype: 'float64', generator: g });
    x.matmul(w).tanh().softmax(-1).mul(tensor([1, 2, 3], { dtype: 'float64' })).sum().backward();
    return Array.from(w.grad!.data());
  };
  assert.equal(run(), run());
});

test('shape errors name the op and the shapes', () => {
  assert.throws(() => tensor([[1, 2]]).matmul(tensor([[1, 2]])), /matmul: shapes \[1, 2\] and \[1, 2\]/);
  assert.throws(() => tensor([1, 2]).reshape(3), /reshape: cannot reshape \[2\]/);
  assert.throws(() => tensor([1, 2]).add(tensor([1, 2, 3])), /add: shapes \[2\] and \[3\] cannot be broadcast/);
  assert.throws(() => tensor([[1, 2], [3]] as never), /ragged/);
  assert.throws(() => tensor([1], { dtype: 'float64' }).add(tensor([1])), /dtype mismatch/);
});

test('anomaly detection names the first op that produced a NaN', () => {
  setDetectAnomaly(true);
  try {
    const x = tensor([1, -1], f64);
    assert.throws(() => x.log(), /op 'log' produced NaN at flat index 1/);
  } finally {
    setDetectAnomaly(false);
  }
});

test('tidy disposes intermediates, keeps results and kept tensors; memory returns to start', () => {
  const backend = new CpuBackend();
  const w = randn([3, 3], { backend, requiresGrad: true });
  const start = backend.memory().buffers;
  const out = tidy(() => {
    const x = randn([2, 3], { backend });
    const loss = x.matmul(w).relu().sum();
    loss.backward();
    return loss.detach();
  });
  // live: w's storage, its kept grad, and the returned loss
  assert.is(backend.memory().buffers, start + 2);
  assert.ok(w.grad !== null && !w.grad.disposed);
  assert.ok(Number.isFinite(out.item()));
  out.dispose();
  w.grad!.dispose();
  assert.is(backend.memory().buffers, start);
});

test('assign updates a parameter in place and keeps it alive through tidy', () => {
  const p = zeros([2]);
  tidy(() => { p.assign(p.add(tensor([1, 2]))); });
  assert.equal(Array.from(p.data()), [1, 2]);
});

test('toString shows values, shape, dtype and grad function', () => {
  const x = tensor([[1.5, 2], [3, 4]], { requiresGrad: true });
  const s = x.mul(0.5).toString();
  assert.match(s, /tensor\(\[\[0\.7500, 1\.0000\],\n\s+\[1\.5000, 2\.0000\]\], shape=\[2, 2\], dtype=float32, grad_fn=mul\)/);
  assert.match(tensor([1, 2]).toString(), /tensor\(\[1\., 2\.\], shape=\[2\]/);
  assert.match(zeros([2000]).toString(), /\.\.\./);
});

test('keep exempts a tensor from tidy', () => {
  let kept: Tensor | null = null;
  tidy(() => { kept = keep(tensor([1])); tensor([2]); });
  assert.equal(Array.from(kept!.data()), [1]);
  void sum; void mul;
});

test.run();
