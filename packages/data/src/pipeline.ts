/**
 * Loading ONE training sample: read (or synthesise) a pair, optionally resize, take the same random
 * crop from both images, apply the same dihedral transform, and return flat float32 CHW arrays.
 * This is the unit of work a loader worker thread does, and also what the loader runs on the main
 * thread when `workers: 0`. Everything it needs travels in a plain, structured-cloneable
 * `SourceSpec` + `SampleRequest`, so a worker can rebuild it without sharing any objects.
 *
 * Determinism: every random choice (crop corner, dihedral mode, degradation seed) comes from
 * `req.itemSeed`, which the loader derives from (seed, epoch, position in the epoch) alone. Which
 * thread runs a request, and in which order, cannot change its result.
 */
import type { Image } from './image';
import { cloneImage, cropImage, dihedral, rawCropToImage, rawToImage, resizeImage } from './image';
import { decodeRaw, readBytes } from './codec';
import type { FileDataset, PairEntry, Task } from './dataset';
import type { BuiltinDataset, BuiltinItem } from './builtin';
import { Generator, mixSeed } from '@mofme/tensor';
import { synthesize } from './synth/index';
import { flatLight } from './synth/flat-light';

export type SourceSpec =
  | { kind: 'files'; pairs: PairEntry[] }
  | { kind: 'builtin'; items: BuiltinItem[]; seed: number; fresh: boolean; cleanFraction?: number; flatLightFraction?: number };

export type AnyDataset = FileDataset | BuiltinDataset;

export function toSourceSpec(ds: AnyDataset): SourceSpec {
  if (ds.kind === 'files') return { kind: 'files', pairs: ds.pairs };
  if (ds.kind === 'builtin') return { kind: 'builtin', items: ds.items, seed: ds.seed, fresh: ds.fresh, cleanFraction: ds.cleanFraction, flatLightFraction: ds.flatLightFraction };
  throw new Error(`unknown dataset kind "${(ds as { kind: string }).kind}"`);
}

export function sourceLength(s: SourceSpec): number {
  return s.kind === 'files' ? s.pairs.length : s.items.length;
}

export interface SampleRequest {
  /** index into the dataset */
  index: number;
  epoch: number;
  /** seed of this sample's crop, flip and (built-in data) degradation */
  itemSeed: number;
  /** crop [height, width]; images smaller than that are first scaled up (aspect kept) */
  crop?: [number, number];
  /** resize every image to width×height before cropping (the official loader: 720x480) */
  resize?: { width: number; height: number };
  /** apply one of the 8 dihedral transforms */
  flips: boolean;
}

export interface Sample {
  input: Float32Array;
  target: Float32Array;
  height: number;
  width: number;
  task: Task;
  inputPath: string;
  targetPath: string;
  id: string;
}

/** Loads and augments one sample. Errors name the files involved. */
export async function loadSample(spec: SourceSpec, req: SampleRequest): Promise<Sample> {
  const n = sourceLength(spec);
  if (!(req.index >= 0 && req.index < n)) throw new Error(`loadSample: index ${req.index} out of range 0..${n - 1}`);
  const rng = new Generator(req.itemSeed);
  if (spec.kind === 'files') {
    const p = spec.pairs[req.index]!;
    const [a, b] = await Promise.all([readBytes(p.input), readBytes(p.target)]);
    const [ra, rb] = await Promise.all([decodeRaw(a, p.input, req.resize ? { resize: req.resize } : {}), decodeRaw(b, p.target, req.resize ? { resize: req.resize } : {})]);
    if (ra.width !== rb.width || ra.height !== rb.height) {
      throw new Error(`size mismatch: input ${ra.width}x${ra.height} "${p.input}" vs ground truth ${rb.width}x${rb.height} "${p.target}"`);
    }
    let inp: Image, tgt: Image;
    if (req.crop && ra.height >= req.crop[0] && ra.width >= req.crop[1]) {
      // Common case: crop the integer pixels first and convert only the window to float.
      const [h, w] = req.crop;
      const y0 = rng.integer(0, ra.height - h), x0 = rng.integer(0, ra.width - w);
      inp = rawCropToImage(ra, y0, x0, h, w); tgt = rawCropToImage(rb, y0, x0, h, w);
    } else if (req.crop) {
      inp = rawToImage(ra); tgt = rawToImage(rb);
      [inp, tgt] = ensureAtLeast([inp, tgt], req.crop);
      const [h, w] = req.crop;
      const y0 = rng.integer(0, inp.height - h), x0 = rng.integer(0, inp.width - w);
      inp = cropImage(inp, y0, x0, h, w); tgt = cropImage(tgt, y0, x0, h, w);
    } else {
      inp = rawToImage(ra); tgt = rawToImage(rb);
    }
    const mode = req.flips ? rng.integer(0, 7) : 0;
    return finish(dihedral(inp, mode), dihedral(tgt, mode), p.task, p.input, p.target, p.id);
  }
  // Built-in: crop the CLEAN photo first, then synthesise weather on the crop only — telling the
  // synthesiser where the crop sits in the full frame so depth and sizes match the full image.
  const item = spec.items[req.index]!;
  let clean = await cachedPhoto(item.photo);
  if (req.resize) clean = resizeImage(clean, req.resize.height, req.resize.width);
  const fullH = clean.height, fullW = clean.width;
  let y0 = 0, x0 = 0;
  if (req.crop) {
    [clean] = ensureAtLeast([clean], req.crop);
    const [h, w] = req.crop;
    y0 = rng.integer(0, clean.height - h); x0 = rng.integer(0, clean.width - w);
    clean = cropImage(clean, y0, x0, h, w);
  }
  const mode = req.flips ? rng.integer(0, 7) : 0;
  const degradeSeed = spec.fresh ? mixSeed(spec.seed, req.index, req.epoch) : mixSeed(spec.seed, req.index);
  const frame = { y0, x0, fullHeight: Math.max(fullH, clean.height), fullWidth: Math.max(fullW, clean.width) };
  // A share of the samples stays clean (input = target), decided by its own seeded draw.
  const passThrough = (spec.cleanFraction ?? 0) > 0 && new Generator(mixSeed(degradeSeed, 0xc1ea)).random() < spec.cleanFraction!;
  // A share of the scenes is re-lit flat (overcast) first, target included (synth/flat-light.ts);
  // its own seeded draws, so a fraction of 0 leaves every other sample as it was.
  if ((spec.flatLightFraction ?? 0) > 0) {
    const draw = new Generator(mixSeed(degradeSeed, 0xf1a7));
    if (draw.random() < spec.flatLightFraction!) clean = flatLight(clean, draw).image;
  }
  // a copy, not the same buffer: input and target are transferred separately from worker threads
  const degraded = passThrough ? cloneImage(clean) : synthesize(clean, item.weather, { frame }, degradeSeed).image;
  return finish(dihedral(degraded, mode), dihedral(clean, mode), item.weather, `builtin:${item.id}`, item.photo, item.id);
}

function finish(inp: Image, tgt: Image, task: Task, inputPath: string, targetPath: string, id: string): Sample {
  return { input: inp.data, target: tgt.data, height: inp.height, width: inp.width, task, inputPath, targetPath, id };
}

/** Scales images up (same factor, aspect kept) when smaller than the crop, as TransWeather does. */
function ensureAtLeast(imgs: Image[], crop: [number, number]): Image[] {
  const { height: H, width: W } = imgs[0]!;
  const f = Math.max(crop[0] / H, crop[1] / W);
  if (f <= 1) return imgs;
  const h = Math.max(crop[0], Math.ceil(H * f)), w = Math.max(crop[1], Math.ceil(W * f));
  return imgs.map((im) => resizeImage(im, h, w));
}

// A tiny per-thread LRU of decoded built-in photos (31 photos of 480x320 would be 57 MB as float;
// 8 entries bound it at ~15 MB whatever the dataset size).
const PHOTO_CACHE_SIZE = 8;
const photoCache = new Map<string, Promise<Image>>();
function cachedPhoto(path: string): Promise<Image> {
  let p = photoCache.get(path);
  if (p) { photoCache.delete(path); photoCache.set(path, p); return p; }
  p = readBytes(path).then((b) => decodeRaw(b, path)).then(rawToImage);
  photoCache.set(path, p);
  p.catch(() => photoCache.delete(path));
  while (photoCache.size > PHOTO_CACHE_SIZE) photoCache.delete(photoCache.keys().next().value!);
  return p;
}

/** Full-size pair i of a dataset, unaugmented (for evaluation and inspection). */
export async function getPair(ds: AnyDataset, index: number, opts: { epoch?: number; resize?: { width: number; height: number } } = {}): Promise<{ input: Image; target: Image; task: Task; inputPath: string; targetPath: string; id: string }> {
  const s = await loadSample(toSourceSpec(ds), { index, epoch: opts.epoch ?? 0, itemSeed: 0, flips: false, ...(opts.resize ? { resize: opts.resize } : {}) });
  const mk = (data: Float32Array): Image => ({ data, channels: 3, height: s.height, width: s.width });
  return { input: mk(s.input), target: mk(s.target), task: s.task, inputPath: s.inputPath, targetPath: s.targetPath, id: s.id };
}
