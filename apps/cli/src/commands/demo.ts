/**
 * `mofme demo`: the whole pipeline on the built-in data, sized for about ten minutes on 2 CPU cores:
 *   1. evaluate the bundled pretrained model (apps/cli/pretrained) on whole built-in test images
 *      (tiled, as `mofme eval`) against the identity baseline: what the product does out of the box;
 *   2. fine-tune a copy of it for a few hundred steps on 64x64 crops of the built-in training photos
 *      with freshly synthesised weather (`train --init`), validating on center crops of the val split;
 *   3. evaluate the fine-tuned best checkpoint on the same test images, and print both next to the
 *      input, per weather;
 *   4. restore sample photos (one degraded test image per weather) into samples/ and write report.md
 *      with curves, the table, routing statistics and pictures, and print where the report is.
 * Why fine-tune rather than train from scratch: a few hundred steps from a random start on 2 cores
 * leave a model worse than its input (measured: -0.61 dB on average, rain -5.17, raindrop -6.93);
 * starting from the bundled weights shows training working while the result stays useful.
 */
import { existsSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';
import { builtinDataset, encodePng } from '@mofme/data';
import { TRAIN_DEFAULTS, type TrainConfig } from '../options';
import { train } from './train';
import { evaluate, formatTable, type EvalResult, type TaskScore } from '../evaluate';
import { loadModelFile, PRETRAINED as BUNDLED } from '../checkpoint';
import { StripCollector, writeReport } from './report';
import { formatDuration } from '../progress';
import { outputDir, outputSubdir, writeOutput } from '../io';
import { CliError } from '../errors';

/** Per weather: input, bundled and fine-tuned PSNR/SSIM side by side, and whether each beats its input. */
export function comparisonTable(bundled: EvalResult, tuned: EvalResult): string {
  const rows = [['weather', 'input PSNR', 'bundled', 'fine-tuned', 'input SSIM', 'bundled', 'fine-tuned']];
  const sign = (d: number) => `${d >= 0 ? '+' : ''}${d.toFixed(2)}`;
  const row = (name: string, b: TaskScore, t: TaskScore) => rows.push([
    name, b.identityPsnr.toFixed(2), `${b.psnr.toFixed(2)} (${sign(b.psnr - b.identityPsnr)})`, `${t.psnr.toFixed(2)} (${sign(t.psnr - t.identityPsnr)})`,
    b.identitySsim.toFixed(4), b.ssim.toFixed(4), t.ssim.toFixed(4),
  ]);
  for (const task of Object.keys(bundled.tasks)) row(task, bundled.tasks[task]!, tuned.tasks[task] ?? bundled.tasks[task]!);
  row('average', bundled.average, tuned.average);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ')).join('\n');
}

/** Weathers where a model's PSNR or SSIM is not above its input's. */
export function weathersNotAboveInput(r: EvalResult): string[] {
  return Object.entries(r.tasks).filter(([, t]) => !(t.psnr > t.identityPsnr && t.ssim > t.identitySsim)).map(([k]) => k);
}

export async function demoCommand(o: { steps: number; out?: string; backend: string; evalLimit?: number }): Promise<number> {
  const t0 = performance.now();
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const out = resolve(o.out ?? join('runs', `demo-${stamp}`));
  if (existsSync(join(out, 'run'))) throw new CliError(`--out ${out} already holds a demo; choose another folder`);
  outputDir(out, '--out');
  const steps = o.steps;
  if (!existsSync(BUNDLED)) throw new CliError(`the bundled model ${BUNDLED} is missing; reinstall, or train one with mofme train`);
  const test = builtinDataset('test');
  const limit = o.evalLimit ?? 5;
  const progressLine = (s: { id: string; psnr: number; identityPsnr: number }, done: number, total: number) => process.stdout.write(`  ${done}/${total} ${s.id}: ${s.psnr.toFixed(2)} dB (input ${s.identityPsnr.toFixed(2)})\n`);

  console.log('== 1/4 the bundled model on the built-in test split (whole images, 192/144 windows) vs the identity baseline');
  const bundled = await evaluate((await loadModelFile(BUNDLED)).model, test, { limit, onImage: (s, _i, d, t) => progressLine(s, d, t) });

  const cfg: TrainConfig = {
    ...TRAIN_DEFAULTS, preset: 'tiny', init: BUNDLED, crop: 64, batchSize: 8, steps, lr: 1e-4, loss: 'psnr', warmup: Math.min(20, Math.floor(steps / 10)),
    ckptEvery: Math.max(1, Math.floor(steps / 4)), keepLast: 1, valCrop: 128, valLimit: 10, backend: o.backend as TrainConfig['backend'],
    out: join(out, 'run'), logEvery: 20,
  };
  console.log(`\n== 2/4 fine-tuning the bundled model for ${steps} steps on the built-in data (64x64 crops, batch 8, lr 1e-4, PSNR loss: the bundled model's recipe)`);
  const r = await train({ flags: cfg });
  if (r.exitCode !== 0) return r.exitCode;

  console.log('\n== 3/4 the fine-tuned model (best checkpoint on validation) on the same test images');
  const ckpt = r.bestCheckpoint ?? r.lastCheckpoint!;
  const { model } = await loadModelFile(ckpt);
  const strip = new StripCollector();
  const res = await evaluate(model, test, {
    limit, routing: true,
    onImage: (s, imgs, done, total) => { strip.offer(s.task, imgs); progressLine(s, done, total); },
  });
  console.log('\n' + formatTable(res));
  console.log('\nPSNR (dB) and SSIM per weather, input vs bundled vs fine-tuned:\n' + comparisonTable(bundled, res));
  const behind = weathersNotAboveInput(res);
  console.log(behind.length ? `\nnot above the input yet: ${behind.join(', ')}` : '\nevery weather is restored above its input (PSNR and SSIM)');

  console.log('\n== 4/4 restoring sample photos (one degraded test image per weather) and writing the report');
  const samples = join(out, 'samples');
  outputSubdir(samples);
  for (const [task, imgs] of strip.rows) {
    writeOutput(join(samples, `${task}-input.png`), await encodePng(imgs.input));
    writeOutput(join(samples, `${task}-restored.png`), await encodePng(imgs.output));
    console.log(`  ${relative(process.cwd(), join(samples, `${task}-restored.png`))}`);
  }

  const file = await writeReport({
    runDir: r.runDir, outDir: out, checkpoint: relative(out, ckpt) || ckpt, split: 'test', evalResult: res, strip,
    extra: `Made by \`mofme demo\` in ${formatDuration((performance.now() - t0) / 1000)}. Restored samples: \`samples/\`.\n\nPSNR (dB) and SSIM per weather, input vs the bundled model vs this fine-tuned run:\n\n\`\`\`\n${comparisonTable(bundled, res)}\n\`\`\``,
  });
  console.log(`\ndone in ${formatDuration((performance.now() - t0) / 1000)}. Report: ${relative(process.cwd(), file)}`);
  return 0;
}
