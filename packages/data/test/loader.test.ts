/**
 * Loader tests: same crop position and same flip in input and target, determinism for a seed
 * (also across main-thread and worker-thread loading), exact resumption from a saved position,
 * per-epoch reshuffling, skip policy, and bounded memory over a few thousand tiny items.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { existsSync, linkSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { openDataset, createLoader, builtinDataset, encodePng, dihedral, type Batch, type FileDataset } from '../src/index';
import { tempDir, testImage, writePng, writeText } from './fixtures/helpers';

const fixture = tempDir('mofme-loader-');
let ds: FileDataset;

test.before(async () => {
  // 24 pairs where target == input: any misalignment between the two crops/flips would show.
  for (let i = 0; i < 24; i++) {
    const im = testImage(20 + (i % 3), 24, i);
    await writePng(join(fixture.dir, 'input', `${i}.png`), im);
    await writePng(join(fixture.dir, 'gt', `${i}.png`), im);
  }
  ds = await openDataset(fixture.dir);
});
test.after(() => fixture.cleanup());

async function collect(it: AsyncIterable<Batch>, max = Infinity): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) { out.push(b); if (out.length >= max) break; }
  return out;
}

test('crops and flips are identical in input and target; shapes NCHW', async () => {
  const loader = createLoader(ds, { batchSize: 4, crop: [8, 8], workers: 0, seed: 3 });
  const batches = await collect(loader.epoch());
  assert.is(batches.length, 6);
  for (const b of batches) {
    assert.equal(b.shape, [4, 3, 8, 8]);
    assert.equal(Array.from(b.input), Array.from(b.target));
    assert.ok(b.tasks.length === 4 && b.paths.input.length === 4 && b.paths.target[0]!.includes('/gt/'));
  }
  // flips happen: some batch differs from every unflipped crop would be hard to test directly, so
  // check that the 8 dihedral modes give 8 different images of an asymmetric picture instead.
  const im = testImage(5, 7);
  const seen = new Set(Array.from({ length: 8 }, (_, m) => Array.from(dihedral(im, m).data).join(',')));
  assert.is(seen.size, 8);
});

test('deterministic for a seed, reshuffled per epoch, identical with and without workers', async () => {
  const a = await collect(createLoader(ds, { batchSize: 4, crop: 8, workers: 0, seed: 7 }).stream(), 12);
  const b = await collect(createLoader(ds, { batchSize: 4, crop: 8, workers: 2, seed: 7 }).stream(), 12);
  assert.equal(a.map((x) => x.ids), b.map((x) => x.ids));
  assert.equal(Array.from(a[9]!.input), Array.from(b[9]!.input));
  const e0 = a.slice(0, 6).flatMap((x) => x.ids), e1 = a.slice(6, 12).flatMap((x) => x.ids);
  assert.equal([...e0].sort(), [...e1].sort(), 'each epoch visits every item once');
  assert.not.equal(e0, e1, 'epochs are shuffled differently');
  const c = await collect(createLoader(ds, { batchSize: 4, crop: 8, workers: 0, seed: 8 }).stream(), 6);
  assert.not.equal(c.flatMap((x) => x.ids), e0, 'another seed gives another order');
});

test('resumes exactly from a saved position (mid-epoch and at an epoch boundary)', async () => {
  const full = await collect(createLoader(ds, { batchSize: 5, crop: 8, workers: 0, seed: 11 }).stream(), 10);
  for (const k of [3, 4, 7]) {
    const first = createLoader(ds, { batchSize: 5, crop: 8, workers: 0, seed: 11 });
    let saved = first.position;
    let n = 0;
    for await (const _ of first.stream()) { saved = first.position; if (++n === k) break; }
    const resumed = await collect(createLoader(ds, { batchSize: 5, crop: 8, workers: 0, seed: 11, start: saved }).stream(), 10 - k);
    assert.equal(resumed.map((b) => [b.epoch, b.index, b.ids]), full.slice(k).map((b) => [b.epoch, b.index, b.ids]));
    assert.equal(Array.from(resumed[0]!.input), Array.from(full[k]!.input));
  }
});

test('skip policy drops unreadable samples and counts them; fail policy names the file', async () => {
  const { dir, cleanup } = tempDir();
  const im = testImage(10, 10);
  for (let i = 0; i < 4; i++) { await writePng(join(dir, 'input', `${i}.png`), im); await writePng(join(dir, 'gt', `${i}.png`), im); }
  const d = await openDataset(dir);
  writeText(join(dir, 'gt', '2.png'), 'corrupted after opening');
  const l = createLoader(d, { batchSize: 4, workers: 0, policy: 'skip', shuffle: false });
  const [b] = await collect(l.epoch());
  assert.is(b!.shape[0], 3); assert.is(l.skipped, 1);
  try { await collect(createLoader(d, { batchSize: 4, workers: 0, shuffle: false }).epoch()); assert.unreachable(); } catch (e) {
    assert.match((e as Error).message, join(dir, 'gt', '2.png'));
  }
  cleanup();
});

test('bounded memory over 2000 tiny items: in-flight samples capped, heap does not grow', async () => {
  const { dir, cleanup } = tempDir();
  const bytes = await encodePng(testImage(12, 12));
  mkdirSync(join(dir, 'input')); mkdirSync(join(dir, 'gt'));
  writeText(join(dir, 'seed.png'), bytes);
  for (let i = 0; i < 2000; i++) { linkSync(join(dir, 'seed.png'), join(dir, 'input', `${i}.png`)); linkSync(join(dir, 'seed.png'), join(dir, 'gt', `${i}.png`)); }
  const big = await openDataset(dir, { layout: 'paired', checkSizes: false });
  assert.is(big.length, 2000);
  const loader = createLoader(big, { batchSize: 16, crop: 8, workers: 1, prefetch: 2, seed: 1 });
  global.gc?.();
  let heapAt100 = 0, count = 0;
  for await (const b of loader.epoch()) {
    count += b.shape[0];
    if (count === 992) heapAt100 = process.memoryUsage().heapUsed;
  }
  const heapEnd = process.memoryUsage().heapUsed;
  assert.is(count, 2000);
  assert.ok(loader.stats.maxInFlight <= 3 * 16, `max in flight ${loader.stats.maxInFlight}`);
  assert.ok(heapEnd - heapAt100 < 40e6, `heap grew by ${((heapEnd - heapAt100) / 1e6).toFixed(1)} MB over the second half`);
  cleanup();
});

test('built-in data through worker threads matches the main thread', async () => {
  const b = builtinDataset('val');
  const x = await collect(createLoader(b, { batchSize: 4, crop: 32, workers: 0, seed: 2 }).epoch());
  const y = await collect(createLoader(b, { batchSize: 4, crop: 32, workers: 2, seed: 2 }).epoch());
  assert.is(x.length, 5);
  assert.equal(Array.from(x[2]!.input), Array.from(y[2]!.input));
  assert.ok(x.every((bt) => bt.shape.join() === '4,3,32,32'));
});

test('the built package (dist) starts its own worker file and yields the same batches', async () => {
  const dist = new URL('../dist/index.js', import.meta.url);
  if (!existsSync(dist)) { console.log('  (dist not built: skipping the dist worker check)'); return; }
  const code = `import { builtinDataset, createLoader } from ${JSON.stringify(dist.href)};
    const l = createLoader(builtinDataset('val'), { batchSize: 4, crop: 16, workers: 1, seed: 5 });
    const out = []; for await (const b of l.epoch()) out.push(Array.from(b.input.subarray(0, 8)));
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  assert.is(r.status, 0, r.stderr);
  const fromDist = JSON.parse(r.stdout) as number[][];
  const fromSrc = (await collect(createLoader(builtinDataset('val'), { batchSize: 4, crop: 16, workers: 0, seed: 5 }).epoch())).map((b) => Array.from(b.input.subarray(0, 8)));
  assert.equal(fromDist, fromSrc);
});

test.run();
