/**
 * `mofme data corpus -o DIR`: assembles the clean-photo corpus (real scenes from Debian packages
 * fetched with `apt-get download`, plus the built-in photos) with its manifest of source, licence
 * and attribution. The work is @mofme/data's buildCorpus; this file is its command line: it refuses
 * to mix into a folder that holds something else, and prints a line per source as it goes.
 * Train on the result with `mofme train --data DIR` (weather is synthesised on the fly).
 */
import { existsSync, readdirSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { buildCorpus, isCorpusDir } from '@mofme/data';
import { CliError } from './errors';
import { selfCommand } from './io';

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
