/**
 * Peak memory and time of restoring one large photo the way `mofme restore` does (readRawPhoto,
 * restorePhoto: banded restoreRows from the decoded samples into the PNG's samples, finishPhotoPng),
 * with the bundled model. `MOFME_MEMORY=1 mofme restore ...` prints the same stages from the
 * command itself. Run it under
 * /usr/bin/time -v to read the peak resident memory ("Maximum resident set size"):
 *
 *   cd apps/cli && node --conditions=source --import tsx scripts/photo-memory.ts --make /tmp/p.jpg [--size 4000x3000]
 *   /usr/bin/time -v node --conditions=source --import tsx scripts/photo-memory.ts --photo /tmp/p.jpg \
 *     [--windows N] [--model identity]
 *
 * --make writes a test photo (a smooth colour field with some texture, JPEG) and exits, so the
 * measured run holds only what restore holds. --windows N stops after N windows, for a figure on
 * a slow machine: the model's share of memory is reached in the first window and the band
 * accumulators are allocated up front, but the output samples fill as bands finish. --model
 * identity replaces the network by a copy (no activations): the whole pipeline in seconds, to
 * measure its memory to the end (input, output, bands, PNG encoding).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { finishPhotoPng, readRawPhoto } from '@mofme/data';
import type { MoFME } from '@mofme/mofme';
import type { Tensor } from '@mofme/tensor';
import { checkpointOrPretrained, loadModelFile } from '../src/checkpoint';
import { restorePhoto } from '../src/evaluate';

const arg = (name: string, fallback: string): string => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1]! : fallback; };
const stopAfter = Number(arg('--windows', 'Infinity'));

if (process.argv.includes('--make')) {
  const [W, H] = arg('--size', '4000x3000').split('x').map(Number) as [number, number];
  const raw = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3, t = Math.sin(x / 37) * Math.cos(y / 23);
      raw[o] = 128 + 100 * Math.sin(x / 500); raw[o + 1] = 128 + 60 * t; raw[o + 2] = 128 + 100 * Math.cos(y / 400);
    }
  }
  writeFileSync(arg('--make', ''), await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
  process.exit(0);
}
const file = arg('--photo', '');
const dir = mkdtempSync(join(tmpdir(), 'mofme-photo-memory-'));

const mb = (): string => `${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`;
const loaded = (await loadModelFile(checkpointOrPretrained(undefined))).model;
const identity = { config: loaded.config, training: false, eval: () => identity, train: () => identity, forward: (x: Tensor) => ({ image: x.mul(0.5).add(0.5) }) };
const model = arg('--model', 'bundled') === 'identity' ? (identity as unknown as MoFME) : loaded;
const t0 = performance.now();
const photo = await readRawPhoto(file);
const { width: W, height: H } = photo.raw;
console.log(`read ${W}x${H} (${((W * H) / 1e6).toFixed(1)} MP), rss ${mb()}`);
class Stop extends Error {}
let last = t0;
try {
  const png = restorePhoto(model, photo, undefined, undefined, (done, total) => {
    const now = performance.now();
    if (done % 10 === 0 || done === total) console.log(`window ${done}/${total}, ${((now - last) / 1000).toFixed(2)} s for the last, rss ${mb()}`);
    last = now;
    if (done >= stopAfter) throw new Stop();
  });
  writeFileSync(join(dir, 'restored.png'), await finishPhotoPng(png));
  console.log(`restored and written in ${((performance.now() - t0) / 1000).toFixed(1)} s, rss ${mb()}`);
} catch (e) {
  if (!(e instanceof Stop)) throw e;
  console.log(`stopped after ${stopAfter} windows (${((performance.now() - t0) / 1000).toFixed(1)} s), rss ${mb()}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
