/**
 * Codec tests: round trips (8-bit PNG exact, 16-bit PNG exact to 1/65535, JPEG within compression
 * error), the grey/alpha conversion rule, BMP, the pure-JS fallback agreeing with sharp, and errors
 * that name the file for corrupt, truncated and non-image inputs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import {
  decodeImage, encodeJpeg, encodePng, readImage, writeImage, imageSize, setCodecBackend, codecBackend, sniffFormat,
  imageToRaw,
} from '../src/index';
import { tempDir, testImage, writeText } from './fixtures/helpers';

const maxDiff = (a: Float32Array, b: Float32Array) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!)); return m; };

test('8-bit PNG round trip is exact for 8-bit values (sharp and JS)', async () => {
  const img = testImage(13, 17);
  const q = imageToRaw(img, 8); // quantise once so the reference is exactly representable
  for (let i = 0; i < img.data.length; i++) img.data[i] = Math.round(img.data[i]! * 255) / 255;
  for (const backend of ['auto', 'js'] as const) {
    setCodecBackend(backend);
    const back = await decodeImage(await encodePng(img), 'mem.png');
    assert.is(back.height, 13); assert.is(back.width, 17);
    assert.ok(maxDiff(back.data, img.data) < 1e-6, `${backend}: ${maxDiff(back.data, img.data)}`);
  }
  setCodecBackend('auto');
  assert.is(q.bits, 8);
});

test('16-bit PNG keeps 16-bit precision', async () => {
  const img = testImage(9, 11);
  for (const backend of ['auto', 'js'] as const) {
    setCodecBackend(backend);
    const bytes = await encodePng(img, { bits: 16 });
    assert.is(bytes[24], 16, 'IHDR bit depth');
    const back = await decodeImage(bytes);
    assert.ok(maxDiff(back.data, img.data) <= 0.5 / 65535 + 1e-7, `${backend} ${maxDiff(back.data, img.data)}`);
  }
  setCodecBackend('auto');
});

test('JPEG round trip stays within compression error; JS fallback decodes like sharp', async () => {
  const img = testImage(48, 64);
  const bytes = await encodeJpeg(img, { quality: 95 });
  assert.is(sniffFormat(bytes), 'jpeg');
  const a = await decodeImage(bytes);
  setCodecBackend('js');
  assert.is(await codecBackend(), 'js');
  const b = await decodeImage(bytes);
  setCodecBackend('auto');
  let err = 0; for (let i = 0; i < a.data.length; i++) err += Math.abs(a.data[i]! - img.data[i]!);
  assert.ok(err / a.data.length < 0.02, `mean abs error ${err / a.data.length}`);
  let d = 0; for (let i = 0; i < a.data.length; i++) d += Math.abs(a.data[i]! - b.data[i]!);
  assert.ok(d / a.data.length < 0.03, `two JPEG decoders agree to within IDCT/upsampling differences (${d / a.data.length})`);
});

test('grey is replicated to RGB and alpha is dropped (PIL convert("RGB") rule)', async () => {
  const grey = Buffer.from([0, 64, 128, 255, 10, 20]);
  const g = await sharp(grey, { raw: { width: 3, height: 2, channels: 1 } }).png().toBuffer();
  const rgba = Buffer.from([255, 0, 0, 0, 0, 255, 0, 128]);
  const a = await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } }).png().toBuffer();
  for (const backend of ['auto', 'js'] as const) {
    setCodecBackend(backend);
    const gi = await decodeImage(g);
    for (let i = 0; i < 6; i++) for (let c = 0; c < 3; c++) assert.ok(Math.abs(gi.data[c * 6 + i]! - grey[i]! / 255) < 1e-6);
    const ai = await decodeImage(a);
    // pixel 0 is red with alpha 0: colour kept as stored, not composited to black/white
    assert.equal([ai.data[0], ai.data[2], ai.data[4]], [1, 0, 0]);
    assert.equal([ai.data[1], ai.data[3], ai.data[5]], [0, 1, 0]);
  }
  setCodecBackend('auto');
});

test('24-bit BMP (bottom-up, padded rows) decodes, even when named .png', async () => {
  const { dir, cleanup } = tempDir();
  const w = 3, h = 2, stride = 12; // 9 bytes + 3 padding
  const b = Buffer.alloc(54 + stride * h);
  b.write('BM', 0); b.writeUInt32LE(b.length, 2); b.writeUInt32LE(54, 10); b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18); b.writeInt32LE(h, 22); b.writeUInt16LE(1, 26); b.writeUInt16LE(24, 28);
  // bottom row first: bottom row is blue, top row is red (stored BGR)
  for (let x = 0; x < w; x++) { b[54 + 3 * x] = 255; b[54 + stride + 3 * x + 2] = 255; }
  const p = join(dir, 'actually-bmp.png');
  writeText(p, b);
  const img = await readImage(p);
  assert.is(img.width, 3); assert.is(img.height, 2);
  assert.is(img.data[0], 1); // top-left red channel
  assert.is(img.data[2 * 6 + 3], 1); // bottom-left blue channel
  cleanup();
});

test('corrupt, truncated, empty, missing and non-image files give errors naming the file', async () => {
  const { dir, cleanup } = tempDir();
  const good = await encodeJpeg(testImage(64, 64), { quality: 90 });
  const cases: [string, Uint8Array | string | null][] = [
    ['truncated.jpg', good.subarray(0, Math.floor(good.length / 2))],
    ['garbage.png', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10, 1, 2, 3, 4, 5])],
    ['notes.png', 'this is a text file, not an image\n'],
    ['empty.jpg', new Uint8Array(0)],
    ['missing.png', null],
  ];
  for (const backend of ['auto', 'js'] as const) {
    setCodecBackend(backend);
    for (const [name, content] of cases) {
      const p = join(dir, name);
      if (content !== null) writeText(p, content);
      try {
        const img = await readImage(p);
        // jpeg-js may return a (partly grey) image for a truncated stream; sharp must not.
        assert.ok(backend === 'js' && name === 'truncated.jpg', `${backend} decoded ${name} to ${img.width}x${img.height}`);
      } catch (e) {
        assert.ok((e as Error).message.includes(p), `${backend}: message "${(e as Error).message}" names ${p}`);
      }
    }
  }
  setCodecBackend('auto');
  cleanup();
});

test('writeImage/readImage/imageSize on disk; unsupported extension is an error', async () => {
  const { dir, cleanup } = tempDir();
  const img = testImage(20, 30);
  await writeImage(join(dir, 'a.png'), img);
  await writeImage(join(dir, 'a.jpg'), img, { quality: 80 });
  assert.equal(await imageSize(join(dir, 'a.png')), { width: 30, height: 20 });
  assert.equal(await imageSize(join(dir, 'a.jpg')), { width: 30, height: 20 });
  assert.is(sniffFormat(readFileSync(join(dir, 'a.png'))), 'png');
  try { await writeImage(join(dir, 'a.gif'), img); assert.unreachable(); } catch (e) { assert.match((e as Error).message, 'a.gif'); }
  cleanup();
});

test.run();
