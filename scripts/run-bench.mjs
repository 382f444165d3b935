// `pnpm bench`: every benchmark of the repository, one after the other, from sources (no build).
// Pass --quick for a short smoke run. Benchmarks print figures; they never fail on a timing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const benches = [
  ['engine: ours vs tfjs vs PyTorch', 'bench', 'engine.bench.ts'],
  ['model table: ours vs PyTorch on the same network and weights', 'bench', 'model.bench.ts'],
  ['gpu.js backend', 'packages/tensor', 'bench/gpu.bench.ts'],
  ['model: MoFME vs MoE vs dense', 'packages/mofme', 'bench/model.bench.ts'],
  ['data pipeline', 'packages/data', 'bench/data.bench.ts'],
];
// The GPU columns need an X display for headless GL; on a server without one, run the benchmarks
// that use it under a virtual display (xvfb-run, from the xvfb package) when it is installed.
const needsDisplay = new Set(['engine.bench.ts', 'bench/gpu.bench.ts']);
const xvfb = !process.env.DISPLAY && spawnSync('sh', ['-c', 'command -v xvfb-run'], { encoding: 'utf8' }).status === 0;
let failed = 0;
for (const [title, dir, file] of benches) {
  if (!existsSync(join(root, dir, file))) continue;
  console.log(`\n######## ${title} (${dir}/${file})\n`);
  const command = [process.execPath, '--conditions=source', '--import', 'tsx', file, ...args];
  const wrapped = xvfb && needsDisplay.has(file) ? ['xvfb-run', '-a', ...command] : command;
  const r = spawnSync(wrapped[0], wrapped.slice(1), { cwd: join(root, dir), stdio: 'inherit' });
  if (r.status !== 0) { failed++; console.log(`(${title} exited with ${r.status})`); }
}
process.exit(failed ? 1 : 0);
