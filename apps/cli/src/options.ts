/**
 * The vocabulary of the command line, declared once. Every training option is one row of
 * TRAIN_OPTIONS: its value type and bounds, its default with the reason, its help text, whether
 * `--resume` may change it, and where it takes effect: the MofmeConfig field it sets (the network's
 * rows) or the AdamW hyperparameter (`--lr`, `--weight-decay`). Everything else is derived from the
 * table: the commander flags and --help (`addOptions`, main.ts), the keys of `config.json` in a run
 * folder (TrainConfig), and `runConfigOf`, the one pass from the command line to a run: each value
 * is parsed from its text, checked against its row and placed where the row says, once, so that
 * the commands hand the result on whole and never name an option themselves (docs/architecture.md
 * traces --experts, --lr and --backend). A flag is the kebab-case of its key (`batchSize` <->
 * `--batch-size`); three network options keep the names the README and existing run folders use,
 * and their row says which model field they set (`--model` -> ffn, `--width` -> dim, `--crop` ->
 * imageSize); a model error names the flag of the field. The `--backend` row is backend.ts's, next
 * to its effect.
 *
 * The network's choices (FFN kinds, routers, presets) are @mofme/mofme's own lists, read from its
 * light entry point `@mofme/mofme/config`, which loads no tensor engine: `mofme --help` and a bad
 * choice (checked by commander too, for --help's list) answer at once. LAYOUTS is a copy of @mofme/data's list for the same reason (the data
 * package's entry loads sharp); test/options.test.ts checks that it equals the original.
 *
 * Configuration layers: the table's defaults, then an optional JSON file (`--config run.json`, keys
 * as in the table), then the flags, each overriding the one before. The result is saved as
 * config.json in the run folder, so a run records exactly what it did and `--resume` reads it back.
 * Unknown keys and bad values are errors that name the key and the valid choices: a typo must never
 * leave a default silently in place.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { FFN_KINDS, ROUTER_KINDS, presetNames, presets, resolveConfig, type ConfigOverrides, type MofmeConfig, type PresetName } from '@mofme/mofme/config';
import { BACKEND_OPTION } from './backend';
import { CliError } from './errors';

/** = LAYOUTS of @mofme/data (a copy: see the header) */
export const LAYOUTS = ['list', 'mofme', 'snow100k', 'raindrop', 'outdoor-rain', 'csd', 'paired'] as const;
/** = WEATHERS of @mofme/data (a copy: see the header) */
export const WEATHERS = ['rain', 'rain_fog', 'snow', 'raindrop', 'haze'] as const;
/** `mofme export --format` */
export const EXPORT_FORMATS = ['onnx', 'official', 'safetensors'] as const;

/** Integer options stop at 1e9: counts no run can reach, far below 2^53 where integers stop being exact. */
const INT_MAX = 1_000_000_000;
/** Image sides (crops, tiles): 16384 px is beyond any photo a CPU restores in reasonable time, and keeps side² in range. */
const SIDE_MAX = 16_384;

type Value =
  | { readonly kind: 'int'; readonly min: number; readonly max: number }
  | { readonly kind: 'number'; readonly positive: boolean; readonly max?: number } // > 0, or >= 0; at most max where given
  | { readonly kind: 'choice'; readonly choices: readonly string[] }
  | { readonly kind: 'text' };

const int = (min: number, max = INT_MAX) => ({ kind: 'int', min, max }) as const;
const positive = { kind: 'number', positive: true } as const;
const nonNegative = { kind: 'number', positive: false } as const;
/** a share of something: a number in [0, 1] */
const share = { kind: 'number', positive: false, max: 1 } as const;
const text = { kind: 'text' } as const;
const choice = <C extends readonly string[]>(choices: C) => ({ kind: 'choice', choices }) as const;

interface Row {
  /** the argument's name in --help: `--crop <n>` */
  readonly arg: string;
  readonly help: string;
  readonly value: Value;
  /** absent: not given means "the preset's value" or "not used" */
  readonly default?: string | number;
  /** may be absent from a complete config even though it has a default (steps, replaced by epochs) */
  readonly optional?: true;
  /** `--resume` may change it: it does not decide the numbers a step computes */
  readonly resumable?: true;
  /** the MofmeConfig field this option sets */
  readonly model?: keyof MofmeConfig;
  /** the AdamW hyperparameter this option sets */
  readonly optimizer?: 'lr' | 'weightDecay';
  /** a one-letter alias */
  readonly short?: string;
}

/**
 * Every option of a training run (and of `info`, which shares the network's rows). What --resume
 * may change: nothing that decides the numbers a step computes. Logging cadence, checkpoint cadence
 * and count, loader threads (crops and weather are a function of seed, epoch and sample index, not
 * of the thread that draws them), and more steps (the cosine schedule then stretches to the new end
 * from the step where the run resumes). Validation is not resumable: the UaR router draws from the
 * model's generator in eval mode too.
 */
export const TRAIN_OPTIONS = {
  // ---- the network: a preset of @mofme/mofme plus overrides (absent = the preset's value) ----
  model: { arg: 'kind', help: 'feed-forward of every block', value: choice(FFN_KINDS), default: 'mofme', model: 'ffn' },
  // tiny: the preset that trains in minutes on a CPU
  preset: { arg: 'name', help: 'network size preset', value: choice(presetNames), default: 'tiny' },
  experts: { arg: 'n', help: 'number of experts E (default: the preset\'s, 4)', value: int(1), model: 'experts' },
  topk: { arg: 'n', help: 'experts per token k (default: the preset\'s, 2)', value: int(1), model: 'topk' },
  router: { arg: 'kind', help: 'router: linear (official code) or uar (the paper\'s Uncertainty-aware Router)', value: choice(ROUTER_KINDS), model: 'router' },
  width: { arg: 'n', help: 'token width D (default: the preset\'s)', value: int(1), model: 'dim' },
  depth: { arg: 'n', help: 'transformer blocks (default: the preset\'s)', value: int(1), model: 'depth' },
  // ---- data ----
  data: { arg: 'path', help: '"builtin" (synthetic weather on the bundled photos), a corpus folder (`mofme data corpus`), or a dataset folder / list file', value: text, default: 'builtin' },
  init: { arg: 'path', help: 'start from these weights (model file, checkpoint or run folder; same network) instead of a random init', value: text },
  layout: { arg: 'name', help: 'dataset layout (default: detected)', value: choice(LAYOUTS) },
  val: { arg: 'path', help: 'validation data: "builtin", a path, or "none" (default: builtin val split with --data builtin)', value: text },
  // 64: a few tiny-model steps per second on 2 CPU cores, 8x8 tokens at patch 8
  crop: { arg: 'n', help: 'square training crop, a multiple of the patch size', value: int(1, SIDE_MAX), default: 64, model: 'imageSize' },
  batchSize: { arg: 'n', help: 'images per step', value: int(1), default: 8 },
  // ---- optimisation ----
  // 500: enough for the tiny model to pass the identity baseline on the built-in data
  steps: { arg: 'n', help: 'optimiser steps', value: int(1), default: 500, optional: true, resumable: true },
  epochs: { arg: 'n', help: 'passes over the training data (instead of --steps)', value: int(1) },
  lr: { arg: 'x', help: 'peak learning rate (AdamW)', value: positive, default: 1e-3, optimizer: 'lr' },
  // 0.01: PyTorch's default, the official value
  weightDecay: { arg: 'x', help: 'AdamW decoupled weight decay', value: nonNegative, default: 0.01, optimizer: 'weightDecay' },
  schedule: { arg: 'kind', help: 'learning-rate schedule after the warm-up', value: choice(['cosine', 'constant'] as const), default: 'cosine' },
  warmup: { arg: 'n', help: 'linear warm-up steps', value: int(0), default: 20 },
  // 1e-6: the official cosine's end
  minLr: { arg: 'x', help: 'learning rate at the end of the cosine', value: positive, default: 1e-6 },
  // smoothl1: the official pixel loss. psnr: the reported metric itself, so a clean photo or a light
  // rain counts as much as a thick haze (docs/recipe.md: +0.35 dB on average, +1.5 on raindrops at
  // equal steps); a run saved without this key trained with smoothl1
  loss: { arg: 'kind', help: 'training loss: smoothl1 (official) or psnr (minus the mean PSNR of the images, capped at 30 dB)', value: choice(['smoothl1', 'psnr'] as const), default: 'smoothl1' },
  cleanFraction: { arg: 'x', help: 'share of training samples left clean, input = target (default: 0.1 for built-in and corpus data)', value: share },
  // a grey, low-contrast scene is not haze: without this the bundled model darkened one (issue 14)
  flatLightFraction: { arg: 'x', help: 'share of synthesised training scenes re-lit flat (overcast) first, target too (default: 0)', value: share },
  seed: { arg: 'n', help: 'seed of the weights, the data order and augmentations', value: int(0), default: 0 },
  backend: BACKEND_OPTION, // backend.ts: the flag's choices and its effect, in one file
  workers: { arg: 'n', help: 'data loader threads (0: main thread; default min(2, cores-1))', value: int(0), resumable: true },
  // ---- output, checkpoints, validation, logging ----
  out: { arg: 'dir', help: 'run folder', value: text, default: 'runs/train', short: 'o' },
  ckptEvery: { arg: 'n', help: 'checkpoint every N steps (and at the end)', value: int(1), default: 100, resumable: true },
  keepLast: { arg: 'n', help: 'checkpoints kept (plus best/)', value: int(1), default: 3, resumable: true },
  valEvery: { arg: 'n', help: 'validate every N steps (0: at each checkpoint)', value: int(0), default: 0 },
  // Validation sized to the run, not to the dataset: 16 center crops of 128x128 (one 128 window
  // each) cost about as much as 4 steps of batch 8 at 64x64 on the CPU, where 20 whole 480x320
  // images with 240/120 tiles cost minutes. 16 crops spread over the split keep every weather in it.
  valCrop: { arg: 'n', help: 'validate on a center crop of N pixels per image (0: whole images, tiled)', value: int(0, SIDE_MAX), default: 128 },
  valLimit: { arg: 'n', help: 'validate on at most N images (0: all)', value: int(0), default: 16 },
  logEvery: { arg: 'n', help: 'plain log line every N steps (when not on a terminal)', value: int(1), default: 10, resumable: true },
} as const satisfies Record<string, Row>;

type Rows = typeof TRAIN_OPTIONS;
export type OptionKey = keyof Rows;
type ValueOf<R> = R extends { value: { kind: 'choice'; choices: readonly (infer C)[] } } ? C : R extends { value: { kind: 'text' } } ? string : number;
type Always = { [K in OptionKey as Rows[K] extends { default: unknown } ? (Rows[K] extends { optional: true } ? never : K) : never]: ValueOf<Rows[K]> };
type Sometimes = { [K in OptionKey as Rows[K] extends { default: unknown } ? (Rows[K] extends { optional: true } ? K : never) : K]?: ValueOf<Rows[K]> };
/** Everything a training run is, saved as config.json (key `train`) in the run folder. */
export type TrainConfig = Always & Sometimes;

const ROWS = TRAIN_OPTIONS as Record<OptionKey, Row>;
export const OPTION_KEYS = Object.keys(TRAIN_OPTIONS) as OptionKey[];
/** The network's options (the rows that set a model field, and the preset they start from). */
export const MODEL_KEYS = ['preset', ...OPTION_KEYS.filter((k) => ROWS[k].model)] as OptionKey[];
export const RESUMABLE = OPTION_KEYS.filter((k) => ROWS[k].resumable);
/** The typed defaults: the first of the three layers (defaults, --config file, flags). */
export const TRAIN_DEFAULTS = Object.fromEntries(OPTION_KEYS.filter((k) => ROWS[k].default !== undefined).map((k) => [k, ROWS[k].default])) as unknown as TrainConfig;

/** kebab-case flag of a key: batchSize -> --batch-size */
export function flagOf(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** What is wrong with `value` for a row, in words (ending "got <shown>"), or null when it is fine. */
function problemOf(v: Value, value: unknown, shown = JSON.stringify(value)): string | null {
  switch (v.kind) {
    case 'choice':
      return typeof value === 'string' && v.choices.includes(value) ? null : `invalid value ${shown}; choose one of ${v.choices.join(', ')}`;
    case 'text':
      return typeof value === 'string' && value !== '' ? null : `expected a non-empty string, got ${shown}`;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (v.positive && value === 0)) return `expected ${v.positive ? 'a positive number' : 'a number >= 0'}, got ${shown}`;
      return v.max !== undefined && value > v.max ? `expected at most ${v.max}, got ${shown}` : null;
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < v.min) return `expected ${v.min > 0 ? 'a positive integer' : 'an integer >= 0'}, got ${shown}`;
      return value > v.max ? `expected at most ${v.max.toLocaleString('en-US')}, got ${shown}` : null;
  }
}

/** The number a numeric row's text stands for (NaN for a typo); other rows' text is the value itself. */
function fromText(v: Value, s: string): unknown {
  if (v.kind !== 'int' && v.kind !== 'number') return s;
  // integers are written as digits, within 2^53: "1e3", "2.0" or twenty nines for --steps are typos
  return s.trim() === '' || (v.kind === 'int' && !(/^\s*\d+\s*$/.test(s) && Number.isSafeInteger(Number(s)))) ? NaN : Number(s);
}

/** A commander value parser for the integer flags of other commands (--tile, --limit, ...): a bad
 *  value is one line naming the flag (commander adds it). */
export function intArg(min: number, max = INT_MAX): (s: string) => number {
  const v = int(min, max);
  return (s: string) => {
    const n = fromText(v, s) as number;
    const problem = problemOf(v, n);
    if (problem) throw new InvalidArgumentError(problem.replace(/, got .*$/, '.'));
    return n;
  };
}
/** an image side in pixels: --tile, --stride */
export const sideArg = intArg(1, SIDE_MAX);

/**
 * The commander option of one row; without defaults (`info`) a missing value means the preset's.
 * Commander only collects the text (and lists a choice row's choices in --help): the value is
 * parsed and checked once, with the other layers, by `runConfigOf` / `networkConfigOf`.
 */
export function optionOf(key: OptionKey, withDefault = true): Option {
  const row = ROWS[key];
  const o = new Option(`${row.short ? `-${row.short}, ` : ''}${flagOf(key)} <${row.arg}>`, row.help);
  if (row.value.kind === 'choice') o.choices(row.value.choices);
  if (withDefault && row.default !== undefined) o.default(row.default);
  return o;
}

export function addOptions(cmd: Command, keys: readonly OptionKey[], withDefault = true): Command {
  for (const k of keys) cmd.addOption(optionOf(k, withDefault));
  return cmd;
}

/** Options as given: the command line's text (the flags given, not commander's defaults), or typed values (the demo's config). */
export type Flags = Partial<Record<OptionKey, unknown>>;

/** Read a JSON config file (flat keys as in the table); its values are checked with the other layers. */
function readConfigFile(path: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new CliError(`--config ${path}: cannot read it: ${why}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CliError(`--config ${path}: expected a JSON object of training options`);
  return raw as Record<string, unknown>;
}

/** One configuration layer: its values, and how an error about one of them starts. */
interface Layer {
  values: Record<string, unknown>;
  /** "--config run.json": names the layer in an unknown-key error */
  name: string;
  /** "--crop" or "--config run.json: crop" */
  where: (key: string) => string;
  /** the command line's text: numbers are parsed from it */
  text?: true;
  /** a run's own saved configuration: taken as it is (it is what the run did, even if a bound has changed since) */
  saved?: true;
}
const flagLayer = (flags: Flags): Layer => ({ values: flags, name: 'the command line', where: flagOf, text: true });
const fileLayer = (path: string): Layer => ({ values: readConfigFile(path), name: `--config ${path}`, where: (k) => `--config ${path}: ${k}` });

/** What a run is: its options, and what they set in the network, the optimiser and the schedule. */
export interface RunConfig {
  /** every option, as saved in the run folder's config.json (key `train`) */
  train: TrainConfig;
  /** the network, validated by @mofme/mofme */
  model: Readonly<MofmeConfig>;
  /** AdamW's hyperparameters: the rows that set one (`--lr`, `--weight-decay`) */
  optimizer: { lr: number; weightDecay: number };
  /** the learning-rate schedule; the cosine's floor as a share of the peak rate (nn's schedules are multipliers) */
  schedule: { kind: TrainConfig['schedule']; warmup: number; minFactor: number };
}

/**
 * The one pass from the layers to a run. Later layers override earlier ones (`steps` and `epochs`
 * exclude each other: a layer that gives one drops the other from the layers before it); then every
 * row's value is parsed (command-line text), checked against its row, and placed where the row says:
 * the run's options, the network field it sets, or the optimiser's hyperparameter. A model error
 * names the flag whose row sets the bad field ("--crop 30: must be a multiple of patchSize (8)").
 */
function resolve(layers: Layer[], withDefaults: boolean): RunConfig {
  const given = new Map<OptionKey, { value: unknown; layer: Layer }>();
  const base: Layer = { values: withDefaults ? TRAIN_DEFAULTS : {}, name: 'the defaults', where: flagOf };
  for (const layer of [base, ...layers]) {
    const has = (k: OptionKey) => layer.values[k] !== undefined;
    if (has('epochs') && !has('steps')) given.delete('steps');
    if (has('steps') && !has('epochs')) given.delete('epochs');
    for (const [k, value] of Object.entries(layer.values)) {
      if (!layer.saved && !Object.hasOwn(TRAIN_OPTIONS, k)) throw new CliError(`${layer.name}: unknown key "${k}"; valid keys: ${OPTION_KEYS.join(', ')}`);
      if (value !== undefined) given.set(k as OptionKey, { value, layer });
    }
  }
  const train: Record<string, unknown> = {};
  const network: Record<string, unknown> = {};
  const optimizer: Record<string, unknown> = {};
  for (const [key, { value: raw, layer }] of given) {
    const row = ROWS[key] as Row | undefined;
    const text = layer.text && typeof raw === 'string';
    const value = text && row ? fromText(row.value, raw) : raw;
    const problem = layer.saved || !row ? null : problemOf(row.value, value, text ? JSON.stringify(raw) : undefined);
    if (problem) throw new CliError(`${layer.where(key)}: ${problem}`);
    train[key] = value;
    if (!row) continue;
    if (row.model) network[row.model] = value;
    if (row.optimizer) optimizer[row.optimizer] = value;
  }
  const cfg = train as TrainConfig;
  return {
    train: cfg,
    model: networkOf(String(cfg.preset ?? TRAIN_DEFAULTS.preset), network),
    optimizer: optimizer as RunConfig['optimizer'],
    // the floor is a share of the peak rate, and never above it
    schedule: { kind: cfg.schedule, warmup: cfg.warmup, minFactor: Math.min(1, cfg.minLr / cfg.lr) },
  };
}

/** @mofme/mofme's network for a preset and the fields the rows set; its errors name the flag. */
function networkOf(preset: string, overrides: Record<string, unknown>): Readonly<MofmeConfig> {
  // A fewer experts than the preset's top-k keeps them all, unless --topk says otherwise.
  const presetTopk = Object.hasOwn(presets, preset) ? presets[preset as PresetName].topk : undefined;
  if (overrides.experts !== undefined && overrides.topk === undefined && presetTopk !== undefined) overrides.topk = Math.min(presetTopk, overrides.experts as number);
  try {
    return resolveConfig(preset as PresetName, overrides as ConfigOverrides);
  } catch (e) {
    const field = (e as { field?: string }).field;
    const key = field === 'preset' ? 'preset' : OPTION_KEYS.find((k) => ROWS[k].model === field);
    const reason = (e as Error).message.replace(/^invalid MoFME config: [^=]*= /, '');
    throw new CliError(key ? `${flagOf(key)} ${reason}` : `the ${preset} preset: ${(e as Error).message}`);
  }
}

/**
 * The configuration a run uses: for a new run the defaults, then the --config file, then the flags;
 * for a resumed run its own saved configuration, where only the RESUMABLE options may be given again
 * (the others would change the numbers a step computes).
 */
export function runConfigOf(
  request: { flags: Flags; configFile?: string | undefined },
  /** with --resume: reads the run's saved state, once the flags are known to be allowed with it */
  readSaved?: () => { config: TrainConfig; step: number },
): RunConfig {
  const { flags, configFile } = request;
  if (!readSaved) {
    if (flags.steps !== undefined && flags.epochs !== undefined) throw new CliError('--steps and --epochs exclude each other; give one');
    return resolve([...(configFile ? [fileLayer(configFile)] : []), flagLayer(flags)], true);
  }
  const fixed = Object.keys(flags).filter((k) => !(RESUMABLE as string[]).includes(k));
  if (fixed.length || configFile) throw new CliError(`--resume continues with the run's saved configuration; drop ${[...fixed.map(flagOf), ...(configFile ? ['--config'] : [])].join(', ')} (only ${RESUMABLE.map(flagOf).join(', ')} may change)`);
  const saved = readSaved();
  // the saved configuration as it was (a run saved before a row existed keeps that row's absence),
  // then the flags; --steps replaces an --epochs length
  const run = resolve([{ values: saved.config, name: "the run's config.json", where: (k) => `the run's config.json: ${k}`, saved: true }, flagLayer(flags)], false);
  if (run.train.steps !== undefined && flags.steps !== undefined && run.train.steps <= saved.step) {
    throw new CliError(`--steps ${run.train.steps}: the run is already at step ${saved.step}; give more steps to continue it`);
  }
  return run;
}

/** The network of `mofme info`: the preset and the network flags given, nothing else (its own image size: info has no --crop). */
export function networkConfigOf(flags: Flags): Readonly<MofmeConfig> {
  return resolve([flagLayer(flags)], false).model;
}

/** A `WxH` flag value (--size, --resize): a one-line error naming the flag otherwise. */
export function parseSize(v: string, flag: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new CliError(`${flag}: expected WIDTHxHEIGHT like 720x480, got "${v}"`);
  return { width: Number(m[1]), height: Number(m[2]) };
}
