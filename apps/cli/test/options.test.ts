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
import { LAYOUTS, OPTION_KEYS, RESUMABLE, TRAIN_DEFAULTS, TRAIN_OPTIONS, WEATHERS, flagOf, networkConfigOf, runConfigOf, type TrainConfig } from '../src/options';
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

const dir = mkdtempSync(join(tmpdir(), 'mofme-options-'));
const file = (o: object) => { const f = join(dir, 'c.json'); writeFileSync(f, JSON.stringify(o)); return f; };
const fromFile = (o: object) => runConfigOf({ flags: {}, configFile: file(o) }).train;

test('config layers: defaults <- file <- flags (text from the command line); --epochs replaces the default --steps', () => {
  const c = runConfigOf({ flags: { lr: '2e-4', epochs: '3' }, configFile: file({ lr: 5e-4, batchSize: 4 }) }).train;
  assert.is(c.lr, 2e-4);
  assert.is(c.batchSize, 4);
  assert.is(c.epochs, 3);
  assert.is(c.steps, undefined);
  assert.is(c.crop, 64);
  assert.is(TRAIN_DEFAULTS.crop, 64);
  assert.throws(() => runConfigOf({ flags: { steps: '5', epochs: '2' } }), /--steps and --epochs exclude each other/);
});

test('a flag\'s text is parsed and checked against its row in the same pass; the message names the flag and the text', () => {
  assert.throws(() => runConfigOf({ flags: { lr: 'abc' } }), /^--lr: expected a positive number, got "abc"$/);
  assert.throws(() => runConfigOf({ flags: { steps: '1e3' } }), /^--steps: expected a positive integer, got "1e3"$/);
  assert.throws(() => runConfigOf({ flags: { steps: '99999999999' } }), /^--steps: expected at most 1,000,000,000, got "99999999999"$/);
  assert.throws(() => runConfigOf({ flags: { experts: '0' } }), /^--experts: expected a positive integer, got "0"$/);
  assert.throws(() => runConfigOf({ flags: { backend: 'tpu' } }), /^--backend: invalid value "tpu"; choose one of cpu, gpu$/);
  assert.is(runConfigOf({ flags: { cleanFraction: '0.25' } }).train.cleanFraction, 0.25);
});

test('a config file: keys and values checked against the table, the message names the key and what was expected', () => {
  const given = fromFile({ lr: 2e-4, model: 'moe', valCrop: 0 });
  assert.equal([given.lr, given.model, given.valCrop], [2e-4, 'moe', 0]);
  assert.throws(() => fromFile({ warmup: -1 }), /warmup: expected an integer >= 0, got -1/);
  assert.throws(() => fromFile({ router: 'softmax' }), /router: invalid value "softmax"; choose one of linear, uar/);
  assert.throws(() => fromFile({ crop: 20000 }), /crop: expected at most 16,384, got 20000/);
  assert.throws(() => fromFile({ lr: 0 }), /lr: expected a positive number, got 0/);
  assert.throws(() => fromFile({ lr: '1e-4' }), /--config .*c\.json: lr: expected a positive number, got "1e-4"/); // JSON numbers are numbers, not text
  assert.throws(() => fromFile({ cleanFraction: 1.5 }), /cleanFraction: expected at most 1, got 1.5/);
  const c = fromFile({ cleanFraction: 0.25, loss: 'psnr' });
  assert.equal([c.cleanFraction, c.loss], [0.25, 'psnr']);
  assert.throws(() => fromFile({ dim: 64 }), /--config .*c\.json: unknown key "dim"; valid keys: model, preset/);
});

test('each row lands where it takes effect: network fields (--model -> ffn, --width -> dim, --crop -> imageSize), AdamW\'s hyperparameters, the schedule', () => {
  const run = runConfigOf({ flags: { model: 'moe', experts: '8', topk: '4', width: '64', depth: '3', router: 'uar', lr: '2e-4', minLr: '1e-5' } });
  assert.equal(run.model, resolveConfig('tiny', { ffn: 'moe', experts: 8, topk: 4, dim: 64, depth: 3, router: 'uar', imageSize: 64 }));
  assert.equal(run.optimizer, { lr: 2e-4, weightDecay: 0.01 });
  assert.equal(run.schedule, { kind: 'cosine', warmup: 20, minFactor: 1e-5 / 2e-4 });
  // a floor above the peak is the peak: the schedule's factor never exceeds 1
  assert.is(runConfigOf({ flags: { lr: '1e-7' } }).schedule.minFactor, 1);
  // fewer experts than the preset's top-2 keep them all
  assert.is(runConfigOf({ flags: { experts: '1' } }).model.topk, 1);
  // without --crop (info): the preset's own image size
  assert.is(networkConfigOf({ preset: 'paper' }).imageSize, 240);
});

test('a model error names the flag of the field, as the table maps it', () => {
  assert.throws(() => networkConfigOf({ preset: 'tiny', crop: '30' }), /^--crop 30: must be a multiple of patchSize \(8\)/);
  assert.throws(() => networkConfigOf({ preset: 'tiny', model: 'dense', router: 'uar' }), /^--router "uar": needs ffn 'moe' or 'mofme'/);
  assert.throws(() => networkConfigOf({ preset: 'tiny', experts: '2', topk: '3' }), /^--topk 3: must not exceed experts \(2\)/);
});

test('--resume: the saved configuration as it was (absent keys stay absent), then the resumable flags', () => {
  const saved = { config: { ...TRAIN_DEFAULTS, loss: undefined, lr: 1e-4, experts: 2 } as unknown as TrainConfig, step: 10 };
  const run = runConfigOf({ flags: { steps: '20', logEvery: '1' } }, () => saved);
  assert.equal([run.train.steps, run.train.logEvery, run.train.lr, run.train.loss, run.model.experts, run.optimizer.lr], [20, 1, 1e-4, undefined, 2, 1e-4]);
  assert.throws(() => runConfigOf({ flags: { lr: '1' } }, () => saved), /drop --lr \(only --steps/);
  assert.throws(() => runConfigOf({ flags: { steps: '10' } }, () => saved), /--steps 10: the run is already at step 10/);
});

test.run();
