// Configuration: the presets are valid and say what the docs say, overrides merge (including the
// nested UaR options), and every kind of invalid value fails with an error that names its field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ConfigError,
  attnInnerOf,
  mlpHiddenOf,
  presetNames,
  presets,
  resolveConfig,
  type ConfigOverrides,
} from '../src/index';

/** Asserts that resolving `overrides` on `preset` throws a ConfigError about `field`. */
function rejects(overrides: ConfigOverrides, field: string, preset: 'paper' | 'tiny' = 'paper') {
  let caught: unknown;
  try {
    resolveConfig(preset, overrides);
  } catch (err) {
    caught = err;
  }
  if (caught === undefined) assert.unreachable(`expected a ConfigError on ${field} for ${JSON.stringify(overrides)}`);
  assert.instance(caught, ConfigError);
  const e = caught as ConfigError;
  assert.is(e.field, field, `field of: ${e.message}`);
  assert.ok(e.message.includes(field), `message names the field: ${e.message}`);
  assert.ok(e.message.includes(JSON.stringify(e.value)), `message names the value: ${e.message}`);
}

test('every preset resolves unchanged and frozen', () => {
  assert.equal(presetNames.sort(), ['paper', 'small', 'tiny']);
  for (const name of presetNames) {
    const c = resolveConfig(name);
    assert.equal({ ...c, uar: { ...c.uar } }, presets[name]);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.uar));
  }
});

test('paper preset is the official configuration (mofme-paper.md §1.1)', () => {
  const c = resolveConfig('paper');
  assert.is(c.imageSize, 240);
  assert.is(c.patchSize, 8);
  assert.is(c.dim, 384);
  assert.is(c.depth, 2);
  assert.is(attnInnerOf(c), 512); // 8 heads x 64, not D
  assert.is(mlpHiddenOf(c), 1536);
  assert.is(c.headChannels, 32);
  assert.is(c.tailChannels, 128);
  assert.is(c.ffn, 'mofme');
  assert.is(c.experts, 4);
  assert.is(c.topk, 2);
  assert.is(c.router, 'linear');
  assert.is(c.topkMode, 'maskThenSoftmax');
  assert.is(c.dropout, 0.1);
  assert.is(c.officialExpertSlots, false);
  assert.is(c.officialSharedInit, false);
  assert.is(c.uar.samples, 5);
});

test('tiny and small are small, with heads x headDim different from D', () => {
  for (const name of ['tiny', 'small'] as const) {
    const c = resolveConfig(name);
    assert.is(c.imageSize, 64);
    assert.ok(c.dim <= 128);
    assert.is.not(attnInnerOf(c), c.dim);
    assert.is(c.officialUnusedParams, false);
  }
});

test('overrides merge, uar field by field', () => {
  const c = resolveConfig('tiny', { ffn: 'moe', experts: 8, topk: 4, router: 'uar', uar: { samples: 8 } });
  assert.is(c.ffn, 'moe');
  assert.is(c.experts, 8);
  assert.is(c.uar.samples, 8);
  assert.is(c.uar.dropout, presets.tiny.uar.dropout); // untouched sibling kept
  assert.is(presets.tiny.uar.samples, 5); // the preset itself is not mutated
  assert.is(mlpHiddenOf(resolveConfig('tiny', { mlpHidden: 100 })), 100);
  assert.is(mlpHiddenOf(resolveConfig('tiny', { mlpRatio: 2 })), 96);
  // A full config works as the base, too.
  assert.is(resolveConfig(presets.small, { depth: 3 }).depth, 3);
});

test('invalid values name their field and value', () => {
  rejects({ topk: 5 }, 'topk'); // > experts (4)
  rejects({ topk: 0 }, 'topk');
  rejects({ imageSize: 250 }, 'imageSize'); // not a multiple of 8
  rejects({ patchSize: 7 }, 'imageSize'); // 240 % 7 ≠ 0
  rejects({ dim: 0 }, 'dim');
  rejects({ depth: 1.5 }, 'depth');
  rejects({ tailChannels: 15 }, 'tailChannels');
  rejects({ experts: 0 }, 'experts');
  rejects({ ffn: 'sparse' as never }, 'ffn');
  rejects({ router: 'noisy' as never }, 'router');
  rejects({ topkMode: 'zero' as never }, 'topkMode');
  rejects({ execution: 'lazy' as never }, 'execution');
  rejects({ dropout: 1 }, 'dropout');
  rejects({ dropout: -0.1 }, 'dropout');
  rejects({ mlpRatio: 0 }, 'mlpRatio');
  rejects({ mlpRatio: 1.001 }, 'mlpRatio'); // 384·1.001 is not an integer
  rejects({ uar: { samples: 1 } }, 'uar.samples');
  rejects({ uar: { sign: 'flip' as never } }, 'uar.sign');
  rejects({ router: 'uar', uar: { dropout: 0 } }, 'uar.dropout');
  rejects({ ffn: 'dense', router: 'uar' }, 'router');
  rejects({ ffn: 'moe', officialExpertSlots: true }, 'officialExpertSlots');
  rejects({ experts: 1, topk: 1, officialExpertSlots: true }, 'experts');
  rejects({ officialSharedInit: 'yes' as never }, 'officialSharedInit');
  rejects({ embedDim: 3 } as never, 'embedDim'); // typo of a field: unknown, not ignored
  rejects({ uar: { sample: 3 } as never }, 'uar.sample');
});

test('unknown preset is an error', () => {
  assert.throws(() => resolveConfig('huge' as never), (e: unknown) => e instanceof ConfigError && e.field === 'preset');
});

test('dense FFN ignores experts/topk', () => {
  const c = resolveConfig('paper', { ffn: 'dense', experts: 0, topk: 9 });
  assert.is(c.ffn, 'dense');
});

test.run();
