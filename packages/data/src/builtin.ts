/**
 * The built-in dataset: real clean photos committed to this package (photos/*.jpg, 480x320, CC0 /
 * public domain / CC-BY-4.0 — see photos/ATTRIBUTION.md) turned into multi-weather pairs on the fly
 * by the synthesisers. No download, no network: `builtinDataset('train')` just works.
 *
 * Split. Each photo belongs to exactly one split, assigned per SOURCE photo in photos/manifest.json
 * (zoomed crops of one wallpaper stay together), so test scenes never appear in training:
 *   train 23 images (9 sources), val 4 images (2 sources), test 4 images (2 sources).
 * Items. An item is (photo, weather, variant). The default is all five weathers and, for train,
 * 2 variants per photo and weather → 230 train items, 20 val, 20 test.
 * Randomness. Item i's degradation seed is mixSeed(seed, i) for val/test — a fixed benchmark — and
 * mixSeed(seed, i, epoch) for train when `fresh` (default), so every epoch sees new rain/snow/drops
 * over the same scenes: synthetic data is free, and it fights over-fitting on a small photo set.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Image } from './image';
import type { Task } from './dataset';
import { WEATHERS, type Weather } from './synth/index';

export type Split = 'train' | 'val' | 'test';

export interface PhotoInfo {
  file: string; source: string; package: string; original: string; author: string; licence: string; split: Split;
}

export interface BuiltinItem {
  /** absolute path of the clean photo */
  photo: string;
  weather: Weather;
  variant: number;
  /** e.g. "train/aitzgorri-z1/snow#1" */
  id: string;
}

export interface BuiltinOptions {
  /** weathers to synthesise; default all five (the All-weather set is ['rain_fog', 'raindrop', 'snow']) */
  weathers?: readonly Weather[];
  /** variants per (photo, weather); default 2 for train, 1 for val/test */
  repeats?: number;
  /** base seed of the degradations; default 0 */
  seed?: number;
  /** new degradation each epoch (train default true, val/test false) */
  fresh?: boolean;
  /**
   * fraction of training samples left clean (input = target), default CLEAN_FRACTION for train, 0
   * for val/test: a restorer must pass a photo without weather through untouched, and a model that
   * only ever saw degraded inputs learns to "fix" every input (the first bundled model changed clean
   * test photos to 20-29 dB PSNR)
   */
  cleanFraction?: number;
  /**
   * fraction of training samples whose clean scene is first re-lit flat (overcast: lower contrast,
   * brighter, less saturated; synth/flat-light.ts), the target too; default 0. It teaches that a
   * grey, low-contrast scene is not haze.
   */
  flatLightFraction?: number;
}

/** Default share of clean-in, clean-out training samples (see BuiltinOptions.cleanFraction). */
export const CLEAN_FRACTION = 0.1;

export interface BuiltinDataset {
  kind: 'builtin';
  split: Split;
  items: BuiltinItem[];
  weathers: Weather[];
  seed: number;
  fresh: boolean;
  cleanFraction: number;
  flatLightFraction: number;
  photosDir: string;
  readonly length: number;
}

/** Folder of the committed photos: `<package>/photos`, the same relative path from src/ and dist/. */
export function photosDir(): string {
  return fileURLToPath(new URL('../photos/', import.meta.url));
}

/** The photo manifest (file, source package, author, licence, split). */
export function builtinPhotos(): PhotoInfo[] {
  const dir = photosDir();
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as PhotoInfo[];
}

/** The built-in synthetic multi-weather dataset for one split. */
export function builtinDataset(split: Split = 'train', opts: BuiltinOptions = {}): BuiltinDataset {
  if (!['train', 'val', 'test'].includes(split)) throw new Error(`builtinDataset: split "${split}" is not train, val or test`);
  const weathers = [...(opts.weathers ?? WEATHERS)];
  for (const w of weathers) if (!WEATHERS.includes(w)) throw new Error(`builtinDataset: unknown weather "${w}" (expected ${WEATHERS.join(', ')})`);
  const repeats = opts.repeats ?? (split === 'train' ? 2 : 1);
  const dir = photosDir();
  const photos = builtinPhotos().filter((p) => p.split === split);
  const items: BuiltinItem[] = [];
  for (const p of photos) for (const w of weathers) for (let v = 0; v < repeats; v++) {
    items.push({ photo: join(dir, p.file), weather: w, variant: v, id: `${split}/${p.file.replace(/\.jpg$/, '')}/${w}#${v}` });
  }
  return { kind: 'builtin', split, items, weathers, seed: opts.seed ?? 0, fresh: opts.fresh ?? split === 'train', cleanFraction: opts.cleanFraction ?? (split === 'train' ? CLEAN_FRACTION : 0), flatLightFraction: opts.flatLightFraction ?? 0, photosDir: dir, get length() { return items.length; } };
}

