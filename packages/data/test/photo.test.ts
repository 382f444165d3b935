/**
 * Photo I/O for restoration (readPhoto / readRawPhoto / encodePhotoPng and the band-by-band
 * PhotoPng in src/codec.ts), on small files made here
 * with sharp and pngjs: EXIF orientation applied on read, alpha kept and reattached, 16-bit kept
 * through a round trip, grey inputs written back as one grey channel. The restored image is
 * stood in for by the read RGB itself (or a changed copy of it), so what is checked is the I/O.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { PNG } from 'pngjs';
import { createPhotoPng, cropImage, encodePhotoPng, finishPhotoPng, rawWindowInto, readPhoto, readRawPhoto, setCodecBackend, setPhotoPngRows, type Image } from '../src/index';
import { tempDir } from './fixtures/helpers';

const { dir, cleanup } = tempDir('mofme-photo-');
const file = (name: string, bytes: Uint8Array | Buffer): string => { const p = join(dir, name); writeFileSync(p, bytes); return p; };

/** PNG header fields: bit depth (IHDR byte 24) and colour type (byte 25). */
const ihdr = (png: Uint8Array): { depth: number; colorType: number } => ({ depth: png[24]!, colorType: png[25]! });

/** A w×h RGBA PNG with distinct samples and a varying alpha; `raw` is its interleaved RGBA bytes. */
async function rgbaPng(name: string, w: number, h: number): Promise<{ raw: Buffer; path: string }> {
  const raw = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) raw.set([(i * 37) % 256, (i * 11) % 256, (i * 5) % 256, (i * 29) % 256], 4 * i);
  return { raw, path: file(name, await sharp(raw, { raw: { width: w, height: h, channels: 4 } }).png().toBuffer()) };
}

test('EXIF orientation is applied: a sideways-stored JPEG tagged "rotate 90 CW" reads upright', async () => {
  // stored 32 wide x 16 high: left half red, right half blue; orientation 6 = rotate 90 degrees clockwise to view
  const raw = Buffer.alloc(32 * 16 * 3);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 32; x++) raw.set(x < 16 ? [255, 0, 0] : [0, 0, 255], (y * 32 + x) * 3);
  const jpg = await sharp(raw, { raw: { width: 32, height: 16, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  const photo = await readPhoto(file('sideways.jpg', jpg));
  assert.is(photo.orientation, 6);
  assert.is(photo.image.width, 16);
  assert.is(photo.image.height, 32);
  // turned clockwise, the stored left (red) half is on top, the right (blue) half below
  const n = 16 * 32, at = (c: number, y: number, x: number) => photo.image.data[c * n + y * 16 + x]!;
  assert.ok(at(0, 4, 8) > 0.9 && at(2, 4, 8) < 0.1, `top is red: ${at(0, 4, 8)}, ${at(2, 4, 8)}`);
  assert.ok(at(0, 28, 8) < 0.1 && at(2, 28, 8) > 0.9, `bottom is blue: ${at(0, 28, 8)}, ${at(2, 28, 8)}`);
});

test('alpha is kept: RGBA PNG in, RGB restored, the same alpha out (sharp and pngjs readers)', async () => {
  const w = 7, h = 5, { raw, path } = await rgbaPng('alpha.png', w, h);
  for (const backend of ['auto', 'js'] as const) {
    setCodecBackend(backend);
    const photo = await readPhoto(path);
    assert.ok(photo.alpha, `${backend}: alpha read`);
    assert.equal(Array.from(photo.alpha!), Array.from({ length: w * h }, (_, i) => (i * 29) % 256));
    assert.is(photo.image.data[0 * w * h + 3], Math.fround(((3 * 37) % 256) / 255)); // colour kept as stored, not premultiplied
    const out = await encodePhotoPng(photo.image, photo);
    assert.equal(ihdr(out), { depth: 8, colorType: 6 });
    const back = await sharp(out).raw().toBuffer();
    assert.equal(Array.from(back), Array.from(raw), `${backend}: RGBA round trip`);
  }
  setCodecBackend('auto');
});

test('16-bit PNG: read at 16 bits and written back at 16 bits, samples exact', async () => {
  const w = 6, h = 4, png = new PNG({ width: w, height: h, bitDepth: 16, colorType: 2, inputColorType: 2, inputHasAlpha: false } as never);
  // values that are not multiples of 257, so an 8-bit detour would change them
  const samples = Uint16Array.from({ length: w * h * 3 }, (_, i) => (i * 2749 + 1) % 65536);
  png.data = Buffer.from(samples.buffer);
  const path = file('deep.png', PNG.sync.write(png, { bitDepth: 16, colorType: 2, inputColorType: 2, inputHasAlpha: false } as never));
  for (const backend of ['auto', 'js'] as const) {
    setCodecBackend(backend);
    const photo = await readPhoto(path);
    assert.is(photo.bits, 16);
    assert.is(photo.alpha, null);
    const out = await encodePhotoPng(photo.image, photo);
    assert.equal(ihdr(out), { depth: 16, colorType: 2 });
    const back = PNG.sync.read(Buffer.from(out), { skipRescale: true });
    const rgb = Array.from({ length: w * h * 3 }, (_, i) => (back.data as unknown as ArrayLike<number>)[Math.floor(i / 3) * 4 + (i % 3)]);
    assert.equal(rgb, Array.from(samples), `${backend}: 16-bit samples`);
  }
  setCodecBackend('auto');
});

test('grey input: read as three equal channels, written back as one grey channel (and grey + alpha)', async () => {
  const w = 9, h = 3;
  const grey = Buffer.from(Array.from({ length: w * h }, (_, i) => (i * 23) % 256));
  const path = file('grey.png', await sharp(grey, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toBuffer());
  assert.equal(ihdr(readFileSync(path)).colorType, 0, 'the test file is a grey PNG');
  const photo = await readPhoto(path);
  assert.ok(photo.grey);
  const n = w * h;
  for (let i = 0; i < n; i++) {
    assert.is(photo.image.data[i], photo.image.data[n + i]);
    assert.is(photo.image.data[i], photo.image.data[2 * n + i]);
  }
  // a "restoration" that tints the colours: the mean of R, G, B is written, as one channel
  const tinted = Float32Array.from(photo.image.data, (v, i) => Math.min(1, v + (i < n ? 0.06 : i < 2 * n ? 0 : -0.03)));
  const out = await encodePhotoPng({ ...photo.image, data: tinted }, photo);
  assert.equal(ihdr(out), { depth: 8, colorType: 0 });
  // pngjs expands grey to RGBA on reading: R = G = B = the stored grey value
  const back = PNG.sync.read(Buffer.from(out)).data;
  for (let i = 0; i < n; i++) {
    const want = Math.round(((tinted[i]! + tinted[n + i]! + tinted[2 * n + i]!) / 3) * 255);
    assert.is(back[4 * i], want, `pixel ${i}`);
  }
  // grey + alpha keeps both
  const ga = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) ga.set([(i * 23) % 256, 255 - i], 2 * i);
  const gaPhoto = await readPhoto(file('grey-alpha.png', await sharp(ga, { raw: { width: w, height: h, channels: 2 } }).toColourspace('b-w').png().toBuffer()));
  assert.ok(gaPhoto.grey && gaPhoto.alpha);
  const gaOut = await encodePhotoPng(gaPhoto.image, gaPhoto);
  assert.equal(ihdr(gaOut), { depth: 8, colorType: 4 });
  const gaBack = PNG.sync.read(Buffer.from(gaOut)).data;
  assert.equal(Array.from({ length: 2 * n }, (_, i) => gaBack[4 * Math.floor(i / 2) + (i % 2 ? 3 : 0)]), Array.from(ga));
});

test('a plain 8-bit RGB photo is written as an 8-bit RGB PNG; a bad file names itself', async () => {
  const raw = Buffer.from(Array.from({ length: 4 * 4 * 3 }, (_, i) => (i * 13) % 256));
  const photo = await readPhoto(file('rgb.png', await sharp(raw, { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer()));
  assert.equal([photo.bits, photo.grey, photo.alpha, photo.orientation], [8, false, null, 1]);
  assert.equal(ihdr(await encodePhotoPng(photo.image, photo)), { depth: 8, colorType: 2 });
  const bad = file('bad.png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
  try {
    await readPhoto(bad);
    assert.unreachable('a truncated PNG was read');
  } catch (e) {
    assert.ok((e as Error).message.includes(bad), (e as Error).message);
    assert.not.match((e as Error).message, /\n/);
  }
});

test('readRawPhoto keeps the samples readPhoto converts; windows of them read as the crops of the planes', async () => {
  const w = 11, h = 7, { raw, path } = await rgbaPng('raw-alpha.png', w, h);
  for (const backend of ['auto', 'js'] as const) {
    setCodecBackend(backend);
    const photo = await readPhoto(path), rawPhoto = await readRawPhoto(path);
    // the RGB samples as stored, without the alpha, which is kept apart
    assert.equal(Array.from(rawPhoto.raw.data), Array.from({ length: 3 * w * h }, (_, i) => raw[4 * Math.floor(i / 3) + (i % 3)]), `${backend}: RGB samples`);
    assert.equal(Array.from(rawPhoto.alpha!), Array.from(photo.alpha!));
    assert.equal([rawPhoto.bits, rawPhoto.grey, rawPhoto.orientation], [photo.bits, photo.grey, photo.orientation]);
    const into = new Float32Array(3 * 3 * 4);
    rawWindowInto(rawPhoto.raw, 2, 5, 3, 4, into);
    assert.equal(Array.from(into), Array.from(cropImage(photo.image, 2, 5, 3, 4).data), `${backend}: a window`);
  }
  setCodecBackend('auto');
  assert.throws(() => rawWindowInto({ data: new Uint8Array(3 * 4), width: 2, height: 2, bits: 8 }, 1, 0, 2, 2, new Float32Array(12)), /outside the 2x2 image/);
});

test('PhotoPng filled band by band gives the bytes encodePhotoPng gives for the whole image (RGB, alpha, grey, 16-bit)', async () => {
  const w = 13, h = 10, n = w * h;
  const g = (i: number): number => ((i * 7919) % 1000) / 999; // values in [0, 1] that are not on the 8-bit grid
  const img: Image = { data: Float32Array.from({ length: 3 * n }, (_, i) => g(i) * 1.1 - 0.05), channels: 3, height: h, width: w }; // some outside [0, 1]: clamped
  const likes = [
    { alpha: null, bits: 8 as const, grey: false },
    { alpha: Uint8Array.from({ length: n }, (_, i) => (i * 3) % 256), bits: 8 as const, grey: false },
    { alpha: null, bits: 8 as const, grey: true },
    { alpha: Uint16Array.from({ length: n }, (_, i) => i * 401), bits: 16 as const, grey: true },
    { alpha: null, bits: 16 as const, grey: false },
  ];
  for (const like of likes) {
    const whole = await encodePhotoPng(img, like);
    const png = createPhotoPng(w, h, like);
    for (const [y0, rows] of [[0, 4], [4, 1], [5, 5]] as const) {
      const band = new Float32Array(3 * rows * w);
      for (let c = 0; c < 3; c++) band.set(img.data.subarray((c * h + y0) * w, (c * h + y0 + rows) * w), c * rows * w);
      setPhotoPngRows(png, y0, rows, band);
    }
    assert.equal(Buffer.from(await finishPhotoPng(png)).equals(Buffer.from(whole)), true, `${JSON.stringify({ ...like, alpha: Boolean(like.alpha) })}: same PNG`);
  }
  // and the plain photo's samples are the quantised image: the decoded PNG equals rawToImage of them
  const plain = createPhotoPng(w, h, likes[0]!);
  setPhotoPngRows(plain, 0, h, img.data);
  const decoded = await sharp(Buffer.from(await finishPhotoPng(plain))).raw().toBuffer();
  assert.equal(Array.from(decoded), Array.from({ length: 3 * n }, (_, i) => Math.round(Math.min(1, Math.max(0, img.data[(i % 3) * n + Math.floor(i / 3)]!)) * 255)));
  assert.throws(() => setPhotoPngRows(plain, 8, 3, new Float32Array(3 * 3 * w)), /do not fit a 13x10 image/);
});

test.after(() => cleanup());
test.run();
