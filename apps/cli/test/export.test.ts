// `mofme export` and `mofme import` through the real CLI:
//   - the bundled model (apps/cli/pretrained) exports to ONNX under 5 MB; the file opens in
//     onnxruntime-node and agrees with our forward within 1e-4 on a real built-in photo with
//     synthetic snow (a center crop of the test photo rocket.jpg at the size the model was trained at);
//   - official names with the DDP `module.` prefix import into a model folder whose weights are the
//     original's, bit for bit, and `mofme export --format official` of that folder gives the same
//     official names back (a round trip through both commands);
//   - what a target cannot represent, and bad input, are refused in one line, and a refused export
//     leaves no file (not even a temporary one) behind.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Generator, keep, noGrad, randn, tensor, type Tensor } from '@mofme/tensor';
import { loadSafetensors, serializeSafetensors } from '@mofme/nn';
import { createModel, resolveConfig, toOfficialStateDict } from '@mofme/mofme';
import { builtinPhotos, cropImage, photosDir, readImage, synthesize } from '@mofme/data';
import { ROOT, mofme, tmp, errorLine } from './fixtures/helpers';
import { loadModelFile, modelMetadata } from '../src/checkpoint';

const PRETRAINED = 'apps/cli/pretrained';
const dir = tmp('mofme-export-');

test('the bundled model exports to ONNX (< 5 MB) that onnxruntime-node runs like our forward on a real photo', async () => {
  const file = join(dir, 'pretrained.onnx');
  const r = mofme(['export', PRETRAINED, '--format', 'onnx', '-o', file]);
  assert.is(r.code, 0, r.stderr);
  // the graph's fixed input is the size the model was trained at (its config's imageSize)
  const { model } = await loadModelFile(join(ROOT, PRETRAINED));
  const S = model.config.imageSize;
  assert.match(r.stdout, new RegExp(`opset 17, ${S}x${S}`));
  const size = statSync(file).size;
  assert.ok(size < 5e6 && size > 1e5, `${size} bytes`);
  const rocket = builtinPhotos().find((p) => p.file === 'rocket.jpg')!;
  const photo = await readImage(join(photosDir(), rocket.file));
  const crop = cropImage(photo, Math.floor((photo.height - S) / 2), Math.floor((photo.width - S) / 2), S, S);
  const snowy = synthesize(crop, 'snow', {}, 3).image; // CHW float32 in [0, 1]
  const x = tensor(Float32Array.from(snowy.data, (v) => v * 2 - 1), { shape: [1, 3, S, S] });
  const ours = noGrad(() => model.eval().forward(x).image.data());
  const session = await ort.InferenceSession.create(file);
  const out = await session.run({ image: new ort.Tensor('float32', Float32Array.from(x.data()), [1, 3, S, S]) });
  const theirs = out.restored!.data as Float32Array;
  let d = 0, change = 0;
  for (let i = 0; i < ours.length; i++) {
    d = Math.max(d, Math.abs(ours[i]! - theirs[i]!));
    change = Math.max(change, Math.abs(theirs[i]! - snowy.data[i]!));
  }
  assert.ok(d < 1e-4, `max |ours − onnxruntime| = ${d}`);
  assert.ok(change > 1e-2, 'the restored image differs from the input'); // the trained model does something
});

test('official names with the DDP module. prefix import bit for bit, and export back to the same names', async () => {
  // a tiny model in the official network's form (sigmoid output, official expert slots), random weights
  const config = resolveConfig('tiny', { ffn: 'mofme', officialExpertSlots: true, residualOutput: false });
  const original = createModel(config, { seed: 5 });
  noGrad(() => {
    const g = new Generator(6);
    for (const p of original.parameters()) p.assign(keep(p.add(randn([...p.shape], { generator: g, std: 0.1 }))));
  });
  const official = toOfficialStateDict(original);
  const ddp: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(official)) ddp[`module.${k}`] = v;
  const ddpFile = join(dir, 'ddp-official.safetensors');
  writeFileSync(ddpFile, serializeSafetensors(ddp));

  const out = join(dir, 'imported');
  const r = mofme(['import', ddpFile, '-o', out]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /official names, mofme, tiny preset sizes, DDP `module\.` prefix removed/);
  const imported = await loadSafetensors(join(out, 'model.safetensors'));
  const ours = original.stateDict();
  assert.equal(Object.keys(imported.tensors).sort(), Object.keys(ours).sort());
  for (const [k, v] of Object.entries(ours)) assert.equal(Array.from(imported.tensors[k]!.data()), Array.from(v.data()), k);
  const back = JSON.parse(imported.metadata.config!);
  assert.is(back.officialExpertSlots, true);
  assert.is(back.residualOutput, false);

  const again = join(dir, 'again-official.safetensors');
  const e = mofme(['export', out, '--format', 'official', '-o', again]);
  assert.is(e.code, 0, e.stderr);
  const exported = await loadSafetensors(again);
  assert.equal(Object.keys(exported.tensors).sort(), Object.keys(official).sort());
  for (const [k, v] of Object.entries(official)) assert.equal(Array.from(exported.tensors[k]!.data()), Array.from(v.data()), k);
  // and that official file (official names, our config in its metadata) imports again
  const i2 = mofme(['import', again, '-o', join(dir, 'again')]);
  assert.is(i2.code, 0, i2.stderr);
  assert.match(i2.stdout, /official names, mofme, config from the metadata/);
  const twice = await loadSafetensors(join(dir, 'again', 'model.safetensors'));
  for (const [k, v] of Object.entries(ours)) assert.equal(Array.from(twice.tensors[k]!.data()), Array.from(v.data()), k);

  // our own model file, DDP-prefixed (a PyTorch twin's state dict saved from the DDP wrapper) also imports
  const twin: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(ours)) twin[`module.${k}`] = v;
  const twinFile = join(dir, 'twin.safetensors');
  writeFileSync(twinFile, serializeSafetensors(twin, modelMetadata(config, 7)));
  const t = mofme(['import', twinFile, '-o', join(dir, 'twin')]);
  assert.is(t.code, 0, t.stderr);
  assert.match(t.stdout, /our names, mofme, DDP/);
});

test('refusals are one line, and a refused export writes nothing', () => {
  const empty = join(dir, 'empty');
  const r1 = mofme(['export', PRETRAINED, '--format', 'official', '-o', join(dir, 'x.safetensors')]);
  assert.match(errorLine(r1), /cannot export .* in the official format: .*sigmoid/);
  assert.is(existsSync(join(dir, 'x.safetensors')), false);
  const r2 = mofme(['export', PRETRAINED, '--format', 'onnx', '--size', '60x64', '-o', join(dir, 'y.onnx')]);
  assert.match(errorLine(r2), /cannot export .* to ONNX: width 60 must be a positive multiple of the patch size 8/);
  assert.equal(readdirSync(dir).filter((f) => f.startsWith('.') || f.startsWith('y.')), []); // no temporary file either
  const r3 = mofme(['export', PRETRAINED, '--format', 'pth', '-o', join(dir, 'z')]);
  assert.match(errorLine(r3), /--format.*pth.*onnx, official, safetensors/);
  const r4 = mofme(['export', PRETRAINED, '--format', 'safetensors', '-o', join(dir, 'no-such-folder', 'm.safetensors')]);
  assert.match(errorLine(r4), /the folder .*no-such-folder does not exist/);
  const file = join(dir, 'exists.safetensors');
  writeFileSync(file, 'keep me');
  const r5 = mofme(['export', PRETRAINED, '--format', 'safetensors', '-o', file]);
  assert.match(errorLine(r5), /already exists; pass --overwrite/);
  const r6 = mofme(['import', file, '-o', empty]);
  assert.match(errorLine(r6), /exists\.safetensors is not a readable safetensors file/);
  const wrong: Record<string, Tensor> = { 'module.head.0.weight': tensor([1, 2, 3]) };
  const wrongFile = join(dir, 'wrong.safetensors');
  writeFileSync(wrongFile, serializeSafetensors(wrong));
  const r7 = mofme(['import', wrongFile, '-o', empty]);
  assert.match(errorLine(r7), /wrong\.safetensors: /);
  assert.is(existsSync(join(empty, 'model.safetensors')), false);
});

test.run();
