// Fuzzing the CLI's readers with damaged files (issue 20): random truncations and byte flips of an
// image, a model file and a list file. Whatever the damage, the command either succeeds (the file
// is still valid) or fails with a CliError, whose message main.ts prints as one line and turns
// into a non-zero exit code, naming the file; never another exception (a stack trace), and never
// a partial output. Most runs call the commands in this process (a child process costs a second
// each); three end-to-end runs check the printed line and the exit code. Runs are bounded
// (fast-check numRuns, fixed seed) so the file takes well under 30 s.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readImage, decodeImage } from '@mofme/data';
import { restoreCommand } from '../src/commands/restore';
import { loadModelFile, PRETRAINED } from '../src/checkpoint';
import { openData } from '../src/io';
import { CliError } from '../src/errors';
import { mofme, tmp, pattern, writePng, errorLine } from './fixtures/helpers';

const dir = tmp('mofme-fuzz-');
const SEED = 20;

/** A damage: cut the file at a fraction of its length, or overwrite 1-4 bytes at fractions of it. */
const damage = fc.oneof(
  fc.record({ cut: fc.double({ min: 0, max: 0.999, noNaN: true }) }),
  fc.record({ flips: fc.array(fc.tuple(fc.double({ min: 0, max: 0.999, noNaN: true }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }) }),
);
type Damage = { cut: number } | { flips: [number, number][] };

function damaged(bytes: Buffer, d: Damage): Buffer {
  if ('cut' in d) return bytes.subarray(0, Math.floor(d.cut * bytes.length));
  const out = Buffer.from(bytes);
  for (const [at, value] of d.flips) out[Math.floor(at * out.length)] = value;
  return out;
}

/** The outcome of one command: ok, or the CliError's message; anything else fails the test. */
async function outcome(run: () => Promise<unknown>, mustName: string): Promise<'ok' | string> {
  try {
    await run();
    return 'ok';
  } catch (e) {
    if (!(e instanceof CliError)) throw new Error(`not a CliError (would print a raw error): ${(e as Error)?.stack ?? e}`);
    assert.ok(e.message.length < 600, `a short line, got ${e.message.length} characters: ${e.message.slice(0, 200)}...`);
    assert.ok(e.message.includes(mustName), `the message names ${mustName}: ${e.message}`);
    assert.ok(e.exitCode !== 0);
    return e.message;
  }
}

const quietly = async <T>(fn: () => Promise<T>): Promise<T> => {
  const log = console.log;
  console.log = () => undefined;
  try { return await fn(); } finally { console.log = log; }
};

test('damaged images: restore succeeds with a whole PNG, or fails in one line naming the file and writes nothing', async () => {
  const good = join(dir, 'good.png');
  await writePng(good, pattern(24, 40, 2, 0.2));
  const bytes = readFileSync(good);
  const input = join(dir, 'img.png');
  const out = join(dir, 'restored');
  let failures = 0;
  await fc.assert(fc.asyncProperty(damage, async (d) => {
    writeFileSync(input, damaged(bytes, d));
    rmSync(out, { recursive: true, force: true });
    const r = await quietly(() => outcome(() => restoreCommand([input], { out, checkpoint: PRETRAINED, tile: 24, stride: 24, backend: 'cpu' }), input));
    const written = readdirSync(out, { withFileTypes: true }).map((e) => e.name);
    if (r === 'ok') {
      assert.equal(written, ['img.png']);
      const src = await decodeImage(readFileSync(input)), res = await readImage(join(out, 'img.png'));
      assert.equal([res.width, res.height], [src.width, src.height], 'the whole image');
    } else {
      failures++;
      assert.equal(written, [], 'no output at all after a failure');
    }
  }), { numRuns: 30, seed: SEED });
  assert.ok(failures > 0, 'some damage was caught');
});

test('damaged model files: loading succeeds or fails in one line naming the file', async () => {
  const bytes = readFileSync(PRETRAINED);
  const file = join(dir, 'model.safetensors');
  let failures = 0;
  await fc.assert(fc.asyncProperty(damage, async (d) => {
    writeFileSync(file, damaged(bytes, d));
    const r = await outcome(() => loadModelFile(file), file);
    if (r !== 'ok') failures++;
  }), { numRuns: 40, seed: SEED });
  assert.ok(failures > 0, 'some damage was caught');
});

test('damaged list files: the dataset opens or fails in one line naming the list', async () => {
  const root = join(dir, 'listed');
  for (const sub of ['input', 'gt']) mkdirSync(join(root, sub), { recursive: true });
  for (let i = 0; i < 2; i++) {
    await writePng(join(root, 'gt', `p${i}.png`), pattern(24, 24, i));
    await writePng(join(root, 'input', `p${i}.png`), pattern(24, 24, i, 0.3));
  }
  const list = join(root, 'list.txt');
  const bytes = Buffer.from('input/p0.png\ninput/p1.png\n');
  let failures = 0;
  await fc.assert(fc.asyncProperty(damage, async (d) => {
    writeFileSync(list, damaged(bytes, d));
    const r = await outcome(async () => {
      const ds = await openData(list, 'train', 'list');
      assert.ok(ds.length >= 1 && ds.length <= 2);
    }, list);
    if (r !== 'ok') failures++;
  }), { numRuns: 40, seed: SEED });
  assert.ok(failures > 0, 'some damage was caught');
});

test('end to end: a cut image and a garbled list give one line and a non-zero exit (cli.test.ts has a corrupt model file)', async () => {
  const good = join(dir, 'e2e.png');
  await writePng(good, pattern(24, 40, 5, 0.2));
  const cutImage = join(dir, 'cut.png');
  writeFileSync(cutImage, readFileSync(good).subarray(0, 100));
  const out = join(dir, 'e2e-out');
  let r = mofme(['restore', cutImage, '-o', out]);
  assert.is.not(r.code, 0);
  assert.match(errorLine(r), /cut\.png: cannot read the image/);
  assert.not.ok(readdirSync(dir).includes('e2e-out'), 'the output folder it made is removed again');
  const list = join(dir, 'garbled.txt');
  writeFileSync(list, '\u0000\u00ff\n#!?\n');
  r = mofme(['train', '--data', list, '--steps', '1', '--out', join(dir, 'never')]);
  assert.is.not(r.code, 0);
  assert.match(errorLine(r), /garbled\.txt/);
  assert.not.ok(readdirSync(dir).includes('never'));
});

test.run();
