// `pnpm bench`: every benchmark of the repository, one after the other, from sources (no build).
// Pass --quick for a short smoke run. Benchmarks print figures; they never fail on a timing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const benches = [
  ['engine: ours vs tfjs vs PyTorch', 'bench', 'engine.bench.ts'],
  ['gpu.js backend', 'packages/tensor', 'bench/gpu.bench.ts'],
  ['model: MoFME vs MoE vs dense', 'packages/mofme', 'bench/model.bench.ts'],
  ['data pipeline', 'packages/data', 'bench/data.bench.ts'],
];
let failed = 0;
for (const [title, dir, file] of benches) {
  if (!existsSync(join(root, dir, file))) continue;
  console.log(`\n######## ${title} (${dir}/${file})\n`);
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', file, ...args], { cwd: join(root, dir), stdio: 'inherit' });
  if (r.status !== 0) { failed++; console.log(`(${title} exited with ${r.status})`); }
}
process.exit(failed ? 1 : 0);
