// Tiled whole-image inference (src/restore.ts). Attention is global over a window, so windows of a
// larger image see less context than the whole image: tiled and whole-image inference agree exactly
// where one window covers the image (the receptive field is then the same), and in general the
// output is the per-pixel weighted average of the windows' outputs, which is what is checked here
// (flat weights and the raised-cosine blend), along with seams on a 2560x1440 photo-sized image
// and the memory-bounded band order (progress callbacks, no full-size accumulators).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conv2d, CpuBackend, Generator, noGrad, randn, tensor, withBackend, type Tensor } from '@mofme/tensor';
import { blendWeights, createModel, planesSource, resolveConfig, restore, restorePlanes, restoreRows, tileStarts, type MoFME, type PixelSource } from '../src/index';

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

for (const blend of ['flat', 'cosine'] as const) {
  test(`overlapping windows (${blend}): each pixel is the weighted average of the windows covering it`, () => {
    const x = img(16, 40, 2); // tile 16, stride 8 along W: windows at 0, 8, 16, 24
    const got = restore(model, x, { tile: 16, stride: 8, blend }).data();
    const starts = [0, 8, 16, 24];
    const outs = starts.map((s) => whole(x.slice([null, null, null, [s, s + 16]])).data());
    // the weight of window column t: 1 (flat), or sin²(π(t + ½)/16) written out here (cosine)
    const w = (t: number): number => (blend === 'flat' ? 1 : Math.sin((Math.PI * (t + 0.5)) / 16) ** 2);
    const want = new Float64Array(3 * 16 * 40);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 16; i++) {
        for (let j = 0; j < 40; j++) {
          const covering = starts.map((s, k) => [s, k] as const).filter(([s]) => j >= s && j < s + 16);
          const num = covering.reduce((acc, [s, k]) => acc + w(j - s) * outs[k]![(c * 16 + i) * 16 + j - s]!, 0);
          want[(c * 16 + i) * 40 + j] = num / covering.reduce((acc, [s]) => acc + w(j - s), 0);
        }
      }
    }
    assert.ok(maxDiff(got, want) < 1e-5, `max diff ${maxDiff(got, want)}`);
    assert.equal(restore(model, x, { tile: 16, stride: 8 }).shape, [1, 3, 16, 40]);
  });
}

test('blend weights: flat is all ones; cosine peaks mid-window, is symmetric, never zero, and half-overlaps sum to one', () => {
  assert.equal(Array.from(blendWeights(4, 'flat')), [1, 1, 1, 1]);
  const w = blendWeights(240, 'cosine');
  assert.ok(w[0]! > 0 && w[0]! < 0.01, `edge weight ${w[0]}`);
  assert.ok(Math.abs(w[119]! - 1) < 1e-3 && Math.abs(w[120]! - 1) < 1e-3);
  for (let i = 0; i < 240; i++) assert.ok(Math.abs(w[i]! - w[239 - i]!) < 1e-12);
  // stride = tile / 2: window t and its neighbour at t + 120 add to sin² + cos² = 1
  for (let i = 0; i < 120; i++) assert.ok(Math.abs(w[i]! + w[i + 120]! - 1) < 1e-9, `i=${i}`);
});

// ---- seams on a photo-sized image --------------------------------------------------------------

/**
 * A cheap stand-in for the network that, like it, is wrong near a window's edges: a 3x3 box blur
 * with zero padding (edge pixels lose a third or more of their mass). Whole-image inference of it
 * is the same blur over the whole image, so any extra error at internal window edges is a seam.
 */
function blurModel(): MoFME {
  const kernel = tensor(new Float32Array(3 * 9).fill(1 / 9), { shape: [3, 1, 3, 3] });
  const fake = {
    config: { patchSize: 8 }, training: false,
    eval() { return fake; }, train() { return fake; },
    forward: (x: Tensor) => ({ image: conv2d(x, kernel, undefined, { padding: 1, groups: 3 }) }),
  };
  return fake as unknown as MoFME;
}

/** Worst error against `want` in columns at a window edge (j % 120 in {0, 119}) vs all other columns, away from the image border. */
function seamErrors(got: Float32Array, want: (c: number, i: number, j: number) => number, H: number, W: number): { edge: number; interior: number } {
  let edge = 0, interior = 0;
  for (let c = 0; c < 3; c++) {
    for (let i = 2; i < H - 2; i++) {
      for (let j = 2; j < W - 2; j++) {
        const e = Math.abs(got[(c * H + i) * W + j]! - want(c, i, j));
        if (j % 120 === 0 || j % 120 === 119) edge = Math.max(edge, e); else interior = Math.max(interior, e);
      }
    }
  }
  return { edge, interior };
}

test('a constant and a smooth 2560x1440 image: no seams at window edges with the cosine blend (flat averaging shows them)', () => {
  const H = 1440, W = 2560, fake = blurModel();
  const constant = new Float32Array(3 * H * W).fill(0.5);
  // smooth: a slow ramp plus a wave of period 300 px, different per channel
  const smoothValue = (c: number, i: number, j: number): number => 0.3 + 0.2 * Math.sin((2 * Math.PI * (j + 40 * c)) / 300) * Math.cos((2 * Math.PI * i) / 500) + 0.1 * (j / W);
  const smooth = new Float32Array(3 * H * W);
  for (let c = 0; c < 3; c++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) smooth[(c * H + i) * W + j] = smoothValue(c, i, j);
  // the box blur of the smooth image, away from the border: the mean of the 3x3 neighbourhood
  const blurred = (c: number, i: number, j: number): number => {
    let s = 0;
    for (let a = -1; a <= 1; a++) for (let b = -1; b <= 1; b++) s += smooth[(c * H + i + a) * W + j + b]!;
    return s / 9;
  };
  let tiles = 0, total = 0;
  const cosine = (data: Float32Array) => restorePlanes(fake, { data, channels: 3, height: H, width: W }, { tile: 240, stride: 120, onTile: (d, t) => { tiles = d; total = t; } });
  const flat = (data: Float32Array) => restorePlanes(fake, { data, channels: 3, height: H, width: W }, { tile: 240, stride: 120, blend: 'flat' });
  const c1 = seamErrors(cosine(constant), () => 0.5, H, W);
  assert.is(total, 11 * 21, 'windows of a 2560x1440 image at 240/120');
  assert.is(tiles, total, 'progress reaches the last window');
  // a window edge weighs 4e-5 of a window centre: the constant stays constant to ~1e-5
  assert.ok(c1.edge < 5e-5 && c1.interior < 5e-5, `constant, cosine: edge ${c1.edge}, interior ${c1.interior}`);
  const f1 = seamErrors(flat(constant), () => 0.5, H, W);
  assert.ok(f1.edge > 0.05, `constant, flat: window edges should show (edge error ${f1.edge})`);
  const c2 = seamErrors(cosine(smooth), blurred, H, W);
  assert.ok(c2.edge < 5e-5 && c2.edge < 3 * c2.interior + 2e-5, `smooth, cosine: edge ${c2.edge}, interior ${c2.interior}`);
  const f2 = seamErrors(flat(smooth), blurred, H, W);
  assert.ok(f2.edge > 100 * c2.edge, `smooth, flat: edge ${f2.edge} vs cosine ${c2.edge}`);
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

test("range 'unit' (photos): [0, 1] pixels mapped to [-1, 1] per window, output clamped; a NaN output is an error naming the pixel", () => {
  const H = 40, W = 56, fake = blurModel();
  const g = new Generator(5);
  const pixels = Float32Array.from({ length: 3 * H * W }, () => g.uniform(0, 1));
  const got = restorePlanes(fake, { data: pixels, channels: 3, height: H, width: W }, { tile: 24, stride: 16, range: 'unit' });
  const normalised = Float32Array.from(pixels, (v) => (v - 0.5) / 0.5);
  const want = restorePlanes(fake, { data: normalised, channels: 3, height: H, width: W }, { tile: 24, stride: 16 }).map((v) => Math.min(1, Math.max(0, v)));
  assert.ok(maxDiff(got, want) < 1e-6, `max diff ${maxDiff(got, want)}`);
  assert.ok(got.some((v) => v === 0) && got.every((v) => v >= 0 && v <= 1), 'clamped to [0, 1]');
  const broken = { ...fake, forward: (x: Tensor) => ({ image: x.sub(10).sqrt() }) } as unknown as MoFME; // sqrt of a negative: NaN
  assert.throws(() => restorePlanes(broken, { data: pixels, channels: 3, height: H, width: W }, { range: 'unit' }), /output is NaN at pixel \(x 0, y 0\) of a 56x40 image/);
  // NaN at two pixels (one window covers the image): the error names the first row by row, (x 5, y 3) in
  // channel 2, not (x 1, y 4), which comes first channel by channel
  const mask = new Float32Array(3 * H * W);
  mask[(2 * H + 3) * W + 5] = NaN;
  mask[(0 * H + 4) * W + 1] = NaN;
  const spotted = { ...fake, forward: (x: Tensor) => ({ image: x.add(tensor(mask, { shape: [1, 3, H, W] })) }) } as unknown as MoFME;
  assert.throws(() => restorePlanes(spotted, { data: pixels, channels: 3, height: H, width: W }, { range: 'unit' }), /output is NaN at pixel \(x 5, y 3\) of a 56x40 image/);
});

test('restoreRows: rows reach the sink once each, top to bottom, one band at a time, from windows read on demand (also when padded)', () => {
  const fake = blurModel();
  for (const [H, W, tile, stride] of [[100, 72, 24, 16], [21, 30, 24, 16], [20, 90, 32, 24]] as const) {
    const g = new Generator(H * W);
    const pixels = Float32Array.from({ length: 3 * H * W }, () => g.uniform(-1, 1));
    const want = restorePlanes(fake, { data: pixels, channels: 3, height: H, width: W }, { tile, stride });
    // a source that keeps no planes of its own beyond the test's: it answers window reads and counts them
    const planes = planesSource({ data: pixels, channels: 3, height: H, width: W });
    let reads = 0;
    const source: PixelSource = { channels: 3, height: H, width: W, readWindow: (y0, x0, h, w, into) => { reads++; planes.readWindow(y0, x0, h, w, into); } };
    const got = new Float32Array(3 * H * W), seen: number[] = [];
    let next = 0, windows = 0;
    restoreRows(fake, source, (y0, n, rows) => {
      assert.is(y0, next, `${H}x${W}: rows arrive in order`);
      assert.ok(n >= 1 && n <= tile, `${H}x${W}: a band of ${n} rows`);
      assert.is(rows.length, 3 * n * W);
      for (let c = 0; c < 3; c++) got.set(rows.subarray(c * n * W, (c + 1) * n * W), (c * H + y0) * W);
      seen.push(n);
      next = y0 + n;
    }, { tile, stride, onTile: (_, total) => { windows = total; } });
    assert.is(next, H, `${H}x${W}: every row handed on`);
    assert.ok(seen.length > 1 || H <= tile, `${H}x${W}: in bands (${seen.join(', ')})`);
    assert.ok(reads >= windows, `${H}x${W}: ${reads} window reads for ${windows} windows`);
    assert.ok(maxDiff(got, want) === 0, `${H}x${W}: the same pixels as restorePlanes (max diff ${maxDiff(got, want)})`);
  }
});

test('the first window\'s memory faulted in ahead (CpuBackend.reserve) changes no bit of the output', () => {
  const H = 64, W = 112, g = new Generator(7);
  const pixels = Float32Array.from({ length: 3 * H * W }, () => g.uniform(-1, 1));
  const run = (reserve: boolean) => {
    const backend = new CpuBackend(), asked: number[] = [];
    const real = backend.reserve.bind(backend);
    backend.reserve = (bytes, scratch) => { asked.push(bytes); return reserve ? real(bytes, scratch) : Promise.resolve(); };
    return withBackend(backend, () => {
      const m = createModel(resolveConfig('tiny'), { seed: 1 }).eval();
      const out = restorePlanes(m, { data: pixels, channels: 3, height: H, width: W }, { tile: 64, stride: 48 });
      // a [16, 64, 64] feature map's array, recycled from the pool: from the arena if one was used
      const recycled = backend.data(backend.fill(16 * 64 * 64, 0, 'float32'));
      return { out, asked, arena: recycled.buffer instanceof SharedArrayBuffer };
    });
  };
  const a = run(true), b = run(false);
  assert.is(a.asked.length, 1, 'restoreRows asks once, before the first window');
  assert.ok(a.asked[0]! > 0);
  assert.ok(a.arena, 'the windows ran on arrays from the reserved arena');
  assert.not.ok(b.arena);
  assert.ok(maxDiff(a.out, b.out) === 0, `max diff ${maxDiff(a.out, b.out)}`);
});

test.run();
