/**
 * `mofme restore IMAGES... -o DIR`: photos of any size through a model file (the bundled pretrained
 * one by default) with tiled inference, written as PNG beside their names. Every input is read
 * before anything is written, so a bad one fails the command with nothing half done.
 */
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { encodePhotoPng, readPhoto, type Photo } from '@mofme/data';
import { checkpointOrPretrained, loadModelFile } from '../checkpoint';
import { selectBackend } from '../backend';
import type { TrainConfig } from '../options';
import { restoreImage } from '../evaluate';
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
  await selectBackend(o);
  const { model, file } = await loadModelFile(checkpointOrPretrained(o.checkpoint));
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
