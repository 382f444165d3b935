/**
 * Dataset reader tests on fixture trees built here, one per naming pattern of data.md §1:
 * list files (./ prefixes, spaces, CRLF, blank lines, `input` inside a file name), the MoFME layout,
 * Snow100K (with masks and names with spaces), Raindrop (_rain → _clean, data/ folder), Outdoor-Rain
 * (im_NNNN_sXX_aYY → im_NNNN), CSD, generic paired folders, auto-detection, the layout override,
 * and the missing-GT / size-mismatch / corrupt-file policies.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join, basename } from 'node:path';
import { openDataset, detectLayout, describeSkipped, gtNameCandidates, inferTask } from '../src/index';
import { tempDir, testImage, writePng, writeJpg, writeText } from './fixtures/helpers';

const img = testImage(8, 12);
const small = testImage(6, 12);

test('list file: ./ prefixes, spaces, CRLF, blank lines, and "input" inside a name', async () => {
  const { dir, cleanup } = tempDir();
  const names = ['parking_lot_01546.jpg', 'sidewalk winter -grayscale -gray_05928.jpg', 'my input photo.jpg'];
  for (const n of names) { await writeJpg(join(dir, 'Snow100K-L/input', n), img); await writeJpg(join(dir, 'Snow100K-L/gt', n), img); }
  await writePng(join(dir, 'input/801_rain.png'), img); await writePng(join(dir, 'gt/801_clean.png'), img);
  await writePng(join(dir, 'test1/input/im_0307_s95_a04.png'), img); await writePng(join(dir, 'test1/gt/im_0307.png'), img);
  const lines = ['./Snow100K-L/input/parking_lot_01546.jpg', '  ./Snow100K-L/input/sidewalk winter -grayscale -gray_05928.jpg  ', '',
    'Snow100K-L/input/my input photo.jpg', 'input/801_rain.png', './test1/input/im_0307_s95_a04.png', ''];
  writeText(join(dir, 'allweather.txt'), lines.join('\r\n'));
  const ds = await openDataset(join(dir, 'allweather.txt'));
  assert.is(ds.layout, 'list');
  assert.is(ds.length, 5);
  const byName = new Map(ds.pairs.map((p) => [basename(p.input), p]));
  assert.is(byName.get('sidewalk winter -grayscale -gray_05928.jpg')!.target, join(dir, 'Snow100K-L/gt/sidewalk winter -grayscale -gray_05928.jpg'));
  // only the directory component is replaced: the file name keeps its "input"
  assert.is(byName.get('my input photo.jpg')!.target, join(dir, 'Snow100K-L/gt/my input photo.jpg'));
  assert.is(byName.get('801_rain.png')!.target, join(dir, 'gt/801_clean.png'));
  assert.is(byName.get('801_rain.png')!.task, 'raindrop');
  assert.is(byName.get('im_0307_s95_a04.png')!.target, join(dir, 'test1/gt/im_0307.png'));
  assert.is(byName.get('im_0307_s95_a04.png')!.task, 'rain_fog');
  assert.is(byName.get('parking_lot_01546.jpg')!.task, 'snow');
  // a folder holding exactly one list file also opens as a list
  assert.is((await openDataset(dir, { layout: 'list' })).length, 5);
  cleanup();
});

test('MoFME layout: train + test_rain/test_raindrop/test_snow with split selection and tasks', async () => {
  const { dir, cleanup } = tempDir();
  await writePng(join(dir, 'train/input/im_0001_s80_a04.png'), img); await writePng(join(dir, 'train/gt/im_0001.png'), img);
  await writePng(join(dir, 'train/input/12_rain.png'), img); await writePng(join(dir, 'train/gt/12_clean.png'), img);
  await writeJpg(join(dir, 'train/input/beautiful_smile_00003.jpg'), img); await writeJpg(join(dir, 'train/gt/beautiful_smile_00003.jpg'), img);
  await writePng(join(dir, 'test_rain/input/im_0301_s85_a05.png'), img); await writePng(join(dir, 'test_rain/gt/im_0301_s85_a05.png'), img);
  await writePng(join(dir, 'test_raindrop/input/1_rain.png'), img); await writePng(join(dir, 'test_raindrop/gt/1_clean.png'), img);
  await writeJpg(join(dir, 'test_snow/input/x.jpg'), img); await writeJpg(join(dir, 'test_snow/gt/x.jpg'), img);
  assert.is(detectLayout(dir), 'mofme');
  const train = await openDataset(dir, { split: 'train' });
  assert.equal(train.pairs.map((p) => p.task).sort(), ['rain_fog', 'raindrop', 'snow']);
  const tr = await openDataset({ path: dir, split: 'test_rain' });
  assert.is(tr.length, 1); assert.is(tr.pairs[0]!.task, 'rain_fog');
  assert.is((await openDataset(dir, { split: 'test_raindrop' })).pairs[0]!.task, 'raindrop');
  assert.is((await openDataset(dir)).length, 6);
  cleanup();
});

test('Snow100K: synthetic/gt/mask, names with spaces, nested test subsets', async () => {
  const { dir, cleanup } = tempDir();
  for (const sub of ['Snow100K-S', 'Snow100K-L']) for (const n of ['city_read_00561.jpg', 'snowy road 01.jpg']) {
    for (const f of ['synthetic', 'gt', 'mask']) await writeJpg(join(dir, 'media/jdway/GameSSD/overlapping/test', sub, f, n), img);
  }
  assert.is(detectLayout(dir), 'snow100k');
  const ds = await openDataset(dir, { split: 'Snow100K-L' });
  assert.is(ds.length, 2);
  assert.ok(ds.pairs.every((p) => p.task === 'snow' && p.mask && p.target.includes('/gt/') && p.input.includes('Snow100K-L')));
  cleanup();
});

test('Raindrop (data/ + _rain→_clean), Outdoor-Rain (strip _sXX_aYY), CSD (Snow/Gt/Mask), paired', async () => {
  const { dir, cleanup } = tempDir();
  const rd = join(dir, 'raindrop');
  await writePng(join(rd, 'train/data/3_rain.png'), img); await writePng(join(rd, 'train/gt/3_clean.png'), img);
  await writeJpg(join(rd, 'test_a/data/4_rain.jpg'), img); await writeJpg(join(rd, 'test_a/gt/4_clean.jpg'), img);
  assert.is(detectLayout(rd), 'raindrop');
  const r = await openDataset(rd);
  assert.is(r.length, 2); assert.ok(r.pairs.every((p) => p.task === 'raindrop' && /_clean\./.test(p.target)));
  assert.is((await openDataset(rd, { split: 'test_a' })).length, 1);

  const od = join(dir, 'outdoor');
  for (const s of ['s80_a04', 's100_a06']) await writePng(join(od, `Test1/in/im_0001_${s}.png`), img);
  await writePng(join(od, 'Test1/gt/im_0001.png'), img);
  assert.is(detectLayout(od), 'outdoor-rain');
  const o = await openDataset(od);
  assert.is(o.length, 2); assert.ok(o.pairs.every((p) => p.target.endsWith('im_0001.png') && p.task === 'rain_fog'));

  const cs = join(dir, 'CSD');
  for (const f of ['Snow', 'Gt', 'Mask']) await writePng(join(cs, 'Test', f, '1.png'), img);
  assert.is(detectLayout(cs), 'csd');
  const c = await openDataset(cs);
  assert.is(c.length, 1); assert.is(c.pairs[0]!.task, 'snow'); assert.ok(c.pairs[0]!.mask);

  const pd = join(dir, 'paired');
  await writePng(join(pd, 'hazy/a.png'), img); await writePng(join(pd, 'clear/a.png'), img);
  assert.is(detectLayout(pd), 'paired');
  const p = await openDataset(pd, { task: 'rain' });
  assert.is(p.pairs[0]!.task, 'rain', 'an explicit task wins');
  assert.is((await openDataset(pd)).pairs[0]!.task, 'haze', 'the folder name "hazy" says haze');
  // layout override: the raindrop tree read as a generic paired layout still pairs _rain→_clean
  assert.is((await openDataset(rd, { layout: 'paired' })).length, 2);
  cleanup();
});

test('inferTask: All-weather conventions, then weather words in the name, then in the folders', () => {
  const cases: [string, string | undefined][] = [
    ['im_0307_s95_a04.png', 'rain_fog'], ['801_rain.png', 'raindrop'], ['parking_lot_01546.jpg', undefined],
    ['snowy_street_03.jpg', 'snow'], ['foggy-morning.png', 'haze'], ['city_rain_fog_2.png', 'rain_fog'],
    ['raindrops_on_glass.jpg', 'raindrop'], ['heavy_rain_12.png', 'rain'], ['training_0001.png', undefined],
    ['haze/input/a.png', 'haze'], ['test_raindrop/input/1.png', 'raindrop'], ['rainy/x.png', 'rain'],
    ['train/input/a.png', undefined], ['Snow100K-L/synthetic/b.jpg', 'snow'], ['rain/snowy_1.png', 'snow'],
  ];
  for (const [file, want] of cases) assert.is(inferTask(file), want, file);
});

test('missing GT, size mismatch and corrupt files: fail names both paths; skip counts them', async () => {
  const { dir, cleanup } = tempDir();
  await writePng(join(dir, 'input/ok.png'), img); await writePng(join(dir, 'gt/ok.png'), img);
  await writePng(join(dir, 'input/lonely.png'), img);
  await writePng(join(dir, 'input/mismatch.png'), img); await writePng(join(dir, 'gt/mismatch.png'), small);
  await writePng(join(dir, 'input/broken.png'), img); writeText(join(dir, 'gt/broken.png'), 'not a png');
  try {
    await openDataset(dir);
    assert.unreachable('should fail');
  } catch (e) {
    const m = (e as Error).message;
    assert.ok(m.includes(join(dir, 'input/broken.png')) && m.includes(join(dir, 'gt/broken.png')), m);
  }
  const ds = await openDataset(dir, { policy: 'skip' });
  assert.equal(ds.pairs.map((p) => p.id), ['ok']);
  assert.is(ds.skipped.length, 3);
  const mm = ds.skipped.find((s) => s.input.endsWith('mismatch.png'))!;
  assert.match(mm.reason, '12x8'); assert.match(mm.reason, '12x6'); assert.ok(mm.target!.endsWith('gt/mismatch.png'));
  assert.ok(ds.skipped.find((s) => s.input.endsWith('lonely.png'))!.reason.includes('not found'));
  assert.match(describeSkipped(ds), 'skipped 3 pair(s)');
  // the missing-GT error alone also names both paths
  const { dir: d2, cleanup: c2 } = tempDir();
  await writePng(join(d2, 'input/lonely.png'), img); await writePng(join(d2, 'gt/other.png'), img);
  try { await openDataset(d2); assert.unreachable(); } catch (e) {
    const m = (e as Error).message;
    assert.ok(m.includes(join(d2, 'input/lonely.png')) && m.includes(join(d2, 'gt/lonely.png')), m);
  }
  c2(); cleanup();
});

test('GT candidate rules and undetectable folders', async () => {
  assert.equal(gtNameCandidates('im_0001_s80_a04.png').slice(0, 2), ['im_0001_s80_a04.png', 'im_0001.png']);
  assert.equal(gtNameCandidates('12_rain.png').slice(0, 2), ['12_rain.png', '12_clean.png']);
  const { dir, cleanup } = tempDir();
  writeText(join(dir, 'readme.md'), 'nothing here');
  try { detectLayout(dir); assert.unreachable(); } catch (e) { assert.match((e as Error).message, dir); }
  try { await openDataset(join(dir, 'nope')); assert.unreachable(); } catch (e) { assert.match((e as Error).message, 'does not exist'); }
  cleanup();
});

test.run();
