/**
 * `mofme data`: the dataset tools.
 *   check   count the pairs of a dataset per task and list every problem (exit 1 if there is one);
 *   synth   synthesise weather on photos: input/ + gt/ pairs (the 'paired' layout) or a contact sheet;
 *   corpus  assemble the clean-photo corpus (real scenes from Debian packages fetched with
 *           `apt-get download`, plus the built-in photos) with its manifest of source, licence and
 *           attribution. The work is @mofme/data's buildCorpus; this command refuses to mix into a
 *           folder that holds something else, and prints a line per source as it goes. Train on the
 *           result with `mofme train --data DIR` (weather is synthesised on the fly).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';
import { buildCorpus, builtinPhotos, encodePng, isCorpusDir, openDataset, photosDir, readImage, synthesize, TASKS, WEATHERS, type Image, type Layout, type Weather } from '@mofme/data';
import { CliError, oneLine } from '../errors';
import { gridPng } from '../images';
import { assertFresh, IMAGE_EXT, outputDir, outputSubdir, readImageOrFail, selfCommand, skippedProblem, writeOutput } from '../io';

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
    const img = await readImageOrFail(p);
    if (Math.min(img.height, img.width) < 32) throw new CliError(`${p}: image is ${img.width}x${img.height}; at least 32x32 is needed to synthesise weather`);
    cleans.push(img);
  }
  if (o.sheet) {
    const file = join(out, 'contact-sheet.png');
    assertFresh(file, o.overwrite);
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
      assertFresh(join(out, 'input', name), o.overwrite);
      const { image } = synthesize(c, w as Weather, {}, o.seed + 1_000_000 * i + 1000 * k + v);
      writeOutput(join(out, 'input', name), await encodePng(image));
      writeOutput(join(out, 'gt', name), await encodePng(c));
      n++;
    }
  }
  console.log(`wrote ${n} pairs to ${out}/input and ${out}/gt (train on them with: ${selfCommand()} train --data ${out} --layout paired)`);
  return 0;
}

export async function corpusCommand(o: { out: string; debs?: string; download?: boolean; builtin?: boolean }): Promise<number> {
  const out = resolve(o.out);
  if (existsSync(out) && readdirSync(out).some((f) => !f.startsWith('.')) && !isCorpusDir(out)) {
    throw new CliError(`-o ${out}: the folder holds other files; choose an empty folder or an existing corpus`);
  }
  if (o.debs && !existsSync(o.debs)) throw new CliError(`--debs ${o.debs}: no such folder`);
  const t0 = performance.now();
  const r = await buildCorpus({ out, ...(o.debs ? { debDir: resolve(o.debs) } : {}), download: o.download !== false, builtin: o.builtin !== false });
  console.log(`done in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${r.entries.length} scenes; manifest ${relative(process.cwd(), r.manifest) || r.manifest}`);
  if (r.problems.length) console.log(`${r.problems.length} source(s) or file(s) skipped (listed above)`);
  console.log(`train on it: ${selfCommand()} train --data ${out} --val builtin`);
  return r.entries.length ? 0 : 1;
}
