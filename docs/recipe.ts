/**
 * The training-recipe comparison behind the bundled model (issue 14, point 3): each recipe trains
 * for the SAME CPU time, then is scored on the built-in validation split (never test: the recipe is
 * chosen on val). CPU time, not wall time, is the budget because the machine is shared: a run that
 * waits for the CPU should not be charged for it.
 *
 *   node --conditions=source --import tsx docs/recipe.ts                      # 300 CPU-s per recipe
 *   node --conditions=source --import tsx docs/recipe.ts --budget 90 --only tiny-c64,tiny-c128
 *
 * How the budget is met: each recipe is first timed for 2 and for 6 steps (CPU seconds of the child
 * process, user + system, from bash's `times`); the difference / 4 is its cost per step, the rest is
 * start-up. The real run then gets floor((budget − start-up) / cost per step) steps, so its cosine
 * schedule completes, and its measured CPU time is reported next to the budget.
 * Every run goes through `mofme train` and `mofme eval`, so the numbers are what a user gets.
 * Writes docs/recipe.md (the table and this command) and keeps the runs under runs/recipe/.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => { const i = argv.indexOf(`--${name}`); return i >= 0 && argv[i + 1] ? argv[i + 1]! : fallback; };
const budget = Number(flag('budget', '300'));
const out = resolve(root, flag('out', 'runs/recipe'));
const data = flag('data', 'builtin');
const doc = resolve(root, flag('doc', 'docs/recipe.md'));
/** validation images scored per recipe (0 = all 20; 10 keeps two of each weather, spread over the photos) */
const evalLimit = flag('eval-limit', '0');
/** The hand-written reading of the table (what was chosen and why), appended to the page. */
const notes = resolve(root, 'docs/recipe-notes.md');

interface Recipe { name: string; what: string; flags: string[] }
/**
 * What is compared, each against tiny-c128 (the bundled model's network and crop, from scratch at
 * lr 1e-3): the patch and width (preset small: patch 4, D 96), the width and depth alone, the crop,
 * the batch, the schedule, the loss, and starting from the bundled weights. Head/tail channels and
 * the residual output have no flag (the presets fix them), so they are not in the table.
 */
const RECIPES: Recipe[] = [
  { name: 'tiny-c64', what: 'tiny (patch 8, D 48), 64x64 crops, batch 8: the first bundled recipe', flags: ['--preset', 'tiny', '--crop', '64', '--batch-size', '8', '--lr', '1e-3'] },
  { name: 'tiny-c128', what: 'tiny, 128x128 crops, batch 8', flags: ['--preset', 'tiny', '--crop', '128', '--batch-size', '8', '--lr', '1e-3'] },
  { name: 'small-c64', what: 'small (patch 4, D 96, wider tail), 64x64 crops, batch 8', flags: ['--preset', 'small', '--crop', '64', '--batch-size', '8', '--lr', '1e-3'] },
  { name: 'tiny-w64-c128', what: 'tiny with D 64 instead of 48, 128x128 crops, batch 8', flags: ['--preset', 'tiny', '--width', '64', '--crop', '128', '--batch-size', '8', '--lr', '1e-3'] },
  { name: 'tiny-d4-c128', what: 'tiny with 4 blocks instead of 2, 128x128 crops, batch 8', flags: ['--preset', 'tiny', '--depth', '4', '--crop', '128', '--batch-size', '8', '--lr', '1e-3'] },
  { name: 'tiny-c128-b4', what: 'tiny, 128x128 crops, batch 4 (twice the steps)', flags: ['--preset', 'tiny', '--crop', '128', '--batch-size', '4', '--lr', '1e-3'] },
  { name: 'tiny-c128-const', what: 'tiny, 128x128 crops, batch 8, constant lr after the warm-up', flags: ['--preset', 'tiny', '--crop', '128', '--batch-size', '8', '--lr', '1e-3', '--schedule', 'constant'] },
  { name: 'tiny-c128-psnr', what: 'tiny, 128x128 crops, batch 8, PSNR loss instead of SmoothL1', flags: ['--preset', 'tiny', '--crop', '128', '--batch-size', '8', '--lr', '1e-3', '--loss', 'psnr'] },
  { name: 'tiny-c128-init', what: 'tiny, 128x128 crops, batch 8, fine-tuned from the bundled weights at lr 1e-4 with the PSNR loss', flags: ['--preset', 'tiny', '--crop', '128', '--batch-size', '8', '--lr', '1e-4', '--loss', 'psnr', '--init', 'apps/cli/pretrained'] },
];
const only = flag('only', '');
const recipes = only ? RECIPES.filter((r) => only.split(',').includes(r.name)) : RECIPES;
if (!recipes.length) throw new Error(`--only ${only}: no such recipe (have ${RECIPES.map((r) => r.name).join(', ')})`);

/** Runs the mofme CLI under bash and returns the child's CPU seconds (user + system). */
function mofme(args: string[]): { cpu: number; stdout: string } {
  const cmd = ['node', '--conditions=source', '--import', 'tsx', 'apps/cli/src/main.ts', ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${cmd} > "$MOFME_RECIPE_OUT"; s=$?; times >&2; exit $s`], { cwd: root, encoding: 'utf8', env: { ...process.env, MOFME_RECIPE_OUT: join(out, 'last-stdout.txt') } });
  const times = (r.stderr ?? '').trim().split('\n').slice(-1)[0] ?? '';
  const secs = [...times.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  if (r.status !== 0 || secs.length !== 2) throw new Error(`mofme ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-4).join(' | ')}`);
  return { cpu: secs[0]! + secs[1]!, stdout: readFileSync(join(out, 'last-stdout.txt'), 'utf8') };
}

const common = ['--data', data, '--val', 'none', '--seed', '0', '--workers', '0', '--log-every', '1000'];
interface Row { recipe: Recipe; steps: number; perStep: number; cpu: number; val: { tasks: Record<string, { psnr: number; identityPsnr: number; ssim: number }>; average: { psnr: number; identityPsnr: number; ssim: number; identitySsim: number } } }
const rows: Row[] = [];
mkdirSync(out, { recursive: true });
for (const recipe of recipes) {
  const dir = join(out, recipe.name), result = join(dir, 'val.json');
  if (existsSync(result)) { rows.push(JSON.parse(readFileSync(result, 'utf8')) as Row); console.log(`${recipe.name}: kept (${result})`); continue; }
  const probe = (steps: number) => {
    rmSync(join(out, 'probe'), { recursive: true, force: true });
    return mofme(['train', ...recipe.flags, ...common, '--steps', String(steps), '--warmup', '0', '--ckpt-every', '100000', '--out', join(out, 'probe')]).cpu;
  };
  const c2 = probe(2), c6 = probe(6), perStep = Math.max(1e-3, (c6 - c2) / 4), startup = Math.max(0, c2 - 2 * perStep);
  const steps = Math.max(1, Math.floor((budget - startup) / perStep));
  console.log(`${recipe.name}: ${perStep.toFixed(2)} CPU-s/step, start-up ${startup.toFixed(1)} s -> ${steps} steps for ${budget} CPU-s`);
  rmSync(dir, { recursive: true, force: true });
  const run = mofme(['train', ...recipe.flags, ...common, '--steps', String(steps), '--warmup', String(Math.min(20, Math.floor(steps / 10))), '--ckpt-every', String(steps), '--keep-last', '1', '--out', dir]);
  const val = JSON.parse(mofme(['eval', '--checkpoint', dir, '--split', 'val', '--json', '--limit', evalLimit]).stdout) as Row['val'];
  const row: Row = { recipe, steps, perStep, cpu: run.cpu, val };
  writeFileSync(result, JSON.stringify(row, null, 1));
  rows.push(row);
  console.log(`${recipe.name}: ${run.cpu.toFixed(0)} CPU-s, val PSNR ${val.average.psnr.toFixed(2)} (input ${val.average.identityPsnr.toFixed(2)})`);
}

const weathers = Object.keys(rows[0]!.val.tasks);
const sign = (d: number) => `${d >= 0 ? '+' : ''}${d.toFixed(2)}`;
const table = [
  `| recipe | steps | CPU-s/step | CPU-s used | ${weathers.map((w) => `${w} gain`).join(' | ')} | average PSNR (gain) | average SSIM (input) |`,
  `|---|---:|---:|---:|${weathers.map(() => '---:').join('|')}|---:|---:|`,
  ...rows.map((r) => `| ${r.recipe.name}: ${r.recipe.what} | ${r.steps} | ${r.perStep.toFixed(2)} | ${r.cpu.toFixed(0)} | ${weathers.map((w) => sign(r.val.tasks[w]!.psnr - r.val.tasks[w]!.identityPsnr)).join(' | ')} | ${r.val.average.psnr.toFixed(2)} (${sign(r.val.average.psnr - r.val.average.identityPsnr)}) | ${r.val.average.ssim.toFixed(4)} (${r.val.average.identitySsim.toFixed(4)}) |`),
].join('\n');
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
writeFileSync(doc, `# Training recipes at equal CPU time

Regenerate with \`node --conditions=source --import tsx docs/recipe.ts --budget ${budget}${only ? ` --only ${only}` : ''}${data !== 'builtin' ? ` --data ${data}` : ''}${evalLimit !== '0' ? ` --eval-limit ${evalLimit}` : ''}${out !== resolve(root, 'runs/recipe') ? ` --out ${out.replace(root + '/', '')}` : ''}\`
(runs are kept under \`${out.replace(root + '/', '')}/\`; delete a recipe's folder to run it again).

Each recipe trained for ${budget} CPU-seconds (user + system of the \`mofme train\` process: on a shared machine,
wall time would charge a run for the time it waited), with the number of steps set from a 2-step and a 6-step probe so
that its cosine schedule ends at the budget; data \`${data}\` with weather synthesised on the fly, seed 0, SmoothL1 loss unless the recipe says otherwise,
AdamW. Scored by \`mofme eval --split val${evalLimit !== '0' ? ` --limit ${evalLimit}` : ''}\` on the built-in validation split (whole images, the default 192/144 windows): the
gain is PSNR over the degraded input, in dB. Machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), Node ${process.version},
shared with other jobs (load average at the end: ${load}).

${table}

${existsSync(notes) ? readFileSync(notes, 'utf8').trim() : ''}
`);
console.log(`wrote ${doc}`);
