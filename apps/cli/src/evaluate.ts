/**
 * Evaluation: restore every pair of a dataset with tiled inference and score it against its ground
 * truth with the official PSNR/SSIM (metrics.ts), per task and on average, next to the identity
 * baseline (the degraded input scored against the same ground truth: what "doing nothing" gets).
 *
 * Protocol: whole images, restored in overlapping windows blended where they overlap (the model
 * package's `restore`; by default 192×192 at stride 144, chosen by measurement on the test split,
 * see packages/mofme/README.md; the paper's protocol, mofme-paper.md §7, is 240×240 at stride 120
 * averaged: `--tile 240 --stride 120`), output clamped to [0, 1]. Real datasets are resized to
 * 720×480 first, as the official loader does; the built-in photos are already 480×320 and are used
 * as they are. The per-task score is the mean over that task's images (the official code averages
 * per-batch means of batch 4, the same number when every batch is full); "average" is the mean of
 * the task scores, as the official statistics.py averages its tasks.
 *
 * During training the same code validates on a center crop per image (`centerCrop`) to stay cheap.
 */
import { noGrad, tensor, tidy } from '@mofme/tensor';
import { DEFAULT_STRIDE, DEFAULT_TILE, restorePlanes, restoreRows, RouterStats, toModelInput, type MoFME, type RoutingSummary } from '@mofme/mofme';
import { createPhotoPng, getPair, cropImage, rawWindowInto, setPhotoPngRows, type AnyDataset, type Image, type PhotoPng, type RawPhoto } from '@mofme/data';
import { psnr, ssim } from './metrics';
import { CliError, oneLine } from './errors';

export interface ImageScore {
  index: number;
  id: string;
  task: string;
  input: string;
  psnr: number;
  ssim: number;
  identityPsnr: number;
  identitySsim: number;
}

export interface TaskScore {
  n: number;
  psnr: number;
  ssim: number;
  identityPsnr: number;
  identitySsim: number;
}

export interface EvalResult {
  tasks: Record<string, TaskScore>;
  /** mean of the task scores */
  average: TaskScore;
  images: ImageScore[];
  routing: RoutingSummary[];
  /** wall time of the whole evaluation (reading, restoring, scoring) */
  seconds: number;
  /** wall and process CPU time (all threads) spent restoring, summed over the images */
  restoreSeconds: number;
  restoreCpuSeconds: number;
}

export interface EvalOptions {
  tile?: number;
  stride?: number;
  /** score a center crop of this side (a multiple of the patch size) instead of the whole image */
  centerCrop?: number;
  /** at most this many pairs (0 = all), taken evenly over the dataset so every task is present */
  limit?: number;
  resize?: { width: number; height: number };
  /** collect routing statistics per task (one extra forward of a center window per image) */
  routing?: boolean;
  onImage?: (score: ImageScore, images: { input: Image; output: Image; target: Image }, done: number, total: number) => void;
  /** asked before each image; true abandons the evaluation with EvaluationStopped (train's Ctrl-C) */
  stop?: () => boolean;
}

/** Thrown by `evaluate` when its `stop` option says so. */
export class EvaluationStopped extends Error {
  constructor() { super('evaluation stopped'); }
}

/**
 * Restore one image (CHW in [0, 1]) with tiled inference; returns CHW in [0, 1]. The model package
 * maps each window to the model's [-1, 1] as it cuts it (no full-size copy: memory stays bounded
 * for any photo), clamps the output, and refuses outputs that are not numbers, naming the pixel:
 * clamping would turn NaN into 0 silently (weights that are finite but huge, e.g. after
 * `--lr 1e9`, overflow inside the network). `onTile` reports progress per window.
 */
export function restoreImage(model: MoFME, img: Image, tile = DEFAULT_TILE, stride = DEFAULT_STRIDE, onTile?: (done: number, total: number) => void): Image {
  const out = restorePlanes(model, img, { tile, stride, range: 'unit', onTile });
  return { data: out, channels: 3, height: img.height, width: img.width };
}

/**
 * Restore a photo kept in its decoded samples (`mofme restore`) the way `restoreImage` restores
 * planes, straight into the samples of the PNG it will be written as: windows are converted to
 * floats as they are cut, and finished rows are quantised as they leave the blending band, so
 * neither the input nor the output exists as float planes (a 12-megapixel photo: 36 MB of samples
 * each way instead of 144 MB of floats).
 */
export function restorePhoto(model: MoFME, photo: RawPhoto, tile = DEFAULT_TILE, stride = DEFAULT_STRIDE, onTile?: (done: number, total: number) => void): PhotoPng {
  const { raw } = photo;
  const png = createPhotoPng(raw.width, raw.height, photo);
  const source = { channels: 3, height: raw.height, width: raw.width, readWindow: (y0: number, x0: number, h: number, w: number, into: Float32Array) => rawWindowInto(raw, y0, x0, h, w, into) };
  restoreRows(model, source, (y0, n, rows) => setPhotoPngRows(png, y0, n, rows), { tile, stride, range: 'unit', onTile });
  return png;
}

function centerCrop(img: Image, side: number): Image {
  const h = Math.min(side, img.height), w = Math.min(side, img.width);
  return cropImage(img, Math.floor((img.height - h) / 2), Math.floor((img.width - w) / 2), h, w);
}

/** Indices 0..n-1, or `limit` of them spread evenly (so that every task keeps images). */
export function pickIndices(n: number, limit = 0): number[] {
  if (!limit || limit >= n) return [...Array(n).keys()];
  return Array.from({ length: limit }, (_, i) => Math.floor((i * n) / limit));
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

export async function evaluate(model: MoFME, ds: AnyDataset, opts: EvalOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const tile = opts.tile ?? DEFAULT_TILE, stride = opts.stride ?? DEFAULT_STRIDE;
  let restoreSeconds = 0, restoreCpuSeconds = 0;
  const indices = pickIndices(ds.length, opts.limit);
  if (!indices.length) throw new CliError('evaluation: the dataset has no pairs');
  const stats = new RouterStats();
  const images: ImageScore[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    for (const [done, i] of indices.entries()) {
      if (opts.stop?.()) throw new EvaluationStopped();
      let pair;
      try {
        pair = await getPair(ds, i, opts.resize ? { resize: opts.resize } : {});
      } catch (e) {
        throw new CliError(`cannot read pair ${i}: ${oneLine(e)}`);
      }
      let { input, target } = pair;
      if (opts.centerCrop) {
        input = centerCrop(input, opts.centerCrop);
        target = centerCrop(target, opts.centerCrop);
      }
      if (Math.min(input.height, input.width) < 11) throw new CliError(`${pair.inputPath}: image is ${input.width}x${input.height}; at least 11x11 is needed for SSIM`);
      const r0 = performance.now(), cpu0 = process.cpuUsage();
      const output = opts.centerCrop
        ? restoreImage(model, input, Math.min(opts.centerCrop, tile), Math.min(opts.centerCrop, tile, stride)) // one window per crop
        : restoreImage(model, input, tile, stride);
      const cpu = process.cpuUsage(cpu0);
      restoreSeconds += (performance.now() - r0) / 1000;
      restoreCpuSeconds += (cpu.user + cpu.system) / 1e6;
      if (opts.routing) {
        const p = model.config.patchSize;
        const side = Math.max(p, Math.floor(Math.min(tile, input.height, input.width) / p) * p);
        const win = centerCrop(input, side);
        tidy(() => noGrad(() => {
          const x = toModelInput(tensor(win.data, { shape: [1, 3, win.height, win.width] }));
          stats.update(model.forward(x).routing, [pair.task]);
        }));
      }
      const score: ImageScore = {
        index: i, id: pair.id, task: pair.task, input: pair.inputPath,
        psnr: psnr(output, target), ssim: ssim(output, target),
        identityPsnr: psnr(input, target), identitySsim: ssim(input, target),
      };
      images.push(score);
      opts.onImage?.(score, { input, output, target }, done + 1, indices.length);
    }
  } finally {
    model.train(wasTraining);
  }
  const tasks: Record<string, TaskScore> = {};
  for (const task of [...new Set(images.map((s) => s.task))]) {
    const of = images.filter((s) => s.task === task);
    tasks[task] = {
      n: of.length,
      psnr: mean(of.map((s) => s.psnr)), ssim: mean(of.map((s) => s.ssim)),
      identityPsnr: mean(of.map((s) => s.identityPsnr)), identitySsim: mean(of.map((s) => s.identitySsim)),
    };
  }
  const ts = Object.values(tasks);
  const average: TaskScore = {
    n: images.length,
    psnr: mean(ts.map((t) => t.psnr)), ssim: mean(ts.map((t) => t.ssim)),
    identityPsnr: mean(ts.map((t) => t.identityPsnr)), identitySsim: mean(ts.map((t) => t.identitySsim)),
  };
  return { tasks, average, images, routing: stats.summary(), seconds: (performance.now() - t0) / 1000, restoreSeconds, restoreCpuSeconds };
}

/** The result as a terminal table. */
export function formatTable(r: EvalResult): string {
  const rows = [['task', 'n', 'PSNR', 'SSIM', 'identity PSNR', 'identity SSIM', 'gain (dB)']];
  const line = (name: string, t: TaskScore) => [name, String(t.n), t.psnr.toFixed(2), t.ssim.toFixed(4), t.identityPsnr.toFixed(2), t.identitySsim.toFixed(4), (t.psnr - t.identityPsnr >= 0 ? '+' : '') + (t.psnr - t.identityPsnr).toFixed(2)];
  for (const [task, t] of Object.entries(r.tasks)) rows.push(line(task, t));
  rows.push(line('average', r.average));
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const fmt = (row: string[]) => row.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ');
  const out = rows.map(fmt);
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  out.splice(out.length - 1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}
