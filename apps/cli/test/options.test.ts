// The CLI keeps copies of a few option lists so that --help loads nothing heavy; they must equal
// the packages' own lists.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { presetNames, resolveConfig } from '@mofme/mofme';
import { LAYOUTS as DATA_LAYOUTS, WEATHERS as DATA_WEATHERS } from '@mofme/data';
import { LAYOUTS, PRESETS, WEATHERS, TRAIN_DEFAULTS } from '../src/options';
import { mergeConfig, modelConfigOf } from '../src/config';
import { executionFor } from '../src/backend';
import { CpuBackend, type Backend } from '@mofme/tensor';

test('option lists equal the packages\' lists', () => {
  assert.equal([...PRESETS].sort(), [...presetNames].sort());
  assert.equal([...LAYOUTS], [...DATA_LAYOUTS]);
  assert.equal([...WEATHERS], [...DATA_WEATHERS]);
});

test('config layers: defaults <- file <- flags; --epochs replaces the default --steps', () => {
  const c = mergeConfig({ lr: 5e-4, batchSize: 4 }, { lr: 2e-4, epochs: 3 });
  assert.is(c.lr, 2e-4);
  assert.is(c.batchSize, 4);
  assert.is(c.epochs, 3);
  assert.is(c.steps, undefined);
  assert.is(c.crop, TRAIN_DEFAULTS.crop);
});

test('model flags map onto the preset', () => {
  const m = modelConfigOf({ ...TRAIN_DEFAULTS, model: 'moe', experts: 8, topk: 4, width: 64, depth: 3, router: 'uar' });
  const want = resolveConfig('tiny', { ffn: 'moe', experts: 8, topk: 4, dim: 64, depth: 3, router: 'uar', imageSize: 64 });
  assert.equal(m, want);
});

test('a backend that compiles per shape (gpu.js) gets dense expert execution; the CPU keeps sparse', () => {
  const sparse = resolveConfig('tiny', { execution: 'sparse' });
  const cpu = new CpuBackend({});
  assert.is(executionFor(sparse, cpu), sparse);
  // a stand-in for the gpu.js backend: only the two fields executionFor reads
  const gpuLike = { name: 'gpujs-test', compilesPerShape: true } as unknown as Backend;
  const chosen = executionFor(sparse, gpuLike);
  assert.is(chosen.execution, 'dense');
  assert.equal({ ...chosen, execution: 'sparse' }, sparse);
  const dense = resolveConfig('tiny', { ffn: 'dense' });
  assert.is(executionFor(dense, gpuLike), dense);
});

test.run();
