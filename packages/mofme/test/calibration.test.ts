// Router calibration (src/calibration.ts): the reliability bins, ECE and swap test on a hand-made
// set of tokens whose answers are worked out below, the patch losses on a hand-computed image, and
// the counterfactual forwards against a second network that routes every token to one expert by
// its own router (no override involved), so the "loss under expert e" is checked independently.
// The networks use the sigmoid output: the tiny preset's residual output starts as the identity
// (zero last convolution), whose output would not depend on the routing at all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rand, tensor, zeros } from '@mofme/tensor';
import { calibrationReport, createModel, measureCalibration, patchLosses, resolveConfig, tokenCounterfactuals, withRoutingOverride } from '../src/index';

const near = (a: number, b: number, tol = 1e-12, what = ''): void => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

// Five tokens, E = 3, two bins ([0, .5) and [.5, 1]):
//   token  weights          confidence  top  losses    best  correct  swap (chosen -> swapped)
//   t0     [.9  .1  0]      .9          0    [1 2 3]   0     yes      1 -> 3   (+2)
//   t1     [.8  .2  0]      .8          0    [3 1 2]   1     no       2 -> 2   ( 0)
//   t2     [-.6 .2 .2]      .6 (|w|)    0    [0 1 1]   0     yes      1 -> 0   (-1)
//   t3     [.4  .3 .3]      .4          0    [2 1 3]   1     no       1 -> 4   (+3)
//   t4     [.2  .4 .4]      .4          1    [1 0 0]   1     yes      1 -> 1   ( 0)   (ties: lower index)
// bin 0: t3, t4 -> confidence .4, accuracy .5, swap +1.5
// bin 1: t0, t1, t2 -> confidence 2.3/3, accuracy 2/3, swap +1/3
// ECE = 2/5·|.5 − .4| + 3/5·|2/3 − 2.3/3| = .04 + .06 = .10; accuracy 3/5; mean confidence 3.1/5;
// swap increase (2 + 0 − 1 + 3 + 0)/5 = .8; swapping hurt 2 of 5 tokens.
test('calibrationReport on hand-made tokens: bins, ECE, accuracy and the swap test', () => {
  const r = calibrationReport({
    experts: 3,
    weights: [0.9, 0.1, 0, 0.8, 0.2, 0, -0.6, 0.2, 0.2, 0.4, 0.3, 0.3, 0.2, 0.4, 0.4],
    expertLoss: [1, 2, 3, 3, 1, 2, 0, 1, 1, 2, 1, 3, 1, 0, 0],
    chosenLoss: [1, 2, 1, 1, 1],
    swappedLoss: [3, 2, 0, 4, 1],
  }, 2);
  assert.is(r.tokens, 5);
  assert.equal(r.bins.map((b) => b.tokens), [2, 3]);
  near(r.bins[0]!.confidence, 0.4, 1e-12, 'bin 0 confidence');
  near(r.bins[0]!.accuracy, 0.5, 1e-12, 'bin 0 accuracy');
  near(r.bins[0]!.swapIncrease, 1.5, 1e-12, 'bin 0 swap');
  near(r.bins[1]!.confidence, 2.3 / 3, 1e-12, 'bin 1 confidence');
  near(r.bins[1]!.accuracy, 2 / 3, 1e-12, 'bin 1 accuracy');
  near(r.bins[1]!.swapIncrease, 1 / 3, 1e-12, 'bin 1 swap');
  near(r.ece, 0.1, 1e-12, 'ECE');
  near(r.accuracy, 0.6, 1e-12, 'accuracy');
  near(r.chance, 1 / 3, 1e-12, 'chance');
  near(r.meanConfidence, 0.62, 1e-12, 'mean confidence');
  near(r.swapIncrease, 0.8, 1e-12, 'swap');
  near(r.swapHurts, 0.4, 1e-12, 'swap hurts');
});

test('calibrationReport: a router that always names the best expert with full confidence has ECE 0; without the swap test those fields are NaN', () => {
  const r = calibrationReport({ experts: 2, weights: [1, 0, 0, 1, 1, 0], expertLoss: [0, 1, 5, 2, 0, 3] }, 10);
  near(r.ece, 0, 0, 'ECE');
  near(r.accuracy, 1, 0, 'accuracy');
  assert.ok(Number.isNaN(r.swapIncrease) && Number.isNaN(r.bins[9]!.swapIncrease));
  assert.equal(r.bins.map((b) => b.tokens), [0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
  assert.throws(() => calibrationReport({ experts: 2, weights: [1, 0, 0], expertLoss: [0, 1] }), /must both be \[T, 2\]/);
});

test('patchLosses: the mean squared error of each patch, over channels, on a hand-computed image', () => {
  // one channel, 4x4, target = 0..15 row-major, output 0: patch (0,0) holds 0,1,4,5 -> (0+1+16+25)/4
  const target = tensor(Float64Array.from({ length: 16 }, (_, i) => i), { shape: [1, 1, 4, 4], dtype: 'float64' });
  const l = [...patchLosses(zeros([1, 1, 4, 4], { dtype: 'float64' }), target, 2)];
  assert.equal(l, [42 / 4, (4 + 9 + 36 + 49) / 4, (64 + 81 + 144 + 169) / 4, (100 + 121 + 196 + 225) / 4]);
});

test('withRoutingOverride replaces the routing only inside its scope, counting router calls per block', () => {
  const model = createModel(resolveConfig('tiny', { imageSize: 16, experts: 3, topk: 2, residualOutput: false }), { seed: 2 }).eval();
  const x = rand([1, 3, 16, 16]).mul(2).sub(1);
  const calls: number[] = [];
  const a = [...withRoutingOverride((r, call) => (calls.push(call), r), () => model.forward(x)).image.data()];
  assert.equal(calls, [0, 1]); // depth 2: one router call per block
  assert.equal(a, [...model.forward(x).image.data()]); // identity override = plain forward
});

test('tokenCounterfactuals: the loss under expert e equals a network whose own router sends every token to e', () => {
  const config = resolveConfig('tiny', { depth: 1, imageSize: 16, experts: 3, topk: 2, residualOutput: false });
  const model = createModel(config, { seed: 4 }).eval();
  const x = rand([2, 3, 16, 16]).mul(2).sub(1);
  const target = rand([2, 3, 16, 16]);
  const cf = tokenCounterfactuals(model, x, target, 0, 1);
  assert.is(cf.tokens, 2 * 4);
  assert.is(cf.experts, 3);
  for (let e = 0; e < 3; e++) {
    // same weights, but router weight 0 and bias 1000 at e: softmax over the kept logits gives e
    // weight 1 (e^-1000 underflows to 0 for the other kept expert)
    const forced = createModel(config, { seed: 4 }).eval();
    const sd = model.stateDict();
    const name = Object.keys(sd).find((n) => n.endsWith('router.weight'))!;
    const bias = name.replace(/weight$/, 'bias');
    sd[name] = zeros(sd[name]!.shape, { dtype: sd[name]!.dtype });
    sd[bias] = tensor(Float32Array.from([0, 1, 2], (i) => (i === e ? 1000 : 0)), { shape: [3] });
    forced.loadStateDict(sd);
    const want = patchLosses(forced.forward(x).image, target, 8);
    for (let t = 0; t < cf.tokens; t++) near(cf.expertLoss[t * 3 + e]!, want[t]!, 1e-6, `token ${t} expert ${e}`);
  }
  // and the experts do differ, so the comparison above says something
  assert.ok(cf.expertLoss[0] !== cf.expertLoss[1] && cf.expertLoss[1] !== cf.expertLoss[2]);
  // the chosen loss is the plain forward's; the swap test runs only where E >= 2k (here 3 < 4)
  const plain = patchLosses(model.forward(x).image, target, 8);
  cf.chosenLoss.forEach((v, t) => near(v, plain[t]!, 0, `chosen ${t}`));
  assert.is(cf.swappedLoss, null);
});

test('tokenCounterfactuals: the swap test moves each token to unchosen experts (E = 4, k = 2), and a dense model is refused', () => {
  const model = createModel(resolveConfig('tiny', { imageSize: 16, experts: 4, topk: 2, residualOutput: false }), { seed: 5 }).eval();
  const x = rand([1, 3, 16, 16]).mul(2).sub(1);
  const cf = tokenCounterfactuals(model, x, rand([1, 3, 16, 16]), 1, 3);
  assert.ok(cf.swappedLoss && cf.swappedLoss.length === 4);
  assert.ok(cf.swappedLoss.some((v, t) => v !== cf.chosenLoss[t]), 'a swap changes the output');
  const dense = createModel(resolveConfig('tiny', { imageSize: 16, ffn: 'dense' }), { seed: 5 }).eval();
  assert.throws(() => tokenCounterfactuals(dense, x, rand([1, 3, 16, 16]), 0), /no router/);
});

test('measureCalibration: batching the windows gives the same reliability as one batch; pooled = both blocks', () => {
  const model = createModel(resolveConfig('tiny', { imageSize: 16, experts: 4, topk: 2, residualOutput: false }), { seed: 6 }).eval();
  const x = rand([3, 3, 16, 16]).mul(2).sub(1), target = rand([3, 3, 16, 16]);
  const m = measureCalibration(model, x, target, 2); // batches of 2 and 1 windows
  assert.is(m.blocks.length, 2);
  for (let layer = 0; layer < 2; layer++) {
    const whole = calibrationReport(tokenCounterfactuals(model, x, target, layer));
    assert.is(m.blocks[layer]!.tokens, 12);
    near(m.blocks[layer]!.accuracy, whole.accuracy, 0, `accuracy ${layer}`);
    near(m.blocks[layer]!.ece, whole.ece, 1e-6, `ECE ${layer}`); // float32 weights: batch-dependent rounding
  }
  assert.is(m.pooled.tokens, 24);
  near(m.pooled.accuracy, (m.blocks[0]!.accuracy + m.blocks[1]!.accuracy) / 2, 1e-12, 'pooled accuracy');
});

test.run();
