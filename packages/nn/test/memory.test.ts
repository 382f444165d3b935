// When tensors are freed: the backward pass's gradients (autograd.ts), each layer's temporaries
// under noGrad (inference.ts), and the attention's head groups. Every case checks two things: the
// values are the same as without the early freeing, to the bit, and the count of live buffers on
// the backend (`memory().buffers`, a count, not a measured size) is what the freeing promises.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAST_MATMUL_MIN_WORK, Generator, getDefaultBackend, noGrad, randn, releaseAfterBackward, tensor, tidy, type Tensor } from '@mofme/tensor';
import { Linear, MultiHeadSelfAttention, ResBlock, chainDisposingUnderNoGrad, disposeTemporariesUnderNoGrad } from '../src';

const liveBuffers = (): number => getDefaultBackend().memory().buffers;
const bits = (t: Tensor): number[] => Array.from(new Uint32Array(Float32Array.from(t.data()).buffer));

test('backward: intermediate gradients and backward temporaries are freed; only the seed and x.grad stay', () => {
  const x = randn([32, 32], { generator: new Generator(1), dtype: 'float64' }).requiresGrad_();
  const loss = x.mul(2).relu().mul(3).exp().sum();
  const before = liveBuffers();
  loss.backward();
  assert.is(liveBuffers() - before, 2, 'the seed gradient ones(1) and x.grad');
  // d/dx Σ exp(3 relu(2x)) = 6 exp(6x) where x > 0, else 0
  const xs = x.data(), g = x.grad!.data();
  xs.forEach((v, i) => {
    const want = v > 0 ? 6 * Math.exp(6 * v) : 0;
    assert.ok(Math.abs(g[i]! - want) <= 1e-12 * Math.max(1, Math.abs(want)), `element ${i}: ${g[i]} vs ${want}`);
  });
});

test('backward: one gradient tensor handed to two uses (x + x) is freed only after both, and the result is exact', () => {
  const x = tensor([0.5, -1.25, 3, 7.75], { dtype: 'float64' }).requiresGrad_();
  x.add(x).mul(x).sum().backward(); // Σ 2x² -> 4x, every step exact in binary
  assert.equal(Array.from(x.grad!.data()), [2, -5, 12, 31]);
  // a leaf reached twice through a shared gradient, and a second backward accumulating into .grad
  const y = tensor([1, 2], { dtype: 'float64' }).requiresGrad_();
  const w = y.mul(3);
  w.add(w).sum().backward(); // 6y -> 6
  y.mul(y).sum().backward(); // + 2y
  assert.equal(Array.from(y.grad!.data()), [8, 10]);
});

test('releaseAfterBackward: backward frees the internal tensors of a forward once past them; not what it returns, not under retainGraph', () => {
  const w = tensor([0.5, -2, 3], { dtype: 'float64' }).requiresGrad_();
  let made: Tensor[] = [];
  const forward = (): Tensor => {
    const a = w.mul(2), b = a.relu();
    made = [a, b];
    return b.mul(b); // Σ relu(2w)² -> d/dw = 8w where w > 0
  };
  const out = releaseAfterBackward(forward);
  out.sum().backward();
  assert.ok(made.every((t) => t.disposed), 'internal tensors freed');
  assert.ok(!out.disposed);
  assert.equal(Array.from(out.data()), [1, 0, 36]);
  assert.equal(Array.from(w.grad!.data()), [4, 0, 24]);
  w.grad = null;
  const again = releaseAfterBackward(forward);
  again.sum().backward(undefined, { retainGraph: true });
  assert.ok(made.every((t) => !t.disposed), 'kept for a second backward');
  again.sum().backward();
  assert.equal(Array.from(w.grad!.data()), [8, 0, 48]);
});

test('disposeTemporariesUnderNoGrad: under noGrad a ResBlock leaves only its output; with gradients it keeps what backward needs', () => {
  const block = new ResBlock(4, { generator: new Generator(2) });
  const x = randn([1, 4, 8, 8], { generator: new Generator(3) });
  const before = liveBuffers();
  const y = noGrad(() => block.forward(x));
  assert.is(liveBuffers() - before, 1, 'conv1, relu and conv2 outputs freed; the sum kept');
  const yGrad = tidy(() => {
    const out = block.forward(x);
    assert.ok(liveBuffers() - before > 2, 'with gradients on, the activations stay for backward');
    out.sum().backward();
    return out;
  });
  assert.equal(bits(y), bits(yGrad), 'same output either way');
  assert.is(disposeTemporariesUnderNoGrad(() => 7), 7);
});

test('disposeUnreadByBackward: with gradients on, the products no backward reads are gone at once, and the gradients are unchanged', () => {
  const x = randn([6, 8], { generator: new Generator(6), dtype: 'float64' }).requiresGrad_();
  const linear = new Linear(8, 5, { generator: new Generator(7), dtype: 'float64' });
  let before = liveBuffers();
  const y = linear.forward(x);
  assert.is(liveBuffers() - before, 1, 'x W^T was freed once the bias was added; only the output stays');
  y.mul(y).sum().backward();
  // d/dW Σ y² = 2 yᵀ x, d/db = 2 Σ_rows y: from the values, not from the layer
  const xs = x.data(), ys = y.data(), gw = linear.weight.grad!.data(), gb = linear.bias!.grad!.data();
  for (let o = 0; o < 5; o++) {
    let db = 0;
    for (let r = 0; r < 6; r++) db += 2 * ys[r * 5 + o]!;
    assert.ok(Math.abs(gb[o]! - db) < 1e-12, `bias ${o}`);
    for (let i = 0; i < 8; i++) {
      let dw = 0;
      for (let r = 0; r < 6; r++) dw += 2 * ys[r * 5 + o]! * xs[r * 8 + i]!;
      assert.ok(Math.abs(gw[o * 8 + i]! - dw) < 1e-12, `weight ${o},${i}`);
    }
  }
  // ResBlock: the ReLU's output (its own and conv2's backward read it) and the sum stay; conv1's
  // and conv2's outputs, read by no backward, do not
  const block = new ResBlock(3, { generator: new Generator(8) });
  const image = randn([1, 3, 6, 6], { generator: new Generator(9) }).requiresGrad_();
  before = liveBuffers();
  block.forward(image).sum().backward();
  assert.ok(image.grad !== null);
  before = liveBuffers();
  tidy(() => { block.forward(image); assert.is(liveBuffers() - before, 2); });
});

test('chainDisposingUnderNoGrad: frees each intermediate under noGrad, never the input or a passed-through result; nothing with gradients', () => {
  const x = tensor([1, 2, 3]);
  const made: Tensor[] = [];
  const steps = [(t: Tensor) => { const u = t.mul(2); made.push(u); return u; }, (t: Tensor) => t, (t: Tensor) => { const u = t.add(1); made.push(u); return u; }];
  const out = noGrad(() => chainDisposingUnderNoGrad(x, steps));
  assert.equal(Array.from(out.data()), [3, 5, 7]);
  assert.ok(!x.disposed && made[0]!.disposed && !made[1]!.disposed);
  made.length = 0;
  chainDisposingUnderNoGrad(x, steps);
  assert.ok(!made[0]!.disposed, 'gradient recording on: left to the caller');
});

test('attention under noGrad: heads in groups give the same output, to the bit, as all heads at once', () => {
  // batch 2 x 4 heads = 8 score matrices of 32x32 float32 (4 KiB each). One head's products
  // (N² dh = 5120 multiply-adds) are enough work for the same matmul kernel as all heads at once;
  // the kernels sum each output in the same order whatever the batch, which is what makes the
  // grouping exact (a model's heads are far above this size whenever grouping happens)
  const N = 32, dh = 5;
  assert.ok(N * N * dh >= FAST_MATMUL_MIN_WORK);
  const attn = new MultiHeadSelfAttention(12, { heads: 4, headDim: dh, preNorm: true, generator: new Generator(4) });
  const x = randn([2, N, 12], { generator: new Generator(5) });
  const run = (maxScoreBytes: number): number[] => {
    attn.maxScoreBytes = maxScoreBytes;
    return bits(noGrad(() => attn.forward(x)));
  };
  const whole = run(Infinity);
  assert.equal(run(1), whole, 'one head per group');
  assert.equal(run(3 * N * N * 4), whole, 'groups of 3, 3 and 2 heads');
  attn.maxScoreBytes = 1;
  assert.equal(bits(attn.forward(x)), whole, 'with gradients on, all heads at once (same output)');
  // the groups' score matrices are freed as they go: the call leaves only its output behind
  const before = liveBuffers();
  noGrad(() => attn.forward(x));
  assert.is(liveBuffers() - before, 1);
});

test.run();
