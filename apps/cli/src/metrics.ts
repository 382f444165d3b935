/**
 * PSNR and SSIM exactly as the official MoFME evaluation computes them (mofme-paper.md §7), i.e.
 * with `piq` 0.8.0's defaults, in plain TypeScript on Float32Array images (CHW, RGB, values in
 * [0, 1]). Metrics are not differentiated, so no tensors are needed.
 *
 * PSNR (piq.psnr, data_range = 1, convert_to_greyscale = False):
 *     MSE  = mean over C, H, W of (x − y)²
 *     PSNR = −10 · log10(MSE + 1e-8)                      (the 1e-8 keeps identical images finite: 80 dB)
 *
 * SSIM (piq.ssim, kernel_size = 11, kernel_sigma = 1.5, k1 = 0.01, k2 = 0.03, downsample = True):
 *  1. f = max(1, round(min(H, W) / 256)) with Python's round (half to even); if f > 1 both images
 *     are average-pooled with an f×f window and stride f (a trailing remainder row/column is dropped,
 *     like F.avg_pool2d). For the official 720×480 images f = round(1.875) = 2.
 *  2. A Gaussian window g(i, j) ∝ exp(−((i − 5)² + (j − 5)²) / (2 · 1.5²)), normalised to sum 1.
 *  3. Per channel, 'valid' correlations (no padding, output (H − 10) × (W − 10)):
 *        μx = g∗x, μy = g∗y, σx² = g∗x² − μx², σy² = g∗y² − μy², σxy = g∗(xy) − μxμy
 *  4. SSIM map = (2μxμy + C1)/(μx² + μy² + C1) · (2σxy + C2)/(σx² + σy² + C2), C1 = 0.01², C2 = 0.03²
 *  5. Mean over the map's pixels, then over the 3 channels.
 *
 * We accumulate in float64 where piq works in float32, so values agree to ~1e-6, not to the bit.
 * A batch score is the mean of the per-image scores (what piq's reduction='mean' does).
 */

export interface PlanarImage {
  data: Float32Array | Float64Array;
  channels: number;
  height: number;
  width: number;
}

const SSIM_KERNEL_SIZE = 11;
const SSIM_SIGMA = 1.5;
const K1 = 0.01, K2 = 0.03;
const PSNR_EPS = 1e-8;

function checkSameShape(x: PlanarImage, y: PlanarImage, what: string): void {
  if (x.channels !== y.channels || x.height !== y.height || x.width !== y.width) {
    throw new Error(`${what}: images differ in size: ${x.channels}x${x.height}x${x.width} vs ${y.channels}x${y.height}x${y.width}`);
  }
}

/** Mean squared error over all channels and pixels. */
export function mse(x: PlanarImage, y: PlanarImage): number {
  checkSameShape(x, y, 'mse');
  let s = 0;
  const a = x.data, b = y.data, n = a.length;
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return s / n;
}

/** piq.psnr with data_range 1: −10·log10(MSE + 1e-8). */
export function psnr(x: PlanarImage, y: PlanarImage): number {
  return -10 * Math.log10(mse(x, y) + PSNR_EPS);
}

/** Python 3's round(): halves go to the even neighbour (round(2.5) = 2, round(1.5) = 2). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const diff = v - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The SSIM down-sampling factor of piq: max(1, round(min(H, W) / 256)). */
export function ssimDownsampleFactor(height: number, width: number): number {
  return Math.max(1, roundHalfEven(Math.min(height, width) / 256));
}

/** f×f average pooling with stride f per channel (F.avg_pool2d: the remainder is dropped). */
function avgPool(img: PlanarImage, f: number): PlanarImage {
  if (f === 1) return img;
  const { channels: C, height: H, width: W } = img;
  const h = Math.floor(H / f), w = Math.floor(W / f);
  const out = new Float64Array(C * h * w);
  const inv = 1 / (f * f);
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < w; j++) {
        let s = 0;
        for (let di = 0; di < f; di++) {
          const row = (c * H + i * f + di) * W + j * f;
          for (let dj = 0; dj < f; dj++) s += img.data[row + dj]!;
        }
        out[(c * h + i) * w + j] = s * inv;
      }
    }
  }
  return { data: out, channels: C, height: h, width: w };
}

/** piq's gaussian_filter(11, 1.5) as a separable 1-D factor: g2(i, j) = g1(i)·g1(j) exactly, both normalised. */
function gaussian1d(size = SSIM_KERNEL_SIZE, sigma = SSIM_SIGMA): Float64Array {
  const g = new Float64Array(size);
  let s = 0;
  for (let i = 0; i < size; i++) {
    const c = i - (size - 1) / 2;
    g[i] = Math.exp(-(c * c) / (2 * sigma * sigma));
    s += g[i]!;
  }
  for (let i = 0; i < size; i++) g[i]! /= s;
  return g;
}

/**
 * 'valid' correlation of one channel plane with the separable Gaussian (rows, then columns).
 * The 2-D window exp(−(a² + b²)/2σ²)/Z factors into two 1-D windows, so this equals piq's 11×11
 * conv2d up to float rounding, at 22 instead of 121 multiplies per pixel.
 */
function filterValid(src: Float64Array, H: number, W: number, g: Float64Array): Float64Array {
  const k = g.length, h = H - k + 1, w = W - k + 1;
  const tmp = new Float64Array(H * w); // horizontal pass
  for (let i = 0; i < H; i++) {
    for (let j = 0; j < w; j++) {
      let s = 0;
      const base = i * W + j;
      for (let t = 0; t < k; t++) s += g[t]! * src[base + t]!;
      tmp[i * w + j] = s;
    }
  }
  const out = new Float64Array(h * w); // vertical pass
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += g[t]! * tmp[(i + t) * w + j]!;
      out[i * w + j] = s;
    }
  }
  return out;
}

/** piq.ssim with its defaults (see the header). Images must be at least 11×11 after down-sampling. */
export function ssim(x: PlanarImage, y: PlanarImage): number {
  checkSameShape(x, y, 'ssim');
  const f = ssimDownsampleFactor(x.height, x.width);
  const a = avgPool(x, f), b = avgPool(y, f);
  const { channels: C, height: H, width: W } = a;
  const k = SSIM_KERNEL_SIZE;
  if (H < k || W < k) throw new Error(`ssim: image ${x.height}x${x.width} is smaller than the ${k}x${k} window (after ${f}x down-sampling)`);
  const g = gaussian1d();
  const c1 = K1 * K1, c2 = K2 * K2;
  const plane = H * W;
  let total = 0;
  for (let c = 0; c < C; c++) {
    const px = new Float64Array(plane), py = new Float64Array(plane), pxx = new Float64Array(plane), pyy = new Float64Array(plane), pxy = new Float64Array(plane);
    for (let i = 0; i < plane; i++) {
      const u = a.data[c * plane + i]!, v = b.data[c * plane + i]!;
      px[i] = u; py[i] = v; pxx[i] = u * u; pyy[i] = v * v; pxy[i] = u * v;
    }
    const mx = filterValid(px, H, W, g), my = filterValid(py, H, W, g);
    const exx = filterValid(pxx, H, W, g), eyy = filterValid(pyy, H, W, g), exy = filterValid(pxy, H, W, g);
    let s = 0;
    for (let i = 0; i < mx.length; i++) {
      const mux = mx[i]!, muy = my[i]!;
      const mxx = mux * mux, myy = muy * muy, mxy = mux * muy;
      const sxx = exx[i]! - mxx, syy = eyy[i]! - myy, sxy = exy[i]! - mxy;
      const cs = (2 * sxy + c2) / (sxx + syy + c2);
      s += ((2 * mxy + c1) / (mxx + myy + c1)) * cs;
    }
    total += s / mx.length;
  }
  return total / C;
}
