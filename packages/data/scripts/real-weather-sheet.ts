/**
 * Writes docs/real-weather.png: each weather for which a real, licensed photo is at hand, beside our
 * synthetic rendering of it on a clean photo of a similar scene, so the two can be compared by eye.
 * The only real weather photos found in Debian outside the packages reserved for evaluation are in
 * enlightenment-data (BSD-2-clause): "Foggy-Trees" (fog in a forest) and "Snow-Trees" (snow on the
 * ground and branches; no falling flakes). The repository itself ships no real weather photo, and
 * no real rain-streak or raindrop photo with a usable licence exists in Debian (mate-backgrounds'
 * RainDrops is reserved for independent evaluation), so those rows show the synthetic only.
 *
 *   node --conditions=source --import tsx scripts/real-weather-sheet.ts DEB_OR_DIR
 *
 * DEB_OR_DIR: enlightenment-data_*.deb, or a folder holding it (e.g. the `.debs/` cache that
 * `mofme data corpus` leaves in its output folder); `apt-get download enlightenment-data` fetches it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { createImage, decodeImage, imageToRaw, photosDir, readImage, resizeImage, synthesize, type Image, type Weather } from '../src/index';
import { carveJpegs } from '../src/corpus';

const arg = process.argv[2];
if (!arg) throw new Error('usage: real-weather-sheet.ts ENLIGHTENMENT_DATA_DEB_OR_FOLDER');
const deb = statSync(arg).isDirectory() ? join(arg, readdirSync(arg).find((f) => f.startsWith('enlightenment-data_') && f.endsWith('.deb')) ?? '') : arg;
const tmp = mkdtempSync(join(tmpdir(), 'real-weather-'));
execFileSync('dpkg-deb', ['-x', deb, tmp]);
const real = async (name: string): Promise<Image> => {
  const b = new Uint8Array(readFileSync(join(tmp, 'usr/share/enlightenment/data/backgrounds', `${name}.edj`)));
  const largest = carveJpegs(b).sort((x, y) => y.bytes.length - x.bytes.length)[0];
  if (!largest) throw new Error(`${name}.edj holds no JPEG`);
  return decodeImage(largest.bytes, `${name}.edj`, { resize: { width: 720, height: 405 } });
};

const CELL_W = 360, CELL_H = 240, GAP = 4;
/** Center crop to the cell's 3:2 aspect, then resize. */
const cell = (im: Image): Image => {
  const a = CELL_W / CELL_H, w = Math.min(im.width, Math.round(im.height * a)), h = Math.round(w / a);
  const x0 = Math.floor((im.width - w) / 2), y0 = Math.floor((im.height - h) / 2), out = createImage(h, w);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) out.data.set(im.data.subarray(c * im.height * im.width + (y0 + y) * im.width + x0, c * im.height * im.width + (y0 + y) * im.width + x0 + w), c * h * w + y * w);
  return resizeImage(out, CELL_H, CELL_W);
};
const clean = await readImage(join(photosDir(), 'aitzgorri.jpg'));
const rows: { weather: Weather; real: Image | null }[] = [
  { weather: 'haze', real: await real('Foggy-Trees') },
  { weather: 'snow', real: await real('Snow-Trees') },
  { weather: 'rain', real: null },
  { weather: 'raindrop', real: null },
];
rmSync(tmp, { recursive: true, force: true });
const H = rows.length * CELL_H + (rows.length - 1) * GAP, W = 3 * CELL_W + 2 * GAP, sheet = createImage(H, W, 1);
rows.forEach((row, r) => {
  const cells = [cell(clean), cell(synthesize(clean, row.weather, row.weather === 'snow' ? { size: 'L', accumulation: 0.5 } : {}, 7 + r).image), row.real ? cell(row.real) : createImage(CELL_H, CELL_W, 0.85)];
  cells.forEach((im, c) => {
    for (let ch = 0; ch < 3; ch++) for (let y = 0; y < CELL_H; y++) {
      sheet.data.set(im.data.subarray(ch * CELL_H * CELL_W + y * CELL_W, ch * CELL_H * CELL_W + (y + 1) * CELL_W), ch * H * W + (r * (CELL_H + GAP) + y) * W + c * (CELL_W + GAP));
    }
  });
});
const out = new URL('../docs/real-weather.png', import.meta.url).pathname;
mkdirSync(new URL('../docs/', import.meta.url).pathname, { recursive: true });
const raw = imageToRaw(sheet, 8);
writeFileSync(out, await sharp(Buffer.from(raw.data.buffer), { raw: { width: W, height: H, channels: 3 } }).png({ palette: true, colours: 256, dither: 1, compressionLevel: 9, effort: 10 }).toBuffer());
console.log(`wrote ${out} (${W}x${H}, ${(statSync(out).size / 1024).toFixed(0)} KB); rows: ${rows.map((r) => r.weather).join(', ')}; columns: clean | synthetic | real (grey: none available)`);
