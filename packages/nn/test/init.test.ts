// Initialisers: PyTorch-default bounds per layer, the statistics of each distribution, and
// determinism under a seeded generator.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, tensor } from '@mofme/tensor';
import { Conv2d, LayerNorm, GroupNorm, Linear, init, withInitDefaults, fans } from '../src/index';

const stats = (v: ArrayLike<number>): { min: number; max: number; mean: number; std: number } => {
  const a = Array.from(v);
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length);
  return { min: Math.min(...a), max: Math.max(...a), mean, std };
};

test('fans follow PyTorch: [out, in, ...kernel]', () => {
  assert.equal(fans([8, 3]), { fanIn: 3, fanOut: 8 });
  assert.equal(fans([8, 3, 3, 3]), { fanIn: 27, fanOut: 72 });
  assert.equal(fans([5]), { fanIn: 5, fanOut: 5 });
});

test('Linear and Conv2d defaults: weights and biases U(+-1/sqrt(fan_in)), uniform variance', () => {
  const g = new Generator(1);
  const lin = new Linear(64, 128, { generator: g });
  const bound = 1 / Math.sqrt(64);
  const w = stats(lin.weight.data());
  assert.ok(w.min >= -bound && w.max <= bound && w.max > 0.95 * bound && w.min < -0.95 * bound, JSON.stringify(w));
  assert.ok(Math.abs(w.std - bound / Math.sqrt(3)) < 0.03 * bound, `std ${w.std}`); // U(-b, b): std b/sqrt(3)
  assert.ok(Math.abs(w.mean) < 0.02 * bound);
  const b = stats(lin.bias!.data());
  assert.ok(b.min >= -bound && b.max <= bound);
  const conv = new Conv2d(8, 16, 3, { groups: 2, generator: g });
  const cb = 1 / Math.sqrt(4 * 9); // fan_in = in/groups * kh * kw
  const cw = stats(conv.weight.data());
  assert.ok(cw.min >= -cb && cw.max <= cb && cw.max > 0.9 * cb, JSON.stringify(cw));
  assert.ok(stats(conv.bias!.data()).max <= cb);
});

test('norm layers start as pure normalisers: weight 1, bias 0', () => {
  const ln = new LayerNorm(6), gn = new GroupNorm(2, 4);
  assert.ok(Array.from(ln.weight!.data()).every((v) => v === 1));
  assert.ok(Array.from(ln.bias!.data()).every((v) => v === 0));
  assert.ok(Array.from(gn.weight!.data()).every((v) => v === 1));
  assert.ok(Array.from(gn.bias!.data()).every((v) => v === 0));
});

test('xavier, kaiming-normal and truncated normal have the documented spread', () => {
  const opts = { generator: new Generator(3) };
  const xu = stats(init.xavierUniform([100, 200], opts).data());
  const xb = Math.sqrt(6 / 300);
  assert.ok(xu.max <= xb && xu.min >= -xb && Math.abs(xu.std - xb / Math.sqrt(3)) < 0.02 * xb);
  const xn = stats(init.xavierNormal([100, 200], opts).data());
  assert.ok(Math.abs(xn.std - Math.sqrt(2 / 300)) < 0.02 * Math.sqrt(2 / 300));
  const kn = stats(init.kaimingNormal([200, 100], { ...opts, nonlinearity: 'relu' }).data());
  assert.ok(Math.abs(kn.std - Math.sqrt(2 / 100)) < 0.02 * Math.sqrt(2 / 100), `kaiming std ${kn.std}`);
  const tn = stats(init.truncNormal([20000], { ...opts, std: 0.02 }).data());
  assert.ok(Math.abs(tn.std - 0.02) < 0.001 && tn.max <= 2 && tn.min >= -2);
  // a tight truncation: N(0,1) cut to [-1, 1] has std 0.5396
  const tight = stats(init.truncNormal([20000], { ...opts, a: -1, b: 1 }).data());
  assert.ok(tight.max <= 1 && tight.min >= -1 && Math.abs(tight.std - 0.5396) < 0.01, `${tight.std}`);
  assert.throws(() => init.truncNormal([3], { a: 10, b: 11 }), /would not end/);
});

test('in-place forms keep dtype and backend; withInitDefaults makes construction deterministic', () => {
  const p = tensor([[0, 0], [0, 0]], { dtype: 'float64' });
  init.truncNormal_(p, { std: 0.02, generator: new Generator(1) });
  assert.is(p.dtype, 'float64');
  assert.ok(Array.from(p.data()).some((v) => v !== 0));
  init.zeros_(p);
  assert.equal(Array.from(p.data()), [0, 0, 0, 0]);
  init.constant_(p, 3);
  assert.equal(Array.from(p.data()), [3, 3, 3, 3]);
  const build = (seed: number): number[] => Array.from(withInitDefaults({ generator: new Generator(seed), dtype: 'float64' }, () => new Linear(3, 3)).weight.data());
  assert.equal(build(7), build(7));
  assert.not.equal(build(7), build(8));
  assert.is(withInitDefaults({ dtype: 'float64' }, () => new Linear(2, 2)).weight.dtype, 'float64');
});

test.run();
