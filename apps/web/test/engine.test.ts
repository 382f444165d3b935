// The page's inference code in Node, on the CPU backend, with the bundled weights: the recording
// wrapper must not change restorePlanes()'s pixels, its per-window records must match the windows
// restorePlanes() really runs, and the routing map must agree with the model's own routing. The drawing
// helpers are checked here too. These run everywhere; the browser test needs chromium.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getDefaultBackend, withBackend } from '@mofme/tensor';
import { restorePlanes, tileStarts } from '@mofme/mofme';
import { buildModel, countTiles, parseWeights, restoreImage, type PlanarImage } from '../src/engine';
import { expertRgb, routingMapPixels, UNROUTED_RGB } from '../src/draw';

const weights = parseWeights(readFileSync(join(import.meta.dirname, '..', '..', 'cli', 'pretrained', 'model.safetensors')));
const backend = getDefaultBackend();

/** A smooth test picture with an edge, H x W, values in [0, 1]. */
function picture(height: number, width: number): PlanarImage {
  const data = new Float32Array(3 * height * width);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) data[(c * height + y) * width + x] = 0.5 + 0.4 * Math.sin((x + 2 * c) / 7) * Math.cos(y / 5) + (x > width / 2 ? 0.05 : 0);
    }
  }
  return { data, height, width };
}

test('parseWeights reads the bundled model (config from metadata) and rejects a file without one', () => {
  assert.is(weights.config.patchSize, 8);
  assert.ok(weights.config.experts >= 2);
  assert.ok(Object.keys(weights.tensors).length > 10);
  assert.throws(() => parseWeights(new Uint8Array([1, 2, 3]), 'junk.safetensors'), /junk\.safetensors/);
});

test('restoreImage gives restorePlanes()\'s pixels, one record per window at its positions', () => {
  const img = picture(40, 56); // not a multiple of the stride: the last windows sit flush with the edges
  const tile = 32, stride = 24;
  const expected = withBackend(backend, () => restorePlanes(buildModel(weights, backend), { data: img.data, channels: 3, height: 40, width: 56 }, { tile, stride, range: 'unit' }));
  const seen: number[] = [];
  const r = restoreImage(buildModel(weights, backend), backend, img, { tile, stride, onTile: (done, total) => seen.push(done, total) });
  assert.equal([...r.image.data], [...expected]); // a fresh seed-0 model each time: bit-identical
  const positions = tileStarts(40, 32, 24).flatMap((y) => tileStarts(56, 32, 24).map((x) => `${y},${x}`));
  assert.equal(r.tiles.map((t) => `${t.y},${t.x}`), positions);
  assert.is(countTiles(40, 56, 8, tile, stride), positions.length);
  assert.equal(seen, positions.flatMap((_, i) => [i + 1, positions.length]));
  for (const t of r.tiles) assert.ok(t.ms > 0 && t.height === 32 && t.width === 32);
});

test('the routing map: one cell per patch, every cell routed, and the summary counts every token', () => {
  const img = picture(48, 64); // windows at y 0 and 16 (the last flush with the edge), x 0 and 32
  const r = restoreImage(buildModel(weights, backend), backend, img, { tile: 32, stride: 32, label: 'test' });
  const { rows, cols, experts, blocks } = r.routing;
  assert.is(rows, 6);
  assert.is(cols, 8);
  assert.is(blocks.length, weights.config.depth);
  for (const b of blocks) for (const e of b) assert.ok(e < experts, `cell expert ${e}`);
  // the summary counts every token of every window (4 windows of 4x4 tokens), and its top-k
  // shares sum to k per token
  for (const s of r.summary) {
    assert.is(s.task, 'test');
    assert.is(s.tokens, 4 * 16);
    assert.ok(Math.abs(s.topkShare.reduce((a, b) => a + b, 0) - weights.config.topk) < 1e-9);
  }
});

test('draw: distinct expert colours, and the map pixels carry each cell\'s expert', () => {
  const colours = new Set(Array.from({ length: 16 }, (_, e) => expertRgb(e).join()));
  assert.is(colours.size, 16);
  assert.not.ok(colours.has(UNROUTED_RGB.join()));
  (globalThis as { ImageData?: unknown }).ImageData ??= class { data: Uint8ClampedArray; constructor(readonly width: number, readonly height: number) { this.data = new Uint8ClampedArray(4 * width * height); } };
  const map = { rows: 2, cols: 3, patch: 4, experts: 4, blocks: [] };
  const px = routingMapPixels(map, Uint8Array.from([0, 1, 2, 3, 255, 1]));
  assert.is(px.width, 12);
  assert.is(px.height, 8);
  const at = (y: number, x: number): string => [...px.data.slice(4 * (y * 12 + x), 4 * (y * 12 + x) + 3)].join();
  assert.is(at(1, 1), expertRgb(0).join());
  assert.is(at(2, 9), expertRgb(2).join());
  assert.is(at(5, 1), expertRgb(3).join());
  assert.is(at(6, 6), UNROUTED_RGB.join());
  assert.is(at(7, 11), expertRgb(1).join());
});

test.run();
