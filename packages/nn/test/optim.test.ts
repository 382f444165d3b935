// Optimisers against closed-form update sequences computed independently here, parameter
// groups, exact resumption from a saved state, schedules, clipping, and training a small MLP.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, mseLoss, tensor, tidy, type Tensor } from '@mofme/tensor';
import { assertAllClose } from '@mofme/tensor/testing';
import {
  Adam, AdamW, SGD, Linear, Module, Tanh, GELU, Sequential, LRScheduler, clipGradNorm, clipGradValue,
  constantSchedule, warmupCosineSchedule, flattenOptimizerState, unflattenOptimizerState, parseSafetensors,
  serializeSafetensors, withInitDefaults, type Optimizer, type BaseHyper,
} from '../src/index';

// The fixed problem: f(p) = sum(c p^2 / 2 + d p), so grad = c p + d (computed by autodiff in the
// optimiser tests, by hand in the references).
const C = [1, 3, 0.5], D = [0.2, -1, 0.7], P0 = [1, -2, 0.5];
const gradOf = (p: number[]): number[] => p.map((v, i) => C[i]! * v + D[i]!);

function runOptimizer(make: (p: Tensor) => Optimizer<BaseHyper>, steps: number): number[][] {
  const p = tensor(P0, { dtype: 'float64', requiresGrad: true });
  const opt = make(p);
  const c = tensor(C, { dtype: 'float64' }), d = tensor(D, { dtype: 'float64' });
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    p.mul(p).mul(c).mul(0.5).add(p.mul(d)).sum().backward();
    opt.step();
    out.push(Array.from(p.data()));
  }
  return out;
}

/** Adam / AdamW written out per coordinate, from the papers (PyTorch's arrangement of eps). */
function refAdam(o: { lr: number; b1: number; b2: number; eps: number; wd: number; decoupled: boolean; amsgrad: boolean }, steps: number): number[][] {
  let p = [...P0];
  const m = [0, 0, 0], v = [0, 0, 0], vmax = [0, 0, 0];
  const out: number[][] = [];
  for (let t = 1; t <= steps; t++) {
    const g0 = gradOf(p);
    p = p.map((pi, i) => {
      let g = g0[i]!;
      let q = pi;
      if (o.decoupled) q = pi * (1 - o.lr * o.wd);
      else g = g + o.wd * pi;
      m[i] = o.b1 * m[i]! + (1 - o.b1) * g;
      v[i] = o.b2 * v[i]! + (1 - o.b2) * g * g;
      vmax[i] = Math.max(vmax[i]!, v[i]!);
      const mhat = m[i]! / (1 - o.b1 ** t);
      const vv = o.amsgrad ? vmax[i]! : v[i]!;
      return q - (o.lr * mhat) / (Math.sqrt(vv) / Math.sqrt(1 - o.b2 ** t) + o.eps);
    });
    out.push(p);
  }
  return out;
}

const closeSeq = (a: number[][], e: number[][], label: string): void => assertAllClose(a.flat(), e.flat(), { atol: 1e-12, rtol: 1e-10, label });

test('Adam (L2 weight decay) matches the closed-form update sequence', () => {
  const o = { lr: 0.1, b1: 0.9, b2: 0.99, eps: 1e-8, wd: 0.05, decoupled: false, amsgrad: false };
  closeSeq(runOptimizer((p) => new Adam([p], { lr: o.lr, betas: [o.b1, o.b2], eps: o.eps, weightDecay: o.wd }), 8), refAdam(o, 8), 'Adam');
});

test('AdamW (decoupled decay) and AMSGrad match the closed form', () => {
  const o = { lr: 0.05, b1: 0.8, b2: 0.95, eps: 1e-6, wd: 0.1, decoupled: true, amsgrad: false };
  closeSeq(runOptimizer((p) => new AdamW([p], { lr: o.lr, betas: [o.b1, o.b2], eps: o.eps, weightDecay: o.wd }), 8), refAdam(o, 8), 'AdamW');
  const a = { ...o, amsgrad: true, lr: 0.3 };
  closeSeq(runOptimizer((p) => new AdamW([p], { lr: a.lr, betas: [a.b1, a.b2], eps: a.eps, weightDecay: a.wd, amsgrad: true }), 10), refAdam(a, 10), 'AdamW amsgrad');
});

test('SGD: plain, momentum with dampening, Nesterov, weight decay', () => {
  const ref = (lr: number, mu: number, damp: number, nesterov: boolean, wd: number, steps: number): number[][] => {
    let p = [...P0];
    let buf: number[] | null = null;
    const out: number[][] = [];
    for (let t = 0; t < steps; t++) {
      const g = gradOf(p).map((gi, i) => gi + wd * p[i]!);
      let d = g;
      if (mu) {
        buf = buf ? buf.map((b, i) => mu * b + (1 - damp) * g[i]!) : [...g];
        d = nesterov ? g.map((gi, i) => gi + mu * buf![i]!) : buf;
      }
      p = p.map((pi, i) => pi - lr * d[i]!);
      out.push(p);
    }
    return out;
  };
  closeSeq(runOptimizer((p) => new SGD([p], { lr: 0.1 }), 5), ref(0.1, 0, 0, false, 0, 5), 'SGD');
  closeSeq(runOptimizer((p) => new SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.01 }), 6), ref(0.1, 0.9, 0.1, false, 0.01, 6), 'SGD momentum');
  closeSeq(runOptimizer((p) => new SGD([p], { lr: 0.05, momentum: 0.8, nesterov: true }), 6), ref(0.05, 0.8, 0, true, 0, 6), 'SGD nesterov');
  assert.throws(() => new SGD([], { lr: 1, nesterov: true }), /Nesterov/);
});

test('parameter groups carry their own lr and weight decay', () => {
  const a = tensor([1], { dtype: 'float64', requiresGrad: true }), b = tensor([1], { dtype: 'float64', requiresGrad: true });
  const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.5, weightDecay: 1 }], { lr: 0.1 });
  a.add(b).sum().backward(); // both gradients 1
  opt.step();
  assert.equal(Array.from(a.data()), [1 - 0.1 * 1]);
  assert.equal(Array.from(b.data()), [1 - 0.5 * (1 + 1 * 1)]);
  assert.equal(opt.paramGroups.map((g) => g.lr), [0.1, 0.5]);
  assert.throws(() => new SGD([{ params: [a] }, { params: [a] }], { lr: 1 }), /more than one group/);
});

// ---- training a small MLP ----

class Mlp extends Module {
  readonly net: Sequential;
  constructor(width: number) {
    super();
    this.net = this.child('net', new Sequential(new Linear(1, width), new Tanh(), new Linear(width, width), new GELU(), new Linear(width, 1)));
  }
  forward(x: Tensor): Tensor {
    return this.net.forward(x);
  }
}

/** y = sin(2x) + 0.5 cos(5x) on [-2, 2]: two frequencies, not fit by a straight line or one bump. */
const xs = Array.from({ length: 64 }, (_, i) => -2 + (4 * i) / 63);
const X = tensor(xs.map((v) => [v]));
const Y = tensor(xs.map((v) => [Math.sin(2 * v) + 0.5 * Math.cos(5 * v)]));

function train(model: Mlp, opt: Optimizer<BaseHyper>, steps: number, sched?: LRScheduler): number {
  let loss = Infinity;
  for (let s = 0; s < steps; s++) {
    loss = tidy(() => {
      const l = mseLoss(model.forward(X), Y);
      opt.zeroGrad();
      l.backward();
      clipGradNorm(model.parameters(), 10);
      opt.step();
      sched?.step();
      return l.item();
    });
  }
  return loss;
}

test('AdamW with warmup + cosine fits y = sin(2x) + cos(5x)/2 below 0.01 MSE in 300 steps', () => {
  const model = withInitDefaults({ generator: new Generator(1) }, () => new Mlp(32));
  const initial = mseLoss(model.forward(X), Y).item();
  const opt = new AdamW(model.parameters(), { lr: 0.02, weightDecay: 1e-4 });
  const sched = new LRScheduler(opt, warmupCosineSchedule({ warmup: 30, total: 300, minFactor: 0.05 }));
  const loss = train(model, opt, 300, sched);
  assert.ok(loss < 0.01, `final loss ${loss} (initial ${initial})`);
});

test('SGD with Nesterov momentum fits the same function below 0.05 MSE in 300 steps', () => {
  const model = withInitDefaults({ generator: new Generator(2) }, () => new Mlp(32));
  const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true });
  const loss = train(model, opt, 300);
  assert.ok(loss < 0.05, `final loss ${loss}`);
});

test('resuming from a saved optimiser + scheduler state continues exactly', () => {
  const build = (): { model: Mlp; opt: AdamW; sched: LRScheduler } => {
    const model = withInitDefaults({ generator: new Generator(3) }, () => new Mlp(8));
    const opt = new AdamW([{ params: model.parameters().filter((p) => p.ndim > 1) }, { params: model.parameters().filter((p) => p.ndim === 1), weightDecay: 0 }], { lr: 0.01, amsgrad: true });
    return { model, opt, sched: new LRScheduler(opt, warmupCosineSchedule({ warmup: 3, total: 10 })) };
  };
  const straight = build();
  train(straight.model, straight.opt, 6, straight.sched);

  const first = build();
  train(first.model, first.opt, 3, first.sched);
  // through a safetensors file's bytes, as a checkpoint would go
  const flat = flattenOptimizerState(first.opt.stateDict());
  const bytes = serializeSafetensors({ ...first.model.stateDict(), ...Object.fromEntries(Object.entries(flat.tensors).map(([k, v]) => [`optim.${k}`, v])) }, { optimizer: flat.metadata, scheduler: JSON.stringify(first.sched.stateDict()) });
  const loaded = parseSafetensors(bytes);
  const second = build();
  const modelPart = Object.fromEntries(Object.entries(loaded.tensors).filter(([k]) => !k.startsWith('optim.')));
  const optimPart = Object.fromEntries(Object.entries(loaded.tensors).filter(([k]) => k.startsWith('optim.')).map(([k, v]) => [k.slice(6), v]));
  second.model.loadStateDict(modelPart);
  second.opt.loadStateDict(unflattenOptimizerState(optimPart, loaded.metadata.optimizer!));
  second.sched.loadStateDict(JSON.parse(loaded.metadata.scheduler!));
  train(second.model, second.opt, 3, second.sched);

  for (const [[name, a], [, b]] of straight.model.namedParameters().map((e, i) => [e, second.model.namedParameters()[i]!] as const)) {
    assert.equal(Array.from(b.data()), Array.from(a.data()), name);
  }
  assert.equal(second.opt.paramGroups.map((g) => g.lr), straight.opt.paramGroups.map((g) => g.lr));
  assert.is(second.opt.lrFactor, straight.opt.lrFactor);
});

test('warmup + cosine schedule factors; per-step clock in epochs; constant; the optimiser applies the factor', () => {
  const s = warmupCosineSchedule({ warmup: 4, total: 14, minFactor: 0.1 });
  const close = (a: number, e: number): void => assert.ok(Math.abs(a - e) < 1e-12, `${a} vs ${e}`);
  close(s(0), 0);
  close(s(2), 0.5);
  close(s(4), 1);
  close(s(9), 0.1 + 0.9 * 0.5); // halfway down the cosine
  close(s(14), 0.1);
  close(s(100), 0.1);
  close(warmupCosineSchedule({ warmup: 0, total: 10, minFactor: 0.5 })(10), 0.5);
  assert.throws(() => warmupCosineSchedule({ warmup: 0, total: 10, minFactor: 2 }), /minFactor must be in \[0, 1\], got 2/);
  const p = tensor([1], { requiresGrad: true });
  const opt = new SGD([p], { lr: 2 });
  const epochs = new LRScheduler(opt, warmupCosineSchedule({ warmup: 1, total: 3 }), { stepsPerEpoch: 4 });
  assert.is(opt.lrFactor, 0);
  for (let i = 0; i < 2; i++) epochs.step();
  close(opt.lrFactor, 0.5); // half an epoch into a 1-epoch warmup
  for (let i = 0; i < 6; i++) epochs.step();
  close(opt.lrFactor, 0.5); // epoch 2 of 3: cosine halfway
  assert.is(opt.paramGroups[0]!.lr, 2); // the group keeps the rate it was given
  // the update uses lr x factor: SGD moves p by 2 * 0.5 * grad (grad of p is 1)
  p.sum().backward();
  opt.step();
  close(p.data()[0]!, 1 - 2 * 0.5);
  new LRScheduler(opt, constantSchedule()).step();
  assert.is(opt.lrFactor, 1);
});

test('clipGradNorm scales by maxNorm/|g| and returns |g|; clipGradValue clamps', () => {
  const a = tensor([0, 0], { requiresGrad: true }), b = tensor([0], { requiresGrad: true });
  a.mul(tensor([3, 0])).sum().add(b.mul(tensor([4])).sum()).backward(); // grads [3, 0] and [4]: |g| = 5
  const norm = clipGradNorm([a, b], 1);
  assert.ok(Math.abs(norm - 5) < 1e-6);
  assertAllClose(Array.from(a.grad!.data()), [0.6, 0], { atol: 1e-6 });
  assertAllClose(Array.from(b.grad!.data()), [0.8], { atol: 1e-6 });
  assert.ok(Math.abs(clipGradNorm([a, b], 10) - 1) < 1e-5); // under the cap: unchanged
  assertAllClose(Array.from(a.grad!.data()), [0.6, 0], { atol: 1e-6 });
  assert.ok(Math.abs(clipGradNorm([a, b], 100, { normType: 'inf' }) - 0.8) < 1e-6);
  clipGradValue([a, b], 0.7);
  assertAllClose(Array.from(a.grad!.data()), [0.6, 0], { atol: 1e-6 });
  assertAllClose(Array.from(b.grad!.data()), [0.7], { atol: 1e-6 });
  // gradients shared by two leaves (a + b hands both the same tensor) are clipped once, not twice
  const c = tensor([3], { requiresGrad: true }), d = tensor([4], { requiresGrad: true });
  c.add(d).mul(tensor([2])).sum().backward();
  clipGradNorm([c, d], 1);
  assertAllClose([c.grad!.item(), d.grad!.item()], [Math.SQRT1_2, Math.SQRT1_2], { atol: 1e-6 });
});

test('a tidy training step leaves the number of live buffers unchanged (no leaks in optimiser state)', () => {
  const model = withInitDefaults({ generator: new Generator(4) }, () => new Mlp(8));
  const backend = model.parameters()[0]!.backend;
  for (const make of [
    () => new AdamW(model.parameters(), { lr: 0.01, amsgrad: true }),
    () => new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 }),
  ]) {
    const opt = make();
    const step = (): void => tidy(() => {
      const l = mseLoss(model.forward(X), Y);
      opt.zeroGrad();
      l.backward();
      clipGradNorm(model.parameters(), 0.1);
      opt.step();
    });
    step();
    step(); // state and gradients now exist
    const live = backend.memory().buffers;
    for (let i = 0; i < 3; i++) step();
    assert.is(backend.memory().buffers, live);
  }
});

test.run();
