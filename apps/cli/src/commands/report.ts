/**
 * `mofme report RUN`: a Markdown report beside its PNG pictures, readable on GitHub or any viewer:
 *   - training loss and validation PSNR curves (from metrics.jsonl),
 *   - the per-task PSNR/SSIM table of a checkpoint against the identity baseline,
 *   - routing statistics per task (which experts each weather's tokens go to, and the routing entropy),
 *   - a strip input | restored | ground truth, one row per weather.
 * The demo calls `writeReport` with the evaluation it already ran.
 */
import { join, relative, resolve, dirname } from 'node:path';
import type { Image } from '@mofme/data';
import { DEFAULT_STRIDE, DEFAULT_TILE } from '@mofme/mofme';
import { chartPng, lineSpec, routingSpec, type Point } from '../charts';
import { gridPng } from '../images';
import { evaluate, formatTable, type EvalResult, type TaskScore } from '../evaluate';
import { loadModelFile, readMetrics, readRunConfig, resolveModelFile } from '../checkpoint';
import { openData, outputDir, writeOutput } from '../io';
import { formatDuration } from '../progress';

/** Keeps the first image of every task, for the strip. */
export class StripCollector {
  readonly rows = new Map<string, { input: Image; output: Image; target: Image }>();
  offer(task: string, imgs: { input: Image; output: Image; target: Image }): void {
    if (!this.rows.has(task)) this.rows.set(task, imgs);
  }
}

export interface ReportInput {
  runDir: string;
  /** where report.md and the pictures go (default: the run folder) */
  outDir?: string;
  checkpoint: string;
  split: string;
  evalResult: EvalResult;
  strip: StripCollector;
  /** the windows the evaluation used (default: evaluate's, DEFAULT_TILE / DEFAULT_STRIDE) */
  tiling?: { tile: number; stride: number };
  extra?: string;
}

const fmtTask = (t: string) => t.replace('_', '+');

export async function writeReport(r: ReportInput): Promise<string> {
  const out = outputDir(r.outDir ?? r.runDir, '--out');
  const lines = readMetrics(r.runDir);
  const config = readRunConfig(r.runDir);
  const train = lines.filter((l) => l.type === 'train');
  const val = lines.filter((l) => l.type === 'val');
  const md: string[] = [];
  const link = (f: string) => relative(out, join(out, f));

  // loss curve: raw and an exponential moving average; a run saved without `loss` trained with SmoothL1
  const lossName = config.train.loss === 'psnr' ? 'PSNR loss (minus dB)' : 'SmoothL1 loss';
  let ema = train[0]?.loss ?? 0;
  const lossPts: Point[] = [];
  for (const l of train) {
    ema = 0.9 * ema + 0.1 * l.loss!;
    lossPts.push({ step: l.step, value: l.loss!, series: lossName }, { step: l.step, value: ema, series: 'moving average' });
  }
  if (train.length) await chartPng(lineSpec(lossPts, 'Training loss', lossName), join(out, 'loss.png'));
  const psnrPts: Point[] = val.flatMap((l) => [{ step: l.step, value: l.psnr!, series: 'restored' }, { step: l.step, value: l.identityPsnr!, series: 'identity (input)' }]);
  if (val.length) await chartPng(lineSpec(psnrPts, 'Validation PSNR', 'PSNR (dB)'), join(out, 'psnr.png'));

  const m = config.model;
  const secs = train.length ? train[train.length - 1]!.time ?? 0 : 0;
  const ips = train.length ? train.reduce((s, l) => s + (l.imagesPerSec ?? 0), 0) / train.length : 0;
  md.push(`# MoFME.ts run report`, '');
  md.push(`Run \`${r.runDir}\`: **${m.ffn}** (${config.train.preset} preset: D=${m.dim}, depth ${m.depth}, patch ${m.patchSize}` +
    `${m.ffn === 'dense' ? '' : `, E=${m.experts} top-${m.topk}, ${m.router} router`}), ${train.length ? train[train.length - 1]!.step : 0} steps of batch ${config.train.batchSize} on ` +
    `${config.train.crop}x${config.train.crop} crops of \`${config.train.data}\`, AdamW lr ${config.train.lr} (${config.train.schedule}), ${lossName}; ` +
    `${formatDuration(secs)} of training at ${ips.toFixed(1)} images/s.`, '');
  if (r.extra) md.push(r.extra, '');
  md.push('## Curves', '');
  if (train.length) md.push(`![training loss](${link('loss.png')})`, '');
  if (val.length) md.push(`![validation PSNR](${link('psnr.png')})`, '', `Validation during training: ${config.train.valCrop !== 0 ? `center ${config.train.valCrop}px crops` : 'whole images'} of the validation split; the checkpoint kept as \`best/\` is chosen on it (never on test).`, '');

  md.push(`## PSNR / SSIM per task (${r.split})`, '');
  md.push(`Checkpoint \`${r.checkpoint}\`, ${r.evalResult.images.length} images, whole images with ${r.tiling?.tile ?? DEFAULT_TILE}x${r.tiling?.tile ?? DEFAULT_TILE} tiles at stride ${r.tiling?.stride ?? DEFAULT_STRIDE}, metrics as piq 0.8.0 computes them (see the CLI README). "identity" scores the degraded input itself.`, '');
  md.push('| task | n | PSNR | SSIM | identity PSNR | identity SSIM | gain (dB) |', '|---|---:|---:|---:|---:|---:|---:|');
  const row = (name: string, t: TaskScore) => `| ${name} | ${t.n} | ${t.psnr.toFixed(2)} | ${t.ssim.toFixed(4)} | ${t.identityPsnr.toFixed(2)} | ${t.identitySsim.toFixed(4)} | ${(t.psnr - t.identityPsnr >= 0 ? '+' : '') + (t.psnr - t.identityPsnr).toFixed(2)} |`;
  for (const [task, t] of Object.entries(r.evalResult.tasks)) md.push(row(fmtTask(task), t));
  md.push(row('**average**', r.evalResult.average), '');

  md.push('## Routing per weather', '');
  if (r.evalResult.routing.length) {
    const cells = r.evalResult.routing.flatMap((s) => s.topkShare.map((share, e) => ({ layer: `block ${s.layer}`, task: fmtTask(s.task), expert: String(e), share })));
    await chartPng(routingSpec(cells), join(out, 'routing.png'));
    md.push(`![routing](${link('routing.png')})`, '');
    md.push('Share of each weather\'s tokens whose top-k includes the expert (a row sums to k), measured on one 240x240 (or smaller) window per image. Entropy of the routing weights per token (nats; 0 = one expert, ln k for k equal weights):', '');
    md.push('| block | task | tokens | mean weight per expert | entropy |', '|---:|---|---:|---|---:|');
    for (const s of r.evalResult.routing) md.push(`| ${s.layer} | ${fmtTask(s.task)} | ${s.tokens} | ${s.meanWeight.map((w) => w.toFixed(3)).join(' / ')} | ${s.entropy.toFixed(3)} |`);
    md.push('');
  } else {
    md.push('The dense model has no router.', '');
  }

  if (r.strip.rows.size) {
    const rows = [...r.strip.rows.values()].map((x) => [x.input, x.output, x.target]);
    const first = [...r.strip.rows.values()][0]!.input;
    const h = 160, w = Math.round((h * first.width) / first.height);
    writeOutput(join(out, 'strip.png'), await gridPng(rows, { cellHeight: h, cellWidth: w, titles: ['input', 'restored', 'ground truth'], rowLabels: [...r.strip.rows.keys()].map(fmtTask) }));
    md.push('## Pictures', '', `One ${r.split} image per weather: input | restored | ground truth.`, '', `![input, restored, ground truth](${link('strip.png')})`, '');
  }
  const file = join(out, 'report.md');
  writeOutput(file, md.join('\n'));
  return file;
}

export async function reportCommand(run: string, o: { checkpoint?: string; out?: string; split: 'val' | 'test'; limit: number; tile: number; stride: number }): Promise<number> {
  const runDir = resolve(run);
  readMetrics(runDir); // fails early with a clear message when RUN is not a run folder
  const outDir = o.out ? outputDir(o.out, '--out') : runDir;
  const ckpt = resolveModelFile(o.checkpoint ?? runDir);
  const { model } = await loadModelFile(ckpt);
  const cfg = readRunConfig(runDir);
  const data = cfg.train.val && cfg.train.val !== 'none' ? cfg.train.val : cfg.train.data;
  const ds = await openData(data, o.split, cfg.train.layout);
  const strip = new StripCollector();
  const res = await evaluate(model, ds, { tile: o.tile, stride: o.stride, limit: o.limit, routing: true, onImage: (s, imgs) => strip.offer(s.task, imgs), ...(data === 'builtin' ? {} : { resize: { width: 720, height: 480 } }) });
  console.log(formatTable(res));
  const file = await writeReport({ runDir, outDir, checkpoint: relative(process.cwd(), dirname(ckpt)) || '.', split: o.split, evalResult: res, strip, tiling: { tile: o.tile, stride: o.stride } });
  console.log(`\nreport: ${file}`);
  return 0;
}
