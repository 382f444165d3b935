// The official <-> ours name mapping, over the full official key lists of the three models whose
// state dicts were printed from PyTorch (fixtures/official-state-dicts.ts): every official key maps
// to one of our parameters with the same shape, the mapping is a bijection, and it round-trips.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  detectOfficialKind,
  officialToOurs,
  oursToOfficial,
  parameterShapes,
  resolveConfig,
  type FfnKind,
} from '../src/index';
import { officialDenseKeys, officialMofmeE4Keys, officialMoeE4Keys, type OfficialEntry } from './fixtures/official-state-dicts';

const cases: [FfnKind, readonly OfficialEntry[]][] = [
  ['dense', officialDenseKeys],
  ['moe', officialMoeE4Keys],
  ['mofme', officialMofmeE4Keys],
];

for (const [ffn, official] of cases) {
  test(`${ffn}: official keys <-> our parameterShapes, same shapes, bijective`, () => {
    const ours = new Map(parameterShapes(resolveConfig('paper', { ffn })).map((p) => [p.name, p.shape]));
    assert.is(ours.size, official.length);
    const seen = new Set<string>();
    for (const [key, shape] of official) {
      const name = officialToOurs(key, ffn);
      assert.ok(ours.has(name), `${key} -> ${name} is not one of our parameters`);
      assert.equal([...ours.get(name)!], [...shape], `shape of ${name}`);
      assert.not.ok(seen.has(name), `two official keys map to ${name}`);
      seen.add(name);
      assert.is(oursToOfficial(name, ffn), key);
    }
    assert.is(seen.size, ours.size);
  });

  test(`${ffn}: detectOfficialKind and the DDP module. prefix`, () => {
    assert.is(detectOfficialKind(official.map(([k]) => k)), ffn);
    assert.is(detectOfficialKind(official.map(([k]) => `module.${k}`)), ffn);
    const [key] = official[0]!;
    assert.is(officialToOurs(`module.${key}`, ffn), officialToOurs(key, ffn));
  });
}

test('readable names for the MoFME parts', () => {
  const L = 'Img_Encoder.vision_transformer.transformer.layers.';
  assert.is(officialToOurs(`${L}0.3.6.expert.0.weight`, 'mofme'), 'blocks.0.ffn.experts.film.3.gamma.weight');
  assert.is(officialToOurs(`${L}1.3.3.expert.1.bias`, 'mofme'), 'blocks.1.ffn.experts.film.0.beta.bias');
  assert.is(officialToOurs(`${L}1.3.1.0.0.weight`, 'mofme'), 'blocks.1.ffn.base.gate.weight');
  assert.is(officialToOurs(`${L}0.2.3.bias`, 'mofme'), 'blocks.0.ffn.shared.fc2.bias');
  assert.is(officialToOurs(`${L}0.2.3.fn.net.3.bias`, 'moe'), 'blocks.0.ffn.experts.3.fc2.bias');
  assert.is(officialToOurs('tail.4.weight', 'dense'), 'tail.out.weight');
  assert.is(oursToOfficial('posEmbed', 'dense'), 'Img_Encoder.vision_transformer.pos_embedding');
  assert.is(oursToOfficial('posEmbed', 'moe'), 'Img_Encoder.vision_transformer.img_pos_embedding');
  assert.is(oursToOfficial('blocks.0.ffn.norm.weight', 'dense'), `${L}0.1.norm.weight`);
  assert.is(oursToOfficial('blocks.0.ffn.norm.weight', 'mofme'), `${L}0.3.0.weight`);
});

test('larger E round-trips (E=16: FiLM expert 15 is official module 18)', () => {
  for (const ffn of ['moe', 'mofme'] as const) {
    const c = resolveConfig('tiny', { ffn, experts: 16, officialUnusedParams: true }); // the names of the paper preset, small tensors
    for (const { name } of parameterShapes(c)) assert.is(officialToOurs(oursToOfficial(name, ffn), ffn), name);
  }
  assert.is(
    oursToOfficial('blocks.1.ffn.experts.film.15.norm.bias', 'mofme'),
    'Img_Encoder.vision_transformer.transformer.layers.1.3.18.norm.bias',
  );
});

test('keys of another model kind, and non-keys, are rejected', () => {
  const L = 'Img_Encoder.vision_transformer.transformer.layers.';
  assert.throws(() => officialToOurs(`${L}0.1.0.weight`, 'dense'), /no dense parameter/); // router
  assert.throws(() => officialToOurs(`${L}0.3.2.weight`, 'mofme'), /no mofme parameter/); // the GELU slot
  assert.throws(() => officialToOurs('tail.0.weight', 'mofme')); // the scale-1 upsampler owns nothing
  assert.throws(() => oursToOfficial('blocks.0.ffn.experts.film.0.gamma.weight', 'moe'), /no official counterpart/);
  assert.throws(() => oursToOfficial('blocks.0.ffn.fc1.weight', 'mofme'));
});

test.run();
