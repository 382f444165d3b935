// Tiled whole-image inference (src/restore.ts). Attention is global over a window, so windows of a
// larger image see less context than the whole image: tiled and whole-image inference agree exactly
// where one window covers the image (the receptive field is then the same), and in general the
// output is the per-pixel average of the windows' outputs, which is what is checked here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, noGrad, randn, tensor, type Tensor } from '@mofme/tensor';
import { createModel, resolveConfig, restore, tileStarts } from '../src/index';

const img = (H: number, W: number, seed = 1): Tensor => randn([1, 3, H, W], { generator: new Generator(seed) }).clamp(-1, 1);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};
const model = createModel(resolveConfig('tiny'), { seed: 1 }).eval();
const whole = (x: Tensor): Tensor => noGrad(() => model.forward(x).image);

test('window starts cover the side, the last flush with the edge', () => {
  assert.equal(tileStarts(480, 240, 120), [0, 120, 240]);
  assert.equal(tileStarts(720, 240, 120), [0, 120, 240, 360, 480]);
  assert.equal(tileStarts(250, 240, 120), [0, 10]);
  assert.equal(tileStarts(240, 240, 120), [0]);
});

test('one window covering the image: tiled == whole-image inference', () => {
  const x = img(24, 40);
  assert.ok(maxDiff(restore(model, x).data(), whole(x).data()) < 1e-6); // default 240 shrinks to the image
  assert.ok(maxDiff(restore(model, x, { tile: 48, stride: 8 }).data(), whole(x).data()) < 1e-6);
});

test('overlapping windows: each pixel is the average of the windows covering it', () => {
  const x = img(16, 40, 2); // tile 16, stride 8 along W: windows at 0, 8, 16, 24
  const got = restore(model, x, { tile: 16, stride: 8 }).data();
  const starts = [0, 8, 16, 24];
  const outs = starts.map((s) => whole(x.slice([null, null, null, [s, s + 16]])).data());
  const want = new Float64Array(3 * 16 * 40);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 16; i++) {
      for (let j = 0; j < 40; j++) {
        const covering = starts.map((s, k) => [s, k] as const).filter(([s]) => j >= s && j < s + 16);
        want[(c * 16 + i) * 40 + j] = covering.reduce((acc, [s, k]) => acc + outs[k]![(c * 16 + i) * 16 + j - s]!, 0) / covering.length;
      }
    }
  }
  assert.ok(maxDiff(got, want) < 1e-6);
  assert.equal(restore(model, x, { tile: 16, stride: 8 }).shape, [1, 3, 16, 40]);
});

test('sides that are not multiples of the patch: reflect-pad, restore, crop back', () => {
  const x = img(21, 30, 3);
  const y = restore(model, x);
  assert.equal(y.shape, [1, 3, 21, 30]);
  // the same as whole-image inference on the reflect-padded 24x32 image, cropped
  const rows = [...Array(21).keys(), 19, 18, 17], cols = [...Array(30).keys(), 28, 27];
  const padded = x.indexSelect(2, tensor(Float32Array.from(rows))).indexSelect(3, tensor(Float32Array.from(cols))); // [1, 3, 24, 32]
  const want = whole(padded).slice([null, null, [0, 21], [0, 30]]).data();
  assert.ok(maxDiff(y.data(), want) < 1e-6);
  assert.throws(() => restore(model, x, { tile: 20 }), /multiple of the patch size/);
});

test.run();
