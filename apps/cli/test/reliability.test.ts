// The command line under faults a user meets (issue 20, points 3-6 and 8-10): real signals sent to
// a training child process, a full disk and a read-only folder (fs-faults.mjs injects them with
// Node's own error shapes), NaN weights, output piped into a reader that quits, flag bounds and
// --resume changes. Every run is tiny (32x32 crops, batch 2, no validation unless it is the point).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImage } from '@mofme/data';
import { createModel, resolveConfig } from '@mofme/mofme';
import { loadModelFile, loadWeightsInto } from '../src/checkpoint';
import { openData } from '../src/io';
import { mofme, mofmeAsync, tmp, losses, waitFor, errorLine, pattern, writePng, ROOT } from './fixtures/helpers';

/** The message of the CliError `fn` throws (main.ts prints it as the one error line); fails if it does not throw one. */
async function cliErrorOf(fn: () => Promise<unknown>): Promise<string> {
  try { await fn(); } catch (e) {
    assert.is((e as Error).name, 'CliError', String(e));
    return (e as Error).message;
  }
  assert.unreachable('expected a CliError');
  return '';
}

const FAULTS = fileURLToPath(new URL('./fixtures/fs-faults.mjs', import.meta.url));
const withFaults = (env: Record<string, string>) => ({ NODE_OPTIONS: `--import=${FAULTS}`, ...env });
const BASE = ['train', '--preset', 'tiny', '--crop', '32', '--batch-size', '2', '--val', 'none', '--workers', '0', '--seed', '3', '--warmup', '0'];

const dir = tmp();
const run = join(dir, 'run');
const photo = join(dir, 'photo.png');
const ckptModel = () => join(run, 'ckpt-000002', 'model.safetensors');

test.before(async () => {
  const r = mofme([...BASE, '--steps', '2', '-o', run]);
  if (r.code !== 0) throw new Error(r.stderr);
  await writePng(photo, pattern(50, 70, 4, 0.2));
});

/** Steps logged so far ("step N/T" lines with --log-every 1). */
const loggedStep = (stdout: string) => Math.max(0, ...[...stdout.matchAll(/^step (\d+)\//gm)].map((m) => Number(m[1])));
/** Leftovers of an unfinished write: temp files or folders. */
const leftovers = (folder: string) => readdirSync(folder).filter((n) => /\.tmp$|\.old$/.test(n));

// ---- point 3: signals ------------------------------------------------------------------------------

test('SIGTERM stops training within a step, saves that step without validating, exits 130', async () => {
  const out = join(dir, 'sigterm');
  // no checkpoint or validation would come for 100000 steps: only the signal can end this run
  const { child, done } = mofmeAsync(['train', '--preset', 'tiny', '--crop', '32', '--batch-size', '2', '--workers', '0', '--val-limit', '2', '--val-crop', '32',
    '--steps', '100000', '--ckpt-every', '100000', '--log-every', '1', '--out', out]);
  let seen = '';
  child.stdout!.on('data', (d) => (seen += d));
  await waitFor(() => loggedStep(seen) >= 2, 120_000, 'two training steps');
  const atSignal = loggedStep(seen);
  const t0 = Date.now();
  child.kill('SIGTERM');
  const r = await done;
  assert.is(r.code, 130, r.stderr);
  assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms to stop`);
  const m = /interrupted at step (\d+): checkpoint (\S+); continue with: pnpm mofme train --resume (\S+)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const step = Number(m![1]);
  assert.ok(step >= atSignal && step <= atSignal + 2, `signal after step ${atSignal}, stopped at ${step}`);
  assert.is(JSON.parse(readFileSync(join(m![2]!, 'state.json'), 'utf8')).step, step);
  assert.not.match(r.stdout, /val @/, 'no validation before the save');
  assert.is(m![3], out);
});

test('two Ctrl-C in a row: never a half-written checkpoint; --resume continues from a complete one', async () => {
  const out = join(dir, 'sigint2');
  const { child, done } = mofmeAsync([...BASE, '--steps', '100000', '--ckpt-every', '2', '--log-every', '1', '--out', out]);
  let seen = '';
  child.stdout!.on('data', (d) => (seen += d));
  await waitFor(() => loggedStep(seen) >= 3, 120_000, 'three training steps');
  child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGINT');
  const r = await done;
  assert.is(r.code, 130, r.stderr);
  assert.equal(leftovers(out), [], 'no .tmp or .old left behind');
  const ckpts = readdirSync(out).filter((n) => /^ckpt-\d+$/.test(n));
  assert.ok(ckpts.length > 0, 'the checkpoint of step 2 (at least) is there');
  for (const c of ckpts) for (const f of ['model.safetensors', 'optim.safetensors', 'state.json']) assert.ok(existsSync(join(out, c, f)), `${c}/${f}`);
  const newest = Math.max(...ckpts.map((c) => Number(c.slice(5))));
  const resumed = mofme(['train', '--resume', out, '--steps', String(newest + 1)]);
  assert.is(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, new RegExp(`resuming .*ckpt-0*${newest} at step ${newest}`));
  assert.is(losses(out).length, newest + 1);
});

// ---- point 4: atomic outputs, ENOSPC and EACCES name the file ---------------------------------------

test('a full disk during restore: one line naming the file, no partial file, the rerun succeeds', async () => {
  const out = join(dir, 'full-disk');
  let r = mofme(['restore', photo, '-o', out, '--checkpoint', run], withFaults({ MOFME_TEST_DISK_BYTES: '300' }));
  assert.is.not(r.code, 0);
  assert.match(errorLine(r), new RegExp(`cannot write ${out}/photo.png: no space left on device \\(ENOSPC\\)`));
  assert.not.ok(existsSync(out), 'neither photo.png nor its temp file, nor the folder made for them');
  r = mofme(['restore', photo, '-o', out, '--checkpoint', run]);
  assert.is(r.code, 0, r.stderr);
  assert.is((await readImage(join(out, 'photo.png'))).width, 70);
});

test('a full disk at a checkpoint: one line naming the file, no checkpoint folder, no temp folder', () => {
  const out = join(dir, 'full-disk-train');
  // config.json and metrics.jsonl fit; the model file (~0.9 MB) does not
  const r = mofme([...BASE, '--steps', '2', '--ckpt-every', '2', '--out', out], withFaults({ MOFME_TEST_DISK_BYTES: '20000' }));
  assert.is.not(r.code, 0);
  assert.match(errorLine(r), /cannot write \S+ckpt-000002\.tmp\/model\.safetensors: no space left on device \(ENOSPC\)/);
  assert.equal(readdirSync(out).filter((n) => n.startsWith('ckpt-')), []);
  assert.equal(leftovers(out), []);
});

test('eval --csv into a full disk leaves no CSV; a read-only folder is refused naming the file', () => {
  const csv = join(dir, 'scores.csv');
  let r = mofme(['eval', '--checkpoint', run, '--limit', '1', '--csv', csv, '--tile', '64', '--stride', '64'], withFaults({ MOFME_TEST_DISK_BYTES: '10' }));
  assert.match(errorLine(r), /cannot write \S+scores\.csv: no space left on device \(ENOSPC\)/);
  assert.not.ok(existsSync(csv));
  const ro = join(dir, 'read-only');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  const root = process.getuid?.() === 0; // root ignores the mode bits: then the fault is injected
  r = mofme(['restore', photo, '-o', ro, '--checkpoint', run], root ? withFaults({ MOFME_TEST_EACCES_UNDER: ro }) : {});
  assert.is.not(r.code, 0);
  assert.match(errorLine(r), root ? new RegExp(`cannot write ${ro}/photo.png: permission denied \\(EACCES\\)`) : new RegExp(`-o ${ro}: cannot write there \\(EACCES\\)`));
  assert.equal(readdirSync(ro), []);
});

// ---- point 5: non-finite numbers -------------------------------------------------------------------

/** A copy of a model file with one float of its first F32 tensor set to NaN; returns the tensor's name. */
function poisonedCopy(src: string, dest: string): string {
  const bytes = readFileSync(src);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const [name, info] = Object.entries(header).find(([k, v]) => k !== '__metadata__' && v.dtype === 'F32')!;
  bytes.writeFloatLE(NaN, 8 + headerLen + info.data_offsets[0] + 4);
  writeFileSync(dest, bytes);
  return name;
}

test('restore, eval and info refuse a model with NaN weights, naming the tensor; nothing is written', async () => {
  const bad = join(dir, 'nan.safetensors');
  const name = poisonedCopy(ckptModel(), bad);
  const out = join(dir, 'nan-out', 'deeper');
  let r = mofme(['restore', photo, '-o', out, '--checkpoint', bad]);
  assert.is.not(r.code, 0);
  assert.match(errorLine(r), new RegExp(`nan\\.safetensors: tensor ${name.replace(/\./g, '\\.')}: NaN at index 1`));
  assert.not.ok(existsSync(join(dir, 'nan-out')), 'the output folders it created are removed again');
  // eval, info and report load through the same function
  assert.match(await cliErrorOf(() => loadModelFile(bad)), /NaN at index 1/);
});

test('weights that overflow to NaN outputs: training stops naming the step, nothing becomes best/', () => {
  const out = join(dir, 'diverged');
  const r = mofme(['train', '--preset', 'tiny', '--crop', '32', '--batch-size', '2', '--workers', '0', '--lr', '1e9', '--warmup', '0',
    '--steps', '3', '--ckpt-every', '1', '--val-limit', '2', '--val-crop', '32', '--out', out]);
  assert.is(r.code, 3, r.stderr);
  assert.match(errorLine(r), /(validation at step 1|weights are not finite after step \d|loss is NaN at step \d).*Last good checkpoint/);
  assert.not.ok(existsSync(join(out, 'best')));
});

// ---- point 6: validation sized to the run ----------------------------------------------------------

test('default validation: 16 center crops of 128 px, its size and cost printed', () => {
  const out = join(dir, 'val');
  const r = mofme(['train', '--preset', 'tiny', '--crop', '32', '--batch-size', '2', '--workers', '0', '--steps', '1', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /validation: center 128x128 crops of 16 images of builtin/);
  assert.match(r.stdout, /val @ 1: PSNR [\d.]+ dB .*\(16 images in [\d.]+ s\)/);
  assert.ok(existsSync(join(out, 'best')), 'a finite validation makes best/');
});

// ---- points 8-10: the command, errors, flags ----------------------------------------------------------

test('output piped into a reader that quits: no EPIPE stack, exit 0', () => {
  const cmd = `"${process.execPath}" --conditions=source --import tsx apps/cli/src/main.ts info --preset paper --json 2>"${join(dir, 'epipe.txt')}" | true`;
  const r = spawnSync('bash', ['-c', cmd], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  assert.is(r.status, 0);
  assert.is(readFileSync(join(dir, 'epipe.txt'), 'utf8'), '');
});

test('the hints print `pnpm mofme ...`, the root script that runs this CLI', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(pkg.scripts.mofme!, /apps\/cli\/src\/main\.ts$/);
  const r = mofme(['data', 'synth', '--photos', photo, '--weathers', 'snow', '-o', join(dir, 'synth')]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /train on them with: pnpm mofme train --data /);
});

test('empty data folder and a list naming a missing input: one short line naming the folder / file', async () => {
  const empty = join(dir, 'empty-data');
  mkdirSync(empty);
  let r = mofme([...BASE, '--data', empty, '--out', join(dir, 'x1')]);
  assert.match(errorLine(r), new RegExp(`--data ${empty}: the folder is empty`));
  assert.not.ok(existsSync(join(dir, 'x1')), 'no empty run folder left behind');
  const list = join(dir, 'list.txt');
  writeFileSync(list, 'input/never-there.png\n');
  const msg = await cliErrorOf(() => openData(list, 'train'));
  assert.match(msg, /never-there\.png: no such input image/);
  assert.not.match(msg, /ground truth not found/);
});

test('a model file whose weights do not match its metadata: one short line naming a key', async () => {
  const bytes = readFileSync(ckptModel());
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8'));
  const config = JSON.parse(header.__metadata__.config);
  config.depth += 1; // the file now claims one block more than it holds
  header.__metadata__.config = JSON.stringify(config);
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const bad = join(dir, 'mismatch.safetensors');
  writeFileSync(bad, Buffer.concat([len, h, bytes.subarray(8 + headerLen)]));
  const line = await cliErrorOf(() => loadModelFile(bad));
  assert.match(line, /mismatch\.safetensors: its weights do not match the config in its metadata: missing \S+/);
  assert.ok(line.length < 400, `${line.length} characters`);
  // the same for weights loaded into a network built from flags (--init, --resume)
  const deeper = createModel(resolveConfig('tiny', { depth: config.depth + 1 }), { seed: 0 });
  const init = await cliErrorOf(() => loadWeightsInto(deeper, ckptModel(), '--init', 'pass the same --preset'));
  assert.match(init, /^--init \S+model\.safetensors: its weights do not fit the network of this run: missing \S+/);
  assert.ok(init.length < 400, `${init.length} characters`);
});

test('flags: bounds on numbers; -o on every command that writes a folder', () => {
  let r = mofme(['train', '--steps', '99999999999999999999']);
  assert.match(errorLine(r), /--steps.*positive integer/);
  r = mofme(['train', '--steps', '2000000000']);
  assert.match(errorLine(r), /--steps.*at most 1,000,000,000/);
  r = mofme(['restore', photo, '-o', join(dir, 'o'), '--tile', '100000']);
  assert.match(errorLine(r), /--tile.*at most 16,384/);
  const cfg = join(dir, 'huge.json');
  writeFileSync(cfg, '{"steps": 1e20}');
  r = mofme(['train', '--config', cfg]);
  assert.match(errorLine(r), /steps: expected at most/);
  for (const args of [['train'], ['restore'], ['data', 'synth'], ['report'], ['demo']]) {
    assert.match(mofme([...args, '--help']).stdout, /-o, --out <dir>/, args.join(' '));
  }
});

test('--resume takes more --steps and a new --log-every; refuses the rest naming the flag', () => {
  const out = run; // the 2-step run of test.before (the last test: the others are done with it)
  let r = mofme(['train', '--resume', out, '--steps', '2']);
  assert.match(errorLine(r), /--steps 2: the run is already at step 2/);
  r = mofme(['train', '--resume', out, '--lr', '1', '--log-every', '1']);
  assert.match(errorLine(r), /drop --lr \(only --steps, --workers, --ckpt-every, --keep-last, --log-every may change\)/);
  r = mofme(['train', '--resume', out, '--steps', '4', '--log-every', '1']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^step 3\/4 /m);
  // peak memory in the log line and in metrics.jsonl: a Node process holding a model is well over 20 MiB
  const peak = Number(/^step 3\/4 .* peak (\d+) MiB/m.exec(r.stdout)?.[1]);
  assert.ok(peak > 20 && peak < 64 * 1024, r.stdout);
  const trainLines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'train' && l.step > 2);
  assert.ok(trainLines.length === 2 && trainLines.every((l) => l.peakMiB > 20), JSON.stringify(trainLines));
  assert.is(losses(out).length, 4);
  assert.is(JSON.parse(readFileSync(join(out, 'ckpt-000004', 'state.json'), 'utf8')).config.steps, 4);
});

test.run();
