/**
 * Data bench: images/s for 240x240 crops (random crop + dihedral flip) from 720x480 JPEG pairs,
 * with prefetch OFF (main thread, one batch at a time) and ON (worker threads, 3 batches ahead).
 * A second pass simulates training by busy-waiting `STEP_MS` per batch on the main thread: with
 * prefetch on, decoding overlaps that compute, so the rate approaches the compute-bound limit.
 * The JPEGs are made once in a temp dir from the built-in photos (upscaled to 720x480, quality 90).
 * Run: pnpm --filter @mofme/data bench
 */
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { builtinPhotos, photosDir, readImage, resizeImage, encodeJpeg, openDataset, createLoader, codecBackend, synthesize } from '../src/index';

const N_PAIRS = 48, BATCH = 8, BATCHES = 24, STEP_MS = Number(process.env.STEP_MS ?? 60);
const dir = mkdtempSync(join(tmpdir(), 'mofme-bench-'));
mkdirSync(join(dir, 'input')); mkdirSync(join(dir, 'gt'));
const photos = builtinPhotos();
for (let i = 0; i < N_PAIRS; i++) {
  const clean = resizeImage(await readImage(photosDir() + photos[i % photos.length]!.file), 480, 720);
  writeFileSync(join(dir, 'gt', `${i}.jpg`), await encodeJpeg(clean, { quality: 90 }));
  writeFileSync(join(dir, 'input', `${i}.jpg`), await encodeJpeg(synthesize(clean, 'snow', {}, i).image, { quality: 90 }));
}
const ds = await openDataset(dir, { layout: 'paired' });

function busy(ms: number) { const end = performance.now() + ms; while (performance.now() < end) { /* simulated training step */ } }

async function run(label: string, workers: number, prefetch: number, stepMs: number) {
  const loader = createLoader(ds, { batchSize: BATCH, crop: 240, workers, prefetch, seed: 1 });
  let n = 0, t0 = 0, k = 0;
  for await (const b of loader.stream()) {
    if (k === 2) t0 = performance.now(); // skip warm-up (worker start, JIT)
    if (k >= 2) n += b.shape[0];
    busy(stepMs);
    if (++k === BATCHES + 2) break;
  }
  const s = (performance.now() - t0) / 1000;
  console.log(`${label.padEnd(44)} ${(n / s).toFixed(1).padStart(7)} images/s`);
}

console.log(`codec: ${await codecBackend()}, cores: ${availableParallelism()}, ${BATCHES} batches of ${BATCH} x 240x240 crops from 720x480 JPEG pairs`);
await run('prefetch off (main thread)', 0, 0, 0);
await run('prefetch on (2 workers, 3 batches ahead)', 2, 3, 0);
await run(`prefetch off + ${STEP_MS} ms/batch "training"`, 0, 0, STEP_MS);
await run(`prefetch on  + ${STEP_MS} ms/batch "training"`, 2, 3, STEP_MS);
console.log(`(compute-bound limit with ${STEP_MS} ms/batch: ${((BATCH * 1000) / STEP_MS).toFixed(1)} images/s)`);
rmSync(dir, { recursive: true, force: true });
