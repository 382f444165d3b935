/**
 * Writes docs/contact-sheet.png: for a few built-in TEST photos, one row each with
 *   clean | rain | rain+fog | snow | raindrop | haze
 * at 240x160 per cell (a palette PNG, to stay small), each degraded with default (randomly drawn, seeded) parameters — what the
 * model is trained on. Run with `pnpm --filter @mofme/data contact-sheet`.
 */
import { mkdirSync, writeFileSync, statSync } from 'node:fs';
import sharp from 'sharp';
import { builtinPhotos, photosDir, readImage, resizeImage, synthesize, createImage, imageToRaw, WEATHERS, type Image } from '../src/index';

const CELL_W = 240, CELL_H = 160, GAP = 4;
const names = ['picosdeeuropa.jpg', 'rocket.jpg', 'coffee.jpg', 'picture1a-z1.jpg'];
const known = new Set(builtinPhotos().map((p) => p.file));
const rows: Image[][] = [];
for (const [r, name] of names.entries()) {
  if (!known.has(name)) throw new Error(`contact-sheet: ${name} is not a built-in photo`);
  const clean = await readImage(photosDir() + name);
  // synthesise at full 480x320 (the model's statistics), then shrink each cell for the sheet
  const row = [clean, ...WEATHERS.map((w, k) => synthesize(clean, w, {}, 1000 * r + k).image)];
  rows.push(row.map((im) => resizeImage(im, CELL_H, CELL_W)));
}
const cols = 1 + WEATHERS.length;
const H = rows.length * CELL_H + (rows.length - 1) * GAP, W = cols * CELL_W + (cols - 1) * GAP;
const sheet = createImage(H, W, 1);
rows.forEach((row, r) => row.forEach((cell, c) => {
  for (let ch = 0; ch < 3; ch++) for (let y = 0; y < CELL_H; y++) {
    const dst = ch * H * W + (r * (CELL_H + GAP) + y) * W + c * (CELL_W + GAP);
    sheet.data.set(cell.data.subarray(ch * CELL_H * CELL_W + y * CELL_W, ch * CELL_H * CELL_W + (y + 1) * CELL_W), dst);
  }
}));
const out = new URL('../docs/contact-sheet.png', import.meta.url).pathname;
mkdirSync(new URL('../docs/', import.meta.url).pathname, { recursive: true });
// A 256-colour palette PNG (libimagequant with dithering, via sharp) keeps the sheet commit-sized.
const raw = imageToRaw(sheet, 8);
const png = await sharp(Buffer.from(raw.data.buffer), { raw: { width: W, height: H, channels: 3 } })
  .png({ palette: true, colours: 256, dither: 1, compressionLevel: 9, effort: 10 }).toBuffer();
writeFileSync(out, png);
console.log(`wrote ${out} (${W}x${H}, ${(statSync(out).size / 1024).toFixed(0)} KB); columns: clean | ${WEATHERS.join(' | ')}`);
