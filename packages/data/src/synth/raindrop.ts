/**
 * Raindrops on a glass pane in front of the lens (the Raindrop dataset's situation; data.md §4.4).
 *
 * Image model (Qian et al., CVPR 2018):  I = (1 − M) ⊙ J + R,  M the drop mask, R the drop layer.
 * Each drop is a small lens (Roser & Geiger 2009): the camera sees through it a larger part of the
 * scene, INVERTED and minified, so pixel p inside a drop of centre c samples the scene near
 *
 *   s = c − k · (p − c),   k ∈ [2, 5]  (zoom-out factor of the drop lens),
 *
 * from a blurred copy of the photo (the drop's own optics are poor). Its rim is darker (light
 * refracted away at grazing angles) and a specular highlight sits towards the top-left (sky light).
 * The camera focuses on the scene, so the drop layer is DEFOCUSED: we blur the premultiplied drop
 * colour R and its alpha M with the same Gaussian (σ_d ∈ [2, 6] px at 720x480) and composite
 * I = J (1 − blur(M)) + blur(R) — premultiplied blurring keeps colours from bleeding into black.
 * Wet glass also scatters: a global veil I ← (1 − α) I + α·mean(J), α ∈ [0.03, 0.12], and GLARE:
 * the water film spreads bright light (sky, lamps) into a wide halo, I ← I + g·blur(max(0, Y − 0.7))
 * with Y the scene luminance, σ = 12 px at 720x480 and g ∈ [0, 0.6].
 * Drops: count ∈ [40, 220] per 720x480 frame; radius heavy-tailed in [rMin, rMax] = [4, 24] px
 * (r = rMin·(rMax/rMin)^(U²): many small, few large); aspect ∈ [0.75, 1.3]; 12 % are running drops
 * stretched 1.6–2.4x vertically.
 */
import type { Image } from '../image';
import { clamp01 } from '../image';
import { Generator } from '@mofme/tensor';
import { blurImage, blurPlane, frameScale, luminance, pick, resolveFrame, type Frame } from './common';

export interface RaindropParams {
  /** drops per 720x480 frame; default U[40, 220] */
  count?: number;
  /** smallest/largest radius in px at 720x480; defaults 4 and 24 */
  rMin?: number;
  rMax?: number;
  /** lens zoom-out factor k; default U[2, 5] */
  zoom?: number;
  /** defocus σ in px at 720x480; default U[2, 6] */
  defocus?: number;
  /** wet-glass veil α; default U[0.03, 0.12] */
  veil?: number;
  /** glare gain g on the halo of bright light; default U[0, 0.6] */
  glare?: number;
  frame?: Partial<Frame>;
}

export interface RaindropResult { image: Image; mask: Float32Array; params: Required<Omit<RaindropParams, 'frame'>> & { drops: number } }

export function synthRaindrop(clean: Image, p: RaindropParams, rng: Generator): RaindropResult {
  const count = pick(p.count, () => rng.uniform(40, 220));
  const rMin = pick(p.rMin, () => 4);
  const rMax = pick(p.rMax, () => 24);
  const zoom = pick(p.zoom, () => rng.uniform(2, 5));
  const defocus = pick(p.defocus, () => rng.uniform(2, 6));
  const veil = pick(p.veil, () => rng.uniform(0.03, 0.12));
  const glare = pick(p.glare, () => rng.uniform(0, 0.6));
  const frame = resolveFrame(clean, p.frame), scale = frameScale(frame);
  const H = clean.height, W = clean.width, n = H * W;
  const inside = blurImage(clean, 1.5 * scale); // what the drop lens shows is itself blurry
  const R = new Float32Array(3 * n); // premultiplied drop colour
  const M = new Float32Array(n); // drop alpha
  // Drops per pixel of the full frame, placed over the image extended by the largest radius.
  const pad = Math.ceil(rMax * 2.4 * scale);
  const ext = (W + 2 * pad) * (H + 2 * pad);
  const drops = Math.round((count * ext) / (frame.fullWidth * frame.fullHeight));
  const col = [0, 0, 0];
  for (let d = 0; d < drops; d++) {
    const r = rMin * Math.pow(rMax / rMin, rng.random() ** 2) * scale;
    const aspect = rng.uniform(0.75, 1.3);
    const running = rng.random() < 0.12 ? rng.uniform(1.6, 2.4) : 1;
    const rx = r * aspect, ry = (r / aspect) * running;
    const cx = rng.uniform(-pad, W + pad), cy = rng.uniform(-pad, H + pad);
    const edge = Math.max(1, 0.15 * r); // soft rim width in px
    const x0 = Math.max(0, Math.floor(cx - rx - edge)), x1 = Math.min(W - 1, Math.ceil(cx + rx + edge));
    const y0 = Math.max(0, Math.floor(cy - ry - edge)), y1 = Math.min(H - 1, Math.ceil(cy + ry + edge));
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
      const u = (x + 0.5 - cx) / rx, v = (y + 0.5 - cy) / ry, rho = Math.sqrt(u * u + v * v);
      const a = Math.min(1, Math.max(0, ((1 - rho) * Math.min(rx, ry)) / edge + 0.5));
      if (a <= 0) continue;
      // refraction: inverted, minified view of the scene around the drop (clamped to the image)
      const sx = Math.min(W - 1, Math.max(0, cx - zoom * (x + 0.5 - cx) - 0.5));
      const sy = Math.min(H - 1, Math.max(0, cy - zoom * (y + 0.5 - cy) - 0.5));
      sampleBilinear(inside, sx, sy, col);
      const shade = 1 - 0.35 * Math.min(1, rho) ** 4; // darker rim
      const hu = u + 0.35, hv = v + 0.45; // highlight towards the top-left
      const spec = 0.5 * Math.exp(-(hu * hu + hv * hv) / (2 * 0.12 * 0.12));
      const i = y * W + x;
      for (let c = 0; c < 3; c++) R[c * n + i] = R[c * n + i]! * (1 - a) + Math.min(1, col[c]! * shade + spec) * a;
      M[i] = M[i]! * (1 - a) + a; // alpha "over"
    }
  }
  const sd = defocus * scale;
  const Mb = blurPlane(M, H, W, sd);
  const mean = [0, 1, 2].map((c) => { let s = 0; for (let i = 0; i < n; i++) s += clean.data[c * n + i]!; return s / n; });
  let halo: Float32Array | null = null;
  if (glare > 0) {
    const bright = luminance(clean).map((v) => Math.max(0, v - 0.7));
    halo = blurPlane(bright, H, W, 12 * scale);
  }
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    const Rb = blurPlane(R.subarray(c * n, (c + 1) * n), H, W, sd);
    for (let i = 0; i < n; i++) {
      const v = clean.data[c * n + i]! * (1 - Mb[i]!) + Rb[i]!;
      out[c * n + i] = (1 - veil) * v + veil * mean[c]! + (halo ? glare * halo[i]! : 0);
    }
  }
  return {
    image: clamp01({ data: out, channels: 3, height: H, width: W }), mask: Mb,
    params: { count, rMin, rMax, zoom, defocus, veil, glare, drops },
  };
}

function sampleBilinear(img: Image, x: number, y: number, out: number[]): void {
  const W = img.width, H = img.height, n = W * H;
  const x0 = Math.floor(x), y0 = Math.floor(y), x1 = Math.min(W - 1, x0 + 1), y1 = Math.min(H - 1, y0 + 1);
  const fx = x - x0, fy = y - y0, d = img.data;
  for (let c = 0; c < 3; c++) {
    const o = c * n;
    out[c] = (d[o + y0 * W + x0]! * (1 - fx) + d[o + y0 * W + x1]! * fx) * (1 - fy)
      + (d[o + y1 * W + x0]! * (1 - fx) + d[o + y1 * W + x1]! * fx) * fy;
  }
}
