/**
 * `mofme demo`: the whole pipeline on the built-in data, sized for a few minutes on 2 CPU cores:
 *   1. train the tiny MoFME on 64x64 crops (validating on center crops of the val split),
 *   2. evaluate the best checkpoint on whole built-in test images (official tiled protocol)
 *      against the identity baseline,
 *   3. restore sample photos (one degraded test image per weather) into samples/,
 *   4. write report.md with curves, the table, routing statistics and pictures,
 * and print where the report is.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve, relative } from 'node:path';
import { builtinDataset, writeImage } from '@mofme/data';
import { TRAIN_DEFAULTS, type TrainConfig } from './config';
import { train } from './train';
import { evaluate, formatTable } from './evaluate';
import { loadModelFile } from './checkpoint';
import { StripCollector, writeReport } from './report';
import { formatDuration } from './progress';
import { ensureWritableDir } from './commands';
import { CliError } from './errors';
import { existsSync } from 'node:fs';

export async function demoCommand(o: { steps: number; out?: string; backend: string; evalLimit?: number }): Promise<number> {
  const t0 = performance.now();
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const out = resolve(o.out ?? join('runs', `demo-${stamp}`));
  if (existsSync(join(out, 'run'))) throw new CliError(`--out ${out} already holds a demo; choose another folder`);
  ensureWritableDir(out, '--out');
  const steps = o.steps;
  const cfg: TrainConfig = {
    ...TRAIN_DEFAULTS, preset: 'tiny', crop: 64, batchSize: 8, steps, lr: 2e-3, warmup: Math.min(20, Math.floor(steps / 10)),
    ckptEvery: Math.max(1, Math.floor(steps / 4)), keepLast: 1, valCrop: 128, valLimit: 10, backend: o.backend as TrainConfig['backend'],
    out: join(out, 'run'), logEvery: 20,
  };
  console.log(`== 1/4 training the tiny MoFME for ${steps} steps on the built-in data (64x64 crops, batch 8)`);
  const r = await train(cfg);
  if (r.exitCode !== 0) return r.exitCode;

  console.log('\n== 2/4 evaluating the best checkpoint on the built-in test split (whole images, 240/120 tiles) vs the identity baseline');
  const ckpt = r.bestCheckpoint ?? r.lastCheckpoint!;
  const { model } = await loadModelFile(ckpt);
  const test = builtinDataset('test');
  const strip = new StripCollector();
  const res = await evaluate(model, test, {
    limit: o.evalLimit ?? 5, routing: true,
    onImage: (s, imgs, done, total) => { strip.offer(s.task, imgs); process.stdout.write(`  ${done}/${total} ${s.id}: ${s.psnr.toFixed(2)} dB (input ${s.identityPsnr.toFixed(2)})\n`); },
  });
  console.log('\n' + formatTable(res));

  console.log('\n== 3/4 restoring sample photos (one degraded test image per weather)');
  const samples = join(out, 'samples');
  mkdirSync(samples, { recursive: true });
  for (const [task, imgs] of strip.rows) {
    await writeImage(join(samples, `${task}-input.png`), imgs.input);
    await writeImage(join(samples, `${task}-restored.png`), imgs.output);
    console.log(`  ${relative(process.cwd(), join(samples, `${task}-restored.png`))}`);
  }

  console.log('\n== 4/4 writing the report');
  const file = await writeReport({
    runDir: r.runDir, outDir: out, checkpoint: relative(out, ckpt) || ckpt, split: 'test', evalResult: res, strip,
    extra: `Made by \`mofme demo\` in ${formatDuration((performance.now() - t0) / 1000)}. Restored samples: \`samples/\`.`,
  });
  console.log(`\ndone in ${formatDuration((performance.now() - t0) / 1000)}. Report: ${relative(process.cwd(), file)}`);
  return 0;
}
