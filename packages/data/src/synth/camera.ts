/**
 * The camera after the weather: sensor noise, then JPEG compression, the two degradations every
 * real weather photo carries and a model trained on clean-but-for-weather inputs has never seen.
 *
 * NOISE (Poisson-Gaussian, Foi et al. 2008): a pixel of true value x reads x + N(0, σ_r² + κ·x):
 * read noise σ_r plus shot noise whose variance grows with the signal. We draw σ_r ∈ [0.002, 0.015]
 * and κ = σ_r² · U[0, 4] (so shot noise matters most in highlights), independently per channel.
 * JPEG: the image is encoded and decoded at quality q ∈ [60, 95] (jpeg-js, baseline 4:2:0 chroma
 * subsampling, as phone cameras and the web do), which adds 8x8 blocking and ringing at edges.
 * Each is applied to half of the images by default (`noise: 0`, `jpeg: 0` turn them off), so the
 * model also sees clean-sensor inputs. Deterministic: every draw comes from the given RNG, and the
 * draws happen whether or not a value is pinned (see `pick`).
 */
import jpeg from 'jpeg-js';
import type { Image } from '../image';
import { clamp01 } from '../image';
import type { Generator } from '@mofme/tensor';
import { pick } from './common';

export interface CameraParams {
  /** read-noise σ_r (0 = no noise); default U[0.002, 0.015] in half of the images, else 0 */
  noise?: number;
  /** JPEG quality 1..100 (0 = no JPEG); default U[60, 95] in half of the images, else 0 */
  jpeg?: number;
}

export interface CameraResult { image: Image; params: Required<CameraParams> & { shot: number } }

export function synthCamera(img: Image, p: CameraParams, rng: Generator): CameraResult {
  const noise = pick(p.noise, () => { const on = rng.random() < 0.5, v = rng.uniform(0.002, 0.015); return on ? v : 0; });
  const shot = noise * noise * rng.uniform(0, 4);
  const quality = pick(p.jpeg, () => { const on = rng.random() < 0.5, v = Math.round(rng.uniform(60, 95)); return on ? v : 0; });
  if (!(quality === 0 || (Number.isInteger(quality) && quality >= 1 && quality <= 100))) throw new Error(`synthesize: jpeg quality ${quality} is not an integer in 1..100 (0 = off)`);
  let out = img;
  if (noise > 0) {
    const d = new Float32Array(img.data.length);
    for (let i = 0; i < d.length; i++) {
      const x = img.data[i]!;
      d[i] = x + Math.sqrt(noise * noise + shot * Math.max(0, x)) * rng.normal();
    }
    out = clamp01({ data: d, channels: 3, height: img.height, width: img.width });
  }
  if (quality > 0) out = jpegRoundTrip(out, quality);
  return { image: out, params: { noise, jpeg: quality, shot } };
}

/** Encodes to JPEG and decodes back (synchronously, so synthesis stays a plain function). */
function jpegRoundTrip(img: Image, quality: number): Image {
  const H = img.height, W = img.width, n = H * W, rgba = new Uint8Array(4 * n);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = Math.round(255 * Math.min(1, Math.max(0, img.data[c * n + i]!)));
    rgba[4 * i + 3] = 255;
  }
  const enc = jpeg.encode({ data: rgba, width: W, height: H }, quality);
  const dec = jpeg.decode(enc.data, { useTArray: true, formatAsRGBA: true });
  const data = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) data[c * n + i] = dec.data[4 * i + c]! / 255;
  return { data, channels: 3, height: H, width: W };
}
