/**
 * The clean-photo corpus: real scenes gathered from sources that are reachable offline (Debian
 * packages fetched with `apt-get download`, plus the built-in photos), written as
 *
 *   DIR/full/<scene>.<ext>    each scene once, at its full resolution (the largest copy found)
 *   DIR/train/<scene>.jpg     a training copy, scaled so its short side is TRAIN_SHORT_SIDE
 *   DIR/manifest.json, .csv   scene, source package and version, file inside the package, size,
 *                             licence and attribution (from the package's copyright file), split
 *
 * Weather is synthesised on the training copies at training time (`corpusDataset`), exactly as on
 * the built-in photos, so the corpus stays a set of clean photos.
 *
 * Why a curated table of files. Wallpaper and documentation packages mix photos with vector art,
 * screenshots, charts and calibration targets; a list of files per package, chosen by looking at
 * contact sheets, is the only reliable filter. A cheap statistical check backs it up (vector art
 * has large areas of exactly equal neighbouring pixels; a photo's sensor noise makes that rare),
 * so a new file matched by a broad pattern is still refused with a message if it is flat art.
 *
 * The same image at several sizes (Enlightenment's backgrounds hold 13 resolutions of each photo;
 * OpenCV ships left/right views of one scene) is merged with a 64-bit difference hash: two
 * thumbnails within DUPLICATE_BITS bits are one scene, and the largest copy is kept.
 *
 * Held out. Scenes whose original is a built-in val/test photo's original keep that split in the
 * manifest, so training on the corpus never sees the built-in test scenes. The packages reserved
 * for independent evaluation (plasma-workspace-wallpapers, mate-backgrounds) are refused outright.
 *
 * Every unavailable source (no network, package gone, file missing) is reported with one line and
 * skipped; the corpus is whatever could be assembled, and the summary says how many scenes that is.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { decodeRaw, encodeJpeg, loadSharp } from './codec';
import { rawToImage } from './image';
import { builtinPhotos, photosDir, CLEAN_FRACTION, type BuiltinDataset, type BuiltinItem, type BuiltinOptions, type Split } from './builtin';
import { WEATHERS } from './synth/index';

/** Short side of the training copies: the All-weather frames are 720x480, so 480 keeps their scale. */
export const TRAIN_SHORT_SIDE = 480;
/** Photos smaller than this on their short side are too small to crop and are refused. */
const MIN_SHORT_SIDE = 300;
/** dHash distance (of 64 bits) at or below which two images are the same scene at another size. */
const DUPLICATE_BITS = 6;
/**
 * Fraction of exactly-equal horizontal neighbours (all of R, G, B) above which an image is flat art,
 * not a photo. Measured on the curated files: photos with smooth skies or bokeh reach 0.61 (high-
 * quality JPEGs keep smooth areas flat), rendered art such as Enlightenment's Dunes 0.96-0.99.
 */
const FLAT_FRACTION = 0.9;
/** Kept for independent evaluation (issue 14): never part of the corpus. */
export const RESERVED_PACKAGES = ['plasma-workspace-wallpapers', 'mate-backgrounds'];

export interface CorpusSource {
  /** Debian package name */
  package: string;
  /** files inside the package, as regular expressions on the path (without a leading '/') */
  files: RegExp[];
  /** containers holding several embedded JPEGs (Enlightenment .edj): every JPEG in them is a candidate */
  carve?: boolean;
  /** why these files (what they show) */
  note: string;
}

/**
 * The sources, chosen from contact sheets of each package's rasters (bookworm). What is left out
 * of each package and why: see the notes.
 */
export const CORPUS_SOURCES: CorpusSource[] = [
  { package: 'lomiri-wallpapers-16.04', files: [/^usr\/share\/backgrounds\/(?!umang|analogpattern)[^/]+\.jpg$/], note: '13 photos (mountains, bridge, dragonfly, sunset, dogs, wine, ...); umang is a gradient, analogpattern a glitter texture' },
  { package: 'lomiri-wallpapers-20.04', files: [/^usr\/share\/backgrounds\/Kleiber_by_Lukas_Baubkus\.jpg$/], note: 'one photo (tree bark); the other three are illustrations' },
  { package: 'python3-skimage', files: [/skimage\/data\/(astronaut|coffee|chelsea|motorcycle_left)\.png$/, /skimage\/data\/rocket\.jpg$/], note: 'the colour photos; camera is grey, hubble_deep_field is a star field, motorcycle_right is the same scene' },
  { package: 'palapeli-data', files: [/^usr\/share\/palapeli\/collection\/[^/]+\.jpg$/], note: 'the 5 jigsaw photos (bridge, bee, chameleon, castle, fruit); backgrounds/ are textures' },
  { package: 'python3-sklearn', files: [/sklearn\/datasets\/images\/(china|flower)\.jpg$/], note: 'the two sample photos' },
  {
    package: 'opencv-doc',
    files: [/examples\/data\/(fruits|baboon|leuvenA|squirrel_cls|home|aloeL|board|orange|messi5|ela_original|aero1|apple|building|butterfly|stuff)\.jpg$/, /examples\/data\/(graf1|smarties|rubberwhale1|chicky_512)\.png$/],
    note: 'colour photos of examples/data; chessboards, drawings, grey stereo pairs, starry_night (a painting) and the second view of each pair are left out',
  },
  { package: 'gimp-help-en', files: [/tone-mapping\/(apple-orchard-truck-from-camera|tree-exposed-for-sky-ground-is-dark|power-lines)\.jpg$/], note: 'the three unedited tutorial photos; the rest are screenshots or edited copies' },
  {
    package: 'enlightenment-data', carve: true,
    files: [/backgrounds\/(Bamboo|Dunes|Green-Maple|Lichen-Branches|Mountain|Peaks|Red-Maple|Sea-of-Lanterns|Spruce-Needles|Sunset-Clouds|Sunset-Hills|White-Flower|Yellow-Flower)\.edj$/],
    note: 'photo backgrounds stored as JPEGs at ~13 sizes inside .edj files (largest kept); Foggy-Trees, God-Rays and Snow-Trees already show weather and are left out, the Squiggle/Flat ones are art',
  },
];

export interface CorpusEntry {
  /** scene id, also the file stem under full/ and train/ */
  scene: string;
  /** 'deb' or 'builtin' */
  origin: 'deb' | 'builtin';
  package: string;
  version: string;
  /** path inside the package (for carved JPEGs: "<container>#<byte offset>") */
  original: string;
  width: number;
  height: number;
  licence: string;
  attribution: string;
  /** full-resolution file, relative to the corpus folder */
  full: string;
  /** training copy, relative to the corpus folder */
  train: string;
  /** 'train' unless the scene is a built-in val/test scene */
  split: Split;
  /** 64-bit difference hash (hex) used for de-duplication */
  dhash: string;
}

export interface CorpusOptions {
  /** output folder */
  out: string;
  /** sources to use (default CORPUS_SOURCES) */
  sources?: CorpusSource[];
  /** folder with already downloaded .deb files (`<package>_*.deb`) looked at before apt-get */
  debDir?: string;
  /** run `apt-get download` for packages not in debDir (default true) */
  download?: boolean;
  /** add the built-in photos whose scene is not already in the corpus (default true) */
  builtin?: boolean;
  /** progress and per-source messages (default console.log) */
  log?: (line: string) => void;
}

export interface CorpusResult {
  entries: CorpusEntry[];
  /** one line per source or file that could not be used */
  problems: string[];
  manifest: string;
}

interface Candidate { bytes: Uint8Array; ext: string; width: number; height: number; dhash: bigint; entry: Omit<CorpusEntry, 'scene' | 'width' | 'height' | 'full' | 'train' | 'dhash' | 'split'> }

/** Assembles the corpus into `opts.out`; see the file header. */
export async function buildCorpus(opts: CorpusOptions): Promise<CorpusResult> {
  const out = resolve(opts.out), log = opts.log ?? ((s: string) => console.log(s));
  const sources = opts.sources ?? CORPUS_SOURCES;
  const problems: string[] = [];
  const problem = (s: string) => { problems.push(s); log(`  skipped: ${s}`); };
  const cache = join(out, '.debs'), work = join(out, '.extract');
  mkdirSync(cache, { recursive: true });
  const candidates: Candidate[] = [];

  for (const src of sources) {
    if (RESERVED_PACKAGES.includes(src.package)) { problem(`${src.package}: reserved for independent evaluation, never used`); continue; }
    const deb = findDeb(src.package, [opts.debDir, cache]) ?? (opts.download !== false ? aptDownload(src.package, cache, problem) : null);
    if (!deb) { if (opts.download === false) problem(`${src.package}: no .deb in ${opts.debDir ?? cache} and downloads are off`); continue; }
    const dir = join(work, src.package);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try { execFileSync('dpkg-deb', ['-x', deb, dir], { stdio: 'pipe' }); } catch (e) { problem(`${src.package}: dpkg-deb -x ${basename(deb)} failed (${firstLine(e)})`); continue; }
    const version = debVersion(deb);
    const copyright = readCopyright(dir, src.package);
    const files = walk(dir).map((f) => relative(dir, f)).filter((f) => src.files.some((re) => re.test(f))).sort();
    for (const re of src.files) if (!files.some((f) => re.test(f))) problem(`${src.package} ${version}: no file matches ${re}`);
    let n = 0;
    for (const file of files) {
      const bytes = new Uint8Array(readFileSync(join(dir, file)));
      // A container holds one photo at many sizes and aspect crops: keep its largest JPEG only.
      const carved = src.carve ? carveJpegs(bytes).sort((a, b) => b.bytes.length - a.bytes.length).slice(0, 1) : [];
      const parts = src.carve ? carved.map((p) => ({ bytes: p.bytes, original: `${file}#${p.offset}` })) : [{ bytes, original: file }];
      if (src.carve && parts.length === 0) problem(`${src.package}: ${file} holds no JPEG`);
      for (const p of parts) {
        const c = await candidate(p.bytes, `${src.package}:${p.original}`, problem);
        if (!c) continue;
        const lic = licenceFor(copyright, file);
        candidates.push({ ...c, ext: extname(file) === '.png' ? '.png' : '.jpg', entry: { origin: 'deb', package: src.package, version, original: p.original, licence: lic.licence, attribution: lic.attribution } });
        n++;
      }
    }
    log(`${src.package} ${version}: ${files.length} file(s) matched, ${n} image(s) usable`);
    rmSync(dir, { recursive: true, force: true });
  }

  // Built-in photos: one candidate per source scene (its largest crop), merged below with the
  // full-resolution original when that was fetched (same package file).
  const builtinSplit = new Map<string, Split>();
  for (const p of builtinPhotos()) builtinSplit.set(`${p.package.split(' ')[0]}:${p.original.replace(/^\//, '')}`, p.split);
  if (opts.builtin !== false) {
    const bySource = new Map<string, ReturnType<typeof builtinPhotos>[number]>();
    for (const p of builtinPhotos()) if (!bySource.has(p.source) || !/-z\d/.test(p.file)) bySource.set(p.source, p);
    let n = 0;
    for (const p of bySource.values()) {
      const orig = p.original.replace(/^\//, ''), pkg = p.package.split(' ')[0]!;
      if (candidates.some((c) => c.entry.package === pkg && c.entry.original === orig)) continue;
      const c = await candidate(new Uint8Array(readFileSync(join(photosDir(), p.file))), `builtin:${p.file}`, problem);
      if (!c) continue;
      candidates.push({ ...c, ext: '.jpg', entry: { origin: 'builtin', package: pkg, version: p.package.split(' ')[1] ?? '', original: orig, licence: p.licence, attribution: p.author } });
      n++;
    }
    log(`built-in photos: ${n} scene(s) not already present at full resolution`);
  }

  // De-duplicate: the largest copy of each scene wins.
  candidates.sort((a, b) => b.width * b.height - a.width * a.height);
  const kept: Candidate[] = [];
  let merged = 0;
  for (const c of candidates) {
    if (kept.some((k) => hamming(k.dhash, c.dhash) <= DUPLICATE_BITS)) { merged++; continue; }
    kept.push(c);
  }
  log(`de-duplication: ${candidates.length} image(s) -> ${kept.length} scene(s) (${merged} smaller copies merged)`);

  mkdirSync(join(out, 'full'), { recursive: true });
  mkdirSync(join(out, 'train'), { recursive: true });
  const entries: CorpusEntry[] = [];
  const used = new Set<string>();
  kept.sort((a, b) => (a.entry.package + a.entry.original < b.entry.package + b.entry.original ? -1 : 1));
  for (const c of kept) {
    let scene = `${c.entry.package}--${slug(basename(c.entry.original.replace(/#.*$/, ''), extname(c.entry.original.replace(/#.*$/, ''))))}`;
    while (used.has(scene)) scene += '_';
    used.add(scene);
    const full = `full/${scene}${c.ext}`, train = `train/${scene}.jpg`;
    atomicWrite(join(out, full), c.bytes);
    const f = TRAIN_SHORT_SIDE / Math.min(c.width, c.height);
    const size = f < 1 ? { width: Math.round(c.width * f), height: Math.round(c.height * f) } : undefined;
    const img = rawToImage(await decodeRaw(c.bytes, full, size ? { resize: size } : {}));
    atomicWrite(join(out, train), await encodeJpeg(img, { quality: 92 }));
    const split = builtinSplit.get(`${c.entry.package}:${c.entry.original}`) ?? 'train';
    entries.push({ scene, ...c.entry, width: c.width, height: c.height, full, train, split, dhash: c.dhash.toString(16).padStart(16, '0') });
  }
  rmSync(work, { recursive: true, force: true });
  const manifest = join(out, 'manifest.json');
  atomicWrite(manifest, JSON.stringify({ kind: 'mofme-corpus', version: 1, scenes: entries }, null, 1) + '\n');
  atomicWrite(join(out, 'manifest.csv'), toCsv(entries));
  const bySplit = (s: Split) => entries.filter((e) => e.split === s).length;
  log(`corpus: ${entries.length} distinct scene(s) in ${out} (train ${bySplit('train')}, held out as built-in val/test ${bySplit('val') + bySplit('test')}); ${problems.length} problem(s)`);
  return { entries, problems, manifest };
}

/** Reads a corpus manifest; throws a one-line error naming the file when it is not one. */
export function readCorpusManifest(dir: string): CorpusEntry[] {
  const file = join(dir, 'manifest.json');
  let m: { kind?: string; scenes?: CorpusEntry[] };
  try { m = JSON.parse(readFileSync(file, 'utf8')) as typeof m; } catch (e) { throw new Error(`${file}: not a readable corpus manifest (${firstLine(e)})`); }
  if (m.kind !== 'mofme-corpus' || !Array.isArray(m.scenes)) throw new Error(`${file}: not a corpus manifest (expected "kind": "mofme-corpus"; made by \`mofme data corpus\`)`);
  return m.scenes;
}

/**
 * Training data from a corpus: its training copies of the scenes in `split` (held-out built-in
 * val/test scenes are never in 'train'), with weather synthesised on the fly exactly as for the
 * built-in photos (same items, seeds and `fresh` rule; see builtin.ts).
 */
export function corpusDataset(dir: string, split: Split = 'train', opts: BuiltinOptions = {}): BuiltinDataset {
  const root = resolve(dir);
  const scenes = readCorpusManifest(root).filter((e) => e.split === split);
  if (!scenes.length) throw new Error(`${join(root, 'manifest.json')}: no ${split} scenes`);
  const weathers = [...(opts.weathers ?? WEATHERS)];
  const repeats = opts.repeats ?? (split === 'train' ? 2 : 1);
  const items: BuiltinItem[] = [];
  for (const e of scenes) for (const w of weathers) for (let v = 0; v < repeats; v++) {
    items.push({ photo: join(root, e.train), weather: w, variant: v, id: `corpus/${e.scene}/${w}#${v}` });
  }
  return { kind: 'builtin', split, items, weathers, seed: opts.seed ?? 0, fresh: opts.fresh ?? split === 'train', cleanFraction: opts.cleanFraction ?? (split === 'train' ? CLEAN_FRACTION : 0), flatLightFraction: opts.flatLightFraction ?? 0, photosDir: join(root, 'train'), get length() { return items.length; } };
}

/** True when `dir` holds a corpus (a manifest.json of kind mofme-corpus). */
export function isCorpusDir(dir: string): boolean {
  try { return statSync(dir).isDirectory() && readCorpusManifest(dir).length >= 0; } catch { return false; }
}

// ---------------------------------------------------------------------------------------------
// Sources

function findDeb(pkg: string, dirs: (string | undefined)[]): string | null {
  for (const d of dirs) {
    if (!d || !existsSync(d)) continue;
    const hit = readdirSync(d).filter((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb')).sort().pop();
    if (hit) return join(d, hit);
  }
  return null;
}

function aptDownload(pkg: string, dir: string, problem: (s: string) => void): string | null {
  try {
    execFileSync('apt-get', ['download', pkg], { cwd: dir, stdio: 'pipe', timeout: 600_000 });
  } catch (e) {
    const msg = firstLine(e);
    problem(`${pkg}: apt-get download failed (${/ENOENT/.test(msg) ? 'apt-get not found: not a Debian system' : msg}); run \`apt-get update\` once, or pass a folder of .deb files`);
    return null;
  }
  const deb = findDeb(pkg, [dir]);
  if (!deb) problem(`${pkg}: apt-get download reported success but wrote no .deb`);
  return deb;
}

/** "palapeli-data_4%3a22.12.3-1_all.deb" -> "4:22.12.3-1". */
function debVersion(deb: string): string {
  return decodeURIComponent(basename(deb).split('_')[1] ?? '');
}

interface CopyrightStanza { files: string[]; copyright: string; licence: string }

/** Parses a DEP-5 copyright file into its Files stanzas (or one stanza for free-form files). */
export function parseCopyright(text: string): CopyrightStanza[] {
  const stanzas: CopyrightStanza[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let key = '';
    for (const line of block.split('\n')) {
      const m = /^([A-Za-z-]+):\s?(.*)$/.exec(line);
      if (m && !line.startsWith(' ')) { key = m[1]!.toLowerCase(); fields.set(key, m[2]!.trim()); } else if (key && /^\s/.test(line)) fields.set(key, `${fields.get(key)}\n${line.trim()}`);
    }
    if (fields.has('files')) {
      stanzas.push({ files: fields.get('files')!.split(/\s+/).filter(Boolean), copyright: oneLineOf(fields.get('copyright') ?? ''), licence: (fields.get('license') ?? '').split('\n')[0]!.trim() });
    }
  }
  if (!stanzas.length && text.trim()) stanzas.push({ files: ['*'], copyright: '(see the copyright file)', licence: '(free-form copyright file: see it)' });
  return stanzas;
}

function readCopyright(root: string, pkg: string): CopyrightStanza[] {
  const f = join(root, 'usr/share/doc', pkg, 'copyright');
  return existsSync(f) ? parseCopyright(readFileSync(f, 'utf8')) : [];
}

/** DEP-5: the LAST stanza whose Files pattern matches the file wins. */
export function licenceFor(stanzas: CopyrightStanza[], file: string): { licence: string; attribution: string } {
  let hit: CopyrightStanza | undefined;
  for (const s of stanzas) if (s.files.some((g) => globMatches(g, file))) hit = s;
  return hit ? { licence: hit.licence || '(not stated)', attribution: hit.copyright || '(not stated)' } : { licence: '(no copyright file)', attribution: '(unknown)' };
}

/** A DEP-5 glob ('*' and '?', matched against the path's tail, as packages write source paths). */
function globMatches(glob: string, file: string): boolean {
  if (glob === '*') return true;
  const re = new RegExp(`(^|/)${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(file) || re.test(basename(file));
}

// ---------------------------------------------------------------------------------------------
// Images

async function candidate(bytes: Uint8Array, name: string, problem: (s: string) => void): Promise<Omit<Candidate, 'entry' | 'ext'> | null> {
  let thumb: Float32Array, width: number, height: number;
  try {
    ({ width, height } = await probe(bytes, name));
    thumb = rawToImage(await decodeRaw(bytes, name, { resize: { width: 65, height: 64 } })).data;
  } catch (e) { problem(`${name}: cannot decode (${firstLine(e)})`); return null; }
  if (Math.min(width, height) < MIN_SHORT_SIDE) { problem(`${name}: ${width}x${height} is smaller than ${MIN_SHORT_SIDE} px on its short side`); return null; }
  const flat = await flatFractionOf(bytes, name);
  if (flat > FLAT_FRACTION) { problem(`${name}: ${(flat * 100).toFixed(0)}% of neighbouring pixels are exactly equal: flat art, not a photo`); return null; }
  return { bytes, width, height, dhash: dhash(thumb, 64, 65) };
}

async function probe(bytes: Uint8Array, name: string): Promise<{ width: number; height: number }> {
  const sharp = await loadSharp();
  if (sharp) {
    const m = await sharp(bytes).metadata();
    if (m.width && m.height) return { width: m.width, height: m.height };
  }
  const r = await decodeRaw(bytes, name);
  return { width: r.width, height: r.height };
}

/**
 * Fraction of horizontally adjacent pixel pairs whose 8-bit R, G and B are all exactly equal, on the
 * decoded image at full resolution (downscaling would average away the sensor noise that makes this
 * rare in photos; flat fills and gradients of vector art keep it high).
 */
async function flatFractionOf(bytes: Uint8Array, name: string): Promise<number> {
  const r = await decodeRaw(bytes, name);
  return flatFraction(r.data, r.width, r.height, r.bits === 16 ? 257 : 1);
}

/** See flatFractionOf: `rgb` is interleaved RGB, compared after dividing by `scale` (16-bit -> 8-bit). */
function flatFraction(rgb: ArrayLike<number>, width: number, height: number, scale = 1): number {
  let eq = 0, all = 0;
  const q = (i: number) => Math.floor(rgb[i]! / scale);
  for (let y = 0; y < height; y++) for (let x = 0; x + 1 < width; x++) {
    const i = 3 * (y * width + x), j = i + 3;
    all++;
    if (q(i) === q(j) && q(i + 1) === q(j + 1) && q(i + 2) === q(j + 2)) eq++;
  }
  return all ? eq / all : 1;
}

/**
 * 64-bit difference hash of a CHW thumbnail of 64 rows x 65 columns: grey, averaged into 8x9 cells,
 * one bit per horizontally adjacent cell pair (brighter or not). Robust to scaling and JPEG.
 */
export function dhash(chw: Float32Array, H: number, W: number): bigint {
  const n = H * W, cells = new Float64Array(8 * 9), count = new Float64Array(8 * 9);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = y * W + x, c = Math.min(7, Math.floor((y * 8) / H)) * 9 + Math.min(8, Math.floor((x * 9) / W));
    cells[c]! += 0.299 * chw[i]! + 0.587 * chw[n + i]! + 0.114 * chw[2 * n + i]!;
    count[c]! += 1;
  }
  let h = 0n;
  for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) {
    const a = cells[r * 9 + c]! / count[r * 9 + c]!, b = cells[r * 9 + c + 1]! / count[r * 9 + c + 1]!;
    h = (h << 1n) | (a > b ? 1n : 0n);
  }
  return h;
}

export function hamming(a: bigint, b: bigint): number {
  let x = a ^ b, n = 0;
  while (x) { n += Number(x & 1n); x >>= 1n; }
  return n;
}

/**
 * Finds the complete JPEG streams inside a container: each SOI (FF D8 FF) followed by a walk over
 * the marker segments to its EOI. Inside entropy-coded data a real marker is FF followed by a byte
 * other than 00 (stuffing) and D0-D7 (restart markers); progressive files have several scans.
 */
export function carveJpegs(b: Uint8Array): { offset: number; bytes: Uint8Array }[] {
  const out: { offset: number; bytes: Uint8Array }[] = [];
  let i = 0;
  while (i + 3 < b.length) {
    if (!(b[i] === 0xff && b[i + 1] === 0xd8 && b[i + 2] === 0xff)) { i++; continue; }
    const end = jpegEnd(b, i);
    if (end < 0) { i++; continue; }
    out.push({ offset: i, bytes: b.slice(i, end) });
    i = end;
  }
  return out;
}

/** Index just past the EOI of the JPEG starting at `start`, or -1 when the stream is broken. */
function jpegEnd(b: Uint8Array, start: number): number {
  let p = start + 2;
  while (p + 1 < b.length) {
    if (b[p] !== 0xff) return -1;
    const m = b[p + 1]!;
    if (m === 0xd9) return p + 2;
    if (m === 0xff) { p++; continue; } // fill byte
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { p += 2; continue; }
    if (p + 3 >= b.length) return -1;
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    if (len < 2) return -1;
    p += 2 + len;
    if (m === 0xda) { // scan: skip entropy-coded data up to the next real marker
      while (p + 1 < b.length && !(b[p] === 0xff && b[p + 1] !== 0x00 && !(b[p + 1]! >= 0xd0 && b[p + 1]! <= 0xd7))) p++;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Files

function walk(dir: string): string[] {
  const out: string[] = [];
  const rec = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) rec(p); else if (e.isFile()) out.push(p);
    }
  };
  if (existsSync(dir)) rec(dir);
  return out;
}

function atomicWrite(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function toCsv(entries: CorpusEntry[]): string {
  const cols: (keyof CorpusEntry)[] = ['scene', 'split', 'package', 'version', 'original', 'width', 'height', 'licence', 'attribution', 'full', 'train'];
  const q = (v: unknown) => { const s = String(v); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; };
  return [cols.join(','), ...entries.map((e) => cols.map((c) => q(e[c])).join(','))].join('\n') + '\n';
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'image';
const oneLineOf = (s: string) => s.split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
const firstLine = (e: unknown) => String((e as { stderr?: Buffer })?.stderr?.toString().trim() || (e as Error)?.message || e).split('\n')[0]!.slice(0, 200);
