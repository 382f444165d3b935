#!/usr/bin/env node
/**
 * Scores models the way the README's table of the bundled model reads: on the built-in test split
 * (20 whole 480x320 images, 4 per weather, photos never used in training), PSNR and SSIM per
 * weather next to the identity baseline (the degraded input itself), and the clean-photo check
 * that issue 14 asks for: the 4 clean test photos restored with `mofme restore` and scored against
 * themselves (a model that leaves clean photos alone scores 35 dB or more).
 *
 *   node scripts/score-model.mjs apps/cli/pretrained runs/bundled-v3/ckpt-000300 [--json out.json]
 *   node scripts/score-model.mjs runs/bundled-v6/ckpt-00*00 --split val   # choose a checkpoint
 *
 * `--split val` scores the validation split and its clean photos instead: the way to choose among
 * the checkpoints of a run without looking at the test split.
 *
 * It drives the command line as a user would (`mofme eval --json`, `mofme restore`,
 * `mofme metrics --json`), so the figures are exactly what those commands print, and it needs
 * nothing from the CLI's source. Each argument is anything `--checkpoint` takes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const jsonAt = args.indexOf('--json');
const jsonOut = jsonAt >= 0 ? args.splice(jsonAt, 2)[1] : undefined;
const splitAt = args.indexOf('--split');
const split = splitAt >= 0 ? args.splice(splitAt, 2)[1] : 'test';
if (split !== 'test' && split !== 'val') {
  console.error(`--split ${split}: expected test or val`);
  process.exit(2);
}
if (args.length === 0) {
  console.error('usage: node scripts/score-model.mjs <checkpoint|model|run folder> ... [--json out.json]');
  process.exit(2);
}

/** One CLI call; its stdout (stderr passes through, so errors read as the CLI wrote them). */
function mofme(...cliArgs) {
  return execFileSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(root, 'apps/cli/src/main.ts'), ...cliArgs], {
    cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
  });
}

const photosDir = join(root, 'packages/data/photos');
const cleanTest = JSON.parse(readFileSync(join(photosDir, 'manifest.json'), 'utf8')).filter((p) => p.split === split).map((p) => p.file);

const results = [];
for (const checkpoint of args) {
  const started = process.hrtime.bigint();
  const evaluation = JSON.parse(mofme('eval', '--checkpoint', checkpoint, '--split', split, '--json'));
  const scratch = mkdtempSync(join(tmpdir(), 'mofme-score-'));
  try {
    mofme('restore', ...cleanTest.map((f) => join(photosDir, f)), '-o', scratch, '--checkpoint', checkpoint);
    const clean = cleanTest.map((f) => {
      const m = JSON.parse(mofme('metrics', join(scratch, f.replace(/\.[^.]+$/, '.png')), join(photosDir, f), '--json'));
      return { file: f, psnr: m.mean.psnr, ssim: m.mean.ssim };
    });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    results.push({ checkpoint, evaluation, clean, seconds });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

// ---- the table: one column per model, identity first --------------------------------------------
const first = results[0].evaluation;
const tasks = Object.keys(first.tasks ?? {});
const cell = (psnr, ssim, base) => `${psnr.toFixed(2)}${base === undefined ? '' : ` (${psnr - base >= 0 ? '+' : ''}${(psnr - base).toFixed(2)})`} / ${ssim.toFixed(4)}`;
const lines = [
  `| weather | input PSNR / SSIM | ${results.map((r) => r.checkpoint).join(' | ')} |`,
  `|---|---:|${results.map(() => '---:').join('|')}|`,
];
for (const task of [...tasks, 'average']) {
  const pick = (e) => (task === 'average' ? e.average : e.tasks[task]);
  const id = pick(first);
  lines.push(`| ${task === 'average' ? '**average**' : task} | ${cell(id.identityPsnr, id.identitySsim)} | ${results.map((r) => cell(pick(r.evaluation).psnr, pick(r.evaluation).ssim, id.identityPsnr)).join(' | ')} |`);
}
lines.push(`| clean ${split} photos restored, PSNR vs the photo | - | ${results.map((r) => r.clean.map((c) => c.psnr.toFixed(1)).join(', ')).join(' | ')} |`);
console.log(lines.join('\n'));
console.log(`\n${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${results.map((r) => `${r.checkpoint}: ${r.seconds.toFixed(0)} s`).join(', ')}`);
if (jsonOut) {
  writeFileSync(`${jsonOut}.tmp`, JSON.stringify(results, null, 2));
  renameSync(`${jsonOut}.tmp`, jsonOut);
}
