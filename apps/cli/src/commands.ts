/**
 * The commands other than train, demo and report: eval, restore, info, metrics, data check and
 * data synth. Each takes parsed options (main.ts parses) and returns an exit code; user errors are
 * thrown as CliError and become one line on stderr. Every file they write goes through io.ts:
 * atomically (temp file + rename), with errors that name the file.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { countFlops, countParameters, presetNames, type MofmeConfig, type PresetName } from '@mofme/mofme';
import { openDataset, readImage, readPhoto, encodePng, encodePhotoPng, synthesize, builtinPhotos, photosDir, WEATHERS, TASKS, type Image, type Photo, type Weather, type Layout } from '@mofme/data';
import { CliError, oneLine } from './errors';
import { outputDir, outputSubdir, selfCommand, writeOutput } from './io';
import { loadModelFile } from './checkpoint';
import { modelConfigOf, type TrainConfig } from './config';
import { evaluate, formatTable, restoreImage, type EvalResult, type ImageScore } from './evaluate';
import { openData, skippedProblem } from './train';
import { psnr, ssim } from './metrics';
import { gridPng } from './images';
import { executionFor, selectBackend } from './backend';

/** The bundled pretrained model (trained by `mofme train`, see README). */
export const PRETRAINED = fileURLToPath(new URL('../pretrained/model.safetensors', import.meta.url));

export function checkpointOrPretrained(path: string | undefined): string {
  if (path) return path;
  if (!existsSync(PRETRAINED)) throw new CliError(`no --checkpoint given and the bundled pretrained model ${PRETRAINED} is missing`);
  return PRETRAINED;
}

/** Make sure DIR exists (or can be made) and is writable, before any work is done (io.ts's outputDir). */
export const ensureWritableDir = outputDir;

/** Refuse to replace an existing file unless asked. */
function assertFresh(path: string, overwrite: boolean, flag: string): void {
  if (!overwrite && existsSync(path)) throw new CliError(`${path} already exists; pass ${flag} to replace it`);
}

export function parseSize(v: string, flag: string): { width: number; height: number } {
  const m = /^(\d+)x(\d+)$/.exec(v);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new CliError(`${flag}: expected WIDTHxHEIGHT like 720x480, got "${v}"`);
  return { width: Number(m[1]), height: Number(m[2]) };
}

// ---- eval --------------------------------------------------------------------------------------

export interface EvalOpts {
  checkpoint?: string; data: string; split: 'val' | 'test'; layout?: string; tile: number; stride: number; resize?: string;
  limit: number; json?: boolean; csv?: string; gallery?: string; backend: string; overwrite?: boolean;
}

export async function evalCommand(o: EvalOpts): Promise<number> {
  for (const [flag, path] of [['--csv', o.csv], ['--gallery', o.gallery]] as const) {
    if (path) { outputDir(resolve(path, '..'), flag); assertFresh(path, Boolean(o.overwrite), '--overwrite'); }
  }
  const backend = await selectBackend(o.backend);
  const { model, file } = await loadModelFile(checkpointOrPretrained(o.checkpoint), (c) => executionFor(c, backend));
  const ds = await openData(o.data, o.split, o.layout);
  const resize = o.resize === 'none' ? undefined : o.resize ? parseSize(o.resize, '--resize') : o.data === 'builtin' ? undefined : { width: 720, height: 480 };
  const keep = new Extremes(3);
  const r = await evaluate(model, ds, {
    tile: o.tile, stride: o.stride, limit: o.limit, routing: true, ...(resize ? { resize } : {}),
    onImage: (s, imgs, done, total) => {
      if (o.gallery) keep.offer(s, imgs);
      if (!o.json && process.stderr.isTTY) process.stderr.write(`\r evaluating ${done}/${total}`);
    },
  });
  if (!o.json && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  if (o.csv) writeOutput(o.csv, csvOf(r.images));
  if (o.gallery) writeOutput(o.gallery, await keep.gallery());
  if (o.json) {
    console.log(JSON.stringify({ checkpoint: file, data: o.data, split: o.split, tile: o.tile, stride: o.stride, ...summaryJson(r) }, null, 2));
  } else {
    console.log(`${file} on ${o.data === 'builtin' ? `the built-in ${o.split} split` : o.data} (${r.images.length} images, tiles ${o.tile}/${o.stride}, ${r.seconds.toFixed(1)} s)\n`);
    console.log(formatTable(r));
    if (o.csv) console.log(`\nper-image scores: ${o.csv}`);
    if (o.gallery) console.log(`gallery (worst 3 and best 3 by PSNR gain; input | restored | ground truth): ${o.gallery}`);
  }
  return 0;
}

export function summaryJson(r: EvalResult): object {
  return { tasks: r.tasks, average: r.average, routing: r.routing, seconds: r.seconds };
}

function csvOf(images: ImageScore[]): string {
  const q = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return 'id,task,input,psnr,ssim,identity_psnr,identity_ssim\n' +
    images.map((s) => [q(s.id), s.task, q(s.input), s.psnr.toFixed(4), s.ssim.toFixed(5), s.identityPsnr.toFixed(4), s.identitySsim.toFixed(5)].join(',')).join('\n') + '\n';
}

/** Keeps the k worst and k best images by PSNR gain over the input, while streaming. */
export class Extremes {
  private items: { gain: number; s: ImageScore; imgs: { input: Image; output: Image; target: Image } }[] = [];
  constructor(private readonly k: number) {}
  offer(s: ImageScore, imgs: { input: Image; output: Image; target: Image }): void {
    this.items.push({ gain: s.psnr - s.identityPsnr, s, imgs });
    this.items.sort((a, b) => a.gain - b.gain);
    if (this.items.length > 2 * this.k) this.items.splice(this.k, this.items.length - 2 * this.k);
  }
  async gallery(): Promise<Buffer> {
    const rows = this.items.map((e) => [e.imgs.input, e.imgs.output, e.imgs.target]);
    const labels = this.items.map((e) => `${e.s.task} ${e.gain >= 0 ? '+' : ''}${e.gain.toFixed(2)} dB`);
    const h = 160, w = Math.round((160 * (this.items[0]?.imgs.input.width ?? 240)) / (this.items[0]?.imgs.input.height ?? 160));
    return gridPng(rows, { cellHeight: h, cellWidth: w, titles: ['input', 'restored', 'ground truth'], rowLabels: labels });
  }
}

// ---- restore -----------------------------------------------------------------------------------

export interface RestoreOpts { checkpoint?: string; out: string; tile: number; stride?: number; backend: string; overwrite?: boolean }

export async function restoreCommand(files: string[], o: RestoreOpts): Promise<number> {
  const outDir = outputDir(o.out, '-o');
  const targets = files.map((f) => join(outDir, basename(f, extname(f)) + '.png'));
  const dup = targets.find((t, i) => targets.indexOf(t) !== i);
  if (dup) throw new CliError(`two inputs would both be written to ${dup}; restore them into different folders`);
  for (const f of files) if (!existsSync(f)) throw new CliError(`${f}: no such file`);
  for (const t of targets) assertFresh(t, Boolean(o.overwrite), '--overwrite');
  // read every image first: a bad one fails the command before anything is written. readPhoto
  // applies EXIF orientation and keeps alpha, 16 bits and grey for writing back (data codec.ts)
  const images: Photo[] = [];
  for (const f of files) {
    let photo: Photo;
    try { photo = await readPhoto(f); } catch (e) { throw new CliError(`${f}: cannot read the image (${oneLine(e)})`); }
    const img = photo.image;
    if (Math.min(img.height, img.width) < 8) throw new CliError(`${f}: image is ${img.width}x${img.height}; at least 8x8 pixels are needed`);
    images.push(photo);
  }
  const backend = await selectBackend(o.backend);
  const { model, file } = await loadModelFile(checkpointOrPretrained(o.checkpoint), (c) => executionFor(c, backend));
  console.log(`restoring ${files.length} image(s) with ${file}`);
  for (const [i, photo] of images.entries()) {
    const t0 = performance.now(), img = photo.image;
    // progress for big photos: a line every ~10 % of the windows
    const out = restoreImage(model, img, o.tile, o.stride, (done, total) => {
      if (total >= 20 && done < total && done % Math.ceil(total / 10) === 0) console.log(`  ${files[i]}: window ${done}/${total}, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    });
    writeOutput(targets[i]!, await encodePhotoPng(out, photo));
    console.log(`${files[i]} -> ${targets[i]} (${img.width}x${img.height}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  return 0;
}

// ---- info --------------------------------------------------------------------------------------

export interface InfoOpts extends Partial<Pick<TrainConfig, 'model' | 'experts' | 'topk' | 'router' | 'width' | 'depth'>> {
  preset?: string; size: string; json?: boolean;
}

export async function infoCommand(checkpoint: string | undefined, o: InfoOpts): Promise<number> {
  let config: Readonly<MofmeConfig>, source: string, step: number | null = null;
  if (checkpoint) {
    if (o.preset) throw new CliError('give either a CHECKPOINT or --preset, not both');
    const m = await loadModelFile(checkpoint);
    ({ config, step } = m);
    source = m.file;
  } else {
    const preset = (o.preset ?? 'tiny') as PresetName;
    if (!presetNames.includes(preset)) throw new CliError(`--preset: invalid value "${o.preset}"; choose one of ${presetNames.join(', ')}`);
    config = modelConfigOf({ preset, model: o.model ?? 'mofme', experts: o.experts, topk: o.topk, router: o.router, width: o.width, depth: o.depth, crop: presets(preset) });
    source = `preset ${preset}`;
  }
  const { width, height } = parseSize(o.size, '--size');
  if (height % config.patchSize || width % config.patchSize) throw new CliError(`--size ${o.size}: both sides must be multiples of the patch size ${config.patchSize}`);
  const params = countParameters(config);
  const flops = countFlops(config, height, width);
  if (o.json) {
    console.log(JSON.stringify({ source, step, config, parameters: params.total, macs: { size: { width, height }, total: flops.total, sparse: flops.sparse, dense: flops.dense, parts: flops.parts } }, null, 2));
    return 0;
  }
  console.log(`${source}${step !== null ? ` (step ${step})` : ''}`);
  console.log(`  network      ${config.ffn}, ${config.ffn === 'dense' ? '' : `E=${config.experts} top-${config.topk}, ${config.router} router, `}D=${config.dim}, depth ${config.depth}, patch ${config.patchSize}, ${config.heads}x${config.headDim} heads`);
  console.log(`  parameters   ${params.total.toLocaleString('en-US')}`);
  console.log(`  MACs @ ${width}x${height}  ${(flops.total / 1e9).toFixed(3)} G (${config.execution}; dense execution ${(flops.dense / 1e9).toFixed(3)} G)`);
  return 0;
}

function presets(p: PresetName): number {
  return p === 'paper' ? 240 : 64;
}

// ---- metrics -----------------------------------------------------------------------------------

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff']);

async function readOrFail(path: string): Promise<Image> {
  try { return await readImage(path); } catch (e) { throw new CliError(`${path}: cannot read the image (${oneLine(e)})`); }
}

export async function metricsCommand(a: string, b: string, o: { json?: boolean }): Promise<number> {
  for (const p of [a, b]) if (!existsSync(p)) throw new CliError(`${p}: no such file or folder`);
  const pairs: [string, string][] = [];
  if (statSync(a).isDirectory() !== statSync(b).isDirectory()) throw new CliError('give two images or two folders');
  if (statSync(a).isDirectory()) {
    const names = readdirSync(a).filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort();
    for (const n of names) if (existsSync(join(b, n))) pairs.push([join(a, n), join(b, n)]);
    if (!pairs.length) throw new CliError(`no same-named images in ${a} and ${b}`);
  } else {
    pairs.push([a, b]);
  }
  const rows: { a: string; b: string; psnr: number; ssim: number }[] = [];
  for (const [x, y] of pairs) {
    const ix = await readOrFail(x), iy = await readOrFail(y);
    if (ix.height !== iy.height || ix.width !== iy.width) throw new CliError(`${x} is ${ix.width}x${ix.height} but ${y} is ${iy.width}x${iy.height}`);
    if (Math.min(ix.height, ix.width) < 11) throw new CliError(`${x}: image is ${ix.width}x${ix.height}; SSIM needs at least 11x11`);
    rows.push({ a: x, b: y, psnr: psnr(ix, iy), ssim: ssim(ix, iy) });
  }
  const mean = { psnr: rows.reduce((s, r) => s + r.psnr, 0) / rows.length, ssim: rows.reduce((s, r) => s + r.ssim, 0) / rows.length };
  if (o.json) console.log(JSON.stringify({ images: rows, mean }, null, 2));
  else {
    for (const r of rows) console.log(`${r.psnr.toFixed(4)} dB  SSIM ${r.ssim.toFixed(6)}  ${r.a}  ${r.b}`);
    if (rows.length > 1) console.log(`mean over ${rows.length}: ${mean.psnr.toFixed(4)} dB  SSIM ${mean.ssim.toFixed(6)}`);
  }
  return 0;
}

// ---- data check / data synth --------------------------------------------------------------------

export async function dataCheckCommand(path: string, o: { layout?: string; json?: boolean }): Promise<number> {
  if (!existsSync(path)) throw new CliError(`${path}: no such file or folder`);
  let ds;
  try {
    ds = await openDataset(path, { policy: 'skip', ...(o.layout ? { layout: o.layout as Layout } : {}) });
  } catch (e) {
    throw new CliError(`${path}: ${oneLine(e)}`);
  }
  // headers were compared at open time; now decode every file once to catch corrupt data
  const problems: { file: string; problem: string }[] = ds.skipped.map((s) => ({ file: s.input, problem: skippedProblem(s).slice(s.input.length + 2) }));
  const counts: Record<string, number> = {};
  for (const p of ds.pairs) {
    let ok = true;
    for (const f of [p.input, p.target]) {
      try { await readImage(f); } catch (e) { problems.push({ file: f, problem: oneLine(e) }); ok = false; }
    }
    if (ok) counts[p.task] = (counts[p.task] ?? 0) + 1;
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  if (total === 0 && !problems.length) problems.push({ file: path, problem: 'no input/ground-truth pairs found' });
  if (o.json) console.log(JSON.stringify({ path, layout: ds.layout, pairs: total, perTask: counts, problems }, null, 2));
  else {
    console.log(`${path}: layout ${ds.layout}, ${total} good pair(s)`);
    for (const t of TASKS) if (counts[t]) console.log(`  ${t.padEnd(9)} ${counts[t]}`);
    if (problems.length) {
      console.log(`${problems.length} problem(s):`);
      for (const p of problems) console.log(`  ${p.file}: ${p.problem}`);
    }
  }
  return problems.length ? 1 : 0;
}

export interface SynthOpts { out: string; photos?: string; weathers: string; per: number; seed: number; sheet?: boolean; overwrite?: boolean }

export async function dataSynthCommand(o: SynthOpts): Promise<number> {
  const weathers = o.weathers.split(',').map((w) => w.trim()).filter(Boolean);
  for (const w of weathers) if (!WEATHERS.includes(w as Weather)) throw new CliError(`--weathers: invalid value "${w}"; choose from ${WEATHERS.join(', ')}`);
  let photos: string[];
  if (o.photos) {
    if (!existsSync(o.photos)) throw new CliError(`--photos ${o.photos}: no such file or folder`);
    photos = statSync(o.photos).isDirectory()
      ? readdirSync(o.photos).filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort().map((n) => join(o.photos!, n))
      : [o.photos];
    if (!photos.length) throw new CliError(`--photos ${o.photos}: no images (.png, .jpg, ...) in it`);
  } else {
    photos = builtinPhotos().filter((p) => p.split === 'test').map((p) => join(photosDir(), p.file));
  }
  const out = outputDir(o.out, '--out');
  const cleans: Image[] = [];
  for (const p of photos) {
    const img = await readOrFail(p);
    if (Math.min(img.height, img.width) < 32) throw new CliError(`${p}: image is ${img.width}x${img.height}; at least 32x32 is needed to synthesise weather`);
    cleans.push(img);
  }
  if (o.sheet) {
    const file = join(out, 'contact-sheet.png');
    assertFresh(file, Boolean(o.overwrite), '--overwrite');
    const rows = cleans.map((c, r) => [c, ...weathers.map((w, k) => synthesize(c, w as Weather, {}, o.seed + 1000 * r + k).image)]);
    const h = 160, w = Math.round((160 * cleans[0]!.width) / cleans[0]!.height);
    writeOutput(file, await gridPng(rows, { cellHeight: h, cellWidth: w, titles: ['clean', ...weathers] }));
    console.log(`wrote ${file} (${rows.length} photos x ${weathers.length} weathers)`);
    return 0;
  }
  // paired layout: input/<name>_<weather>_<k>.png and gt/<same name>.png (openDataset's 'paired' layout)
  outputSubdir(join(out, 'input'));
  outputSubdir(join(out, 'gt'));
  let n = 0;
  for (const [i, c] of cleans.entries()) {
    const stem = basename(photos[i]!, extname(photos[i]!));
    for (const [k, w] of weathers.entries()) for (let v = 0; v < o.per; v++) {
      const name = `${stem}_${w}_${v}.png`;
      assertFresh(join(out, 'input', name), Boolean(o.overwrite), '--overwrite');
      const { image } = synthesize(c, w as Weather, {}, o.seed + 1_000_000 * i + 1000 * k + v);
      writeOutput(join(out, 'input', name), await encodePng(image));
      writeOutput(join(out, 'gt', name), await encodePng(c));
      n++;
    }
  }
  console.log(`wrote ${n} pairs to ${out}/input and ${out}/gt (train on them with: ${selfCommand()} train --data ${out} --layout paired)`);
  return 0;
}
