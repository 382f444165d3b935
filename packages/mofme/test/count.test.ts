// Parameter and FLOP counts. The expected numbers come from independent sources: the research notes
// (mofme-paper.md §1.3 and §10, the official models' totals as built in PyTorch) and the official
// state-dict tables transcribed in fixtures/official-state-dicts.ts, never from running count.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  countFlops,
  countParameters,
  mofmeParameterSaving,
  createModel,
  numel,
  resolveConfig,
  type MofmeConfig,
} from '../src/index';
import { officialDenseKeys, officialMofmeE4Keys, officialMoeE4Keys, type OfficialEntry } from './fixtures/official-state-dicts';

const paper = (ffn: MofmeConfig['ffn'], experts = 4, topk = 2) => resolveConfig('paper', { ffn, experts, topk });
const sumShapes = (rows: readonly OfficialEntry[]) => rows.reduce((s, [, shape]) => s + numel(shape), 0);

test('paper preset: official totals to the unit (mofme-paper.md §10)', () => {
  assert.is(countParameters(paper('dense')).total, 8_709_379);
  assert.is(countParameters(paper('moe', 4)).total, 15_806_475);
  assert.is(countParameters(paper('moe', 8)).total, 25_268_243);
  assert.is(countParameters(paper('moe', 16)).total, 44_191_779);
  assert.is(countParameters(paper('mofme', 4)).total, 11_675_403);
  assert.is(countParameters(paper('mofme', 8)).total, 14_050_067);
  assert.is(countParameters(paper('mofme', 16)).total, 18_799_395);
  assert.is(countParameters(paper('moe', 128, 4)).total, 309_121_283);
  assert.is(countParameters(paper('mofme', 128, 4)).total, 85_289_987);
  // Top-k changes no shape.
  assert.is(countParameters(paper('mofme', 16, 4)).total, 18_799_395);
});

test('component breakdown matches mofme-paper.md §1.2/§1.3', () => {
  const dense = countParameters(paper('dense'));
  assert.is(dense.parts.head, 37_888);
  assert.is(dense.parts.patchEmbed, 787_584);
  assert.is(dense.parts.posEmbed, 345_600);
  assert.is(dense.perBlock.attention, 787_584);
  assert.is(dense.perBlock.shared, 1_181_568 + 768); // FFN + its pre-norm
  assert.is(dense.parts.unpatchify, 3_153_920);
  assert.is(dense.parts.tail, 444_547);
  const moe = countParameters(paper('moe', 8));
  assert.is(moe.perBlock.perExpert, 1_182_336);
  assert.is(moe.perBlock.router, 385 * 8);
  const mofme = countParameters(paper('mofme', 8));
  assert.is(mofme.perBlock.perExpert, 296_448);
  assert.is(mofme.perBlock.router, 385 * 8);
  assert.is(mofme.perBlock.shared, 1_181_568 + 768 + 295_680); // adaptor + LN + basenet
});

test('independent count: summing the official state-dict shapes (fixture)', () => {
  assert.is(officialDenseKeys.length, 51);
  assert.is(officialMoeE4Keys.length, 91);
  assert.is(officialMofmeE4Keys.length, 111);
  assert.is(sumShapes(officialDenseKeys), 8_709_379);
  assert.is(sumShapes(officialMoeE4Keys), 15_806_475);
  assert.is(sumShapes(officialMofmeE4Keys), 11_675_403);
  // Larger E from the fixture alone: each extra expert adds the size of expert 0 of layer 0 and
  // 385 router values (a 384-wide weight row + a bias), in each of the 2 layers.
  const expertSize = (rows: readonly OfficialEntry[], prefix: string) =>
    sumShapes(rows.filter(([k]) => k.startsWith(prefix)));
  const L0 = 'Img_Encoder.vision_transformer.transformer.layers.0.';
  const moeExpert = expertSize(officialMoeE4Keys, `${L0}2.0.`);
  const filmExpert = expertSize(officialMofmeE4Keys, `${L0}3.3.`);
  assert.is(moeExpert, 1_182_336);
  assert.is(filmExpert, 296_448);
  for (const e of [8, 16, 128]) {
    const extra = 2 * (e - 4);
    assert.is(countParameters(paper('moe', e)).total, sumShapes(officialMoeE4Keys) + extra * (moeExpert + 385));
    assert.is(countParameters(paper('mofme', e)).total, sumShapes(officialMofmeE4Keys) + extra * (filmExpert + 385));
  }
});

test('the paper claim: MoFME saves >72% of MoE parameters at E=128, top-4', () => {
  const saving = mofmeParameterSaving(paper('mofme', 128, 4));
  assert.ok(saving > 0.72, `saving ${saving}`);
  assert.ok(Math.abs(saving - (1 - 85_289_987 / 309_121_283)) < 1e-12);
  assert.ok(Math.abs(saving - 0.724) < 0.001); // "−72.4 %" in §1.3
  // At the trained sizes the saving is smaller; it grows with E because FME experts are ~4x smaller.
  const s4 = mofmeParameterSaving(paper('mofme', 4));
  const s16 = mofmeParameterSaving(paper('mofme', 16));
  assert.ok(s4 < s16 && s16 < saving);
});

test('unused values: official E=4 has 943,104 that never get a gradient (official-state-dicts.md)', () => {
  const c = resolveConfig('paper', { officialExpertSlots: true });
  const n = countParameters(c);
  assert.is(n.unused, 345_600 + 2 * (4 * 768 + 295_680));
  assert.is(n.unused, 943_104);
  assert.is(n.trainable, 11_675_403 - 943_104);
  // Without the official slot bug every FiLM expert is used; only pos-emb and expert LNs are dead.
  assert.is(countParameters(resolveConfig('paper')).unused, 345_600 + 2 * 4 * 768);
  // Our own presets allocate nothing dead.
  assert.is(countParameters(resolveConfig('tiny')).unused, 0);
});

test('countParameters (a one-block, two-expert probe, extrapolated) equals the full built model for random configs', () => {
  const arb = fc.record({
    patchSize: fc.constantFrom(2, 4, 8),
    dim: fc.integer({ min: 1, max: 64 }),
    depth: fc.integer({ min: 1, max: 3 }),
    heads: fc.integer({ min: 1, max: 4 }),
    headDim: fc.integer({ min: 1, max: 16 }),
    mlpRatio: fc.constantFrom(1, 2, 4),
    headChannels: fc.integer({ min: 1, max: 16 }),
    headResBlocks: fc.integer({ min: 0, max: 3 }),
    tailChannels: fc.integer({ min: 1, max: 16 }).map((x) => 2 * x),
    tailResBlocks: fc.integer({ min: 0, max: 2 }),
    ffn: fc.constantFrom('dense' as const, 'moe' as const, 'mofme' as const),
    experts: fc.integer({ min: 2, max: 9 }),
    officialUnusedParams: fc.boolean(),
  });
  fc.assert(
    fc.property(arb, (o) => {
      const c = resolveConfig('tiny', { ...o, imageSize: 8 * o.patchSize, topk: 1 });
      return createModel(c).numParameters() === countParameters(c).total;
    }),
    { numRuns: 60 },
  );
});

test('FLOPs at 240x240 agree with mofme-paper.md §1.3 (dense execution, GMACs to 0.1)', () => {
  const g = (c: MofmeConfig) => Math.round(countFlops(c, 240, 240).dense / 1e8) / 10;
  assert.is(g(paper('dense')), 36.5);
  assert.is(g(paper('moe', 4)), 42.9);
  assert.is(g(paper('moe', 8)), 51.4);
  assert.is(g(paper('moe', 16)), 68.4);
  assert.is(g(paper('mofme', 4)), 39.2);
  assert.is(g(paper('mofme', 8)), 41.3);
  assert.is(g(paper('mofme', 16)), 45.5);
  assert.is(Math.round(countFlops(paper('moe', 128, 4), 240, 240).dense / 1e9), 306);
  assert.is(Math.round(countFlops(paper('mofme', 128, 4), 240, 240).dense / 1e9), 105);
  // "In MACs the tail dominates: 25.6 G of the 36.5 G baseline."
  assert.is(Math.round(countFlops(paper('dense'), 240, 240).parts.tail / 1e8) / 10, 25.6);
});

test('FLOPs of the dense model, derived by hand layer by layer', () => {
  const px = 240 * 240;
  const n = 900;
  const head = px * 27 * 32 + 4 * px * 9 * 32 * 32;
  const embed = n * 2048 * 384;
  const attn = n * 384 * 1536 + 2 * 8 * n * n * 64 + n * 512 * 384;
  const ffn = 2 * n * 384 * 1536;
  const unpatch = n * 384 * 8192;
  const tail = 2 * px * 9 * 128 * 128 + px * 9 * 128 * 64 + 2 * px * 9 * 64 * 64 + px * 9 * 64 * 3;
  const f = countFlops(paper('dense'), 240, 240);
  assert.is(f.total, head + embed + 2 * (attn + ffn) + unpatch + tail);
  assert.is(f.dense, f.sparse); // nothing to route
});

test('sparse execution: experts cost k/E of dense; equal when k = E', () => {
  const moe = paper('moe', 16, 2);
  const f = countFlops(moe, 240, 240);
  assert.is(f.execution, 'sparse');
  assert.is(f.total, f.sparse);
  assert.ok(f.sparse < f.dense);
  const dense = countFlops({ ...moe, execution: 'dense' }, 240, 240);
  assert.is(dense.total, f.dense);
  assert.is(dense.parts.experts * 2, f.parts.experts * 16);
  const all = countFlops(paper('mofme', 4, 4), 64, 64);
  assert.is(all.dense, all.sparse);
});

test('FLOPs: officialExpertSlots runs E−1 FiLM experts densely; UaR pays M+1 router passes', () => {
  const base = paper('mofme', 4);
  const off = countFlops(base, 240, 240).dense;
  const on = countFlops({ ...base, officialExpertSlots: true }, 240, 240).dense;
  assert.is(off - on, 2 * (2 * 900 * 384 * 384 + 900 * 384)); // one FiLM expert, two blocks
  const uar = { ...base, router: 'uar' as const };
  const linearRouter = countFlops(base, 64, 64).parts.router;
  assert.is(countFlops(uar, 64, 64, { training: true }).parts.router, 6 * linearRouter);
  assert.is(countFlops({ ...uar, uar: { ...uar.uar, whenEval: 'linear' } }, 64, 64).parts.router, linearRouter);
});

test('FLOPs need sides that are multiples of the patch size', () => {
  assert.throws(() => countFlops(paper('dense'), 250, 240), /multiple of patchSize/);
});

test.run();
