/**
 * What each tiling choice of whole-photo inference costs: PSNR and SSIM on the built-in test split
 * (20 synthetic-weather pairs of 480x320 photos) and time per image (process CPU, all threads, and
 * wall), for tiles 128 (the bundled model's training crop), 192 and 240 (the paper's) at strides of
 * half, three quarters and all of the tile, with the raised-cosine blend and with flat averaging,
 * using the bundled pretrained model. Also the colour shift of clean photos through the model
 * (mean per channel, input vs output).
 * The table in packages/mofme/README.md ("Whole-photo inference") is this script's output:
 *
 *   cd apps/cli && node --conditions=source --import tsx scripts/tiling.ts [--limit N]
 *   cd apps/cli && node --conditions=source --import tsx scripts/tiling.ts --picture ../../packages/mofme/docs/blend.png
 *
 * PSNR is the CLI's own metric (src/metrics.ts, RGB, outputs clamped to [0, 1]) on the same
 * restoreImage path as `mofme eval`, so the numbers match what a user gets.
 */
import { cpus, loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { builtinDataset, builtinPhotos, getPair, photosDir, readImage, type Image } from '@mofme/data';
import { gridPng } from '../src/images';
import { DEFAULT_STRIDE, DEFAULT_TILE, restorePlanes, tileStarts, type MoFME } from '@mofme/mofme';
import { keep, type Tensor } from '@mofme/tensor';
import { checkpointOrPretrained, loadModelFile } from '../src/checkpoint';
import { psnr, ssim } from '../src/metrics';
import { pickIndices } from '../src/evaluate';

const limitFlag = process.argv.indexOf('--limit');
const limit = limitFlag > 0 ? Number(process.argv[limitFlag + 1]) : Infinity;

/**
 * Restore CHW [0, 1] pixels with the given tiling; output clamped to [0, 1], like restoreImage.
 * The blend changes only how window outputs are weighted, not the outputs, so the first run of an
 * image at a stride records each window's output and the other blend replays them (half the model
 * time; the same numbers as two full runs).
 */
function run(model: MoFME, data: Float32Array, height: number, width: number, tile: number, stride: number, blend: 'cosine' | 'flat', tape?: Tensor[]): Float32Array {
  let call = 0;
  const taped = tape === undefined ? model : ({
    config: model.config, training: false, eval: () => taped, train: () => taped,
    forward: (x: Tensor) => {
      if (call < tape.length) return { image: tape[call++]!.clone() };
      const image = model.forward(x).image;
      tape.push(keep(image.clone()));
      call++;
      return { image };
    },
  } as unknown as MoFME);
  return restorePlanes(taped, { data, channels: 3, height, width }, { tile, stride, blend, range: 'unit' });
}

const { model, file } = await loadModelFile(checkpointOrPretrained(undefined));

// --picture FILE: only write the seams picture (one snowy test photo at 240/120, flat | cosine |
// their difference x8) and stop
const pictureFlag = process.argv.indexOf('--picture');
if (pictureFlag > 0) {
  const test = builtinDataset('test', { weathers: ['snow'] });
  const { input } = await getPair(test, 0);
  const tape: Tensor[] = [];
  const [cosine, flat] = (['cosine', 'flat'] as const).map((blend) => run(model, input.data, input.height, input.width, 240, 120, blend, tape));
  const diff = Float32Array.from(flat!, (v, i) => Math.min(1, 0.5 + 8 * (v - cosine![i]!)));
  const as = (data: Float32Array): Image => ({ data, channels: 3, height: input.height, width: input.width });
  writeFileSync(process.argv[pictureFlag + 1]!, await gridPng([[as(flat!), as(cosine!), as(diff)]], {
    cellHeight: input.height, cellWidth: input.width, titles: ['flat average (240/120)', 'raised-cosine blend (240/120)', 'flat - cosine, x8 around grey'],
  }));
  process.exit(0);
}
const ds = builtinDataset('test');
// --limit N takes N pairs spread evenly over the split (every photo and weather keeps a share)
const picked = pickIndices(ds.length, Number.isFinite(limit) ? limit : 0);
const n = picked.length;
const pairs = [];
for (const i of picked) pairs.push(await getPair(ds, i));
console.log(`model ${file}; built-in test split, ${n} pairs; ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

/** Windows of a W x H photo at this tile and stride. */
const windowsOf = (W: number, H: number, tile: number, stride: number): number => tileStarts(W, tile, stride).length * tileStarts(H, tile, stride).length;
const rows: string[] = [
  '| tile / stride | windows per 480x320 test image | windows per 12 MP photo (4000x3000) | PSNR, cosine blend (dB) | SSIM, cosine blend | PSNR, flat average (dB) | CPU s per test image | wall s per test image | est. CPU s per 12 MP photo |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
];
const inputPsnr = pairs.reduce((a, p) => a + psnr(p.input, p.target), 0) / n;
for (const tile of [128, 192, 240]) {
  for (const stride of [tile / 2, (3 * tile) / 4, tile]) {
    const total = { cosine: 0, flat: 0, ssim: 0 };
    let cpuSeconds = 0, wallSeconds = 0;
    for (const p of pairs) {
      const tape: Tensor[] = [];
      const t0 = performance.now(), cpu0 = process.cpuUsage();
      for (const blend of ['cosine', 'flat'] as const) {
        const out = run(model, p.input.data, p.input.height, p.input.width, tile, stride, blend, tape);
        if (blend === 'cosine') { // the model runs in this pass; the flat one replays its windows
          const cpu = process.cpuUsage(cpu0);
          cpuSeconds += (cpu.user + cpu.system) / 1e6;
          wallSeconds += (performance.now() - t0) / 1000;
        }
        const restored = { data: out, channels: 3 as const, height: p.input.height, width: p.input.width };
        total[blend] += psnr(restored, p.target);
        if (blend === 'cosine') total.ssim += ssim(restored, p.target);
      }
      for (const t of tape) t.dispose();
    }
    const windows = windowsOf(480, 320, tile, stride), big = windowsOf(4000, 3000, tile, stride);
    rows.push(`| ${tile} / ${stride} | ${windows} | ${big} | ${(total.cosine / n).toFixed(2)} | ${(total.ssim / n).toFixed(4)} | ${(total.flat / n).toFixed(2)} | ${(cpuSeconds / n).toFixed(2)} | ${(wallSeconds / n).toFixed(2)} | ${((cpuSeconds / n / windows) * big).toFixed(0)} |`);
    console.log(rows[rows.length - 1], `load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  }
}
console.log(`\ninputs (no restoration): ${inputPsnr.toFixed(2)} dB; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
console.log(rows.join('\n'));

if (process.argv.includes('--no-colour')) process.exit(0);
// colour shift: the clean test photos through the model (default tiling)
console.log('\nclean built-in photos through the model: mean per channel x255, input -> output');
const shift = [0, 0, 0];
const tests = builtinPhotos().filter((p) => p.split === 'test');
for (const photo of tests) {
  const img = await readImage(join(photosDir(), photo.file));
  const out = run(model, img.data, img.height, img.width, DEFAULT_TILE, DEFAULT_STRIDE, 'cosine');
  const plane = img.height * img.width;
  const means = [0, 1, 2].map((c) => {
    let a = 0, b = 0;
    for (let i = c * plane; i < (c + 1) * plane; i++) { a += img.data[i]!; b += out[i]!; }
    return [(a / plane) * 255, (b / plane) * 255] as const;
  });
  means.forEach(([a, b], c) => { shift[c]! += (b - a) / tests.length; });
  console.log(`  ${photo.file}: ${means.map(([a, b]) => `${a.toFixed(1)} -> ${b.toFixed(1)}`).join(', ')}`);
}
console.log(`  mean shift (R, G, B) x255: ${shift.map((s) => s.toFixed(2)).join(', ')}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
