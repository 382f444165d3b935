// Gradient checks (float64, central differences) of the layers this package adds on top of the
// engine: the FME layer (dense and sparse execution, both slot modes), the UaR with fixed dropout
// masks (a fresh generator with the same seed on every evaluation), and the MoE layer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, randn, type Tensor } from '@mofme/tensor';
import { assertGradcheck } from '@mofme/tensor/testing';
import { functionalCall, withInitDefaults } from '@mofme/nn';
import { FmeFfn, MoeFfn, ffnOptionsOf, resolveConfig, uarRoute, defaultUar, type ConfigOverrides } from '../src/index';

// D = 6, F = 8, E = 3, top-2: a few hundred finite differences per check
const cfg = (o: ConfigOverrides) =>
  resolveConfig('tiny', { dim: 6, mlpHidden: 8, experts: 3, topk: 2, dropout: 0, ...o });
const g64 = (shape: number[], seed: number): Tensor => randn(shape, { dtype: 'float64', generator: new Generator(seed) });

function checkLayer(kind: 'mofme' | 'moe', o: ConfigOverrides, names: string[]): void {
  const c = cfg({ ffn: kind, ...o });
  const rng = new Generator(11);
  const layer = withInitDefaults({ dtype: 'float64', generator: rng }, () => (kind === 'mofme' ? new FmeFfn(ffnOptionsOf(c, rng)) : new MoeFfn(ffnOptionsOf(c, rng))));
  const params = Object.fromEntries(layer.namedParameters());
  const t = g64([1, 4, 6], 1);
  const fn = (x: Tensor, ...ws: Tensor[]): Tensor => {
    rng.manualSeed(42); // the same MC-dropout masks on every evaluation
    return functionalCall(layer, Object.fromEntries(names.map((n, i) => [n, ws[i]!])), () => layer.apply(x).y);
  };
  assertGradcheck(fn, [t, ...names.map((n) => params[n]!)]);
}

test('gradcheck: FME layer, sparse and dense execution', () => {
  const names = ['router.weight', 'norm.weight', 'base.gate.weight', 'base.value.bias', 'experts.film.0.gamma.weight', 'experts.film.2.beta.bias', 'shared.fc1.weight', 'shared.fc2.bias'];
  checkLayer('mofme', { execution: 'sparse' }, names);
  checkLayer('mofme', { execution: 'dense', topkMode: 'softmaxThenZero' }, names);
  checkLayer('mofme', { execution: 'sparse', officialExpertSlots: true }, ['router.weight', 'experts.film.0.gamma.weight', 'shared.fc1.weight']);
});

test('gradcheck: MoE layer, sparse and dense execution', () => {
  const names = ['router.weight', 'router.bias', 'experts.0.norm.weight', 'experts.1.fc1.weight', 'experts.2.fc2.bias'];
  checkLayer('moe', { execution: 'sparse' }, names);
  checkLayer('moe', { execution: 'dense' }, names);
});

test('gradcheck: UaR router (fixed dropout masks), every numerator / top-k / sign option', () => {
  const t = g64([1, 5, 4], 2), W = g64([3, 4], 3), b = g64([3], 4);
  for (const numerator of ['clean', 'sampleAverage'] as const) {
    for (const topk of ['afterCalibration', 'beforeCalibration'] as const) {
      for (const sign of ['keep', 'abs'] as const) {
        for (const dropoutPlace of ['input', 'logits'] as const) {
          const u = { ...defaultUar, numerator, topk, sign, dropoutPlace, dropout: 0.3 };
          assertGradcheck((x, w, bb) => uarRoute(x, w, bb, 2, u, new Generator(5)).weights, [t, W, b]);
        }
      }
    }
  }
});

test('gradcheck: FME and MoE layers with the UaR inside', () => {
  checkLayer('mofme', { router: 'uar', uar: { dropout: 0.3 } }, ['router.weight', 'router.bias', 'base.gate.weight', 'experts.film.1.gamma.weight']);
  checkLayer('moe', { router: 'uar', uar: { dropout: 0.3, dropoutPlace: 'logits' } }, ['router.weight', 'experts.0.fc1.weight']);
  assert.ok(true);
});

test.run();
