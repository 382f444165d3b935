/**
 * The run folder and its checkpoints, and model files: every read and write of them is here (the
 * commands call these functions and never open a run folder's files themselves).
 *
 * A run folder (`mofme train --out DIR`) holds
 *   config.json         { train: TrainConfig, model: MofmeConfig, totalSteps }: what the run is
 *   metrics.jsonl       one JSON line per step and per validation, appended as the run goes
 *   ckpt-NNNNNN/        the newest checkpoints (--keep-last), and best/, a copy of the best one
 * A model file (`model.safetensors`: a checkpoint's, the bundled one in apps/cli/pretrained, or
 * what `mofme import` and `mofme export --format safetensors` write) holds the weights with the
 * model config and the step in its metadata; it alone is what eval, restore, info and export read.
 *
 * Checkpoints: everything needed to continue a training run exactly, written so that a crash at any
 * moment leaves either the previous checkpoint or the new one, never half of one.
 *
 * A checkpoint is a folder `ckpt-000100/` in the run folder:
 *   model.safetensors   the weights; metadata: format, the model config (JSON), step
 *                       (this file alone is what eval/restore/info need)
 *   optim.safetensors   AdamW's moment tensors (flattenOptimizerState) + its hyper-parameters and the
 *                       scheduler's clock in the metadata
 *   state.json          step, loader position, the model's RNG state (dropout, UaR sampling), best
 *                       validation score so far, elapsed training time, the training config
 *
 * Atomicity: the files are written into `ckpt-000100.tmp/` (each one fsync-ed by io.ts's atomic
 * writer), then the folder is renamed to `ckpt-000100/`. rename(2) of a directory is atomic,
 * so a folder without `.tmp` is always complete; leftover `.tmp` folders are ignored and cleaned.
 * The whole save is synchronous, so a signal handler cannot run in the middle of it (train.ts).
 * A failed save (a full disk) removes its `.tmp` folder and names the file it could not write.
 *
 * Finite weights. A model file whose tensors hold NaN or Inf restores nothing but black: loading
 * one for eval, restore, info or report is refused, naming the first such tensor.
 * `best/` (the checkpoint with the best validation PSNR, never chosen on test data) is replaced by
 * writing `best.tmp/`, moving the old one to `best.old/`, renaming, then deleting `best.old/`.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, cpSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GeneratorState, Tensor } from '@mofme/tensor';
import {
  flattenOptimizerState, unflattenOptimizerState, loadModel, loadSafetensors, saveModelSync, serializeModel, serializeSafetensors, formatLoadReport,
  type LRScheduler, type Optimizer, type BaseHyper, type LoadReport,
} from '@mofme/nn';
import { fsError, fsyncDir, writeOutput } from './io';
import { createModel, resolveConfig, type MoFME, type MofmeConfig } from '@mofme/mofme';
import type { LoaderPosition } from '@mofme/data';
import { CliError } from './errors';
import type { TrainConfig } from './options';

const CKPT_RE = /^ckpt-(\d+)$/;
const MODEL_FILE = 'model.safetensors';

/** The bundled pretrained model (trained by `mofme train`, see README): the same relative path from src/ and dist/. */
export const PRETRAINED = fileURLToPath(new URL('../pretrained/model.safetensors', import.meta.url));

/** `--checkpoint PATH`, or the bundled pretrained model when none is given. */
export function checkpointOrPretrained(path: string | undefined): string {
  if (path) return path;
  if (!existsSync(PRETRAINED)) throw new CliError(`no --checkpoint given and the bundled pretrained model ${PRETRAINED} is missing`);
  return PRETRAINED;
}

export interface TrainingState {
  step: number;
  loader: LoaderPosition;
  rng: GeneratorState;
  bestPsnr: number | null;
  bestStep: number | null;
  elapsedSeconds: number;
  config: TrainConfig;
}

function ckptName(step: number): string {
  return `ckpt-${String(step).padStart(6, '0')}`;
}

/** Rename `tmp` onto `dest`, replacing an existing `dest` folder (through `dest.old`). */
function replaceDir(tmp: string, dest: string): void {
  const old = dest + '.old';
  if (existsSync(old)) rmSync(old, { recursive: true, force: true });
  if (existsSync(dest)) renameSync(dest, old);
  renameSync(tmp, dest);
  fsyncDir(dirname(dest));
  if (existsSync(old)) rmSync(old, { recursive: true, force: true });
}

/** Write a complete checkpoint folder atomically (synchronously: see the header); returns its path. */
export function saveCheckpoint(runDir: string, model: MoFME, optimizer: Optimizer<BaseHyper>, scheduler: LRScheduler, state: TrainingState): string {
  const dest = join(runDir, ckptName(state.step));
  const tmp = dest + '.tmp';
  try {
    rmSync(tmp, { recursive: true, force: true });
    try { mkdirSync(tmp, { recursive: true }); } catch (e) { throw fsError('create the folder', tmp, e); }
    writeModelFile(join(tmp, MODEL_FILE), model, state.step);
    const flat = flattenOptimizerState(optimizer.stateDict());
    writeOutput(join(tmp, 'optim.safetensors'), serializeSafetensors(flat.tensors as Record<string, Tensor>, {
      optimizer: flat.metadata,
      scheduler: JSON.stringify(scheduler.stateDict()),
    }));
    writeOutput(join(tmp, 'state.json'), JSON.stringify(state, null, 2) + '\n');
    fsyncDir(tmp);
    try { replaceDir(tmp, dest); } catch (e) { throw fsError('rename', `${tmp} to ${dest}`, e); }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // roll back: no half checkpoint stays behind
    throw e;
  }
  return dest;
}

/** "name (NaN at index i)" of the first tensor holding a NaN or an infinity, or null when all are finite. */
export function firstNonFinite(tensors: Record<string, Tensor> | Iterable<[string, Tensor]>): string | null {
  for (const [name, t] of Symbol.iterator in tensors ? tensors as Iterable<[string, Tensor]> : Object.entries(tensors)) {
    const d = t.data();
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (!Number.isFinite(v)) return `tensor ${name}: ${v} at index ${i}`;
    }
  }
  return null;
}

/** A load report in one short line: counts and the first few keys, not all of them. */
function shortLoadReport(report: LoadReport): string {
  const few = (keys: string[]) => keys.slice(0, 3).join(', ') + (keys.length > 3 ? `, ... (${keys.length} in all)` : '');
  const parts: string[] = [];
  if (report.missing.length) parts.push(`missing ${few(report.missing)}`);
  if (report.unexpected.length) parts.push(`unexpected ${few(report.unexpected)}`);
  if (report.mismatched.length) {
    const m = report.mismatched[0]!;
    parts.push(`${m.key} is [${m.got.join(', ')}] where the network has [${m.expected.join(', ')}]${report.mismatched.length > 1 ? ` (and ${report.mismatched.length - 1} more shapes)` : ''}`);
  }
  return parts.join('; ') || formatLoadReport(report);
}

export function modelMetadata(config: MofmeConfig, step: number): Record<string, string> {
  return { format: 'mofme-ts/1', config: JSON.stringify(config), step: String(step) };
}

/** The bytes of a model file (nn's serializeModel): the weights under our names, the config and the step in the metadata. */
export function modelFileBytes(model: MoFME, step: number): Uint8Array {
  return serializeModel(model, modelMetadata(model.config, step));
}

/** Write a model file atomically (nn's saveModelSync); a failure names the file. */
export function writeModelFile(file: string, model: MoFME, step: number): void {
  try { saveModelSync(file, model, modelMetadata(model.config, step)); } catch (e) { throw fsError('write', file, e); }
}

// ---- the run folder's config.json and metrics.jsonl ----------------------------------------------

export interface RunConfig { train: TrainConfig; model: MofmeConfig; totalSteps: number }

export function writeRunConfig(runDir: string, config: RunConfig): void {
  writeOutput(join(runDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}

export function readRunConfig(runDir: string): RunConfig {
  const file = join(runDir, 'config.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunConfig;
  } catch (e) {
    throw new CliError(`${file}: cannot read the run's configuration (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** One line of metrics.jsonl: a training step, or a validation. */
export interface MetricLine {
  type: 'train' | 'val';
  step: number;
  loss?: number; lr?: number; imagesPerSec?: number; epoch?: number; time?: number;
  /** peak resident memory of the training process so far, MiB (absent in runs saved before it) */
  peakMiB?: number;
  psnr?: number; ssim?: number; identityPsnr?: number; identitySsim?: number; seconds?: number;
  tasks?: Record<string, { psnr: number; ssim: number }>;
}

export function readMetrics(runDir: string): MetricLine[] {
  const f = join(runDir, 'metrics.jsonl');
  if (!existsSync(f)) throw new CliError(`${runDir}: no metrics.jsonl (is it a mofme train run folder?)`);
  const lines = readFileSync(f, 'utf8').split('\n').filter((l) => l.trim());
  return lines.flatMap((l, i) => {
    try { return [JSON.parse(l) as MetricLine]; } catch {
      if (i === lines.length - 1) return []; // the last line of a killed run may be cut short
      throw new CliError(`${f}: line ${i + 1} is not JSON: ${l.slice(0, 60)}`);
    }
  });
}

/**
 * Start the run's metrics.jsonl: empty for a new run; for a resumed one, forget what the killed run
 * logged after the checkpoint's step (those steps are about to be redone; a line cut by the kill is
 * dropped too). Returns the function that appends a line: metrics.jsonl is a log, written line by
 * line, so a kill can cut only its last line.
 */
export function openMetricsLog(runDir: string, resumedAt: number | null): (line: MetricLine) => void {
  const file = join(runDir, 'metrics.jsonl');
  if (resumedAt !== null && existsSync(file)) {
    const kept = readFileSync(file, 'utf8').split('\n').filter((l) => {
      try { return l.trim() && (JSON.parse(l) as MetricLine).step <= resumedAt; } catch { return false; }
    });
    writeOutput(file, kept.map((l) => l + '\n').join(''));
  } else {
    writeOutput(file, '');
  }
  return (line) => {
    try { appendFileSync(file, JSON.stringify(line) + '\n'); } catch (e) { throw fsError('write', file, e); }
  };
}

/** Complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): { step: number; path: string }[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .map((name) => ({ name, m: CKPT_RE.exec(name) }))
    .filter((e) => e.m && existsSync(join(runDir, e.name, 'state.json')))
    .map((e) => ({ step: Number(e.m![1]), path: join(runDir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

/** Keep the newest `keep` checkpoints (and best/, which is a copy); delete older ones and stale temp folders. */
export function pruneCheckpoints(runDir: string, keep: number): void {
  const all = listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - keep))) rmSync(c.path, { recursive: true, force: true });
  for (const name of readdirSync(runDir)) if (/^ckpt-\d+\.(tmp|old)$/.test(name)) rmSync(join(runDir, name), { recursive: true, force: true });
}

/** Copy a checkpoint to `best/` atomically. */
export function markBest(runDir: string, ckptDir: string): void {
  const tmp = join(runDir, 'best.tmp');
  rmSync(tmp, { recursive: true, force: true });
  try {
    cpSync(ckptDir, tmp, { recursive: true });
    replaceDir(tmp, join(runDir, 'best'));
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true }); // the previous best/ stays
    throw fsError('copy', `${ckptDir} to ${join(runDir, 'best')}`, e);
  }
}

/** Where `--resume DIR` continues from: DIR itself if it is a checkpoint, else the newest in the run folder. */
export function resolveResume(dir: string): { ckpt: string; runDir: string } {
  if (!existsSync(dir)) throw new CliError(`--resume ${dir}: no such folder`);
  if (existsSync(join(dir, 'state.json')) && CKPT_RE.test(basename(dir))) return { ckpt: dir, runDir: dirname(dir) };
  if (existsSync(join(dir, 'state.json')) && basename(dir) === 'best') return { ckpt: dir, runDir: dirname(dir) };
  const list = listCheckpoints(dir);
  if (!list.length) {
    const unfinished = readdirSync(dir).filter((n) => /^ckpt-\d+\.tmp$/.test(n));
    throw new CliError(`--resume ${dir}: no complete checkpoint (ckpt-NNNNNN/ with state.json) in it${unfinished.length ? ` (${unfinished.join(', ')} was never finished)` : ''}`);
  }
  return { ckpt: list[list.length - 1]!.path, runDir: dir };
}

export function readState(ckpt: string): TrainingState {
  try {
    return JSON.parse(readFileSync(join(ckpt, 'state.json'), 'utf8')) as TrainingState;
  } catch (e) {
    throw new CliError(`checkpoint ${ckpt}: state.json is unreadable or corrupt (${(e as Error).message})`);
  }
}

/** Continue a run from checkpoint folder `ckpt`: its weights, the optimiser's moments, the schedule's clock and the model's random stream. */
export async function restoreTraining(ckpt: string, state: TrainingState, model: MoFME, optimizer: Optimizer<BaseHyper>, scheduler: LRScheduler): Promise<void> {
  await loadWeightsInto(model, join(ckpt, MODEL_FILE), 'checkpoint', 'was the run folder edited?');
  await loadOptimizerState(ckpt, optimizer, scheduler);
  model.rng.setState(state.rng);
}

/** Restore optimiser and scheduler from a checkpoint folder. */
async function loadOptimizerState(ckpt: string, optimizer: Optimizer<BaseHyper>, scheduler: LRScheduler): Promise<void> {
  const file = join(ckpt, 'optim.safetensors');
  try {
    const { tensors, metadata } = await loadSafetensors(file);
    const dict = unflattenOptimizerState(tensors, metadata.optimizer ?? '{"steps":{},"paramGroups":[]}');
    // Checkpoints written before nn's schedules became multipliers saved each group's scheduled rate
    // as `lr` and the rate it was given as `initialLr`; the group's rate is the latter (the clock
    // restored below gives the schedule's factor).
    for (const group of dict.paramGroups) {
      if ('initialLr' in group) { group.lr = group.initialLr; delete group.initialLr; }
    }
    optimizer.loadStateDict(dict);
    scheduler.loadStateDict(JSON.parse(metadata.scheduler ?? '{"count":0}'));
  } catch (e) {
    throw new CliError(`checkpoint ${file} is corrupt or does not match the model: ${(e as Error).message}`);
  }
}

/**
 * Find the model file of CHECKPOINT, which may be a .safetensors file, a checkpoint folder, or a run
 * folder (then best/ if there is one, else the newest checkpoint).
 */
export function resolveModelFile(path: string): string {
  if (!existsSync(path)) throw new CliError(`checkpoint ${path}: no such file or folder`);
  if (statSync(path).isFile()) return path;
  if (existsSync(join(path, MODEL_FILE))) return join(path, MODEL_FILE);
  if (existsSync(join(path, 'best', MODEL_FILE))) return join(path, 'best', MODEL_FILE);
  const list = listCheckpoints(path);
  if (list.length) return join(list[list.length - 1]!.path, MODEL_FILE);
  throw new CliError(`checkpoint ${path}: no ${MODEL_FILE}, best/ or ckpt-NNNNNN/ in this folder`);
}

/**
 * Load a model file's weights into a network built by the caller (resume, `--init`): a short error
 * naming the file and the first keys when they do not fit, and the tensor when one is not finite.
 */
export async function loadWeightsInto(model: MoFME, file: string, what: string, hint: string): Promise<void> {
  let report;
  try {
    ({ report } = await loadModel(file, model, { strict: false }));
  } catch (e) {
    throw new CliError(`${what} ${file} is not a readable safetensors file: ${(e as Error).message}`);
  }
  if (report.missing.length || report.unexpected.length || report.mismatched.length) {
    throw new CliError(`${what} ${file}: its weights do not fit the network of this run: ${shortLoadReport(report)}; ${hint}`);
  }
  const bad = firstNonFinite(model.namedParameters());
  if (bad) throw new CliError(`${what} ${file}: ${bad}; a model with NaN/Inf weights cannot be trained on`);
}

/** Build the network described by a model file's metadata and load its weights (strictly). */
export async function loadModelFile(path: string): Promise<{ model: MoFME; config: Readonly<MofmeConfig>; file: string; step: number | null }> {
  const file = resolveModelFile(path);
  let loaded;
  try {
    loaded = await loadModel(file, (metadata) => createModel(configIn(file, metadata), { seed: 0 }), { strict: false });
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`checkpoint ${file} is not a readable safetensors file: ${(e as Error).message}`);
  }
  const { module: model, report, metadata } = loaded;
  if (report.missing.length || report.unexpected.length || report.mismatched.length) {
    throw new CliError(`checkpoint ${file}: its weights do not match the config in its metadata: ${shortLoadReport(report)}`);
  }
  const bad = firstNonFinite(model.namedParameters());
  if (bad) throw new CliError(`checkpoint ${file}: ${bad}; a model with NaN/Inf weights restores nothing (a diverged run? use an earlier checkpoint)`);
  const step = metadata.step !== undefined ? Number(metadata.step) : null;
  return { model, config: model.config, file, step };
}

/** The model config a model file's metadata holds, validated. */
function configIn(file: string, metadata: Record<string, string>): Readonly<MofmeConfig> {
  const raw = metadata.config;
  if (!raw) throw new CliError(`checkpoint ${file} has no model config in its metadata (not written by mofme train?)`);
  try {
    return resolveConfig(JSON.parse(raw) as MofmeConfig);
  } catch (e) {
    throw new CliError(`checkpoint ${file}: its model config is invalid: ${(e as Error).message}`);
  }
}
