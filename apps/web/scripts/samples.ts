/**
 * Writes the page's built-in samples: one held-out photo of @mofme/data's built-in set (a test
 * split photo, never seen in training) degraded by each of the five weather synthesisers, shrunk
 * to 240x160 so that restoring one takes seconds even on a software WebGL renderer, as 8-bit PNGs
 * in public/samples/ with a manifest.json the page reads (file, weather, photo, author, licence).
 *
 * It also writes routing.json: for each sample, per transformer block, the share of tokens whose
 * top k contains each expert (RouterStats), from restoring the PNG (as read back) with the bundled
 * weights through engine.ts on the CPU backend, the same code and settings as the page.
 *
 * The files are committed (about 100 KB per PNG) so that building the page needs neither the photos'
 * decoder (sharp) nor the synthesisers; this script regenerates them:
 *   node --conditions=source --import tsx apps/web/scripts/samples.ts
 * The browser test decodes the same PNG in Node, so the page and the reference see identical pixels.
 */
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { getDefaultBackend } from '@mofme/tensor';
import { builtinPhotos, photosDir, readImage, resizeImage, synthesize, encodePng, WEATHERS } from '@mofme/data';
import { buildModel, parseWeights, restoreImage, DEFAULT_STRIDE, DEFAULT_TILE } from '../src/engine';

const out = join(import.meta.dirname, '..', 'public', 'samples');
/** small enough for a software renderer: two overlapping 160-pixel windows (engine.ts) */
const HEIGHT = 160, WIDTH = 240;
/** a fixed seed: the samples (and so the browser test's expected pixels) never change by accident */
const SEED = 7;

const photo = builtinPhotos().find((p) => p.split === 'test' && p.file === 'picosdeeuropa.jpg');
if (!photo) throw new Error('samples: the test photo picosdeeuropa.jpg is missing from @mofme/data photos/manifest.json');
const clean = resizeImage(await readImage(join(photosDir(), photo.file)), HEIGHT, WIDTH);
mkdirSync(out, { recursive: true });

const write = (name: string, bytes: Uint8Array): void => {
  const tmp = join(out, `.${name}.tmp`);
  writeFileSync(tmp, bytes);
  renameSync(tmp, join(out, name));
};
const entries = [];
for (const weather of WEATHERS) {
  const file = `${weather}.png`;
  write(file, await encodePng(synthesize(clean, weather, {}, SEED).image));
  entries.push({ file, weather });
}
write('clean.png', await encodePng(clean));
const manifest = {
  photo: photo.file, author: photo.author, licence: photo.licence, source: photo.original,
  size: [WIDTH, HEIGHT], seed: SEED, clean: 'clean.png', samples: entries,
};
const weights = parseWeights(readFileSync(join(import.meta.dirname, '..', '..', 'cli', 'pretrained', 'model.safetensors')));
const routing: Record<string, { block: number; topkShare: number[] }[]> = {};
for (const { file, weather } of entries) {
  const backend = getDefaultBackend();
  const r = restoreImage(buildModel(weights, backend), backend, await readImage(join(out, file)), { label: weather });
  routing[weather] = r.summary.map((s) => ({ block: s.layer, topkShare: s.topkShare.map((v) => Number(v.toFixed(4))) }));
}
write('routing.json', new TextEncoder().encode(JSON.stringify({ tile: DEFAULT_TILE, stride: DEFAULT_STRIDE, k: weights.config.topk, routing }) + '\n'));
write('manifest.json', new TextEncoder().encode(JSON.stringify(manifest, null, 1) + '\n'));
console.log(`wrote ${entries.length} samples, clean.png and routing.json to ${out}`);
