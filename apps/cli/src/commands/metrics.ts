/**
 * `mofme metrics A B`: PSNR and SSIM between two images, or between the same-named images of two
 * folders, computed as `mofme eval` computes them (metrics.ts).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { CliError } from '../errors';
import { IMAGE_EXT, readImageOrFail } from '../io';
import { psnr, ssim } from '../metrics';

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
    const ix = await readImageOrFail(x), iy = await readImageOrFail(y);
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
