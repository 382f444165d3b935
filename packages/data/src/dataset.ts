/**
 * Dataset readers: turn a folder tree or a list file into an ordered list of (degraded, clean) file
 * pairs with a task tag. Nothing is decoded here except, optionally, image headers to check that
 * both images of a pair have the same size.
 *
 * Supported layouts (data.md §1; `layout` overrides auto-detection):
 *   list        TransWeather / WeatherDiffusion list file: one path per line relative to the list's
 *               folder ("input/1_rain.png", "./Snow100K-L/input/a b.jpg"); CRLF and blank lines OK;
 *               lines are trimmed at the ends only (names may contain spaces).
 *   mofme       MoFME-Pytorch: root/{train,test_rain,test_raindrop,test_snow}/{input,gt}
 *   snow100k    .../{synthetic,gt,mask}/ (Snow100K-training/all, test/Snow100K-{S,M,L})
 *   raindrop    {train,test_a,test_b}/{data|input,gt}, N_rain.png → N_clean.png
 *   outdoor-rain {train,test,Test1}/{in|input,gt}, im_NNNN_sXX_aYY.png → im_NNNN.png
 *   csd         CSD/{Train,Test}/{Snow,Gt,Mask}, same names
 *   paired      any folder pair input|in|data|rain|rainy|hazy|degraded → gt|GT|target|clean|...
 *
 * Ground-truth candidates for an input path, tried in order (data.md "suggested loader rules"):
 * the input directory component replaced by the GT directory (only a whole path component — never a
 * substring of a file name), then the file name with `_rain.`→`_clean.` (also `rain`→`clean` once),
 * with the Outdoor-Rain suffix `_sNN_aNN` stripped, each also with the other image extensions.
 *
 * Task tags: rain_fog (Outdoor-Rain names), raindrop (`_rain.` names or Raindrop layout), snow
 * (Snow100K/CSD), haze, rain; MoFME's test_rain split is Outdoor-Rain Test1, hence rain_fog.
 *
 * Problems (missing GT, size mismatch) follow `policy`: 'fail' (default) throws an error naming both
 * paths; 'skip' drops the pair and records it in `dataset.skipped` (print `describeSkipped(ds)`).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { imageSize } from './codec';

export type Task = 'rain_fog' | 'raindrop' | 'snow' | 'haze' | 'rain';
export const TASKS: readonly Task[] = ['rain_fog', 'raindrop', 'snow', 'haze', 'rain'];
export type Layout = 'list' | 'mofme' | 'snow100k' | 'raindrop' | 'outdoor-rain' | 'csd' | 'paired';
export const LAYOUTS: readonly Layout[] = ['list', 'mofme', 'snow100k', 'raindrop', 'outdoor-rain', 'csd', 'paired'];
export type Policy = 'fail' | 'skip';

export interface PairEntry {
  /** absolute path of the degraded image */
  input: string;
  /** absolute path of the clean ground truth */
  target: string;
  task: Task;
  /** a short id: the input file name without extension */
  id: string;
  /** Snow100K/CSD translucency mask when present */
  mask?: string;
}

export interface SkippedPair { input: string; target: string | null; reason: string }

export interface FileDataset {
  kind: 'files';
  layout: Layout;
  root: string;
  pairs: PairEntry[];
  skipped: SkippedPair[];
  readonly length: number;
}

export interface OpenOptions {
  /** force a layout instead of auto-detecting */
  layout?: Layout;
  /** what to do with a missing GT or mismatched sizes; default 'fail' */
  policy?: Policy;
  /** read both image headers and compare sizes; default true */
  checkSizes?: boolean;
  /** keep only pair folders whose path (relative to root) contains this, e.g. 'train', 'test_a', 'Snow100K-L', 'test_snow' */
  split?: string;
  /** tag every pair with this task instead of inferring it */
  task?: Task;
}

export interface DatasetSpec extends OpenOptions {
  /** a dataset folder or a list file */
  path: string;
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp']);
const INPUT_DIRS = ['input', 'in', 'data', 'synthetic', 'snow', 'rain', 'rainy', 'rainy image', 'hazy', 'degraded', 'lq', 'low'];
const GT_DIRS = ['gt', 'target', 'clean', 'ground truth', 'groundtruth', 'clear', 'norain', 'hq', 'high'];
const OUTDOOR_RE = /^(im_\d{4})_s\d+_a\d+$/;

const isImage = (f: string) => IMAGE_EXT.has(extname(f).toLowerCase());
const sortNames = (xs: string[]) => xs.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // code-point order: locale-independent
const stem = (f: string) => basename(f, extname(f));
const isDir = (p: string) => { try { return statSync(p).isDirectory(); } catch { return false; } };

/**
 * Weather words, most specific first ("rain_fog" and "raindrop" before "rain", "fog" alone means
 * haze). Matched on word boundaries, where "_", "-", "." and digits also separate words.
 */
const WEATHER_WORDS: readonly [RegExp, Task][] = [
  [/(^|[^a-z])(rain[^a-z]*drops?|drops?)([^a-z]|$)/, 'raindrop'],
  [/(^|[^a-z])(rain[^a-z]*(fog|haze|mist)|(fog|haze|mist)[^a-z]*rain|outdoor[^a-z]*rain)/, 'rain_fog'],
  [/(^|[^a-z])snow/, 'snow'],
  [/(^|[^a-z])(haz[ey]|fog(gy)?|mist[a-z]*|dehaz[a-z]*)([^a-z]|$)/, 'haze'],
  [/(^|[^a-z])(rain[a-z]*|derain[a-z]*|streaks?)([^a-z]|$)/, 'rain'],
];

/**
 * Infers the task from a file's name and, failing that, its folders (nearest first): first the
 * All-weather naming conventions (Outdoor-Rain's im_0001_s80_a04 is rain+fog, RainDrop's 12_rain is
 * raindrop), then weather words ("snowy_street_03", "haze/input/a.png", "test_raindrop"). Undefined
 * when nothing matches (the readers then fall back to 'snow', All-weather's unlabelled Snow100K names).
 */
export function inferTask(file: string): Task | undefined {
  const s = stem(file);
  if (OUTDOOR_RE.test(s)) return 'rain_fog';
  if (/_rain$/i.test(s)) return 'raindrop';
  const parts = file.split(/[\\/]/).filter(Boolean);
  parts[parts.length - 1] = s;
  for (const part of parts.reverse()) {
    const words = part.toLowerCase();
    for (const [re, task] of WEATHER_WORDS) if (re.test(words)) return task;
  }
  return undefined;
}

/** Candidate GT file names for an input file name, in the order they are tried. */
export function gtNameCandidates(name: string): string[] {
  const ext = extname(name), s = stem(name);
  const stems = [s];
  if (/_rain$/i.test(s)) stems.push(s.replace(/_rain$/i, '_clean'));
  else if (/rain/i.test(s)) stems.push(s.replace(/rain(?!.*rain)/i, 'clean'));
  const m = OUTDOOR_RE.exec(s);
  if (m) stems.push(m[1]!);
  const exts = [ext, ...['.png', '.jpg', '.jpeg', '.PNG', '.JPG'].filter((e) => e !== ext)];
  const out: string[] = [];
  for (const e of exts) for (const st of stems) out.push(st + e);
  return [...new Set(out)];
}

/** Finds an input file's GT in `gtDir` (whose listing is `gtFiles`), or null. */
function findGt(inputName: string, gtDir: string, gtFiles: Set<string>): string | null {
  for (const c of gtNameCandidates(inputName)) if (gtFiles.has(c)) return join(gtDir, c);
  return null;
}

interface PairDirs { inputDir: string; gtDir: string; maskDir?: string }

/** Recursively finds sibling folder pairs (input alias, gt alias) under root, up to `depth` levels. */
function findPairDirs(root: string, inputNames: string[], gtNames: string[], depth = 7): PairDirs[] {
  const out: PairDirs[] = [];
  const walk = (dir: string, d: number) => {
    let entries: string[];
    try { entries = sortNames(readdirSync(dir)); } catch { return; }
    const dirs = entries.filter((e) => isDir(join(dir, e)));
    const lower = new Map(dirs.map((e) => [e.toLowerCase(), e]));
    const inp = inputNames.map((n) => lower.get(n)).find((x) => x !== undefined);
    const gt = gtNames.map((n) => lower.get(n)).find((x) => x !== undefined);
    if (inp && gt) {
      const mask = lower.get('mask');
      out.push({ inputDir: join(dir, inp), gtDir: join(dir, gt), ...(mask ? { maskDir: join(dir, mask) } : {}) });
      return;
    }
    if (d > 0) for (const e of dirs) walk(join(dir, e), d - 1);
  };
  walk(root, depth);
  return out;
}

/** Detects the layout of a folder (or 'list' for a file). */
export function detectLayout(path: string): Layout {
  if (!existsSync(path)) throw new Error(`openDataset: "${path}" does not exist`);
  if (!isDir(path)) return 'list';
  const top = readdirSync(path);
  const topLower = new Set(top.map((t) => t.toLowerCase()));
  if (['train', 'test_rain', 'test_raindrop', 'test_snow'].some((s) => topLower.has(s) && isDir(join(path, s, 'input')))
    && ['test_rain', 'test_raindrop', 'test_snow'].some((s) => topLower.has(s))) return 'mofme';
  if (findPairDirs(path, ['synthetic'], ['gt']).length) return 'snow100k';
  if (findPairDirs(path, ['snow'], ['gt']).length) return 'csd';
  const generic = findPairDirs(path, INPUT_DIRS, GT_DIRS);
  if (generic.length) {
    const names = readdirSync(generic[0]!.inputDir).filter(isImage);
    if (names.some((n) => OUTDOOR_RE.test(stem(n)))) return 'outdoor-rain';
    if (names.some((n) => /_rain$/i.test(stem(n))) || generic.some((g) => basename(g.inputDir).toLowerCase() === 'data')) return 'raindrop';
    return 'paired';
  }
  const lists = top.filter((t) => t.toLowerCase().endsWith('.txt'));
  if (lists.length) return 'list';
  throw new Error(`openDataset: cannot detect the layout of "${path}" (no input/gt folder pair and no list file); pass { layout }`);
}

const LAYOUT_DIRS: Record<Exclude<Layout, 'list'>, { input: string[]; gt: string[]; task?: Task }> = {
  mofme: { input: ['input'], gt: ['gt'] },
  snow100k: { input: ['synthetic'], gt: ['gt'], task: 'snow' },
  raindrop: { input: ['data', 'input'], gt: ['gt'], task: 'raindrop' },
  'outdoor-rain': { input: ['in', 'input'], gt: ['gt'], task: 'rain_fog' },
  csd: { input: ['snow'], gt: ['gt'], task: 'snow' },
  paired: { input: INPUT_DIRS, gt: GT_DIRS },
};

/** Opens a dataset folder or list file and pairs its images. */
export async function openDataset(pathOrSpec: string | DatasetSpec, opts: OpenOptions = {}): Promise<FileDataset> {
  const spec: DatasetSpec = typeof pathOrSpec === 'string' ? { ...opts, path: pathOrSpec } : { ...opts, ...pathOrSpec };
  const root = resolve(spec.path);
  const layout = spec.layout ?? detectLayout(root);
  if (!LAYOUTS.includes(layout)) throw new Error(`openDataset: unknown layout "${layout}" (expected ${LAYOUTS.join(', ')})`);
  const policy = spec.policy ?? 'fail';
  const skipped: SkippedPair[] = [];
  const problem = (input: string, target: string | null, reason: string) => {
    if (policy === 'fail') throw new Error(`openDataset: ${reason}\n  input:  ${input}\n  target: ${target ?? '(not found)'}\n(use policy 'skip' to drop such pairs)`);
    skipped.push({ input, target, reason });
  };
  const candidates: { input: string; target: string | null; task: Task; mask?: string; tried?: string }[] = [];

  if (layout === 'list') {
    for (const c of readListFile(root, spec.task)) candidates.push(c);
  } else {
    const cfg = LAYOUT_DIRS[layout];
    let dirs = findPairDirs(root, cfg.input, cfg.gt);
    if (spec.split) {
      // Prefer folders with a path component equal to the split ('test_rain' must not pick
      // 'test_raindrop'); fall back to a substring match ('Snow100K-L' inside a longer name).
      const s = spec.split.toLowerCase(), parts = (d: PairDirs) => relative(root, d.inputDir).toLowerCase().split(sep);
      const exact = dirs.filter((d) => parts(d).includes(s));
      dirs = exact.length ? exact : dirs.filter((d) => parts(d).some((p) => p.includes(s)));
    }
    if (!dirs.length) throw new Error(`openDataset: no ${cfg.input.join('|')} + ${cfg.gt.join('|')} folder pair under "${root}"${spec.split ? ` matching split "${spec.split}"` : ''}`);
    for (const d of dirs) {
      const gtFiles = new Set(readdirSync(d.gtDir));
      const folderTask = layout === 'mofme' ? mofmeTask(relative(root, d.inputDir)) : cfg.task;
      for (const name of sortNames(readdirSync(d.inputDir).filter(isImage))) {
        const input = join(d.inputDir, name);
        const target = findGt(name, d.gtDir, gtFiles);
        const mask = d.maskDir && existsSync(join(d.maskDir, name)) ? join(d.maskDir, name) : undefined;
        const task = spec.task ?? folderTask ?? inferTask(relative(root, input)) ?? 'snow';
        candidates.push({ input, target, task, ...(mask ? { mask } : {}), tried: join(d.gtDir, gtNameCandidates(name)[0]!) });
      }
    }
  }

  const pairs: PairEntry[] = [];
  const checkSizes = spec.checkSizes ?? true;
  // Header reads run 16 at a time; an unreadable image becomes a per-pair problem, not a crash.
  const sizes = checkSizes
    ? await mapLimit(candidates, 16, async (c) => {
      if (!c.target) return null;
      try { return await Promise.all([imageSize(c.input), imageSize(c.target)]); } catch (e) { return (e as Error).message; }
    })
    : [];
  candidates.forEach((c, i) => {
    if (!c.target) return problem(c.input, c.tried ?? null, `ground truth not found for "${c.input}"`);
    if (checkSizes) {
      const got = sizes[i]!;
      if (typeof got === 'string') return problem(c.input, c.target, got);
      const [a, b] = got!;
      if (a.width !== b.width || a.height !== b.height) {
        return problem(c.input, c.target, `size mismatch: input is ${a.width}x${a.height}, ground truth is ${b.width}x${b.height}`);
      }
    }
    pairs.push({ input: c.input, target: c.target, task: c.task, id: stem(c.input), ...(c.mask ? { mask: c.mask } : {}) });
  });
  const ds: FileDataset = { kind: 'files', layout, root, pairs, skipped, get length() { return pairs.length; } };
  return ds;
}

function mofmeTask(rel: string): Task | undefined {
  const top = rel.split(sep)[0]!.toLowerCase();
  if (top === 'test_rain') return 'rain_fog';
  if (top === 'test_raindrop') return 'raindrop';
  if (top === 'test_snow') return 'snow';
  return undefined; // train: inferred from the name (All-weather mixes the three)
}

/** Reads a TransWeather/WeatherDiffusion list file (or the single .txt in a folder). */
function readListFile(path: string, task?: Task): { input: string; target: string | null; task: Task; tried: string }[] {
  let file = path;
  if (isDir(path)) {
    const lists = sortNames(readdirSync(path).filter((f) => f.toLowerCase().endsWith('.txt')));
    if (lists.length !== 1) throw new Error(`openDataset: "${path}" holds ${lists.length} list files (${lists.join(', ')}); pass the one you want`);
    file = join(path, lists[0]!);
  }
  const base = dirname(file);
  const out: { input: string; target: string | null; task: Task; tried: string }[] = [];
  for (const rawLine of readFileSync(file, 'utf8').split('\n')) {
    const line = rawLine.replace(/\r$/, '').trim(); // only ends: names may contain inner spaces
    if (!line || line.startsWith('#')) continue;
    const input = resolve(base, line);
    const parts = input.split(sep);
    // Replace the LAST directory component named "input" (case-insensitive) with "gt".
    let k = -1;
    for (let i = parts.length - 2; i >= 0; i--) if (parts[i]!.toLowerCase() === 'input') { k = i; break; }
    if (k < 0) throw new Error(`openDataset: list "${file}" line "${line}" has no "input" folder component to map to "gt"`);
    const gtDir = [...parts.slice(0, k), parts[k] === 'INPUT' ? 'GT' : 'gt', ...parts.slice(k + 1, -1)].join(sep);
    const name = parts[parts.length - 1]!;
    let target: string | null = null;
    for (const c of gtNameCandidates(name)) if (existsSync(join(gtDir, c))) { target = join(gtDir, c); break; }
    out.push({ input, target, task: task ?? inferTask(line) ?? 'snow', tried: join(gtDir, name) });
  }
  return out;
}

/** Runs `fn` over items with at most `limit` in flight, keeping the order of results. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) { const i = next++; out[i] = await fn(items[i]!); }
  }));
  return out;
}

/** A one-paragraph report of skipped pairs (for printing at the end of a run). */
export function describeSkipped(ds: { skipped: SkippedPair[] }): string {
  if (!ds.skipped.length) return 'skipped 0 pairs';
  const lines = ds.skipped.slice(0, 10).map((s) => `  ${s.reason}: ${s.input} -> ${s.target ?? '(missing)'}`);
  return `skipped ${ds.skipped.length} pair(s):\n${lines.join('\n')}${ds.skipped.length > 10 ? `\n  ... and ${ds.skipped.length - 10} more` : ''}`;
}
