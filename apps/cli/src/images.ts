/**
 * Picture helpers for galleries, strips and reports: lay images out in a grid of equal cells with
 * optional column titles, and encode the grid as a compact PNG with sharp (a palette PNG keeps
 * report pictures small enough to commit).
 */
import sharp from 'sharp';
import { createImage, imageToRaw, resizeImage, type Image } from '@mofme/data';

export interface GridOptions {
  cellHeight: number;
  cellWidth: number;
  gap?: number;
  /** titles over the columns */
  titles?: string[];
  /** a short label at the left of each row's first cell */
  rowLabels?: string[];
  palette?: boolean;
}

const escapeXml = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** rows[r][c] -> one PNG (bytes). Cells are resized (bilinear) to cellHeight × cellWidth. */
export async function gridPng(rows: Image[][], o: GridOptions): Promise<Buffer> {
  const gap = o.gap ?? 4, ch = o.cellHeight, cw = o.cellWidth;
  const cols = Math.max(...rows.map((r) => r.length));
  const top = o.titles ? 22 : 0;
  const H = top + rows.length * ch + (rows.length - 1) * gap, W = cols * cw + (cols - 1) * gap;
  const sheet = createImage(H, W, 1);
  rows.forEach((row, r) => row.forEach((img, c) => {
    const cell = img.height === ch && img.width === cw ? img : resizeImage(img, ch, cw);
    for (let k = 0; k < 3; k++) for (let y = 0; y < ch; y++) {
      const dst = k * H * W + (top + r * (ch + gap) + y) * W + c * (cw + gap);
      sheet.data.set(cell.data.subarray(k * ch * cw + y * cw, k * ch * cw + (y + 1) * cw), dst);
    }
  }));
  const raw = imageToRaw(sheet, 8);
  const texts: string[] = [];
  (o.titles ?? []).forEach((t, c) => texts.push(`<text x="${c * (cw + gap) + cw / 2}" y="16" font-family="sans-serif" font-size="14" text-anchor="middle" fill="#222">${escapeXml(t)}</text>`));
  (o.rowLabels ?? []).forEach((t, r) => {
    const y = top + r * (ch + gap) + 14;
    texts.push(`<rect x="2" y="${y - 12}" width="${7 * t.length + 8}" height="16" fill="black" fill-opacity="0.6"/><text x="6" y="${y}" font-family="sans-serif" font-size="12" fill="white">${escapeXml(t)}</text>`);
  });
  let img = sharp(Buffer.from(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength), { raw: { width: W, height: H, channels: 3 } });
  if (texts.length) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${top ? `<rect width="${W}" height="${top}" fill="white"/>` : ''}${texts.join('')}</svg>`;
    img = sharp(await img.composite([{ input: Buffer.from(svg), top: 0, left: 0 }]).png().toBuffer());
  }
  return o.palette === false
    ? img.png({ compressionLevel: 9 }).toBuffer()
    : img.png({ palette: true, colours: 256, dither: 1, compressionLevel: 9, effort: 7 }).toBuffer();
}
