/**
 * The input and output files of every command, in one place.
 *
 * Inputs: `openData` opens a dataset flag's value ("builtin", a corpus folder, a dataset folder or
 * list file) and `readImageOrFail` an image file, with one-line errors that name the flag or file.
 * @mofme/data is loaded when they are first called: main.ts imports this file at start-up (for
 * `removeCreatedEmptyDirs`), and `mofme --help` must not wait for the image codecs.
 *
 * Outputs: files and folders of every command, written so that a crash, a full disk or a second
 * Ctrl-C never leaves half a file under its final name, and so that a failed command leaves no
 * empty folders behind.
 *
 * - `writeOutput(path, bytes)` writes `.<name>.<pid>.tmp` beside the target, fsyncs it and renames it
 *   over the target (rename(2) within a folder is atomic on POSIX): readers see the old file or the
 *   new one, never a prefix. The writes are synchronous on purpose: a signal handler (Ctrl-C) runs
 *   on the event loop, so it cannot run in the middle of a synchronous write and exit halfway.
 * - Errors from the file system become one line naming the file and the reason in words, e.g.
 *   `cannot write out/photo.png: no space left on device (ENOSPC)`; Node's own message
 *   (`ENOSPC: no space left on device, write`) names no file.
 * - `outputDir(dir, flag)` creates a command's output folder and remembers the folders it had to
 *   create; `removeCreatedEmptyDirs()` (called by main.ts when a command fails) removes those that
 *   are still empty, deepest first, and never touches a folder that existed before or holds a file.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmdirSync, statSync, unlinkSync, accessSync, constants, writeSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { AnyDataset, Image, Layout } from '@mofme/data';
import { CliError, oneLine } from './errors';
import { flagOf, LAYOUTS } from './options';

// ---- inputs ----------------------------------------------------------------------------------------

/** The image files the commands read. */
export const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff']);

/** Read an image (CHW in [0, 1]); an unreadable one is a one-line error naming the file. */
export async function readImageOrFail(path: string): Promise<Image> {
  const { readImage } = await import('@mofme/data');
  try { return await readImage(path); } catch (e) { throw new CliError(`${path}: cannot read the image (${oneLine(e)})`); }
}

/** How synthesised training samples are mixed (training options of the same names; see @mofme/data's BuiltinOptions). */
export interface SynthesisMix { cleanFraction?: number; flatLightFraction?: number }

/** Open a training, validation or test dataset: 'builtin' (with a split), a corpus folder, or a dataset path. */
export async function openData(spec: string, split: 'train' | 'val' | 'test', layout?: string, synthesis: SynthesisMix = {}): Promise<AnyDataset> {
  const { builtinDataset, corpusDataset, isCorpusDir, openDataset } = await import('@mofme/data');
  if (spec === 'builtin') return builtinDataset(split, synthesis);
  if (!existsSync(spec)) throw new CliError(`--data ${spec}: no such file or folder`);
  if (isCorpusDir(spec)) return corpusDataset(spec, split, synthesis); // clean photos of `mofme data corpus`: weather on the fly
  const given = Object.entries(synthesis).find(([, v]) => v !== undefined)?.[0];
  if (given) throw new CliError(`${flagOf(given)}: only for built-in or corpus data, where weather is synthesised; ${spec} holds its own pairs`);
  if (statSync(spec).isDirectory() && readdirSync(spec).length === 0) throw new CliError(`--data ${spec}: the folder is empty`);
  let ds;
  try {
    ds = await openDataset(spec, { policy: 'skip', ...(layout ? { layout: layout as Layout } : {}) });
  } catch (e) {
    // the data package speaks to programmers ("pass { layout }"); say it in flags
    const why = oneLine(e).replace(/^openDataset: /, '').replace(/pass \{ layout \}/, `pass --layout (${LAYOUTS.join(', ')})`);
    throw new CliError(`--data ${spec}: ${why}`);
  }
  if (ds.length === 0) {
    const first = ds.skipped[0];
    const why = first ? `${ds.skipped.length} skipped; first: ${skippedProblem(first)}` : `layout ${ds.layout}`;
    throw new CliError(`--data ${spec}: no input/ground-truth pairs found (${why}); run ${selfCommand()} data check ${spec}`);
  }
  return ds;
}

/** One skipped pair in words: a list file may name an input that does not exist (the data package then reports its missing ground truth). */
export function skippedProblem(s: { input: string; target: string | null; reason: string }): string {
  if (!existsSync(s.input)) return `${s.input}: no such input image`;
  return `${s.input}: ${s.reason.replace(` for "${s.input}"`, '')}${s.target ? ` (${s.target})` : ''}`;
}

// ---- outputs ---------------------------------------------------------------------------------------

/** Words for the errno codes a user can act on. */
const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOENT: 'no such folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder',
  EEXIST: 'it already exists',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

/** One line for a failed file-system operation on `path`: "cannot write X: no space left on device (ENOSPC)". */
export function fsError(verb: string, path: string, e: unknown): CliError {
  if (e instanceof CliError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  const why = code && REASONS[code] ? `${REASONS[code]} (${code})` : code ?? oneLine(e);
  return new CliError(`cannot ${verb} ${path}: ${why}`);
}

/** The temporary name `writeOutput` uses beside `path` (hidden, so that folder scans skip it). */
function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

/** Write `bytes` to `path` atomically (temp file, fsync, rename); errors name the file. */
export function writeOutput(path: string, bytes: Uint8Array | string): void {
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const tmp = tempName(path);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done);
    fsyncSync(fd); // the bytes are on disk before the name points at them
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) try { closeSync(fd); } catch { /* already failing */ }
    try { unlinkSync(tmp); } catch { /* never created */ }
    throw fsError('write', path, e);
  }
  fsyncDir(dirname(path));
}

/** Persist a rename (the folder entry). Best effort: not every platform can open a folder. */
export function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* rename is atomic all the same */ }
}

const created: string[] = [];

/** Create (if needed) and check a writable output folder; remembers what it created. */
export function outputDir(dir: string, flag: string): string {
  const abs = resolve(dir);
  try {
    if (existsSync(abs) && !statSync(abs).isDirectory()) throw Object.assign(new Error('it is a file'), { code: 'ENOTDIR' });
    const first = mkdirSync(abs, { recursive: true }); // the top-most folder it created, if any
    if (first) {
      // every folder from `first` down to `abs` is new
      for (let d = abs; ; d = dirname(d)) {
        created.push(d);
        if (d === resolve(first) || dirname(d) === d) break;
      }
    }
    accessSync(abs, constants.W_OK);
  } catch (e) {
    throw new CliError(`${flag} ${dir}: cannot write there (${(e as NodeJS.ErrnoException).code ?? oneLine(e)})`);
  }
  return abs;
}

/** A folder inside an output folder (e.g. input/ and gt/ of `data synth`), removed too if a failure leaves it empty. */
export function outputSubdir(dir: string): string {
  try {
    if (!existsSync(dir)) { mkdirSync(dir, { recursive: true }); created.push(resolve(dir)); }
  } catch (e) {
    throw fsError('create the folder', dir, e);
  }
  return dir;
}

/** After a failure: remove the folders this process created that are still empty (deepest first). */
export function removeCreatedEmptyDirs(): void {
  const byDepth = [...new Set(created)].sort((a, b) => b.split(sep).length - a.split(sep).length);
  for (const d of byDepth) {
    try { if (readdirSync(d).length === 0) rmdirSync(d); } catch { /* gone or not empty */ }
  }
  created.length = 0;
}

/** Refuse to replace an existing file unless asked (--overwrite). */
export function assertFresh(path: string, overwrite: boolean | undefined): void {
  if (!overwrite && existsSync(path)) throw new CliError(`${path} already exists; pass --overwrite to replace it`);
}

/**
 * How the user runs this program again, for hints like "continue with: ...": the built bin
 * (dist/main.js, installed as `mofme`) answers to its own name; from the sources the command that
 * works is the root package's script, `pnpm mofme ...` (the README's set-up). Paths in hints are
 * absolute, so the hint works from the repository root, where pnpm runs the script.
 */
export function selfCommand(): string {
  return /[\\/]dist[\\/]main\.js$/.test(process.argv[1] ?? '') ? 'mofme' : 'pnpm mofme';
}
