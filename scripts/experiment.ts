/**
 * The small-scale reproduction of the paper's claims (issue 8): one command trains, with the same
 * budget, a dense ViT, a conventional MoE (E=4, top-2), MoFME (E=4, top-2) with the linear router
 * and with the UaR, and MoFME (E=16, top-4) with the UaR, each for several seeds, on the built-in
 * multi-weather data; evaluates each on the held-out test split per task; measures parameters,
 * FLOPs, forward time and training throughput; and writes docs/results.md with its charts.
 *
 *   pnpm experiment                 # the documented run (see docs/results.md for its budget)
 *   pnpm experiment --smoke         # a few steps, one seed: what CI runs to keep this script working
 *   pnpm experiment --steps 300 --seeds 1,2 --out runs/experiment
 *
 * Every training and evaluation goes through the `mofme` command itself (as child processes), so
 * the numbers are exactly what a user gets from `mofme train` and `mofme eval`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { countFlops, countParameters, createModel, resolveConfig, type MofmeConfig } from '../packages/mofme/src/index';
import { noGrad, rand, tidy } from '../packages/tensor/src/index';
import { chartPng } from '../apps/cli/src/charts';

const root = resolve(new URL('..', import.meta.url).pathname);
const argv = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const smoke = argv.includes('--smoke');
// --report-only: write the document from the runs that exist, training nothing (e.g. after an interrupted run)
const reportOnly = argv.includes('--report-only');
const steps = Number(flag('steps', smoke ? '4' : '300'));
const seeds = flag('seeds', smoke ? '1' : '1,2').split(',').map(Number);
const batch = Number(flag('batch-size', smoke ? '2' : '8'));
const crop = Number(flag('crop', smoke ? '32' : '64'));
const preset = flag('preset', 'tiny');
const out = resolve(root, flag('out', smoke ? 'runs/experiment-smoke' : 'runs/experiment'));
const docs = resolve(root, flag('docs', smoke ? join(out, 'docs') : 'docs'));
const evalLimit = smoke ? '2' : '0';
// the smoke run (CI) evaluates on small windows and times a small forward: it checks the pipeline, not the figures
const evalTiles = smoke ? ['--tile', '64', '--stride', '64'] : [];
const timeSide = smoke ? 64 : 240;

interface Variant { name: string; label: string; flags: string[]; overrides: Partial<MofmeConfig> }
const variants: Variant[] = [
  { name: 'dense', label: 'dense ViT', flags: ['--model', 'dense'], overrides: { ffn: 'dense' } },
  { name: 'moe-e4k2', label: 'MoE E=4 k=2', flags: ['--model', 'moe', '--experts', '4', '--topk', '2'], overrides: { ffn: 'moe', experts: 4, topk: 2 } },
  { name: 'mofme-e4k2-linear', label: 'MoFME E=4 k=2 linear', flags: ['--model', 'mofme', '--experts', '4', '--topk', '2', '--router', 'linear'], overrides: { ffn: 'mofme', experts: 4, topk: 2, router: 'linear' } },
  { name: 'mofme-e4k2-uar', label: 'MoFME E=4 k=2 UaR', flags: ['--model', 'mofme', '--experts', '4', '--topk', '2', '--router', 'uar'], overrides: { ffn: 'mofme', experts: 4, topk: 2, router: 'uar' } },
  { name: 'mofme-e16k4-uar', label: 'MoFME E=16 k=4 UaR', flags: ['--model', 'mofme', '--experts', '16', '--topk', '4', '--router', 'uar'], overrides: { ffn: 'mofme', experts: 16, topk: 4, router: 'uar' } },
];

function mofme(args: string[]): string {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(root, 'apps/cli/src/main.ts'), ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, CI: 'true' } });
  if (r.status !== 0) throw new Error(`mofme ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr || r.stdout}`);
  return r.stdout;
}

interface TaskScore { n: number; psnr: number; ssim: number; identityPsnr: number; identitySsim: number }
interface RoutingRow { layer: number; task: string; tokens: number; meanWeight: number[]; topkShare: number[]; entropy: number }
interface EvalJson { tasks: Record<string, TaskScore>; average: TaskScore; routing: RoutingRow[]; seconds: number }
interface RunResult { variant: Variant; seed: number; eval: EvalJson; imagesPerSec: number; losses: { step: number; loss: number }[]; trainSeconds: number }

// ---- 1. train and evaluate every variant and seed ----
const results: RunResult[] = [];
const t0 = Date.now();
for (const variant of variants) {
  for (const seed of seeds) {
    const runDir = join(out, `${variant.name}-s${seed}`);
    const started = Date.now();
    if (reportOnly && !existsSync(join(runDir, 'eval.json'))) continue;
    if (!existsSync(join(runDir, 'eval.json'))) {
      console.log(`[${((Date.now() - t0) / 60000).toFixed(1)} min] training ${variant.label}, seed ${seed}, ${steps} steps`);
      mofme(['train', '--preset', preset, ...variant.flags, '--steps', String(steps), '--seed', String(seed), '--batch-size', String(batch), '--crop', String(crop),
        '--out', runDir, '--ckpt-every', String(steps), '--keep-last', '1', '--val-every', '0', '--val-limit', smoke ? '1' : '0', '--val-crop', String(crop)]);
      const evalOut = mofme(['eval', '--checkpoint', runDir, '--split', 'test', '--json', '--limit', evalLimit, ...evalTiles]);
      writeFileSync(join(runDir, 'eval.json'), evalOut);
    } else {
      console.log(`reusing ${relative(root, runDir)}`);
    }
    const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; step: number; loss: number; imagesPerSec: number; time: number });
    const train = metrics.filter((m) => m.type === 'train');
    const speeds = train.slice(Math.floor(train.length / 4)).map((m) => m.imagesPerSec).sort((a, b) => a - b);
    results.push({
      variant, seed,
      eval: JSON.parse(readFileSync(join(runDir, 'eval.json'), 'utf8')) as EvalJson,
      imagesPerSec: speeds[Math.floor(speeds.length / 2)] ?? 0,
      losses: train.map((m) => ({ step: m.step, loss: m.loss })),
      trainSeconds: train.at(-1)?.time ?? (Date.now() - started) / 1000,
    });
  }
}

// ---- 2. cost of each variant: parameters, FLOPs, forward time (batch 1, 240x240, one process) ----
interface Cost { params: number; flops240: number; sparseFlops240: number; forwardMs: number }
const costs = new Map<string, Cost>();
for (const variant of variants) {
  const config = resolveConfig(preset as 'tiny', { ...variant.overrides, imageSize: timeSide } as never);
  const model = createModel(config, { seed: 0 }).eval();
  const x = rand([1, 3, timeSide, timeSide]);
  const times: number[] = [];
  for (let i = 0; i < (smoke ? 1 : 5); i++) {
    const t = performance.now();
    tidy(() => noGrad(() => { model.forward(x.mul(2).sub(1)); }));
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const f = countFlops(config, 240, 240);
  costs.set(variant.name, { params: countParameters(config).total, flops240: f.dense, sparseFlops240: f.sparse, forwardMs: times[Math.floor(times.length / 2)]! });
}

// ---- 3. tables ----
const tasks = [...new Set(results.flatMap((r) => Object.keys(r.eval.tasks)))].sort();
const meanSpread = (xs: number[]): [number, number] => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return [m, xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0];
};
const fmt = (xs: number[], digits: number): string => {
  const [m, s] = meanSpread(xs);
  return xs.length > 1 ? `${m.toFixed(digits)} ± ${s.toFixed(digits)}` : m.toFixed(digits);
};
const byVariant = (v: Variant) => results.filter((r) => r.variant === v);
const seedsOf = (v: Variant) => byVariant(v).map((r) => r.seed).join(', ');
const identity = results[0]!.eval;

const psnrTable = [
  `| model | ${tasks.join(' | ')} | average PSNR | average SSIM |`,
  `|---|${tasks.map(() => '---:').join('|')}|---:|---:|`,
  `| identity (degraded input) | ${tasks.map((t) => identity.tasks[t]!.identityPsnr.toFixed(2)).join(' | ')} | ${identity.average.identityPsnr.toFixed(2)} | ${identity.average.identitySsim.toFixed(4)} |`,
  ...variants.map((v) => {
    const rs = byVariant(v);
    if (!rs.length) return `| ${v.label} | ${tasks.map(() => 'not run').join(' | ')} | – | – |`;
    return `| ${v.label} (seeds ${seedsOf(v)}) | ${tasks.map((t) => fmt(rs.map((r) => r.eval.tasks[t]!.psnr), 2)).join(' | ')} | ${fmt(rs.map((r) => r.eval.average.psnr), 2)} | ${fmt(rs.map((r) => r.eval.average.ssim), 4)} |`;
  }),
].join('\n');

const moeCost = costs.get('moe-e4k2')!;
const costTable = [
  '| model | parameters | vs MoE E=4 | GMACs @240² (dense exec.) | GMACs (sparse exec.) | forward ms (1×240², median) | vs MoE E=4 | train images/s |',
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...variants.map((v) => {
    const c = costs.get(v.name)!;
    const ips = meanSpread(byVariant(v).map((r) => r.imagesPerSec))[0];
    return `| ${v.label} | ${c.params.toLocaleString('en-US')} | ${((100 * (c.params - moeCost.params)) / moeCost.params).toFixed(1)}% | ${(c.flops240 / 1e9).toFixed(3)} | ${(c.sparseFlops240 / 1e9).toFixed(3)} | ${c.forwardMs.toFixed(0)} | ${((100 * (c.forwardMs - moeCost.forwardMs)) / moeCost.forwardMs).toFixed(1)}% | ${ips.toFixed(1)} |`;
  }),
].join('\n');

// routing statistics (first seed of each routed variant): top-k share of each expert per task, entropy
const routingLines: string[] = [];
for (const v of variants.filter((x) => x.name !== 'dense' && byVariant(x).length)) {
  const r = byVariant(v)[0]!;
  routingLines.push(`\n**${v.label}** (seed ${r.seed}; top-k share of each expert per task, routing entropy in nats, per layer)\n`);
  const E = r.eval.routing[0]?.topkShare.length ?? 0;
  routingLines.push(`| layer | task | ${Array.from({ length: E }, (_, e) => `e${e}`).join(' | ')} | entropy |`);
  routingLines.push(`|---|---|${Array.from({ length: E }, () => '---:').join('|')}|---:|`);
  for (const row of r.eval.routing) routingLines.push(`| ${row.layer} | ${row.task} | ${row.topkShare.map((s) => s.toFixed(2)).join(' | ')} | ${row.entropy.toFixed(3)} |`);
}

// ---- 4. charts ----
mkdirSync(join(docs, 'results'), { recursive: true });
const barRows = variants.filter((v) => byVariant(v).length).flatMap((v) => tasks.map((t) => ({ model: v.label, task: t, psnr: meanSpread(byVariant(v).map((r) => r.eval.tasks[t]!.psnr))[0] })))
  .concat(tasks.map((t) => ({ model: 'identity', task: t, psnr: identity.tasks[t]!.identityPsnr })));
await chartPng({
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title: `Test PSNR per weather (${preset} preset, ${steps} steps, mean over ${seeds.length} seed${seeds.length > 1 ? 's' : ''})`,
  data: { values: barRows }, width: 140, height: 220,
  mark: 'bar',
  encoding: {
    column: { field: 'task', type: 'nominal', title: null },
    x: { field: 'model', type: 'nominal', axis: null },
    y: { field: 'psnr', type: 'quantitative', title: 'PSNR (dB)', scale: { zero: false } },
    color: { field: 'model', type: 'nominal', title: 'model' },
  },
} as never, join(docs, 'results', 'psnr-per-task.png'));
const curveRows = results.filter((r) => r.seed === seeds[0]).flatMap((r) => {
  // a running mean over 10 logged steps makes the curves readable
  return r.losses.map((p, i, a) => ({ step: p.step, loss: a.slice(Math.max(0, i - 9), i + 1).reduce((s, q) => s + q.loss, 0) / Math.min(10, i + 1), model: r.variant.label }));
});
await chartPng({
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title: `Training loss (SmoothL1, running mean; seed ${seeds[0]})`,
  data: { values: curveRows }, width: 560, height: 280,
  mark: { type: 'line' },
  encoding: {
    x: { field: 'step', type: 'quantitative' },
    y: { field: 'loss', type: 'quantitative', scale: { type: 'log' } },
    color: { field: 'model', type: 'nominal' },
  },
} as never, join(docs, 'results', 'training-loss.png'));

// ---- 5. the document ----
const best = variants.filter((v) => byVariant(v).length).sort((a, b) => meanSpread(byVariant(b).map((r) => r.eval.average.psnr))[0] - meanSpread(byVariant(a).map((r) => r.eval.average.psnr))[0]);
const avg = (name: string) => meanSpread(results.filter((r) => r.variant.name === name).map((r) => r.eval.average.psnr))[0];
const big = resolveConfig('paper', { ffn: 'mofme', experts: 128, topk: 4 } as never), bigMoe = resolveConfig('paper', { ffn: 'moe', experts: 128, topk: 4 } as never);
const e128Saving = 1 - countParameters(big).total / countParameters(bigMoe).total;
const minutes = ((Date.now() - t0) / 60000).toFixed(1);
const md = `# Results: MoFME vs MoE vs dense, UaR vs linear router, at small scale

Regenerate with \`pnpm experiment\` (${minutes} minutes for this run on ${process.env.MOFME_MACHINE ?? 'a 2-core x86-64 machine'}; runs are cached in \`${relative(root, out)}/\`, delete it to start over).
Budget, identical for every model: the \`${preset}\` preset, ${steps} AdamW steps of batch ${batch} on ${crop}×${crop} crops of the built-in
multi-weather training split (cosine schedule with warm-up, SmoothL1 loss), seeds ${seeds.join(', ')}. Test: the built-in test split
(photos never seen in training), whole images with tiled inference, PSNR/SSIM computed as the official code does. "±" is the
standard deviation over seeds.

## Restoration quality (test split, PSNR in dB)

${psnrTable}

![PSNR per task](results/psnr-per-task.png)

![Training loss](results/training-loss.png)

## Cost

${costTable}

Forward times are for the \`${preset}\` preset at 240×240 on our CPU backend (WebAssembly SIMD kernels), median of repeated runs in one
process; sparse MoE execution (only the selected experts run) is what the engine does by default. At the paper's own
setting for its parameter estimator (E=128, top-4, paper preset), MoFME has ${(100 * e128Saving).toFixed(1)}% fewer parameters than the MoE
(${countParameters(big).total.toLocaleString('en-US')} vs ${countParameters(bigMoe).total.toLocaleString('en-US')}); the paper claims "over 72%".
The paper's timing claim (39% less inference time than MoE) and the official code's measured forward times on this machine's
kind (PyTorch 1.13, 2 threads, paper preset: MoE E=16 1.99 s vs MoFME E=16 1.13 s, 43% less) are in packages/mofme/README.md with
our own paper-preset figures.

## Routing
${routingLines.join('\n')}

## What reproduced, what did not

- Best average test PSNR: ${best[0]!.label} (${avg(best[0]!.name).toFixed(2)} dB); MoFME E=4 linear ${avg('mofme-e4k2-linear').toFixed(2)} dB vs MoE E=4 ${avg('moe-e4k2').toFixed(2)} dB
  (${(avg('mofme-e4k2-linear') - avg('moe-e4k2')) >= 0 ? '+' : ''}${(avg('mofme-e4k2-linear') - avg('moe-e4k2')).toFixed(2)} dB; the paper reports +0.1 to +0.2 dB on the real All-weather data);
  UaR vs linear at E=4: ${(avg('mofme-e4k2-uar') - avg('mofme-e4k2-linear')) >= 0 ? '+' : ''}${(avg('mofme-e4k2-uar') - avg('mofme-e4k2-linear')).toFixed(2)} dB.
- Parameters: MoFME E=4 has ${(-(100 * (costs.get('mofme-e4k2-linear')!.params - moeCost.params)) / moeCost.params).toFixed(1)}% fewer parameters than MoE E=4 at this preset, and ${(100 * e128Saving).toFixed(1)}% fewer at E=128 (reproduced by arithmetic; the counts match the official models to the unit).
- Differences of a few tenths of a dB between models are within the seed spread at this budget: ${steps} steps on a tiny model and synthetic
  weather over ${'31'} photos is a smoke-scale experiment, far from the paper's 200 epochs on 18,069 real pairs. Absolute PSNRs are not comparable
  with the paper's (different data); only the ranking and the cost ratios are meaningful here.
`;
writeFileSync(join(docs, 'results.md'), md);
console.log(`\nwrote ${relative(root, join(docs, 'results.md'))} (${minutes} min)`);
process.exit(0);
