/**
 * Write training pairs for scripts/torch/ddp_train.py: COUNT random crops of the built-in data (or
 * a dataset folder), degraded and clean, as one safetensors file DIR/pairs.safetensors with tensors
 * `input` and `target` [COUNT, 3, CROP, CROP] in [0, 1]. The Python side then needs nothing but
 * torch: no image decoder, no dataset layouts; the crops come from the same loader `mofme train`
 * uses (random crop, dihedral flips, the built-in weather synthesis).
 *
 *   node --conditions=source --import tsx scripts/torch/export-pairs.ts --out DIR [--count 64 --crop 64 --data builtin --seed 0]
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { builtinDataset, createLoader, openDataset } from '../../packages/data/src/index';
import { saveSafetensors } from '../../packages/nn/src/index';
import { tensor } from '../../packages/tensor/src/index';

const args = process.argv.slice(2);
const arg = (name: string, fallback?: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const out = arg('out');
const count = Number(arg('count', '64'));
const crop = Number(arg('crop', '64'));
const data = arg('data', 'builtin')!;
const seed = Number(arg('seed', '0'));
if (!out || !(Number.isInteger(count) && count > 0) || !(Number.isInteger(crop) && crop > 0)) {
  console.error('usage: export-pairs.ts --out DIR [--count N (positive integer) --crop PIXELS --data builtin|FOLDER --seed S]');
  process.exit(2);
}

const dataset = data === 'builtin' ? builtinDataset('train', { seed }) : await openDataset(data);
const loader = createLoader(dataset, { batchSize: 1, crop, seed, workers: 0, prefetch: 0 });
const inputs = new Float32Array(count * 3 * crop * crop), targets = new Float32Array(inputs.length);
let n = 0;
for await (const batch of loader.stream()) {
  inputs.set(batch.input, n * batch.input.length);
  targets.set(batch.target, n * batch.target.length);
  if (++n === count) break;
}
await loader.close();
mkdirSync(out, { recursive: true });
const shape = [count, 3, crop, crop];
const file = join(out, 'pairs.safetensors');
await saveSafetensors(file, { input: tensor(inputs, { shape }), target: tensor(targets, { shape }) }, { source: data, seed: String(seed) });
console.log(`wrote ${count} pairs of ${crop}x${crop} crops (${data}) to ${file}`);
