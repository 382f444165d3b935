/**
 * Building blocks shared by the weather synthesisers, all on single-channel float32 "planes"
 * (H×W row-major) or CHW images:
 *   - Gaussian blur (separable; exact kernel for small σ, three box passes for large σ — by the
 *     central limit theorem three box filters of matched variance approximate a Gaussian within ~3%);
 *   - line splatting, which is how we do "motion blur of sparse noise" in O(#seeds·L) instead of
 *     O(pixels·L): motion blur is linear, so blurring a field of isolated impulses equals drawing one
 *     line segment per impulse;
 *   - the depth prior used by haze and rain+fog when a photo has no depth map;
 *   - the `Frame`, which tells a synthesiser where the given image sits inside a larger frame, so
 *     that synthesising on a crop gives the same statistics as synthesising on the full photo and
 *     cropping (the loader synthesises on crops, which is much cheaper).
 */
import type { Image } from '../image';

/** Where an image sits in the full frame it was cropped from (defaults: the image is the frame). */
export interface Frame { y0: number; x0: number; fullHeight: number; fullWidth: number }

/** The reference frame size at which the literature's pixel ranges are stated (All-weather: 720x480). */
const REF_WIDTH = 720;
const REF_HEIGHT = 480;

export function resolveFrame(img: Image, frame?: Partial<Frame>): Frame {
  return {
    y0: frame?.y0 ?? 0, x0: frame?.x0 ?? 0,
    fullHeight: frame?.fullHeight ?? img.height, fullWidth: frame?.fullWidth ?? img.width,
  };
}

/** Linear size scale of the frame relative to 720x480 (geometric mean of both axes). */
export function frameScale(f: Frame): number {
  return Math.sqrt((f.fullWidth / REF_WIDTH) * (f.fullHeight / REF_HEIGHT));
}

/** Rec. 601 luma of a CHW image as a plane. */
export function luminance(img: Image): Float32Array {
  const n = img.height * img.width, d = img.data, out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 0.299 * d[i]! + 0.587 * d[n + i]! + 0.114 * d[2 * n + i]!;
  return out;
}

/** Dark channel: min over channels, then min over a (2r+1)² window (He et al. 2009). */
export function darkChannel(img: Image, r = 3): Float32Array {
  const H = img.height, W = img.width, n = H * W, d = img.data;
  const m = new Float32Array(n);
  for (let i = 0; i < n; i++) m[i] = Math.min(d[i]!, d[n + i]!, d[2 * n + i]!);
  const tmp = new Float32Array(n), out = new Float32Array(n);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let v = Infinity;
    for (let k = Math.max(0, x - r); k <= Math.min(W - 1, x + r); k++) v = Math.min(v, m[y * W + k]!);
    tmp[y * W + x] = v;
  }
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let v = Infinity;
    for (let k = Math.max(0, y - r); k <= Math.min(H - 1, y + r); k++) v = Math.min(v, tmp[k * W + x]!);
    out[y * W + x] = v;
  }
  return out;
}

/** Gaussian blur of one plane (edges clamp). Returns a new plane. */
export function blurPlane(src: Float32Array, H: number, W: number, sigma: number): Float32Array {
  if (sigma <= 0.05) return src.slice();
  if (sigma <= 2.5) return separable(src, H, W, gaussKernel(sigma));
  // Three box passes: a box of width w has variance (w²−1)/12, so width √(12σ²/3 + 1) per pass.
  const r = Math.max(1, Math.round((Math.sqrt(4 * sigma * sigma + 1) - 1) / 2));
  let out = src;
  for (let p = 0; p < 3; p++) out = boxPass(boxPass(out, H, W, r, true), H, W, r, false);
  return out;
}

/** Blurs each channel of a CHW image. */
export function blurImage(img: Image, sigma: number): Image {
  const n = img.height * img.width, data = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) data.set(blurPlane(img.data.subarray(c * n, (c + 1) * n), img.height, img.width, sigma), c * n);
  return { data, channels: 3, height: img.height, width: img.width };
}

function gaussKernel(sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(3 * sigma)), k = new Float32Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) { const v = Math.exp(-(i * i) / (2 * sigma * sigma)); k[i + r] = v; s += v; }
  for (let i = 0; i < k.length; i++) k[i]! /= s;
  return k;
}

function separable(src: Float32Array, H: number, W: number, k: Float32Array): Float32Array {
  const r = (k.length - 1) / 2, tmp = new Float32Array(H * W), out = new Float32Array(H * W);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let i = -r; i <= r; i++) s += k[i + r]! * src[y * W + Math.min(W - 1, Math.max(0, x + i))]!;
    tmp[y * W + x] = s;
  }
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let s = 0;
    for (let i = -r; i <= r; i++) s += k[i + r]! * tmp[Math.min(H - 1, Math.max(0, y + i)) * W + x]!;
    out[y * W + x] = s;
  }
  return out;
}

/** One running-sum box filter pass of radius r along rows (horizontal) or columns. */
function boxPass(src: Float32Array, H: number, W: number, r: number, horizontal: boolean): Float32Array {
  const out = new Float32Array(H * W), inv = 1 / (2 * r + 1);
  const lines = horizontal ? H : W, len = horizontal ? W : H;
  const at = (line: number, i: number) => (horizontal ? line * W + i : i * W + line);
  for (let l = 0; l < lines; l++) {
    let s = 0;
    for (let i = -r; i <= r; i++) s += src[at(l, Math.min(len - 1, Math.max(0, i)))]!;
    for (let i = 0; i < len; i++) {
      out[at(l, i)] = s * inv;
      s += src[at(l, Math.min(len - 1, i + r + 1))]! - src[at(l, Math.max(0, i - r))]!;
    }
  }
  return out;
}

/** Adds `v` at the real position (x, y) spread bilinearly over the 4 neighbouring pixels. */
function splat(plane: Float32Array, H: number, W: number, x: number, y: number, v: number): void {
  const x0 = Math.floor(x), y0 = Math.floor(y), fx = x - x0, fy = y - y0;
  if (x0 >= -1 && x0 < W && y0 >= -1 && y0 < H) {
    if (y0 >= 0) {
      if (x0 >= 0) plane[y0 * W + x0]! += v * (1 - fx) * (1 - fy);
      if (x0 + 1 < W) plane[y0 * W + x0 + 1]! += v * fx * (1 - fy);
    }
    if (y0 + 1 < H) {
      if (x0 >= 0) plane[(y0 + 1) * W + x0]! += v * (1 - fx) * fy;
      if (x0 + 1 < W) plane[(y0 + 1) * W + x0 + 1]! += v * fx * fy;
    }
  }
}

/**
 * Draws a line segment of length L centred at (x, y) along angle θ (degrees, counter-clockwise
 * from +x with y pointing UP, as MATLAB's fspecial('motion', L, θ); 90 = vertical), adding `v` per
 * unit length. This equals convolving an impulse of weight v·L with a length-L motion kernel.
 */
export function splatLine(plane: Float32Array, H: number, W: number, x: number, y: number, L: number, thetaDeg: number, v: number): void {
  const t = (thetaDeg * Math.PI) / 180, dx = Math.cos(t), dy = -Math.sin(t); // image y points down
  const steps = Math.max(1, Math.round(L));
  for (let k = 0; k < steps; k++) {
    const s = k - (steps - 1) / 2;
    splat(plane, H, W, x + s * dx, y + s * dy, v);
  }
}

/**
 * Depth prior for a photo without depth (data.md §4.1), normalised to [0, 1], with y measured in the
 * FULL frame (so crops agree with the full image):
 *   d = 0.6 · (1 − y/H)^γ + 0.2 · blur(luminance) + 0.2 · blur(dark channel).
 * The ramp is the ground plane receding towards the horizon; bright is often far (sky); and the
 * dark channel (min over colours and a 7x7 window, He et al. 2009) is near zero on almost every
 * nearby object (some colour channel is dark in shadows and saturated surfaces) and high only on
 * sky and already-distant, washed-out scenery, so it separates a bright near wall from a bright
 * sky, which luminance alone cannot. Both photo cues are heavily blurred (σ = 2 % of the frame
 * width) so that depth, and therefore fog, does not follow texture.
 */
export function depthPrior(img: Image, frame: Frame, gamma = 1.2): Float32Array {
  const H = img.height, W = img.width, sigma = Math.max(1, 0.02 * frame.fullWidth);
  const lum = blurPlane(luminance(img), H, W, sigma);
  const dark = blurPlane(darkChannel(img, 3), H, W, sigma);
  const d = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    const ramp = Math.pow(Math.max(0, 1 - (frame.y0 + y + 0.5) / frame.fullHeight), gamma);
    for (let x = 0; x < W; x++) d[y * W + x] = 0.6 * ramp + 0.2 * lum[y * W + x]! + 0.2 * dark[y * W + x]!;
  }
  return d;
}

/**
 * Resolves a parameter: the caller's value if given, otherwise `draw()` (a seeded draw from its
 * range). The draw happens either way, so fixing one parameter does not shift the random values of
 * the others — the same seed gives the same streaks whether or not you pinned, say, the angle.
 */
export function pick<T>(given: T | undefined, draw: () => T): T {
  const v = draw();
  return given === undefined ? v : given;
}
