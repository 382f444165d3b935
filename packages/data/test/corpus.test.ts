/**
 * Corpus tests on a small fake source, no network: .deb packages built in the test with
 * `dpkg-deb -b` (photos, a copy of one photo at a smaller size, flat vector-like art, a container
 * holding two embedded JPEGs, a DEP-5 copyright file), then assembled with downloads off.
 * Checked: de-duplication keeps the largest copy, flat art is refused with a message, licences come
 * from the matching copyright stanza, missing and reserved packages are reported, the full-
 * resolution file is byte-identical to the package's, the training copy has the documented short
 * side, built-in test scenes stay held out, and the corpus opens as a training dataset.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCorpus, corpusDataset, isCorpusDir, readCorpusManifest, encodeJpeg, encodePng, createImage, imageSize, resizeImage, type Image } from '../src/index';
import { carveJpegs, dhash, hamming, parseCopyright, licenceFor, TRAIN_SHORT_SIDE } from '../src/corpus';

const root = mkdtempSync(join(tmpdir(), 'mofme-corpus-'));
test.after(() => rmSync(root, { recursive: true, force: true }));

/** A photo-like image: smooth shapes plus per-pixel noise (what makes a photo's neighbours differ). */
function photo(h: number, w: number, seed: number): Image {
  const img = createImage(h, w);
  let s = seed * 2654435761 >>> 0;
  const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
  const cx = w * (0.3 + 0.4 * rnd()), cy = h * (0.3 + 0.4 * rnd());
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const r = Math.hypot(x - cx, y - cy) / w;
    img.data[c * h * w + y * w + x] = Math.min(1, Math.max(0, 0.5 + 0.35 * Math.sin(8 * r + c + seed) * (y / h) + 0.06 * (rnd() - 0.5)));
  }
  return img;
}

/** Flat art: three solid rectangles. */
function art(h: number, w: number): Image {
  const img = createImage(h, w, 0.9);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (x < w / 2) img.data[c * h * w + y * w + x] = c === 0 ? 0.8 : 0.1;
    else if (y < h / 2) img.data[c * h * w + y * w + x] = c === 2 ? 0.7 : 0.2;
  }
  return img;
}

function makeDeb(dir: string, pkg: string, files: Record<string, Uint8Array | string>): string {
  const src = join(root, 'src', pkg);
  mkdirSync(join(src, 'DEBIAN'), { recursive: true });
  writeFileSync(join(src, 'DEBIAN/control'), `Package: ${pkg}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Test <t@example.org>\nDescription: test photos\n`);
  for (const [path, data] of Object.entries(files)) { mkdirSync(join(src, path, '..'), { recursive: true }); writeFileSync(join(src, path), data); }
  mkdirSync(dir, { recursive: true });
  const deb = join(dir, `${pkg}_1.0-1_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-b', src, deb], { stdio: 'pipe' });
  return deb;
}

const COPYRIGHT = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: fake

Files: *
Copyright: 2019 Some Project
License: GPL-2+

Files: usr/share/backgrounds/lake*
Copyright: 2020 Jane Doe
License: CC-BY-4.0
 Long licence text.
`;

test('a fake .deb: duplicates merged (largest kept), flat art refused, licences per file, problems reported', async () => {
  const debs = join(root, 'debs');
  const lake = photo(600, 800, 1), lakeSmall = resizeImage(lake, 450, 600), hill = photo(360, 480, 2);
  const lakeJpg = await encodeJpeg(lake, { quality: 92 });
  // two JPEGs (the same scene at two sizes) inside one container, between junk bytes: only the
  // largest is a candidate, so 4 candidates (lake, lake-small, hill, the container's) make 3 scenes
  const a = await encodeJpeg(photo(400, 600, 3), { quality: 90 }), b = await encodeJpeg(resizeImage(photo(400, 600, 3), 320, 480), { quality: 90 });
  const container = new Uint8Array([...new Uint8Array(37).fill(7), ...b, 1, 2, 3, ...a, 9, 9]);
  makeDeb(debs, 'fake-photos', {
    'usr/share/backgrounds/lake.jpg': lakeJpg,
    'usr/share/backgrounds/lake-small.jpg': await encodeJpeg(lakeSmall, { quality: 92 }),
    'usr/share/backgrounds/hill.png': await encodePng(hill),
    'usr/share/backgrounds/logo.png': await encodePng(art(400, 400)),
    'usr/share/backgrounds/tiny.jpg': await encodeJpeg(photo(100, 120, 4)),
    'usr/share/doc/fake-photos/copyright': COPYRIGHT,
  });
  makeDeb(debs, 'fake-container', { 'usr/share/e/bg.edj': container, 'usr/share/doc/fake-container/copyright': COPYRIGHT });
  const out = join(root, 'corpus'), lines: string[] = [];
  const r = await buildCorpus({
    out, debDir: debs, download: false, builtin: false, log: (s) => lines.push(s),
    sources: [
      { package: 'fake-photos', files: [/backgrounds\/[^/]+\.(jpg|png)$/], note: 'test' },
      { package: 'fake-container', files: [/\.edj$/], carve: true, note: 'test' },
      { package: 'not-there', files: [/x/], note: 'missing' },
      { package: 'mate-backgrounds', files: [/x/], note: 'reserved' },
    ],
  });
  const scenes = r.entries.map((e) => e.original).sort();
  assert.equal(scenes, ['usr/share/backgrounds/hill.png', 'usr/share/backgrounds/lake.jpg', `usr/share/e/bg.edj#${37 + b.length + 3}`]);
  const lakeEntry = r.entries.find((e) => e.original.endsWith('lake.jpg'))!;
  assert.is(lakeEntry.width, 800); assert.is(lakeEntry.height, 600);
  assert.is(lakeEntry.licence, 'CC-BY-4.0'); assert.is(lakeEntry.attribution, '2020 Jane Doe');
  assert.is(r.entries.find((e) => e.original.endsWith('hill.png'))!.licence, 'GPL-2+');
  assert.is(lakeEntry.package, 'fake-photos'); assert.is(lakeEntry.version, '1.0-1'); assert.is(lakeEntry.split, 'train');
  assert.equal(new Uint8Array(readFileSync(join(out, lakeEntry.full))), lakeJpg, 'full resolution copy is the package file, byte for byte');
  const t = await imageSize(join(out, lakeEntry.train));
  assert.equal([t.width, t.height], [Math.round(800 * TRAIN_SHORT_SIDE / 600), TRAIN_SHORT_SIDE]);
  const hillTrain = await imageSize(join(out, r.entries.find((e) => e.original.endsWith('hill.png'))!.train));
  assert.equal([hillTrain.width, hillTrain.height], [480, 360], 'smaller photos are not upscaled');
  const problems = r.problems.join('\n');
  assert.match(problems, /logo\.png: \d+% of neighbouring pixels are exactly equal: flat art/);
  assert.match(problems, /tiny\.jpg: 120x100 is smaller than 300/);
  assert.match(problems, /not-there: no \.deb in .* and downloads are off/);
  assert.match(problems, /mate-backgrounds: reserved for independent evaluation/);
  assert.ok(lines.some((l) => /de-duplication: 4 image\(s\) -> 3 scene\(s\)/.test(l)), lines.join('\n'));
  // manifest: JSON round trip and CSV with one row per scene
  assert.equal(readCorpusManifest(out).map((e) => e.scene).sort(), r.entries.map((e) => e.scene).sort());
  assert.is(readFileSync(join(out, 'manifest.csv'), 'utf8').trim().split('\n').length, 1 + 3);
  assert.ok(isCorpusDir(out)); assert.not.ok(isCorpusDir(debs));
  const ds = corpusDataset(out, 'train');
  assert.is(ds.length, 3 * 5 * 2);
  assert.ok(ds.items.every((it) => it.photo.startsWith(join(out, 'train'))));
  assert.throws(() => corpusDataset(out, 'test'), /no test scenes/);
  assert.throws(() => readCorpusManifest(debs), /not a readable corpus manifest/);
});

test('a scene that is a built-in test photo stays held out (split test), so training never sees it', async () => {
  const debs = join(root, 'debs-lomiri');
  makeDeb(debs, 'lomiri-wallpapers-16.04', {
    'usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg': await encodeJpeg(photo(480, 720, 5)),
    'usr/share/backgrounds/other.jpg': await encodeJpeg(photo(480, 720, 6)),
    'usr/share/doc/lomiri-wallpapers-16.04/copyright': COPYRIGHT,
  });
  const r = await buildCorpus({ out: join(root, 'corpus2'), debDir: debs, download: false, builtin: false, log: () => {}, sources: [{ package: 'lomiri-wallpapers-16.04', files: [/\.jpg$/], note: 'test' }] });
  const split = Object.fromEntries(r.entries.map((e) => [e.original.split('/').pop(), e.split]));
  assert.equal(split, { 'picosdeeuropa_by_Aitzol_Berasategi.jpg': 'test', 'other.jpg': 'train' });
  assert.is(corpusDataset(join(root, 'corpus2'), 'train').items.filter((it) => /picos/.test(it.photo)).length, 0);
});

test('carveJpegs finds each embedded JPEG exactly; dhash sees a resized copy as the same scene and another photo as different', async () => {
  const a = await encodeJpeg(photo(64, 80, 7)), b = await encodeJpeg(photo(48, 64, 8));
  const blob = new Uint8Array([0xff, 0xd8, 0x00, 5, ...a, 0xff, ...b, 1]); // a false SOI start, then two files
  const found = carveJpegs(blob);
  assert.is(found.length, 2);
  assert.equal(found[0]!.bytes, a); assert.equal(found[1]!.bytes, b);
  assert.is(found[0]!.offset, 4);
  const p = photo(260, 330, 9), thumb = (im: Image) => dhash(resizeImage(im, 64, 65).data, 64, 65);
  assert.ok(hamming(thumb(p), thumb(resizeImage(p, 130, 165))) <= 6);
  assert.ok(hamming(thumb(p), thumb(photo(260, 330, 10))) > 6);
});

test('DEP-5 copyright: the last matching Files stanza wins; free-form files are reported as such', () => {
  const st = parseCopyright(COPYRIGHT);
  assert.equal(licenceFor(st, 'usr/share/backgrounds/lake.jpg'), { licence: 'CC-BY-4.0', attribution: '2020 Jane Doe' });
  assert.equal(licenceFor(st, 'usr/share/other/x.png'), { licence: 'GPL-2+', attribution: '2019 Some Project' });
  assert.match(licenceFor(parseCopyright('This package was debianized by someone.\nIt is public domain.'), 'a.jpg').licence, /free-form/);
  assert.equal(licenceFor([], 'a.jpg').licence, '(no copyright file)');
});

test.run();
