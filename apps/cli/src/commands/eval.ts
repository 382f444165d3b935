/**
 * `mofme eval`: PSNR/SSIM per task and on average (the official protocol, evaluate.ts) of a model
 * file, next to the identity baseline; optionally the per-image scores as CSV and a gallery of the
 * worst and best three images.
 */
import { resolve } from 'node:path';
import { DEFAULT_STRIDE, DEFAULT_TILE } from '@mofme/mofme';
import type { Image } from '@mofme/data';
import { checkpointOrPretrained, loadModelFile } from '../checkpoint';
import { selectBackend } from '../backend';
import { evaluate, formatTable, type ImageScore } from '../evaluate';
import { gridPng } from '../images';
import { assertFresh, openData, outputDir, writeOutput } from '../io';
import { parseSize, type TrainConfig } from '../options';

export interface EvalOpts {
  checkpoint?: string; data: string; split: 'val' | 'test'; layout?: string; tile?: number; stride?: number; resize?: string;
  limit: number; json?: boolean; csv?: string; gallery?: string; backend: TrainConfig['backend']; overwrite?: boolean;
}

export async function evalCommand(o: EvalOpts): Promise<number> {
  for (const [flag, path] of [['--csv', o.csv], ['--gallery', o.gallery]] as const) {
    if (path) { outputDir(resolve(path, '..'), flag); assertFresh(path, o.overwrite); }
  }
  await selectBackend(o);
  const { model, file } = await loadModelFile(checkpointOrPretrained(o.checkpoint));
  const ds = await openData(o.data, o.split, o.layout);
  // real datasets are resized to 720x480 as the official loader does; the built-in photos are already 480x320
  const resize = o.resize === 'none' ? undefined : o.resize ? parseSize(o.resize, '--resize') : o.data === 'builtin' ? undefined : { width: 720, height: 480 };
  const keep = new Extremes(3);
  // the same windows as `mofme restore` unless asked otherwise (--stride 120 is the official protocol)
  const tile = o.tile ?? DEFAULT_TILE, stride = o.stride ?? DEFAULT_STRIDE;
  const r = await evaluate(model, ds, {
    tile, stride, limit: o.limit, routing: true, ...(resize ? { resize } : {}),
    onImage: (s, imgs, done, total) => {
      if (o.gallery) keep.offer(s, imgs);
      if (!o.json && process.stderr.isTTY) process.stderr.write(`\r evaluating ${done}/${total}`);
    },
  });
  if (!o.json && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  if (o.csv) writeOutput(o.csv, csvOf(r.images));
  if (o.gallery) writeOutput(o.gallery, await keep.gallery());
  // time per image: restoring alone (wall, and CPU of all threads: the figure to trust on a busy machine)
  const n = r.images.length, perImage = { wall: r.restoreSeconds / n, cpu: r.restoreCpuSeconds / n };
  if (o.json) {
    console.log(JSON.stringify({ checkpoint: file, data: o.data, split: o.split, tile, stride, tasks: r.tasks, average: r.average, routing: r.routing, seconds: r.seconds, restoreSecondsPerImage: perImage.wall, restoreCpuSecondsPerImage: perImage.cpu }, null, 2));
  } else {
    console.log(`${file} on ${o.data === 'builtin' ? `the built-in ${o.split} split` : o.data} (${n} images, tiles ${tile}/${stride}, ${r.seconds.toFixed(1)} s; restoring ${perImage.wall.toFixed(2)} s per image, ${perImage.cpu.toFixed(2)} s CPU)\n`);
    console.log(formatTable(r));
    if (o.csv) console.log(`\nper-image scores: ${o.csv}`);
    if (o.gallery) console.log(`gallery (worst 3 and best 3 by PSNR gain; input | restored | ground truth): ${o.gallery}`);
  }
  return 0;
}

function csvOf(images: ImageScore[]): string {
  const q = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  return 'id,task,input,psnr,ssim,identity_psnr,identity_ssim\n' +
    images.map((s) => [q(s.id), s.task, q(s.input), s.psnr.toFixed(4), s.ssim.toFixed(5), s.identityPsnr.toFixed(4), s.identitySsim.toFixed(5)].join(',')).join('\n') + '\n';
}

/** Keeps the k worst and k best images by PSNR gain over the input, while streaming. */
class Extremes {
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
