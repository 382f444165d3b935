/**
 * One-off maintenance script: rebuilds `packages/data/photos/` (the built-in clean photos) from the
 * original Debian packages. It is NOT needed at install, run or test time — the JPEGs it writes are
 * committed. It is kept so that anyone can check where each committed photo came from and redo it.
 *
 *   apt-get download python3-skimage lomiri-wallpapers-16.04
 *   for d in *.deb; do dpkg -x "$d" x; done
 *   pnpm --filter @mofme/data exec tsx scripts/prepare-photos.ts /path/to/x
 *
 * Every photo is downscaled to 480x320 (3:2, the All-weather 720x480 aspect at 2/3 scale). The big
 * Lomiri wallpapers also give two zoomed-in crops each, so 13 source photos yield 31 images. The
 * split (train/val/test) is assigned per SOURCE photo, so crops of one photo never straddle splits.
 */
import sharp from 'sharp';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
if (!root) throw new Error('usage: prepare-photos.ts <dir where the .debs were extracted with dpkg -x>');
const out = new URL('../photos/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });

type Split = 'train' | 'val' | 'test';
interface Source {
  name: string; pkg: string; file: string; author: string; licence: string; split: Split;
  /** zoomed crops: [centre x, centre y, width] as fractions of the source width/height */
  zooms: [number, number, number][];
}
const L = 'usr/share/backgrounds/';
const S = 'usr/lib/python3/dist-packages/skimage/data/';
const lomiri = 'lomiri-wallpapers-16.04 20.04.0-2';
const skimage = 'python3-skimage 0.19.3-8';
const z2: [number, number, number][] = [[0.3, 0.55, 0.42], [0.7, 0.45, 0.42]];
const sources: Source[] = [
  { name: 'aitzgorri', pkg: lomiri, file: L + 'aitzgorri_by_Aitzol_Berasategi.jpg', author: 'Aitzol Berasategi', licence: 'CC-BY-4.0', split: 'train', zooms: z2 },
  { name: 'friends', pkg: lomiri, file: L + 'friends_by_Aitzol_Berasategi.jpg', author: 'Aitzol Berasategi', licence: 'CC-BY-4.0', split: 'train', zooms: [[0.5, 0.3, 0.8], [0.5, 0.7, 0.8]] },
  { name: 'life', pkg: lomiri, file: L + 'life_by_Aitzol_Berasategi.jpg', author: 'Aitzol Berasategi', licence: 'CC-BY-4.0', split: 'train', zooms: z2 },
  { name: 'picosdeeuropa', pkg: lomiri, file: L + 'picosdeeuropa_by_Aitzol_Berasategi.jpg', author: 'Aitzol Berasategi', licence: 'CC-BY-4.0', split: 'test', zooms: z2 },
  { name: 'sunset', pkg: lomiri, file: L + 'sunset_by_Aitzol_Berasategi.jpg', author: 'Aitzol Berasategi', licence: 'CC-BY-4.0', split: 'train', zooms: z2 },
  { name: 'picture0b', pkg: lomiri, file: L + 'Picture_0B_by_freespace.jpg', author: 'Trevor "Freespace"', licence: 'CC-BY-4.0', split: 'train', zooms: z2 },
  { name: 'picture1a', pkg: lomiri, file: L + 'Picture_1A_by_freespace.jpg', author: 'Trevor "Freespace"', licence: 'CC-BY-4.0', split: 'val', zooms: z2 },
  { name: 'wine', pkg: lomiri, file: L + 'Wine_by_Jakkub_Mede.jpg', author: 'Jakub Mede', licence: 'CC-BY-4.0', split: 'train', zooms: [[0.5, 0.35, 0.8], [0.5, 0.65, 0.8]] },
  { name: 'seeding', pkg: lomiri, file: L + 'seeding_by_Clements_Engelhardt.jpg', author: 'Clemens Engelhardt', licence: 'CC0-1.0', split: 'train', zooms: z2 },
  { name: 'astronaut', pkg: skimage, file: S + 'astronaut.png', author: 'NASA (Eileen Collins)', licence: 'Public domain', split: 'train', zooms: [] },
  { name: 'chelsea', pkg: skimage, file: S + 'chelsea.png', author: 'Stefan van der Walt', licence: 'CC0-1.0', split: 'train', zooms: [] },
  { name: 'coffee', pkg: skimage, file: S + 'coffee.png', author: 'Rachel Michetti', licence: 'CC0-1.0', split: 'val', zooms: [] },
  { name: 'rocket', pkg: skimage, file: S + 'rocket.jpg', author: 'SpaceX', licence: 'Public domain', split: 'test', zooms: [] },
];

const W = 480, H = 320;
const manifest: object[] = [];
for (const s of sources) {
  const src = join(root, s.file);
  const meta = await sharp(src).metadata();
  const views: { suffix: string; img: sharp.Sharp }[] = [
    { suffix: '', img: sharp(src).resize(W, H, { fit: 'cover', position: 'attention' }) },
  ];
  for (const [i, [cx, cy, fw]] of s.zooms.entries()) {
    // A 3:2 window fw of the source width wide, centred at (cx, cy), clamped inside the photo.
    let w = Math.round(fw * meta.width!), h = Math.round((w * H) / W);
    if (h > meta.height!) { h = meta.height!; w = Math.round((h * W) / H); }
    const left = Math.min(meta.width! - w, Math.max(0, Math.round(cx * meta.width! - w / 2)));
    const top = Math.min(meta.height! - h, Math.max(0, Math.round(cy * meta.height! - h / 2)));
    views.push({ suffix: `-z${i + 1}`, img: sharp(src).extract({ left, top, width: w, height: h }).resize(W, H) });
  }
  for (const v of views) {
    const file = `${s.name}${v.suffix}.jpg`;
    writeFileSync(join(out, file), await v.img.removeAlpha().jpeg({ quality: 86, mozjpeg: true }).toBuffer());
    manifest.push({ file, source: s.name, package: s.pkg, original: '/' + s.file, author: s.author, licence: s.licence, split: s.split });
  }
}
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 1) + '\n');
console.log(`wrote ${manifest.length} photos to ${out}`);
