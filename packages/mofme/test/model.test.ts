// The network (src/model.ts): shapes for several input sizes, the parameter inventory against
// countParameters and the official counts, sparse vs dense execution, the official-bug switches,
// and the router statistics hook.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, getDefaultBackend, noGrad, randn, tidy, type Tensor } from '@mofme/tensor';
import {
  FmeFfn,
  RouterStats,
  countParameters,
  createModel,
  resolveConfig,
  type ConfigOverrides,
  type MoFME,
} from '../src/index';

const img = (B: number, H: number, W: number, seed = 1): Tensor => randn([B, 3, H, W], { generator: new Generator(seed) }).clamp(-1, 1);
const maxDiff = (a: Tensor, b: Tensor): number => {
  const x = a.data(), y = b.data();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
};
// 16-pixel crops of the tiny preset keep every test here fast; dim 48, depth 2, E = 4, top-2
const tiny = (o: ConfigOverrides = {}) => resolveConfig('tiny', o);

test('output [B, 3, H, W] in [0, 1] for several sizes, and a clear error for sides not multiple of p', () => {
  const m = createModel(tiny(), { seed: 1 }).eval();
  for (const [B, H, W] of [[1, 16, 16], [2, 16, 32], [1, 40, 24]] as const) {
    const { image, routing } = noGrad(() => m.forward(img(B, H, W)));
    assert.equal(image.shape, [B, 3, H, W]);
    assert.ok([...image.data()].every((v) => v >= 0 && v <= 1));
    assert.is(routing.length, 2);
    assert.equal(routing[0]!.weights.shape, [B, (H / 8) * (W / 8), 4]);
  }
  assert.throws(() => m.forward(img(1, 20, 16)), /20x16 is not a multiple of the patch size 8/);
});

test('under noGrad the forward frees its intermediates as it goes: same output and routing to the bit, only the results left', () => {
  // the official sigmoid output (the residual presets zero the last conv: the output would be the input)
  const m = createModel(tiny({ ffn: 'mofme', residualOutput: false }), { seed: 3 }).eval();
  // every head in its own group too (20 tokens: one head's products, 20² x 16, are enough work for
  // the same matmul kernel as all heads at once: nn's memory.test.ts says why that matters)
  for (const block of m.blocks) block.attn.maxScoreBytes = 1;
  const x = img(2, 32, 40, 4);
  const bits = (t: Tensor): string => Array.from(new Uint32Array(Float32Array.from(t.data()).buffer)).join();
  const withGraph = tidy(() => { const o = m.forward(x); return { image: bits(o.image), routing: o.routing.map((r) => bits(r!.weights)) }; });
  const live = (): number => getDefaultBackend().memory().buffers;
  const before = live();
  const out = noGrad(() => m.forward(x));
  // left behind: the image, each block's routing weights, and the clamp/sigmoid's input chain is gone
  assert.is(live() - before, 1 + m.blocks.length);
  assert.is(bits(out.image), withGraph.image);
  assert.equal(out.routing.map((r) => bits(r!.weights)), withGraph.routing);
});

test('countParameters equals the built model for every FFN and preset, and its unused values are the ones without a gradient', () => {
  for (const preset of ['tiny', 'small'] as const) {
    for (const ffn of ['dense', 'moe', 'mofme'] as const) {
      for (const extra of [{}, { officialUnusedParams: true, officialExpertSlots: ffn === 'mofme' }] as ConfigOverrides[]) {
        const c = resolveConfig(preset, { ffn, ...extra, execution: 'dense' }); // dense: every expert runs, so every used tensor gets a gradient
        const m = createModel(c);
        const count = countParameters(c);
        assert.is(m.numParameters(), count.total, `${preset} ${ffn} ${JSON.stringify(extra)}`);
        if (preset === 'small') continue; // the gradient pass is the same code at tiny
        m.forward(img(1, 16, 16)).image.sum().backward();
        const noGradient = m.parameters().filter((p) => p.grad === null).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
        assert.is(noGradient, count.unused, `unused values of ${ffn} ${JSON.stringify(extra)}`);
      }
    }
  }
});

test('paper preset: built parameter totals equal the official ones to the unit', () => {
  const expected: [ConfigOverrides, number][] = [
    [{ ffn: 'dense' }, 8_709_379],
    [{ ffn: 'moe', experts: 4 }, 15_806_475],
    [{ ffn: 'mofme', experts: 4 }, 11_675_403],
  ];
  for (const [o, total] of expected) {
    const c = resolveConfig('paper', o);
    const m = createModel(c);
    assert.is(m.numParameters(), total, JSON.stringify(o));
    assert.is(countParameters(c).total, total, JSON.stringify(o));
  }
});

function compareExecution(o: ConfigOverrides): number {
  const sparse = createModel(tiny({ ...o, execution: 'sparse' }), { seed: 3 }).eval();
  const dense = createModel(tiny({ ...o, execution: 'dense' }), { seed: 3 }).eval();
  const x = img(2, 16, 24, 4);
  const a = noGrad(() => sparse.forward(x));
  const b = noGrad(() => dense.forward(x));
  assert.equal([...a.routing[1]!.indices], [...b.routing[1]!.indices]);
  return maxDiff(a.image, b.image);
}

test('sparse execution (gather / scatter-add) equals dense execution in eval', () => {
  for (const o of [
    { ffn: 'moe' },
    { ffn: 'mofme' },
    { ffn: 'mofme', officialExpertSlots: true },
    { ffn: 'mofme', topkMode: 'softmaxThenZero', topk: 1 },
    { ffn: 'moe', router: 'uar' },
    { ffn: 'mofme', router: 'uar', topk: 3 },
  ] as ConfigOverrides[]) {
    const d = compareExecution(o);
    assert.ok(d < 1e-5, `${JSON.stringify(o)}: max |sparse − dense| = ${d}`);
  }
});

test('router weights from the model: linear rows sum to 1, UaR rows have unit norm', () => {
  const x = img(1, 16, 16, 5);
  for (const router of ['linear', 'uar'] as const) {
    const m = createModel(tiny({ router }), { seed: 2 }).eval();
    for (const r of noGrad(() => m.forward(x)).routing) {
      const w = r!.weights.data();
      for (let t = 0; t < w.length / 4; t++) {
        const row = [...w.slice(t * 4, t * 4 + 4)];
        const v = router === 'linear' ? row.reduce((a, b) => a + b, 0) : Math.hypot(...row);
        assert.ok(Math.abs(v - 1) < 1e-5, `${router} token ${t}: ${row}`);
        assert.is(row.filter((q) => q !== 0).length, 2);
      }
    }
  }
});

test('officialExpertSlots: column 0 weights GELU(h); the last FiLM expert never changes the output', () => {
  const m = createModel(tiny({ officialExpertSlots: true }), { seed: 4 }).eval();
  const ffn = m.blocks.at(0).ffn as FmeFfn;
  const h = randn([3, 48], { generator: new Generator(1) });
  assert.ok(maxDiff(ffn.slot(0, h), h.gelu()) === 0);
  assert.ok(maxDiff(ffn.slot(2, h), ffn.experts.film.at(1).forward(h)) === 0);
  const x = img(1, 16, 16, 6);
  const before = noGrad(() => m.forward(x).image);
  noGrad(() => {
    for (const b of m.blocks) {
      const last = (b.ffn as FmeFfn).experts.film.at(3);
      last.gamma.weight.assign(last.gamma.weight.add(1));
      last.beta.bias!.assign(last.beta.bias!.add(1));
    }
  });
  assert.is(maxDiff(before, noGrad(() => m.forward(x).image)), 0);
  // without the switch the last expert is live
  const fixed = createModel(tiny(), { seed: 4 }).eval();
  const h0 = randn([2, 48], { generator: new Generator(2) });
  assert.ok(maxDiff((fixed.blocks.at(0).ffn as FmeFfn).slot(3, h0), h0.gelu()) > 0);
});

test('officialSharedInit: deepcopy-identical tensors at init, independent afterwards', () => {
  const same = (a: Tensor, b: Tensor) => maxDiff(a, b) === 0;
  const m = createModel(tiny({ officialSharedInit: true }), { seed: 5 });
  const [f0, f1] = [m.blocks.at(0).ffn as FmeFfn, m.blocks.at(1).ffn as FmeFfn];
  assert.ok(same(f0.base.gate.weight, f0.base.value.weight) && same(f1.base.gate.bias!, f1.base.value.bias!));
  assert.ok(same(f0.router.weight, f1.router.weight) && same(f0.shared.fc1.weight, f1.shared.fc1.weight) && same(f0.shared.fc2.bias!, f1.shared.fc2.bias!));
  assert.ok(!same(f0.experts.film.at(0).gamma.weight, f1.experts.film.at(0).gamma.weight));
  noGrad(() => f1.router.weight.assign(f1.router.weight.add(1)));
  assert.ok(!same(f0.router.weight, f1.router.weight));
  const moe = createModel(tiny({ ffn: 'moe', officialSharedInit: true }), { seed: 5 });
  const routers = moe.namedParameters().filter(([n]) => n.endsWith('ffn.router.weight')).map(([, p]) => p);
  assert.ok(same(routers[0]!, routers[1]!));
  const plain = createModel(tiny(), { seed: 5 });
  assert.ok(!same((plain.blocks.at(0).ffn as FmeFfn).base.gate.weight, (plain.blocks.at(0).ffn as FmeFfn).base.value.weight));
});

test('same seed, same model; dropout follows the model generator in training mode', () => {
  const a = createModel(tiny({ dropout: 0.1, residualOutput: false }), { seed: 7 });
  const b = createModel(tiny({ dropout: 0.1, residualOutput: false }), { seed: 7 });
  const x = img(1, 16, 16, 8);
  assert.is(maxDiff(noGrad(() => a.forward(x).image), noGrad(() => b.forward(x).image)), 0);
  // training mode: fresh masks on every call; eval: deterministic
  assert.ok(maxDiff(noGrad(() => a.forward(x).image), noGrad(() => a.forward(x).image)) > 0);
  a.eval();
  assert.is(maxDiff(noGrad(() => a.forward(x).image), noGrad(() => a.forward(x).image)), 0);
});

test('router statistics: per layer and task, mean weight, top-k share (sums to k), entropy ≤ log k', () => {
  const m: MoFME = createModel(tiny(), { seed: 9 }).eval();
  const stats = new RouterStats();
  stats.update(noGrad(() => m.forward(img(2, 16, 16, 10))).routing, ['rain', 'snow']);
  stats.update(noGrad(() => m.forward(img(1, 16, 16, 11))).routing, ['rain']);
  const s = stats.summary();
  assert.equal(s.map((r) => `${r.layer}/${r.task}/${r.tokens}`), ['0/rain/8', '0/snow/4', '1/rain/8', '1/snow/4']);
  for (const r of s) {
    assert.ok(Math.abs(r.topkShare.reduce((a, b) => a + b, 0) - 2) < 1e-12);
    assert.ok(Math.abs(r.meanWeight.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.ok(r.entropy > 0 && r.entropy <= Math.log(2) + 1e-9);
  }
});

test('residualOutput: a zero correction returns the input; off, the output is the official sigmoid', () => {
  const config = resolveConfig('tiny', { imageSize: 16 } as never);
  assert.is(config.residualOutput, true);
  assert.is(resolveConfig('paper').residualOutput, false);
  // the tail's last convolution starts at zero: the untrained network is the identity
  const model = createModel(config, { seed: 3 });
  assert.ok(model.tail.out.weight.data().every((v) => v === 0));
  const x01 = randn([1, 3, 16, 16], { generator: new Generator(1) }).sigmoid(); // an image in (0, 1)
  const y = noGrad(() => model.forward(x01.mul(2).sub(1)).image);
  const a = y.data(), b = x01.data();
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6, `pixel ${i}: ${a[i]} vs ${b[i]}`);
  // the same model with the official output: sigmoid(0) = 0.5 everywhere
  const official = createModel({ ...config, residualOutput: false }, { seed: 3 });
  noGrad(() => { official.tail.out.weight.assign(official.tail.out.weight.mul(0)); official.tail.out.bias!.assign(official.tail.out.bias!.mul(0)); });
  const z = noGrad(() => official.forward(x01.mul(2).sub(1)).image).data();
  assert.ok(z.every((v) => Math.abs(v - 0.5) < 1e-7));
});

test.run();
