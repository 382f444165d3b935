// The one vocabulary of the command line (options.ts): flags, --help, config-file checks and the
// model configuration all come from TRAIN_OPTIONS and @mofme/mofme's own lists. The two lists the
// CLI copies to keep --help light (layouts, weathers) must equal the data package's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FFN_KINDS, ROUTER_KINDS, presetNames, resolveConfig } from '@mofme/mofme';
import { LAYOUTS as DATA_LAYOUTS, WEATHERS as DATA_WEATHERS } from '@mofme/data';
import { LAYOUTS, OPTION_KEYS, RESUMABLE, TRAIN_DEFAULTS, TRAIN_OPTIONS, WEATHERS, flagOf, mergeConfig, modelConfigOf, readConfigFile } from '../src/options';
import { mofme } from './fixtures/helpers';

test('the copied lists equal the data package\'s; the network\'s choices are the model package\'s own', () => {
  assert.equal([...LAYOUTS], [...DATA_LAYOUTS]);
  assert.equal([...WEATHERS], [...DATA_WEATHERS]);
  assert.is(TRAIN_OPTIONS.model.value.choices, FFN_KINDS);
  assert.is(TRAIN_OPTIONS.router.value.choices, ROUTER_KINDS);
  assert.is(TRAIN_OPTIONS.preset.value.choices, presetNames);
});

test('train --help lists every row of the table as a flag, with the choices of the choice rows', () => {
  const help = mofme(['train', '--help']).stdout.replace(/\s+/g, ' '); // commander wraps long lines
  for (const key of OPTION_KEYS) assert.ok(help.includes(flagOf(key) + ' <'), `${flagOf(key)} missing from train --help`);
  assert.match(help, /--model <kind> feed-forward of every block \(choices: "dense", "moe", "mofme", default: "mofme"\)/);
  assert.match(help, /--resume <dir> .* only --steps, --workers, --ckpt-every, --keep-last, --log-every may be given/);
});

test('RESUMABLE: only cadence, loader threads and length', () => {
  assert.equal([...RESUMABLE].sort(), ['ckptEvery', 'keepLast', 'logEvery', 'steps', 'workers']);
});

test('config layers: defaults <- file <- flags; --epochs replaces the default --steps', () => {
  const c = mergeConfig({ lr: 5e-4, batchSize: 4 }, { lr: 2e-4, epochs: 3 });
  assert.is(c.lr, 2e-4);
  assert.is(c.batchSize, 4);
  assert.is(c.epochs, 3);
  assert.is(c.steps, undefined);
  assert.is(c.crop, 64);
  assert.is(TRAIN_DEFAULTS.crop, 64);
});

test('a config file: keys and values checked against the table, the message names the key and what was expected', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mofme-options-'));
  const file = (o: object) => { const f = join(dir, 'c.json'); writeFileSync(f, JSON.stringify(o)); return f; };
  assert.equal(readConfigFile(file({ lr: 2e-4, model: 'moe', valCrop: 0 })), { lr: 2e-4, model: 'moe', valCrop: 0 });
  assert.throws(() => readConfigFile(file({ warmup: -1 })), /warmup: expected an integer >= 0, got -1/);
  assert.throws(() => readConfigFile(file({ router: 'softmax' })), /router: invalid value "softmax"; choose one of linear, uar/);
  assert.throws(() => readConfigFile(file({ crop: 20000 })), /crop: expected at most 16,384, got 20000/);
  assert.throws(() => readConfigFile(file({ lr: 0 })), /lr: expected a positive number, got 0/);
  assert.throws(() => readConfigFile(file({ cleanFraction: 1.5 })), /cleanFraction: expected at most 1, got 1.5/);
  assert.equal(readConfigFile(file({ cleanFraction: 0.25, loss: 'psnr' })), { cleanFraction: 0.25, loss: 'psnr' });
  assert.throws(() => readConfigFile(file({ dim: 64 })), /unknown key "dim"; valid keys: model, preset/);
});

test('model flags map onto the preset through the table (--model -> ffn, --width -> dim, --crop -> imageSize)', () => {
  const m = modelConfigOf({ ...TRAIN_DEFAULTS, model: 'moe', experts: 8, topk: 4, width: 64, depth: 3, router: 'uar' });
  const want = resolveConfig('tiny', { ffn: 'moe', experts: 8, topk: 4, dim: 64, depth: 3, router: 'uar', imageSize: 64 });
  assert.equal(m, want);
  // without --crop (info): the preset's own image size
  assert.is(modelConfigOf({ preset: 'paper' }).imageSize, 240);
});

test('a model error names the flag of the field, as the table maps it', () => {
  assert.throws(() => modelConfigOf({ preset: 'tiny', crop: 30 }), /^--crop 30: must be a multiple of patchSize \(8\)/);
  assert.throws(() => modelConfigOf({ preset: 'tiny', model: 'dense', router: 'uar' }), /^--router "uar": needs ffn 'moe' or 'mofme'/);
  assert.throws(() => modelConfigOf({ preset: 'tiny', experts: 2, topk: 3 }), /^--topk 3: must not exceed experts \(2\)/);
});

test.run();
