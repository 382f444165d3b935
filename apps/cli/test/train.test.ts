// Training through the real command (a child process, as a user runs it): loss finite and falling,
// kill -9 + --resume reproducing an uninterrupted run step for step, Ctrl-C saving a checkpoint,
// and a NaN loss stopping with the step and the last good checkpoint.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseSafetensors, serializeSafetensors } from '@mofme/nn';
import { join } from 'node:path';
import { mofme, mofmeAsync, tmp, losses, waitFor, errorLine, pattern, writePng } from './fixtures/helpers';

// The data: 4 smooth images and the same images at 55 % brightness, a fixed degradation the model
// learns within a dozen steps on every seed tried (the loss falls from ~0.03 to ~0.01), where
// the built-in data's freshly synthesised weather makes 12 losses of batch 2 too noisy to fall
// reliably. Tiny model, 32x32 crops, batch 2, no validation: a step takes a fraction of a second.
const data = join(tmp(), 'darkened');
const BASE = ['train', '--preset', 'tiny', '--crop', '32', '--batch-size', '2', '--lr', '3e-3', '--warmup', '0', '--val', 'none', '--workers', '0', '--seed', '7',
  '--data', data, '--layout', 'paired'];
const STEPS = 12;
let reference: number[] = [];

/** `--resume` the run in `out` to the end: its losses equal the uninterrupted run's, step for step. */
function resumesLikeReference(out: string): void {
  const r = mofme(['train', '--resume', out]);
  assert.is(r.code, 0, r.stderr);
  const resumed = losses(out);
  assert.is(resumed.length, STEPS);
  resumed.forEach((l, i) => assert.ok(Math.abs(l - reference[i]!) <= 1e-6 * Math.abs(reference[i]!), `step ${i + 1}: ${l} vs ${reference[i]}`));
}

test.before(async () => {
  for (const sub of ['input', 'gt']) mkdirSync(join(data, sub), { recursive: true });
  for (let i = 0; i < 4; i++) {
    const clean = pattern(64, 64, i);
    await writePng(join(data, 'gt', `p${i}.png`), clean);
    await writePng(join(data, 'input', `p${i}.png`), { ...clean, data: clean.data.map((v) => 0.55 * v) });
  }
});

test('a few training steps: the loss is finite and falls; checkpoints, config and metrics are written', () => {
  const out = join(tmp(), 'run');
  const r = mofme([...BASE, '--steps', String(STEPS), '--ckpt-every', '4', '--keep-last', '2', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  reference = losses(out);
  assert.is(reference.length, STEPS);
  assert.ok(reference.every(Number.isFinite));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(reference.slice(-4)) < mean(reference.slice(0, 4)), `losses did not fall: ${reference.map((l) => l.toFixed(4)).join(' ')}`);
  assert.ok(existsSync(join(out, 'ckpt-000012', 'model.safetensors')));
  assert.ok(existsSync(join(out, 'ckpt-000008', 'optim.safetensors')));
  assert.not.ok(existsSync(join(out, 'ckpt-000004')), 'keep-last 2 prunes older checkpoints');
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.is(cfg.train.lr, 3e-3);
  assert.is(cfg.model.dim, 48);
});

test('SIGKILL after a checkpoint, then --resume: the same losses, step for step, as the uninterrupted run', async () => {
  const out = join(tmp(), 'run');
  const { child, done } = mofmeAsync([...BASE, '--steps', String(STEPS), '--ckpt-every', '4', '--out', out]);
  await waitFor(() => existsSync(join(out, 'ckpt-000004')), 60_000, 'the first checkpoint');
  child.kill('SIGKILL');
  const killed = await done;
  assert.is(killed.signal, 'SIGKILL');
  assert.ok(losses(out).length < STEPS, 'killed before the end');
  resumesLikeReference(out);
});

test('a checkpoint saved before schedules were multipliers (lr = the scheduled rate, initialLr = the given one) resumes the same losses', () => {
  const out = join(tmp(), 'run-legacy');
  assert.is(mofme([...BASE, '--steps', String(STEPS), '--ckpt-every', '4', '--out', out]).code, 0);
  for (const later of ['ckpt-000008', 'ckpt-000012']) rmSync(join(out, later), { recursive: true });
  // the optimiser metadata as the previous code wrote it at step 4
  const file = join(out, 'ckpt-000004', 'optim.safetensors');
  const { tensors, metadata } = parseSafetensors(readFileSync(file));
  const optimizer = JSON.parse(metadata.optimizer!);
  for (const g of optimizer.paramGroups) { g.initialLr = g.lr; g.lr = g.lr * 0.37; }
  writeFileSync(file, serializeSafetensors(tensors, { ...metadata, optimizer: JSON.stringify(optimizer) }));
  resumesLikeReference(out);
});

test('--resume refuses other flags (the saved config is used)', () => {
  const r = mofme(['train', '--resume', tmp(), '--lr', '1']);
  assert.match(errorLine(r), /--resume continues with the run's saved configuration; drop --lr/);
  assert.is.not(r.code, 0);
});

test('SIGINT saves a checkpoint at the current step and exits with 130', async () => {
  const out = join(tmp(), 'run');
  const { child, done } = mofmeAsync([...BASE, '--steps', '1000', '--ckpt-every', '3', '--out', out]);
  await waitFor(() => existsSync(join(out, 'ckpt-000003')), 60_000, 'the first checkpoint');
  child.kill('SIGINT');
  const r = await done;
  assert.is(r.code, 130, r.stderr);
  const m = /interrupted at step (\d+): checkpoint (\S+);/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const step = Number(m![1]);
  const state = JSON.parse(readFileSync(join(m![2]!, 'state.json'), 'utf8'));
  assert.is(state.step, step);
  assert.is(losses(out).length, step);
});

test('--loss psnr logs minus the PSNR (capped at 30 dB) and is saved in config.json; --clean-fraction only where weather is synthesised', () => {
  const out = join(tmp(), 'run');
  const r = mofme([...BASE, '--steps', '3', '--loss', 'psnr', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const l = losses(out);
  assert.is(l.length, 3);
  // the inputs are the targets darkened to 55 %: about 8-15 dB, far from both 0 and the 30 dB cap
  assert.ok(l.every((v) => v < -3 && v > -30), `not PSNR-like: ${l.join(' ')}`);
  assert.is(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).train.loss, 'psnr');
  const bad = mofme([...BASE, '--steps', '1', '--clean-fraction', '0.2', '--out', join(tmp(), 'run2')]);
  assert.is(bad.code, 1);
  assert.match(errorLine(bad), /--clean-fraction: only for built-in or corpus data/);
});

test('a NaN loss stops the run, naming the step and the last good checkpoint', () => {
  const out = join(tmp(), 'run');
  const r = mofme([...BASE, '--steps', '6', '--ckpt-every', '2', '--out', out], { MOFME_FAULT_NAN_AT_STEP: '3' });
  assert.is(r.code, 3);
  const line = errorLine(r);
  assert.match(line, /loss is NaN at step 3/);
  assert.match(line, /ckpt-000002/);
  assert.not.ok(existsSync(join(out, 'ckpt-000003')), 'no checkpoint of poisoned weights');
});

test.run();
