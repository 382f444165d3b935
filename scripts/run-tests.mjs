// Runs every package's uvu suite in dependency order, prints each package's counts and one
// aggregate line "N passed, N failed" at the end, and fails when any package ran zero tests
// (uvu itself exits 0 when it finds nothing to run).
//
// Packages are tested from their TypeScript sources: the "source" export condition makes
// `@mofme/tensor` resolve to packages/tensor/src, so no build step is needed first.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const order = ['packages/tensor', 'packages/nn', 'packages/data', 'packages/mofme', 'apps/cli', 'apps/web'];
const only = process.argv.slice(2);
const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

let passed = 0, failed = 0, skipped = 0;
const problems = [];
for (const dir of order) {
  if (only.length && !only.some((o) => dir.endsWith(o))) continue;
  const cwd = join(root, dir);
  const uvu = join(cwd, 'node_modules', 'uvu', 'bin.js');
  if (!existsSync(uvu)) { problems.push(`${dir}: uvu is not installed (run pnpm install)`); continue; }
  console.log(`\n=== ${dir}`);
  const t0 = Date.now();
  // ESM all the way (`--import tsx`): the packages are "type": "module", and ES modules resolve
  // import cycles (Tensor <-> ops) with live bindings.
  const run = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', uvu, 'test', '--ignore', 'fixtures'], {
    cwd,
    encoding: 'utf8',
    env: process.env,
    maxBuffer: 256 * 1024 * 1024,
  });
  const out = (run.stdout ?? '') + (run.stderr ?? '');
  process.stdout.write(out);
  const text = strip(out);
  const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const pass = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const skip = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const fail = Math.max(0, total - pass - skip) + (run.status !== 0 && total === pass + skip ? 1 : 0);
  passed += pass; failed += fail; skipped += skip;
  console.log(`--- ${dir}: ${pass} passed, ${fail} failed, ${skip} skipped in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (total === 0) problems.push(`${dir}: ran zero tests`);
  if (run.status !== 0) problems.push(`${dir}: exited with code ${run.status}${run.signal ? ` (signal ${run.signal})` : ''}`);
}
for (const p of problems) console.log(`FAIL ${p}`);
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(problems.length || failed ? 1 : 0);
