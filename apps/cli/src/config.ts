/**
 * The training configuration: typed defaults, then an optional JSON file (`--config run.json`),
 * then command-line flags, each layer overriding the one before. The result (`TrainConfig`) is
 * saved as `config.json` in the run folder, so a run always records exactly what it did, and
 * `--resume` reads it back instead of trusting the flags of the resuming command.
 *
 * Keys are flat and named like the flags (`batchSize` <-> `--batch-size`), so a config file is a
 * list of flags written as JSON. Unknown keys and bad values are errors that name the key and the
 * valid choices: a typo must never leave a default silently in place.
 */
import { readFileSync } from 'node:fs';
import { presetNames, resolveConfig, type ConfigOverrides, type MofmeConfig } from '@mofme/mofme';
import { LAYOUTS } from '@mofme/data';
import { CliError } from './errors';
import { BACKENDS, MODEL_KINDS, ROUTERS, SCHEDULES, TRAIN_DEFAULTS, flagOf, type TrainConfig } from './options';

export { BACKENDS, MODEL_KINDS, ROUTERS, SCHEDULES, TRAIN_DEFAULTS, flagOf, type TrainConfig };

const KEYS: readonly (keyof TrainConfig)[] = [
  'model', 'preset', 'experts', 'topk', 'router', 'width', 'depth', 'data', 'init', 'layout', 'val', 'crop', 'batchSize', 'steps', 'epochs',
  'lr', 'weightDecay', 'schedule', 'warmup', 'minLr', 'seed', 'backend', 'workers', 'out', 'ckptEvery', 'keepLast', 'valEvery',
  'valCrop', 'valLimit', 'logEvery',
];
const CHOICES: Partial<Record<keyof TrainConfig, readonly string[]>> = {
  model: MODEL_KINDS, preset: presetNames, router: ROUTERS, schedule: SCHEDULES, backend: BACKENDS, layout: LAYOUTS,
};
const STRINGS = new Set<keyof TrainConfig>(['data', 'init', 'out', 'val', ...Object.keys(CHOICES) as (keyof TrainConfig)[]]);
const POSITIVE_INTS = new Set<keyof TrainConfig>(['experts', 'topk', 'width', 'depth', 'crop', 'batchSize', 'steps', 'epochs', 'ckptEvery', 'keepLast', 'logEvery']);
const NONNEG_INTS = new Set<keyof TrainConfig>(['warmup', 'seed', 'workers', 'valEvery', 'valCrop', 'valLimit']);

/** Check one key/value pair; `where` says where it came from ("--lr", "run.json: lr"). */
export function checkValue(key: keyof TrainConfig, value: unknown, where: string): void {
  const choices = CHOICES[key];
  if (choices) {
    if (typeof value !== 'string' || !choices.includes(value)) throw new CliError(`${where}: invalid value ${JSON.stringify(value)}; choose one of ${choices.join(', ')}`);
    return;
  }
  if (STRINGS.has(key)) {
    if (typeof value !== 'string' || value === '') throw new CliError(`${where}: expected a non-empty string, got ${JSON.stringify(value)}`);
    return;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new CliError(`${where}: expected a number, got ${JSON.stringify(value)}`);
  if (POSITIVE_INTS.has(key) && !(Number.isInteger(value) && value >= 1)) throw new CliError(`${where}: expected a positive integer, got ${value}`);
  if (NONNEG_INTS.has(key) && !(Number.isInteger(value) && value >= 0)) throw new CliError(`${where}: expected an integer >= 0, got ${value}`);
  const max = key === 'crop' || key === 'valCrop' ? 16_384 : 1_000_000_000; // as the flags' bounds (main.ts)
  if ((POSITIVE_INTS.has(key) || NONNEG_INTS.has(key)) && value > max) throw new CliError(`${where}: expected at most ${max.toLocaleString('en-US')}, got ${value}`);
  if ((key === 'lr' || key === 'minLr') && !(value > 0)) throw new CliError(`${where}: expected a positive number, got ${value}`);
  if (key === 'weightDecay' && !(value >= 0)) throw new CliError(`${where}: expected a number >= 0, got ${value}`);
}

/** Read and validate a JSON config file (flat keys as in TrainConfig). */
export function readConfigFile(path: string): Partial<TrainConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new CliError(`--config ${path}: cannot read it: ${why}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CliError(`--config ${path}: expected a JSON object of training options`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(KEYS as readonly string[]).includes(k)) throw new CliError(`--config ${path}: unknown key "${k}"; valid keys: ${KEYS.join(', ')}`);
    checkValue(k as keyof TrainConfig, v, `--config ${path}: ${k}`);
    out[k] = v;
  }
  return out as Partial<TrainConfig>;
}

/** defaults <- file <- flags; `steps` and `epochs` exclude each other (a later layer's choice wins). */
export function mergeConfig(file: Partial<TrainConfig>, flags: Partial<TrainConfig>): TrainConfig {
  const cfg: TrainConfig = { ...TRAIN_DEFAULTS };
  for (const layer of [file, flags]) {
    if (layer.epochs !== undefined && layer.steps === undefined) delete cfg.steps;
    if (layer.steps !== undefined && layer.epochs === undefined) delete cfg.epochs;
    Object.assign(cfg, Object.fromEntries(Object.entries(layer).filter(([, v]) => v !== undefined)));
  }
  if (flags.steps !== undefined && flags.epochs !== undefined) throw new CliError('--steps and --epochs exclude each other; give one');
  return cfg;
}

/** The network configuration a training config asks for (validated by @mofme/mofme). */
export function modelConfigOf(cfg: Pick<TrainConfig, 'preset' | 'model' | 'experts' | 'topk' | 'router' | 'width' | 'depth' | 'crop'>): Readonly<MofmeConfig> {
  const o: ConfigOverrides = { ffn: cfg.model };
  if (cfg.experts !== undefined) o.experts = cfg.experts;
  if (cfg.topk !== undefined) o.topk = cfg.topk;
  if (cfg.router !== undefined) o.router = cfg.router;
  if (cfg.width !== undefined) o.dim = cfg.width;
  if (cfg.depth !== undefined) o.depth = cfg.depth;
  if (cfg.crop !== undefined) o.imageSize = cfg.crop;
  // A default top-k larger than a small --experts would be invalid: clamp the preset's default.
  if (cfg.experts !== undefined && cfg.topk === undefined) o.topk = Math.min(2, cfg.experts);
  let mc: Readonly<MofmeConfig>;
  try {
    mc = resolveConfig(cfg.preset, o);
  } catch (e) {
    const field = (e as { field?: string }).field;
    const flag = field === 'dim' ? '--width' : field === 'ffn' ? '--model' : field === 'imageSize' ? '--crop' : field ? flagOf(field) : 'model';
    throw new CliError(`${flag}: ${(e as Error).message.replace(/^invalid MoFME config: /, '')}`);
  }
  if (cfg.crop % mc.patchSize !== 0) throw new CliError(`--crop ${cfg.crop}: must be a multiple of the patch size ${mc.patchSize} of the ${cfg.preset} preset`);
  return mc;
}
