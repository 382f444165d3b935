/**
 * Built-in dataset tests: the committed photos decode, every photo has an attribution with an
 * allowed licence, splits are disjoint by source photo, and the data is deterministic per seed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { builtinDataset, builtinPhotos, photosDir, getPair, readImage, WEATHERS } from '../src/index';
import { loadSample, toSourceSpec } from '../src/pipeline';
import { createLoader } from '../src/loader';

test('photos: all listed, decodable, attributed, openly licensed, small', async () => {
  const dir = photosDir();
  const photos = builtinPhotos();
  const files = readdirSync(dir).filter((f) => f.endsWith('.jpg')).sort();
  assert.equal(photos.map((p) => p.file).sort(), files);
  assert.ok(files.length >= 24);
  const attribution = readFileSync(join(dir, 'ATTRIBUTION.md'), 'utf8');
  for (const p of photos) {
    assert.ok(['CC0-1.0', 'Public domain', 'CC-BY-4.0'].includes(p.licence), `${p.file}: ${p.licence}`);
    assert.ok(attribution.includes(p.file) && attribution.includes(p.author), `ATTRIBUTION.md lists ${p.file}`);
  }
  const img = await readImage(join(dir, files[0]!));
  assert.is(img.width, 480); assert.is(img.height, 320);
});

test('splits are disjoint by source photo; test scenes never in training', () => {
  const bySplit = (s: string) => new Set(builtinPhotos().filter((p) => p.split === s).map((p) => p.source));
  const tr = bySplit('train'), va = bySplit('val'), te = bySplit('test');
  for (const s of te) assert.ok(!tr.has(s) && !va.has(s), s);
  for (const s of va) assert.ok(!tr.has(s), s);
  const train = builtinDataset('train'), test_ = builtinDataset('test');
  const trainPhotos = new Set(train.items.map((i) => i.photo));
  assert.ok(test_.items.every((i) => !trainPhotos.has(i.photo)));
  assert.is(train.length, 23 * 5 * 2);
  assert.is(test_.length, 4 * 5);
  assert.equal([...new Set(train.items.map((i) => i.weather))].sort(), [...WEATHERS].sort());
  assert.is(builtinDataset('val', { weathers: ['rain_fog', 'raindrop', 'snow'] }).length, 4 * 3);
});

test('val/test pairs are fixed; train pairs change per epoch but not per call', async () => {
  const te = builtinDataset('test');
  const a = await getPair(te, 3), b = await getPair(te, 3, { epoch: 5 });
  assert.equal(Array.from(a.input.data.subarray(0, 500)), Array.from(b.input.data.subarray(0, 500)));
  assert.is(a.task, te.items[3]!.weather);
  assert.equal([a.input.height, a.input.width], [320, 480]);
  const tr = builtinDataset('train');
  const e0 = await getPair(tr, 0, { epoch: 0 }), e0b = await getPair(tr, 0, { epoch: 0 }), e1 = await getPair(tr, 0, { epoch: 1 });
  assert.equal(Array.from(e0.input.data.subarray(0, 2000)), Array.from(e0b.input.data.subarray(0, 2000)));
  assert.not.equal(Array.from(e0.input.data), Array.from(e1.input.data));
  assert.equal(Array.from(e0.target.data.subarray(0, 100)), Array.from(e1.target.data.subarray(0, 100)), 'same clean photo');
});

test('training keeps about a tenth of the samples clean (input = target); val/test never', async () => {
  const train = builtinDataset('train'), spec = toSourceSpec(train);
  assert.is(train.cleanFraction, 0.1);
  assert.is(builtinDataset('test').cleanFraction, 0);
  let clean = 0;
  const n = 120;
  for (let i = 0; i < n; i++) {
    const s = await loadSample(spec, { index: i % train.length, epoch: Math.floor(i / train.length), itemSeed: i, crop: [32, 32], flips: false });
    if (s.input.every((v, k) => v === s.target[k])) clean++;
  }
  // Binomial(120, 0.1): mean 12, sd 3.3; a synthesised sample is never identical to its target
  assert.ok(clean >= 3 && clean <= 24, `${clean} of ${n} clean`);
  const all = { ...spec, cleanFraction: 1 }, none = { ...spec, cleanFraction: 0 };
  const a = await loadSample(all, { index: 3, epoch: 0, itemSeed: 5, crop: [32, 32], flips: false });
  assert.equal(Array.from(a.input), Array.from(a.target));
  const b = await loadSample(none, { index: 3, epoch: 0, itemSeed: 5, crop: [32, 32], flips: false });
  assert.not.equal(Array.from(b.input), Array.from(b.target));
});

test('clean samples cross the worker-thread boundary (input and target are separate buffers)', async () => {
  const ds = builtinDataset('train', { cleanFraction: 1 });
  const loader = createLoader(ds, { batchSize: 4, crop: 32, workers: 1, seed: 3 });
  try {
    const b = (await loader.stream()[Symbol.asyncIterator]().next()).value!;
    assert.equal(b.shape, [4, 3, 32, 32]);
    assert.equal(Array.from(b.input), Array.from(b.target));
  } finally { await loader.close(); }
});

test('flat light: a share of scenes is re-lit flat, target included; a fraction of 0 changes nothing', async () => {
  const spec = toSourceSpec(builtinDataset('train', { cleanFraction: 1 })); // input = target: the target shows the re-lighting
  if (spec.kind !== 'builtin') throw new Error('a built-in dataset gives a built-in source');
  const req = { index: 3, epoch: 0, itemSeed: 5, crop: [64, 64] as [number, number], flips: false };
  const plain = await loadSample(spec, req);
  assert.equal(Array.from((await loadSample({ ...spec, flatLightFraction: 0 }, req)).target), Array.from(plain.target));
  const flat = await loadSample({ ...spec, flatLightFraction: 1 }, req);
  assert.equal(Array.from(flat.input), Array.from(flat.target));
  const stats = (x: Float32Array) => {
    const m = x.reduce((a, v) => a + v, 0) / x.length;
    return { mean: m, sd: Math.sqrt(x.reduce((a, v) => a + (v - m) ** 2, 0) / x.length) };
  };
  const before = stats(plain.target), after = stats(flat.target);
  // contrast c <= 0.9 scales the spread down (desaturation and clamping only shrink it more), and
  // the lift only raises the mean (clamping at 1 can take back at most what it added)
  assert.ok(after.sd < 0.9 * before.sd + 1e-6, `sd ${before.sd} -> ${after.sd}`);
  assert.ok(after.mean >= before.mean - 0.01, `mean ${before.mean} -> ${after.mean}`);
});

test.run();
