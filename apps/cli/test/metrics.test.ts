// PSNR and SSIM against values computed independently: PSNR of a known MSE, SSIM of identical
// images, SSIM of constant images in closed form, and SSIM of noisy pairs against a deliberately
// straightforward re-implementation (a full 11x11 window loop, no separability, its own pooling).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { psnr, ssim, mse, roundHalfEven, ssimDownsampleFactor, type PlanarImage } from '../src/metrics';
import { pattern } from './fixtures/helpers';

const img = (h: number, w: number, f: (c: number, y: number, x: number) => number): PlanarImage => {
  const data = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[(c * h + y) * w + x] = f(c, y, x);
  return { data, channels: 3, height: h, width: w };
};

/** The straightforward SSIM: piq's steps written out literally in float64. */
function referenceSsim(a: PlanarImage, b: PlanarImage): number {
  const f = Math.max(1, roundHalfEven(Math.min(a.height, a.width) / 256));
  const pool = (p: PlanarImage): number[][][] => {
    const h = Math.floor(p.height / f), w = Math.floor(p.width / f);
    return [0, 1, 2].map((c) => Array.from({ length: h }, (_, i) => Array.from({ length: w }, (_, j) => {
      let s = 0;
      for (let di = 0; di < f; di++) for (let dj = 0; dj < f; dj++) s += p.data[(c * p.height + i * f + di) * p.width + j * f + dj]!;
      return s / (f * f);
    })));
  };
  const X = pool(a), Y = pool(b);
  const H = X[0]!.length, W = X[0]![0]!.length;
  const g: number[][] = [];
  let sum = 0;
  for (let i = 0; i < 11; i++) { g.push([]); for (let j = 0; j < 11; j++) { const v = Math.exp(-(((i - 5) ** 2) + ((j - 5) ** 2)) / (2 * 1.5 * 1.5)); g[i]!.push(v); sum += v; } }
  const C1 = 0.0001, C2 = 0.0009;
  let total = 0;
  for (let c = 0; c < 3; c++) {
    let s = 0, n = 0;
    for (let y = 0; y + 11 <= H; y++) for (let x = 0; x + 11 <= W; x++) {
      let mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
      for (let i = 0; i < 11; i++) for (let j = 0; j < 11; j++) {
        const wgt = g[i]![j]! / sum, u = X[c]![y + i]![x + j]!, v = Y[c]![y + i]![x + j]!;
        mx += wgt * u; my += wgt * v; xx += wgt * u * u; yy += wgt * v * v; xy += wgt * u * v;
      }
      const sx = xx - mx * mx, sy = yy - my * my, sxy = xy - mx * my;
      s += ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * ((2 * sxy + C2) / (sx + sy + C2));
      n++;
    }
    total += s / n;
  }
  return total / 3;
}

test('PSNR of a known MSE: a constant error of 0.1 gives MSE 0.01, PSNR -10 log10(0.01 + 1e-8)', () => {
  const a = img(16, 20, () => 0.3), b = img(16, 20, () => 0.4);
  assert.ok(Math.abs(mse(a, b) - 0.01) < 1e-8);
  assert.ok(Math.abs(psnr(a, b) - -10 * Math.log10(0.01 + 1e-8)) < 1e-5);
  // a mixed error: half the pixels off by 0.2, half exact -> MSE 0.02
  const c = img(16, 20, (_, y) => (y % 2 ? 0.5 : 0.3)), d = img(16, 20, () => 0.3);
  assert.ok(Math.abs(psnr(c, d) - -10 * Math.log10(0.02 + 1e-8)) < 1e-4);
});

test('identical images: PSNR 80 dB (the 1e-8 floor), SSIM exactly 1', () => {
  const a = pattern(40, 56, 1, 0.2);
  assert.ok(Math.abs(psnr(a, a) - 80) < 1e-9);
  assert.ok(Math.abs(ssim(a, a) - 1) < 1e-12);
});

test('SSIM of two constant images has a closed form: (2ab + C1) / (a² + b² + C1)', () => {
  const a = 0.3, b = 0.6;
  const expected = (2 * a * b + 1e-4) / (a * a + b * b + 1e-4);
  assert.ok(Math.abs(ssim(img(20, 20, () => a), img(20, 20, () => b)) - expected) < 1e-6);
});

test('SSIM equals the straightforward implementation on noisy pairs (no pooling, and 2x pooling)', () => {
  for (const [h, w] of [[24, 31], [300, 260]] as const) { // min side 24 -> f = 1; 260 -> round(1.016) = 1; 300x260 fine
    const a = pattern(h, w, 3, 0.3), b = pattern(h, w, 4, 0.1);
    const got = ssim(a, b), want = referenceSsim(a, b);
    assert.ok(Math.abs(got - want) < 1e-6, `${h}x${w}: ${got} vs ${want}`);
  }
  const a = pattern(390, 400, 5, 0.3), b = pattern(390, 400, 6, 0.05); // round(390/256 = 1.52) = 2: pooled
  assert.is(ssimDownsampleFactor(390, 400), 2);
  const got = ssim(a, b), want = referenceSsim(a, b);
  assert.ok(Math.abs(got - want) < 1e-6, `pooled: ${got} vs ${want}`);
  assert.ok(got > 0 && got < 1);
});

test('down-sampling factor uses Python rounding (half to even), as piq does', () => {
  assert.is(roundHalfEven(2.5), 2);
  assert.is(roundHalfEven(1.5), 2);
  assert.is(roundHalfEven(0.5), 0);
  assert.is(roundHalfEven(1.875), 2);
  assert.is(ssimDownsampleFactor(480, 720), 2); // the official 720x480 test images
  assert.is(ssimDownsampleFactor(320, 480), 1); // the built-in photos
  assert.is(ssimDownsampleFactor(640, 1000), 2); // 2.5 -> 2
  assert.is(ssimDownsampleFactor(100, 100), 1); // max(1, round(0.39))
});

test('SSIM refuses images smaller than the window', () => {
  assert.throws(() => ssim(img(10, 30, () => 0), img(10, 30, () => 0)), /smaller than the 11x11 window/);
});

test.run();
