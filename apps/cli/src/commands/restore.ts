/**
 * `mofme restore IMAGES... -o DIR`: photos of any size through a model file (the bundled pretrained
 * one by default) with tiled inference, written as PNG beside their names. Every input is read
 * before anything is written, so a bad one fails the command with nothing half done.
 */
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { finishPhotoPng, readRawPhoto, type RawPhoto } from '@mofme/data';
import { reserveRestoreMemory } from '@mofme/mofme';
import { getDefaultBackend } from '@mofme/tensor';
import { checkpointOrPretrained, loadModelFile } from '../checkpoint';
import { selectBackend } from '../backend';
import type { TrainConfig } from '../options';
import { restorePhoto } from '../evaluate';
import { CliError, oneLine } from '../errors';
import { assertFresh, outputDir, writeOutput } from '../io';

export interface RestoreOpts { checkpoint?: string; out: string; tile: number; stride?: number; backend: TrainConfig['backend']; overwrite?: boolean }

export async function restoreCommand(files: string[], o: RestoreOpts): Promise<number> {
  const outDir = outputDir(o.out, '-o');
  const targets = files.map((f) => join(outDir, basename(f, extname(f)) + '.png'));
  const dup = targets.find((t, i) => targets.indexOf(t) !== i);
  if (dup) throw new CliError(`two inputs would both be written to ${dup}; restore them into different folders`);
  for (const f of files) if (!existsSync(f)) throw new CliError(`${f}: no such file`);
  for (const t of targets) assertFresh(t, o.overwrite);
  await selectBackend(o);
  const { model, file } = await loadModelFile(checkpointOrPretrained(o.checkpoint));
  // a helper thread faults in the memory of the first window while the images are decoded
  // (mofme restore.ts, reserveRestoreMemory: the first window's page faults off the main thread)
  reserveRestoreMemory(model, { tile: o.tile });
  // read every image before restoring: a bad one fails the command before anything is written. readRawPhoto
  // applies EXIF orientation and keeps alpha, 16 bits and grey for writing back (data codec.ts),
  // and keeps the decoded samples (a quarter of float planes: 36 MB for 12 megapixels)
  const images: (RawPhoto | undefined)[] = [];
  for (const f of files) {
    let photo: RawPhoto;
    try { photo = await readRawPhoto(f); } catch (e) { throw new CliError(`${f}: cannot read the image (${oneLine(e)})`); }
    const { width, height } = photo.raw;
    if (Math.min(height, width) < 8) throw new CliError(`${f}: image is ${width}x${height}; at least 8x8 pixels are needed`);
    images.push(photo);
  }
  console.log(`restoring ${files.length} image(s) with ${file}`);
  const memory = memoryLog();
  for (let i = 0; i < images.length; i++) {
    const t0 = performance.now(), cpu0 = process.cpuUsage();
    const photo = images[i]!, { width, height } = photo.raw;
    memory?.(`${files[i]}: read`);
    // progress for big photos: a line every ~10 % of the windows
    let windows = 0;
    const png = restorePhoto(model, photo, o.tile, o.stride, (done, total) => {
      windows = total;
      if (total >= 20 && done < total && done % Math.ceil(total / 10) === 0) console.log(`  ${files[i]}: window ${done}/${total}, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
      if (done % 25 === 0) memory?.(`${files[i]}: window ${done}/${total}`);
    });
    images[i] = undefined; // the input's samples are no longer needed: let them go before encoding
    memory?.(`${files[i]}: restored`);
    writeOutput(targets[i]!, await finishPhotoPng(png));
    memory?.(`${files[i]}: encoded and written`);
    const cpu = process.cpuUsage(cpu0), seconds = (performance.now() - t0) / 1000;
    console.log(`${files[i]} -> ${targets[i]} (${width}x${height}, ${windows} windows, ${seconds.toFixed(1)} s, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU)`);
  }
  return 0;
}

/**
 * MOFME_MEMORY=1: a line per stage (and every 25 windows) with the process's resident memory and
 * where it is (V8 heap, array buffers, the CPU backend's live tensors), plus the peak seen, on
 * stderr: how the memory of a large restore was broken down (apps/cli/README.md, restore).
 */
function memoryLog(): ((stage: string) => void) | undefined {
  const flag = process.env.MOFME_MEMORY?.trim().toLowerCase();
  if (!flag || flag === '0' || flag === 'false') return undefined;
  let peak = 0;
  const mb = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MB`;
  return (stage) => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    process.stderr.write(`memory ${stage}: rss ${mb(m.rss)} (peak seen ${mb(peak)}), JS heap ${mb(m.heapUsed)}, array buffers ${mb(m.arrayBuffers)}, live tensors ${mb(getDefaultBackend().memory().bytes)}\n`);
  };
}
