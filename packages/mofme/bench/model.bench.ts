// Benchmark of the paper's efficiency claim on our CPU backend (issue 6, "Done when"):
//   1. forward time of the paper preset, batch 1, 240x240, eval: dense ViT, MoE E=16 (dense and
//      sparse execution) and MoFME E=16 (dense and sparse), median of a few runs, with ratios;
//   2. the same models' transformer blocks alone (tokens [1, 900, 384] in, the part where the three
//      differ: the conv head/tail are 70 % of the MACs and identical in all of them);
//   3. the parameter saving of MoFME over MoE at E=128, top-4 (the official estimator's setting);
//   4. one training step (forward + backward + Adam) of the `tiny` preset at 64x64, batch 8.
// Beside each full forward, the same network with the same weights and input in PyTorch (our twin,
// scripts/torch/mofme_torch.py, one thread, measured in this run; skipped with a message where
// /usr/bin/python3 cannot import torch), so the ratios between the models can be compared with
// an optimised engine's. Our own figures against PyTorch row by row: bench/model.bench.ts.
//
// Usage: pnpm --filter @mofme/mofme bench [-- --runs 3 --full-runs 1 --size 240 --skip-full --quick]
// (--quick: one run of the blocks only, no full forwards)
// Times are medians of process CPU time (robust on a shared machine for single-threaded kernels)
// with the wall time alongside.
// A full paper-preset forward takes tens of seconds on the TypeScript kernels, so the default is one
// timed full forward per model (after no warm-up: the first run of the first model includes JIT
// warm-up, so the dense model is run last as well and its best time is reported).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator, mseLoss, noGrad, randn, tidy, type Tensor } from '@mofme/tensor';
import { Adam, saveSafetensorsSync } from '@mofme/nn';
import { countFlops, countParameters, createModel, resolveConfig, type ConfigOverrides, type MoFME } from '../src/index';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const quick = args.includes('--quick');
const runs = opt('runs', quick ? 1 : 3);
const fullRuns = opt('full-runs', 1);
const size = opt('size', 240);
const skipFull = quick || args.includes('--skip-full');

// The PyTorch twin, in a fresh process per model: it loads the model file and input we write.
const PYTHON = '/usr/bin/python3';
const torchScript = new URL('../../../scripts/torch/bench_torch.py', import.meta.url).pathname;
const torchProbe = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
const torchVersion = torchProbe.status === 0 ? torchProbe.stdout.trim() : null;
const work = mkdtempSync(join(tmpdir(), 'mofme-bench-'));
/** The twin's eval forward of `model` on `x` (1 thread), median wall seconds, or null when unavailable. */
function twinForward(model: MoFME, x: Tensor): number | null {
  if (!torchVersion) return null;
  const modelFile = join(work, 'model.safetensors'), inputFile = join(work, 'x.safetensors');
  saveSafetensorsSync(modelFile, model.stateDict(), { format: 'mofme-ts/1', config: JSON.stringify(model.config) });
  saveSafetensorsSync(inputFile, { x });
  const task = { kind: 'forward', model: modelFile, input: inputFile, threads: 1, reps: Math.max(1, runs), budget_s: 60 };
  const r = spawnSync(PYTHON, [torchScript, JSON.stringify(task)], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) {
    console.log(`  PyTorch twin failed: ${r.stderr.trim().split('\n').pop()}`);
    return null;
  }
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number }).ms / 1000;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** Median wall time and median process CPU time (user + system) of n runs, in seconds. On a shared
 *  machine the wall time of single-threaded kernels includes waiting for a core; the CPU time does
 *  not, so the ratios below use it (with multi-threaded kernels it sums over threads: use wall). */
interface Timing { wall: number; cpu: number }
function time(fn: () => void, n: number): Timing {
  const walls: number[] = [], cpus: number[] = [];
  for (let i = 0; i < n; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    walls.push((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1e6);
  }
  return { wall: median(walls), cpu: median(cpus) };
}
const fmt = (s: number): string => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
const fmtT = (t: Timing): string => `${fmt(t.cpu)} cpu / ${fmt(t.wall)} wall`;
const pad = (s: string, n: number): string => s.padEnd(n);

interface Variant { name: string; o: ConfigOverrides }
const variants: Variant[] = [
  { name: 'dense ViT', o: { ffn: 'dense' } },
  { name: 'MoE E=16 dense exec', o: { ffn: 'moe', experts: 16, topk: 2, execution: 'dense' } },
  { name: 'MoE E=16 sparse exec', o: { ffn: 'moe', experts: 16, topk: 2, execution: 'sparse' } },
  { name: 'MoFME E=16 dense exec', o: { ffn: 'mofme', experts: 16, topk: 2, execution: 'dense' } },
  { name: 'MoFME E=16 sparse exec', o: { ffn: 'mofme', experts: 16, topk: 2, execution: 'sparse' } },
];

console.log(`MoFME bench: paper preset, batch 1, ${size}x${size}, eval, float32 CPU backend; node ${process.version}`);
const x = randn([1, 3, size, size], { generator: new Generator(1) }).clamp(-1, 1);
const tokens = randn([1, (size / 8) ** 2, 384], { generator: new Generator(2) });

const rows: { v: Variant; params: number; gmacs: number; full?: Timing; blocks: Timing; twin: number | null }[] = [];
for (const v of variants) {
  const c = resolveConfig('paper', v.o);
  const model: MoFME = createModel(c, { seed: 1 }).eval();
  const blocksOnly = (): void => tidy(() => noGrad(() => {
    let t: Tensor = tokens;
    for (const b of model.blocks) t = b.forward(t).t;
    t.data();
  }));
  blocksOnly(); // warm-up
  const blocks = time(blocksOnly, runs);
  const full = skipFull ? undefined : time(() => tidy(() => noGrad(() => void model.forward(x).image.data())), fullRuns);
  const twin = skipFull ? null : twinForward(model, x);
  rows.push({ v, params: countParameters(c).total, gmacs: countFlops(c, size, size).total / 1e9, full, blocks, twin });
  console.log(`  measured ${v.name}: blocks ${fmtT(blocks)}${full !== undefined ? `, full forward ${fmtT(full)}` : ''}${twin !== null ? `, PyTorch twin ${fmt(twin)}` : ''}`);
}
if (!skipFull) {
  // the first full forward of the session paid for JIT warm-up: time the dense model again
  const c = resolveConfig('paper', variants[0]!.o);
  const model = createModel(c, { seed: 1 }).eval();
  const again = time(() => tidy(() => noGrad(() => void model.forward(x).image.data())), fullRuns);
  if (again.cpu < rows[0]!.full!.cpu) rows[0]!.full = again;
}

const base = rows[0]!;
console.log(`\n(CPU seconds; wall in parentheses; ratios of CPU time. PyTorch: ${torchVersion ? `the twin on PyTorch ${torchVersion}, 1 thread, wall, same weights and input, this run` : `skipped, ${PYTHON} cannot import torch (apt-get install python3-torch)`}${skipFull ? '; no full forwards in this run' : ''})`);
console.log('| model | params | GMACs | full forward | vs dense | blocks only | vs dense | PyTorch twin full forward | vs dense |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const full = r.full !== undefined ? `${fmt(r.full.cpu)} (${fmt(r.full.wall)})` : '-';
  const rel = r.full !== undefined ? `${(r.full.cpu / base.full!.cpu).toFixed(2)}x` : '-';
  console.log(`| ${pad(r.v.name, 22)} | ${r.params.toLocaleString('en-US')} | ${r.gmacs.toFixed(2)} | ${full} | ${rel} | ${fmt(r.blocks.cpu)} (${fmt(r.blocks.wall)}) | ${(r.blocks.cpu / base.blocks.cpu).toFixed(2)}x | ${r.twin !== null ? fmt(r.twin) : '-'} | ${r.twin !== null && base.twin !== null ? `${(r.twin / base.twin).toFixed(2)}x` : '-'} |`);
}
const by = (name: string) => rows.find((r) => r.v.name === name)!;
const saving = (a: number, b: number): string => `${((1 - a / b) * 100).toFixed(1)} %`;
if (!skipFull) {
  const twinSaving = (a: string, b: string): string => {
    const ta = by(a).twin, tb = by(b).twin;
    return ta !== null && tb !== null ? saving(ta, tb) : 'n/a';
  };
  console.log(`\nMoFME vs MoE at E=16, full forward: ${saving(by('MoFME E=16 dense exec').full!.cpu, by('MoE E=16 dense exec').full!.cpu)} less time (dense exec; PyTorch twin: ${twinSaving('MoFME E=16 dense exec', 'MoE E=16 dense exec')}), ` +
    `${saving(by('MoFME E=16 sparse exec').full!.cpu, by('MoE E=16 sparse exec').full!.cpu)} (sparse exec; PyTorch twin: ${twinSaving('MoFME E=16 sparse exec', 'MoE E=16 sparse exec')})`);
}
console.log(`MoFME vs MoE at E=16, blocks only: ${saving(by('MoFME E=16 dense exec').blocks.cpu, by('MoE E=16 dense exec').blocks.cpu)} (dense exec), ` +
  `${saving(by('MoFME E=16 sparse exec').blocks.cpu, by('MoE E=16 sparse exec').blocks.cpu)} (sparse exec)`);

// 3. parameters at E=128, top-4 (by arithmetic; the same counter equals the built models at E=4)
const p128 = (ffn: 'moe' | 'mofme') => countParameters(resolveConfig('paper', { ffn, experts: 128, topk: 4 })).total;
console.log(`\nE=128, top-4: MoE ${p128('moe').toLocaleString('en-US')} vs MoFME ${p128('mofme').toLocaleString('en-US')} parameters: ${saving(p128('mofme'), p128('moe'))} fewer (paper: > 72 %)`);

// 4. one tiny training step
{
  const c = resolveConfig('tiny');
  const model = createModel(c, { seed: 1 });
  const adam = new Adam(model.parameters(), { lr: 1e-3 });
  const xb = randn([8, 3, 64, 64], { generator: new Generator(3) }).clamp(-1, 1);
  const target = randn([8, 3, 64, 64], { generator: new Generator(4) }).sigmoid();
  const step = (): void => tidy(() => {
    adam.zeroGrad();
    const loss = mseLoss(model.forward(xb).image, target);
    loss.backward();
    adam.step();
    loss.item();
  });
  step();
  console.log(`tiny training step (forward + backward + Adam), 64x64, batch 8: ${fmtT(time(step, runs))} (median of ${runs}; ${(countFlops(c, 64, 64).total * 8 / 1e9).toFixed(2)} GMACs forward)`);
}
rmSync(work, { recursive: true, force: true });
