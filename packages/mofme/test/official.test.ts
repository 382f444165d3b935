// Checkpoint exchange under the official names (src/official.ts): the official key lists (dense,
// MoE E=4, MoFME E=4, transcribed in fixtures/) are exactly what our paper-preset models export, and
// an exported dict loads back into a fresh model giving the same output.
// Numerical parity: fixtures/official-{dense,moe,mofme}-mini.safetensors hold small PyTorch models
// with the official module tree and key names, their input and their eval output (built by
// scripts/make-official-fixture.py with Debian's python3-torch; this test only reads the files).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { Generator, noGrad, randn } from '@mofme/tensor';
import { parseSafetensors } from '@mofme/nn';
import { createModel, loadOfficialStateDict, resolveConfig, toOfficialStateDict } from '../src/index';
import { officialDenseKeys, officialMofmeE4Keys, officialMoeE4Keys } from './fixtures/official-state-dicts';

const official = { officialUnusedParams: true, residualOutput: false } as const;

test('paper-preset exports carry exactly the official keys and shapes', () => {
  for (const [ffn, keys] of [['dense', officialDenseKeys], ['moe', officialMoeE4Keys], ['mofme', officialMofmeE4Keys]] as const) {
    const m = createModel(resolveConfig('paper', { ffn, experts: 4, ...official, ...(ffn === 'mofme' ? { officialExpertSlots: true } : {}) }));
    const exported = toOfficialStateDict(m);
    const got = Object.entries(exported).map(([k, t]) => `${k} ${t.shape.join('x')}`).sort();
    assert.equal(got, keys.map(([k, s]) => `${k} ${s.join('x')}`).sort(), ffn);
  }
});

test('export -> load into a fresh model: identical outputs (tiny MoFME with official slots)', () => {
  const c = resolveConfig('tiny', { ...official, officialExpertSlots: true, tailResBlocks: 1 });
  const a = createModel(c, { seed: 1 }).eval();
  const b = createModel(c, { seed: 2 }).eval();
  const x = randn([1, 3, 16, 16], { generator: new Generator(3) });
  const before = noGrad(() => b.forward(x).image.data());
  const report = loadOfficialStateDict(b, toOfficialStateDict(a));
  assert.is(report.missing.length + report.unexpected.length, 0);
  const ya = noGrad(() => a.forward(x).image.data()), yb = noGrad(() => b.forward(x).image.data());
  assert.equal([...ya], [...yb]);
  assert.not.equal([...before], [...yb]);
  assert.throws(() => loadOfficialStateDict(createModel(resolveConfig('tiny', official)), toOfficialStateDict(a)), /officialExpertSlots/);
});

test('official PyTorch parity (mini models): strict load, eval output within 1e-4', () => {
  for (const ffn of ['dense', 'moe', 'mofme'] as const) {
    const path = new URL(`./fixtures/official-${ffn}-mini.safetensors`, import.meta.url);
    const { tensors } = parseSafetensors(readFileSync(path));
    const { __input__: input, __output__: expected, ...params } = tensors;
    const c = resolveConfig('tiny', {
      ffn, imageSize: 16, patchSize: 4, dim: 32, heads: 2, headDim: 8, mlpRatio: 4, headChannels: 8, headResBlocks: 2,
      tailChannels: 16, tailResBlocks: 1, depth: 2, experts: 4, topk: 2, dropout: 0.1, ...official,
      ...(ffn === 'mofme' ? { officialExpertSlots: true } : {}),
    });
    const m = createModel(c, { seed: 0 }).eval();
    const report = loadOfficialStateDict(m, params);
    assert.is(report.loaded.length, Object.keys(params).length);
    for (const execution of ['dense', 'sparse'] as const) {
      const mm = execution === 'sparse' ? m : createModel(resolveConfig(c, { execution }), { seed: 0 }).eval();
      if (mm !== m) loadOfficialStateDict(mm, params);
      const got = noGrad(() => mm.forward(input!).image.data());
      const want = expected!.data();
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      assert.ok(worst < 1e-4, `${ffn} ${execution}: max |ours − official| = ${worst}`);
    }
  }
});

test.run();
