// The other commands through the real CLI, and every bad-input case of the issue: each must print
// ONE line "mofme: error: ...", exit non-zero, and leave existing files untouched.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readImage } from '@mofme/data';
import { DEFAULT_STRIDE, DEFAULT_TILE } from '@mofme/mofme';
import { loadModelFile } from '../src/checkpoint';
import { restoreImage } from '../src/evaluate';
import { mofme, tmp, pattern, writePng, errorLine } from './fixtures/helpers';

const dir = tmp();
const ckpt = join(dir, 'run');
const dataDir = join(dir, 'pairs');
const photo = join(dir, 'photo.png');

test.before(async () => {
  // a 2-step model to evaluate and restore with
  const r = mofme(['train', '--steps', '2', '--crop', '32', '--batch-size', '2', '--val', 'none', '--workers', '0', '--out', ckpt]);
  if (r.code !== 0) throw new Error(r.stderr);
  // a paired dataset: gt/ clean, input/ noisy, 48x64
  mkdirSync(join(dataDir, 'input'), { recursive: true });
  mkdirSync(join(dataDir, 'gt'), { recursive: true });
  for (let i = 0; i < 3; i++) {
    await writePng(join(dataDir, 'gt', `p${i}.png`), pattern(48, 64, i));
    await writePng(join(dataDir, 'input', `p${i}.png`), pattern(48, 64, i, 0.4));
  }
  await writePng(photo, pattern(50, 70, 9, 0.2));
});

test('--help works for every command', () => {
  for (const args of [['--help'], ['train', '--help'], ['eval', '--help'], ['restore', '--help'], ['info', '--help'], ['metrics', '--help'], ['data', 'check', '--help'], ['data', 'synth', '--help'], ['demo', '--help'], ['report', '--help']]) {
    const r = mofme(args);
    assert.is(r.code, 0, args.join(' '));
    assert.match(r.stdout, /Usage: mofme/);
  }
});

test('unknown flag and bad values: one line naming the flag (and the choices), non-zero exit', () => {
  let r = mofme(['train', '--bogus']);
  assert.match(errorLine(r), /unknown option '--bogus'/);
  assert.is(r.code, 1);
  r = mofme(['train', '--router', 'softmax']);
  assert.match(errorLine(r), /--router.*softmax.*linear, uar/);
  r = mofme(['train', '--steps', '0']);
  assert.match(errorLine(r), /--steps.*positive integer/);
  r = mofme(['train', '--crop', '30']);
  assert.match(errorLine(r), /--crop.*30.*multiple of.*8/);
  r = mofme(['train', '--experts', '2', '--topk', '3']);
  assert.match(errorLine(r), /--topk/);
  const cfgFile = join(dir, 'bad.json');
  writeFileSync(cfgFile, JSON.stringify({ lr: 1e-3, learningRate: 2 }));
  r = mofme(['train', '--config', cfgFile]);
  assert.match(errorLine(r), /unknown key "learningRate"/);
  r = mofme(['eval', '--split', 'train']);
  assert.match(errorLine(r), /--split.*val, test/);
});

test('eval --json: identity scores equal PSNR/SSIM computed here; the model is scored per task', async () => {
  const r = mofme(['eval', '--checkpoint', ckpt, '--data', dataDir, '--layout', 'paired', '--resize', 'none', '--tile', '32', '--stride', '16', '--json']);
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const tasks = Object.keys(j.tasks);
  assert.is(tasks.length, 1);
  const t = j.tasks[tasks[0]!];
  assert.is(t.n, 3);
  // independent: mean over images of -10 log10(mean((x - y)^2) + 1e-8) on the decoded 8-bit PNGs
  let sum = 0;
  for (let i = 0; i < 3; i++) {
    const a = await readImage(join(dataDir, 'input', `p${i}.png`)), b = await readImage(join(dataDir, 'gt', `p${i}.png`));
    let s = 0;
    for (let k = 0; k < a.data.length; k++) s += (a.data[k]! - b.data[k]!) ** 2;
    sum += -10 * Math.log10(s / a.data.length + 1e-8);
  }
  assert.ok(Math.abs(t.identityPsnr - sum / 3) < 1e-6, `${t.identityPsnr} vs ${sum / 3}`);
  assert.ok(Number.isFinite(t.psnr) && t.ssim > -1 && t.ssim <= 1);
  assert.ok(Array.isArray(j.routing) && j.routing.length > 0, 'routing statistics are reported');
});

test('eval --csv and --gallery write files; existing ones are not overwritten', () => {
  const csv = join(dir, 'scores.csv'), gallery = join(dir, 'gallery.png');
  let r = mofme(['eval', '--checkpoint', ckpt, '--data', dataDir, '--layout', 'paired', '--resize', 'none', '--tile', '32', '--stride', '16', '--csv', csv, '--gallery', gallery]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /average/);
  assert.is(readFileSync(csv, 'utf8').trim().split('\n').length, 4);
  assert.ok(readFileSync(gallery).subarray(1, 4).toString() === 'PNG');
  r = mofme(['eval', '--checkpoint', ckpt, '--data', dataDir, '--layout', 'paired', '--csv', csv]);
  assert.match(errorLine(r), /already exists; pass --overwrite/);
});

test('metrics A B equals the values computed here; identical images give SSIM 1', async () => {
  const a = join(dataDir, 'input', 'p1.png'), b = join(dataDir, 'gt', 'p1.png');
  let r = mofme(['metrics', a, b, '--json']);
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const x = await readImage(a), y = await readImage(b);
  let s = 0;
  for (let k = 0; k < x.data.length; k++) s += (x.data[k]! - y.data[k]!) ** 2;
  assert.ok(Math.abs(j.images[0].psnr - -10 * Math.log10(s / x.data.length + 1e-8)) < 1e-9);
  r = mofme(['metrics', b, b, '--json']);
  assert.ok(Math.abs(JSON.parse(r.stdout).images[0].ssim - 1) < 1e-12);
  r = mofme(['metrics', join(dataDir, 'input'), join(dataDir, 'gt'), '--json']);
  assert.is(JSON.parse(r.stdout).images.length, 3);
});

test('restore: any size, PNG out with the input\'s size; existing outputs are not overwritten', async () => {
  const out = join(dir, 'restored');
  let r = mofme(['restore', photo, '-o', out, '--checkpoint', ckpt]);
  assert.is(r.code, 0, r.stderr);
  const img = await readImage(join(out, 'photo.png'));
  assert.equal([img.width, img.height], [70, 50]);
  const before = readFileSync(join(out, 'photo.png'));
  r = mofme(['restore', photo, '-o', out, '--checkpoint', ckpt]);
  assert.match(errorLine(r), /already exists; pass --overwrite/);
  assert.ok(readFileSync(join(out, 'photo.png')).equals(before));
});

test('restore streams rows into the PNG: the same pixels as restoring float planes and quantising; time per image printed', async () => {
  // 70x50 at tile 32 / stride 24: several bands (the rows are written as they leave the band) and a last column flush with the edge
  const out = join(dir, 'restored-bands');
  const r = mofme(['restore', photo, '-o', out, '--checkpoint', ckpt, '--tile', '32', '--stride', '24']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /\(70x50, 6 windows, [\d.]+ s, [\d.]+ s CPU\)/);
  const { model } = await loadModelFile(ckpt);
  const want = restoreImage(model, await readImage(photo), 32, 24);
  const got = await readImage(join(out, 'photo.png'));
  let worst = 0;
  for (let k = 0; k < got.data.length; k++) worst = Math.max(worst, Math.abs(got.data[k]! - Math.round(want.data[k]! * 255) / 255));
  assert.ok(worst < 1e-6, `largest difference ${worst * 255} levels`);
});

test('eval and restore share one default tiling (restore.ts DEFAULT_TILE / DEFAULT_STRIDE), shown in --help and used', () => {
  for (const command of ['eval', 'restore']) {
    const help = mofme([command, '--help']).stdout.replace(/\s+/g, ' ');
    assert.match(help, `--tile <n> inference window (default: ${DEFAULT_TILE})`);
    assert.match(help, `(default: ${DEFAULT_STRIDE},`);
  }
  const r = mofme(['eval', '--checkpoint', ckpt, '--data', dataDir, '--layout', 'paired', '--resize', 'none', '--json']);
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal([j.tile, j.stride], [DEFAULT_TILE, DEFAULT_STRIDE]);
  assert.ok(j.restoreSecondsPerImage > 0 && j.restoreCpuSecondsPerImage > 0, 'time per image reported');
});

test('restore without --checkpoint uses the bundled pretrained model', async () => {
  const out = join(dir, 'restored-pretrained');
  const r = mofme(['restore', photo, '-o', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /pretrained[\\/]model\.safetensors/);
  assert.ok(existsSync(join(out, 'photo.png')));
});

test('missing and corrupt checkpoints: one line, non-zero exit, nothing written', () => {
  const out = join(dir, 'never');
  let r = mofme(['restore', photo, '-o', out, '--checkpoint', join(dir, 'nope.safetensors')]);
  assert.match(errorLine(r), /nope.safetensors: no such file/);
  const bad = join(dir, 'corrupt.safetensors');
  writeFileSync(bad, Buffer.from('this is not a safetensors file at all'));
  r = mofme(['restore', photo, '-o', out, '--checkpoint', bad]);
  assert.match(errorLine(r), /corrupt.safetensors is not a readable safetensors file/);
  assert.is.not(r.code, 0);
  assert.equal(existsSync(out) ? readdirSync(out) : [], []);
  r = mofme(['train', '--resume', join(dir, 'no-such-run')]);
  assert.match(errorLine(r), /--resume .*no such folder/);
  r = mofme(['info', bad]);
  assert.match(errorLine(r), /not a readable safetensors file/);
});

test('unreadable and too-small images: one line naming the file', async () => {
  const notImage = join(dir, 'notes.png');
  writeFileSync(notImage, 'hello, I am text');
  let r = mofme(['restore', notImage, '-o', join(dir, 'o1'), '--checkpoint', ckpt]);
  assert.match(errorLine(r), /notes.png: cannot read the image/);
  const small = join(dir, 'small.png');
  await writePng(small, pattern(4, 4, 1));
  r = mofme(['restore', small, '-o', join(dir, 'o1'), '--checkpoint', ckpt]);
  assert.match(errorLine(r), /small.png: image is 4x4/);
  r = mofme(['metrics', small, small]);
  assert.match(errorLine(r), /small.png: image is 4x4/);
});

test('data folder with no pairs, and a missing ground truth: listed, non-zero exit', async () => {
  const empty = join(dir, 'empty');
  mkdirSync(join(empty, 'input'), { recursive: true });
  mkdirSync(join(empty, 'gt'), { recursive: true });
  let r = mofme(['data', 'check', empty, '--layout', 'paired']);
  assert.is(r.code, 1);
  assert.match(r.stdout, /no input\/ground-truth pairs/);
  r = mofme(['train', '--data', empty, '--layout', 'paired', '--out', join(dir, 'x')]);
  assert.match(errorLine(r), /no input\/ground-truth pairs found/);
  const broken = join(dir, 'broken');
  mkdirSync(join(broken, 'input'), { recursive: true });
  mkdirSync(join(broken, 'gt'), { recursive: true });
  await writePng(join(broken, 'input', 'a.png'), pattern(20, 20, 1));
  await writePng(join(broken, 'gt', 'a.png'), pattern(20, 20, 1));
  await writePng(join(broken, 'input', 'b.png'), pattern(20, 20, 2));
  r = mofme(['data', 'check', broken, '--layout', 'paired']);
  assert.is(r.code, 1);
  assert.match(r.stdout, /1 good pair/);
  assert.match(r.stdout, /b.png/);
  r = mofme(['data', 'check', dataDir, '--layout', 'paired', '--json']);
  assert.is(r.code, 0);
  assert.is(JSON.parse(r.stdout).pairs, 3);
});

test('unwritable output folder: one line, non-zero exit', () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  let r = mofme(['restore', photo, '-o', join(file, 'sub'), '--checkpoint', ckpt]);
  assert.match(errorLine(r), /-o .*cannot write there/);
  r = mofme(['train', '--steps', '1', '--out', join(file, 'run')]);
  assert.match(errorLine(r), /--out .*cannot write there/);
  r = mofme(['train', '--steps', '1', '--out', ckpt]);
  assert.match(errorLine(r), /already holds a training run/);
});

test('info: a preset\'s parameter count (the paper\'s MoFME E=4) and a checkpoint', () => {
  let r = mofme(['info', '--preset', 'paper', '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).parameters, 11_675_403);
  r = mofme(['info', '--preset', 'paper', '--model', 'moe', '--experts', '16', '--topk', '4', '--json']);
  assert.is(JSON.parse(r.stdout).parameters, 44_191_779);
  r = mofme(['info', ckpt]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /parameters\s+221,579/);
});

test('data synth writes pairs that data check accepts, and a contact sheet', () => {
  const out = join(dir, 'synth');
  let r = mofme(['data', 'synth', '--photos', photo, '--weathers', 'snow,haze', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  assert.is(readdirSync(join(out, 'input')).length, 2);
  r = mofme(['data', 'check', out, '--layout', 'paired']);
  assert.is(r.code, 0, r.stdout);
  r = mofme(['data', 'synth', '--photos', photo, '--weathers', 'fog', '--out', out]);
  assert.match(errorLine(r), /--weathers: invalid value "fog"/);
  r = mofme(['data', 'synth', '--photos', photo, '--sheet', '--out', join(dir, 'sheet')]);
  assert.is(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'sheet', 'contact-sheet.png')));
});

test.run();
