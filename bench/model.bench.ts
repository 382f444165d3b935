/**
 * Model benchmark: our engine against PyTorch on the SAME network with the SAME weights and inputs,
 * measured in one run on one machine (issue 13, point 6).
 *
 * The network is ours (packages/mofme); the PyTorch side is its twin, scripts/torch/mofme_torch.py,
 * built from the same config and loading the same safetensors file, which its own test checks
 * against ours to 1e-4. Rows: eval forward of one 240x240 tile for the tiny, small and paper
 * presets; a training step (forward, SmoothL1, backward, AdamW) of tiny at batch 8, 64x64, and of
 * paper at batch 4, 240x240; the restoration of one 720x480 image with the bundled model
 * (apps/cli/pretrained, tiny) in the windows `mofme restore` uses by default (DEFAULT_TILE/DEFAULT_STRIDE of
 * packages/mofme: 192x192 at stride 144, 15 windows; PyTorch averages the same windows). Each row at 1 and 2
 * threads (ours: MOFME_THREADS; PyTorch: torch.set_num_threads and OPENBLAS/OMP_NUM_THREADS).
 *
 * Columns: wall time of each side (median after a first run, see model-worker.ts) with the CPU time
 * of its process beside it (all threads; on a shared, loaded machine the CPU time of a 1-thread cell
 * is what the others' load disturbs least), ours/PyTorch (> 1: we are slower) for both, achieved
 * GFLOP/s of each side (per wall second), and the peak resident memory of each side's process. FLOPs = 2 x the multiply-adds of packages/mofme's countFlops (the preset's own
 * execution, sparse experts: k of E per token), x batch; a training step counts 3 x the forward
 * (the backward costs about twice the forward); a restore counts its windows. Every cell runs in
 * a fresh process (peak memory is per cell; a crash or an out-of-memory ends only that cell, and
 * the row says so). Inputs are random pixels in [-1, 1]: the cost does not depend on the content,
 * except for how the router splits tokens among experts.
 *
 * Where /usr/bin/python3 cannot import torch, the PyTorch columns say so and our side still runs.
 *
 * Run: pnpm bench (everything) or, from bench/, `node --conditions=source --import tsx model.bench.ts`
 *   --quick           tiny forward, tiny training step and the restore only, one timed run each
 *   --threads 1,2     thread counts (default 1,2)
 *   --only TEXT       rows whose name contains TEXT
 *   --budget S        CPU seconds of timed runs per cell (default 60; --quick 10)
 *   --cell-timeout S  stop a cell after S wall seconds and report it (default 1500; --quick 180)
 *   --deadline M      start no cell after M minutes; the rest are reported as not run (default: none)
 * On a shared machine run it under `nice -n 10`; the load average is printed with the table.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Generator, randn, type Tensor } from '@mofme/tensor';
import { loadSafetensorsSync, saveSafetensorsSync } from '@mofme/nn';
import { countFlops, createModel, DEFAULT_STRIDE, DEFAULT_TILE, resolveConfig, tileStarts, type MofmeConfig, type PresetName } from '@mofme/mofme';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const threadCounts = (argOf('threads') ?? '1,2').split(',').map(Number);
const only = argOf('only');

const PYTHON = '/usr/bin/python3';
const here = new URL('.', import.meta.url).pathname;
const root = join(here, '..');
const torchScript = join(root, 'scripts/torch/bench_torch.py');
const bundledModel = join(root, 'apps/cli/pretrained/model.safetensors');
// Timing: repeated runs while the budget (CPU seconds) lasts; the cold first run only when it alone is a third of it.
const reps = quick ? 1 : 3;
const budgetS = Number(argOf('budget') ?? (quick ? 10 : 60));
// A cell that takes longer than this (wall) is stopped and reported (the paper training step of a
// slow engine at batch 4 takes minutes per run on one core, many more on a loaded machine).
const cellTimeoutS = Number(argOf('cell-timeout') ?? (quick ? 180 : 1500));
const deadlineMs = argOf('deadline') !== undefined ? Number(argOf('deadline')) * 60_000 : Infinity;
const startedAt = Date.now();

interface RowSpec {
  name: string;
  kind: 'forward' | 'train' | 'restore';
  preset: PresetName | 'bundled';
  batch: number;
  height: number;
  width: number;
  quick: boolean;
}
// Cheapest first, so that a --deadline drops the most expensive rows.
const rowSpecs: RowSpec[] = [
  { name: 'eval forward, tiny, 240x240 tile', kind: 'forward', preset: 'tiny', batch: 1, height: 240, width: 240, quick: true },
  { name: 'training step, tiny, batch 8, 64x64', kind: 'train', preset: 'tiny', batch: 8, height: 64, width: 64, quick: true },
  { name: 'eval forward, small, 240x240 tile', kind: 'forward', preset: 'small', batch: 1, height: 240, width: 240, quick: false },
  { name: 'restore 720x480, bundled tiny model', kind: 'restore', preset: 'bundled', batch: 1, height: 480, width: 720, quick: true },
  { name: 'eval forward, paper, 240x240 tile', kind: 'forward', preset: 'paper', batch: 1, height: 240, width: 240, quick: false },
  { name: 'training step, paper, batch 4, 240x240', kind: 'train', preset: 'paper', batch: 4, height: 240, width: 240, quick: false },
];
// The restore row uses the CLI's default windows, so it measures what a user of `mofme restore` waits for.
const TILE = DEFAULT_TILE, STRIDE = DEFAULT_STRIDE;

interface Cell { ms?: number; cpu_ms?: number; runs?: number; cold?: boolean; rss_mb?: number; torch?: string; error?: string }

const probe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
const torchVersion = probe.status === 0 ? probe.stdout.trim() : null;
const work = mkdtempSync(join(tmpdir(), 'mofme-model-bench-'));

/** Our model file of a preset (seeded weights), or the bundled one; its config. */
function modelFile(preset: RowSpec['preset']): { file: string; config: MofmeConfig } {
  if (preset === 'bundled') {
    if (!existsSync(bundledModel)) throw new Error(`bundled model ${bundledModel} is missing`);
    return { file: bundledModel, config: resolveConfig(JSON.parse(loadSafetensorsSync(bundledModel).metadata.config!) as MofmeConfig) };
  }
  const file = join(work, `${preset}.safetensors`);
  const config = resolveConfig(preset);
  if (!existsSync(file)) {
    const model = createModel(config, { seed: 1 });
    saveSafetensorsSync(file, model.stateDict(), { format: 'mofme-ts/1', config: JSON.stringify(config), step: '0' });
  }
  return { file, config };
}

/** The row's inputs: x [B, 3, H, W] in [-1, 1] (and a target y in (0, 1) for training), one file. */
function inputFile(r: RowSpec, index: number): string {
  const file = join(work, `input-${index}.safetensors`);
  const g = new Generator(100 + index);
  const x = randn([r.batch, 3, r.height, r.width], { generator: g }).clamp(-1, 1);
  const tensors: Record<string, Tensor> = { x };
  if (r.kind === 'train') tensors.y = randn([r.batch, 3, r.height, r.width], { generator: g }).sigmoid();
  saveSafetensorsSync(file, tensors);
  return file;
}

/** FLOPs of one timed run of the row. */
function flopsOf(r: RowSpec, config: MofmeConfig): number {
  if (r.kind === 'restore') {
    const windows = tileStarts(r.height, TILE, STRIDE).length * tileStarts(r.width, TILE, STRIDE).length;
    return windows * 2 * countFlops(config, TILE, TILE).total;
  }
  const forward = 2 * r.batch * countFlops(config, r.height, r.width, { training: r.kind === 'train' }).total;
  return r.kind === 'train' ? 3 * forward : forward;
}

/** Run one cell in a fresh process; its last stdout line is the JSON result. */
function runCell(engine: 'ours' | 'torch', task: object, threads: number): Cell {
  const n = String(threads);
  const [cmd, argv, cwd] = engine === 'ours'
    ? [process.execPath, ['--conditions=source', '--import', 'tsx', 'model-worker.ts', JSON.stringify(task)], here]
    : [PYTHON, [torchScript, JSON.stringify({ ...task, threads })], root];
  const r = spawnSync(cmd, argv, {
    cwd, encoding: 'utf8', timeout: cellTimeoutS * 1000, maxBuffer: 1 << 24,
    env: { ...process.env, MOFME_THREADS: n, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n },
  });
  const last = (s: string): string => s.trim().split('\n').filter(Boolean).pop() ?? '';
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { error: `stopped after ${cellTimeoutS} s` };
  try {
    const parsed = JSON.parse(last(r.stdout)) as Cell;
    if (r.status === 0 || parsed.error) return parsed;
  } catch { /* not JSON: a crash; fall through */ }
  const why = last(r.stderr) || `exit ${r.status ?? r.signal}`;
  return { error: `crashed: ${why.slice(0, 160)}` };
}

const fmtMs = (ms: number): string => (ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`);
const fmtCell = (c: Cell): string => (c.error ? c.error : `${fmtMs(c.ms!)} (cpu ${fmtMs(c.cpu_ms!)})${c.cold ? ' 1 cold run' : ''}`);
const gflops = (c: Cell, flops: number): string => (c.ms ? (flops / (c.ms / 1000) / 1e9).toFixed(1) : '-');
const mb = (c: Cell): string => (c.rss_mb ? `${c.rss_mb.toFixed(0)} MB` : '-');

const loadBefore = loadavg();
console.log(`MoFME model bench: ours vs PyTorch on the same network and weights${quick ? ' (--quick)' : ''}`);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GB; node ${process.version}; ` +
  (torchVersion ? `PyTorch ${torchVersion} via ${PYTHON}` : `PyTorch skipped: ${PYTHON} cannot import torch (apt-get install python3-torch to add the column)`));
console.log(`load average at start: ${loadBefore.map((l) => l.toFixed(2)).join(', ')}\n`);

type Result = { spec: RowSpec; threads: number; flops: number; ours: Cell; torch: Cell };
const results: Result[] = [];
const selected = rowSpecs.filter((r) => (!quick || r.quick) && (!only || r.name.includes(only)));
const total = selected.length * threadCounts.length;
let done = 0;
try {
  selected.forEach((spec, index) => {
    const { file, config } = modelFile(spec.preset);
    const input = inputFile(spec, index);
    const flops = flopsOf(spec, config);
    const task = { kind: spec.kind, model: file, input, reps, budget_s: budgetS, tile: TILE, stride: STRIDE };
    for (const threads of threadCounts) {
      const late = Date.now() - startedAt > deadlineMs;
      const ours = late ? { error: 'not run (--deadline)' } : runCell('ours', task, threads);
      const torch: Cell = late ? { error: 'not run (--deadline)' } : torchVersion ? runCell('torch', task, threads) : { error: 'skipped (no torch)' };
      results.push({ spec, threads, flops, ours, torch });
      done++;
      console.log(`  [${done}/${total}] ${spec.name}, ${threads} thread${threads > 1 ? 's' : ''}: ours ${fmtCell(ours)}, PyTorch ${fmtCell(torch)}`);
    }
  });
} finally {
  rmSync(work, { recursive: true, force: true });
}

const skippedRows = rowSpecs.filter((r) => !selected.includes(r)).map((r) => r.name);
console.log(`\n| row | threads | ours, wall (cpu) | PyTorch, wall (cpu) | ours/PyTorch, wall (cpu) | GFLOP/s ours | GFLOP/s PyTorch | peak RSS ours | peak RSS PyTorch |`);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  const ratio = r.ours.ms && r.torch.ms ? `${(r.ours.ms / r.torch.ms).toFixed(2)}x (${(r.ours.cpu_ms! / r.torch.cpu_ms!).toFixed(2)}x)` : '-';
  console.log(`| ${r.spec.name} | ${r.threads} | ${fmtCell(r.ours)} | ${fmtCell(r.torch)} | ${ratio} | ${gflops(r.ours, r.flops)} | ${gflops(r.torch, r.flops)} | ${mb(r.ours)} | ${mb(r.torch)} |`);
}
if (skippedRows.length) console.log(`\nnot run${quick ? ' (--quick)' : ''}: ${skippedRows.join('; ')}`);
console.log(`\nload average at end: ${loadavg().map((l) => l.toFixed(2)).join(', ')} (figures from a shared machine are slowed by the others' work)`);
console.log('GFLOP/s = 2 x countFlops multiply-adds (sparse experts) x batch per wall second; training step = 3 x forward; cpu = CPU time of the whole process, all threads');
console.log('(on a loaded machine the 1-thread cpu figures are the steadier comparison); peak RSS = the whole process, runtime included.');
