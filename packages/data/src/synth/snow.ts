/**
 * Snow, following the Snow100K model (Liu et al., DesnowNet; data.md §4.3):
 *
 *   I = a ⊙ z + J ⊙ (1 − z)
 *
 * z ∈ [0,1] is the per-pixel snow translucency mask (what Snow100K's `mask/` folder stores) and a the
 * snow colour ("chromatic aberration map", near white). Snow100K's subsets differ by particle size:
 * S = small flakes only, M = small + medium, L = small + medium + large. We render each flake as an
 * anisotropic Gaussian blob (elongated along the fall direction: the short motion blur of a falling
 * flake during the exposure; large near flakes are wide because they are out of focus) with peak
 * opacity o, and combine flakes like stacked semi-transparent sheets:
 *
 *   z = 1 − Π_k (1 − b_k(x)),
 *
 * which is also how Snow100K combines its layers. With N_k flakes of mass m_k = 2π σ_∥ σ_⊥ o placed
 * uniformly at random, the expected mask mean is E[z] = 1 − Π_k (1 − m_k / area) ≈ 1 − exp(−Σ m_k/area)
 * — a closed form the tests compare the rendered masks against.
 *
 * Layers per 720x480 frame (counts scale with area, sizes with the frame; `density` multiplies counts):
 *   small  σ ∈ [0.4, 1.1] px, 1500–4000 flakes, o ∈ [0.5, 1], streak factor 1.5–3
 *   medium σ ∈ [1.3, 2.5] px,  200–600 flakes,  o ∈ [0.4, 0.9]
 *   large  σ ∈ [3.5, 8] px,     20–80 flakes,   o ∈ [0.3, 0.7] (defocused)
 * Snow colour a ∈ [0.85, 1] (slightly blue), optional veil (CSD-style haze, β ∈ [0, 0.8]).
 * ACCUMULATION: settled snow whitens the upward-facing surfaces. In an image those are the top
 * edges of objects: places where luminance changes along y much more than along x. In 40 % of the
 * images (`accumulation` ∈ [0.2, 0.6], else 0) we add z_acc = accumulation·clamp(8·(|∂yY| − |∂xY|))
 * on a lightly blurred luminance, smeared 2 px downwards (the snow cap sits on the surface), and
 * composite it with the falling flakes: z = 1 − (1 − z_flakes)(1 − z_acc).
 */
import type { Image } from '../image';
import { clamp01 } from '../image';
import { Generator } from '@mofme/tensor';
import { blurPlane, frameScale, luminance, pick, resolveFrame, type Frame } from './common';
import { synthHaze } from './haze';

export type SnowSize = 'S' | 'M' | 'L';

export interface SnowParams {
  /** particle-size subset as in Snow100K; default drawn from S/M/L */
  size?: SnowSize;
  /** multiplier on flake counts; default U[0.6, 1.4] */
  density?: number;
  /** fall direction in degrees (90 = straight down in our y-up convention); default U[70, 110] */
  angle?: number;
  /** snow brightness a; default U[0.85, 1] */
  color?: number;
  /** haze veil β (0 = none); default 0 for S, U[0, 0.8] otherwise */
  veil?: number;
  /** strength of snow settled on upward-facing edges (0 = none); default U[0.2, 0.6] in 40 % of images, else 0 */
  accumulation?: number;
  frame?: Partial<Frame>;
}

export interface SnowResult {
  image: Image; mask: Float32Array;
  params: Required<Omit<SnowParams, 'frame'>> & { flakes: number; expectedCoverage: number };
}

interface LayerSpec { sigma: [number, number]; count: [number, number]; opacity: [number, number]; streak: [number, number] }
const LAYERS: Record<'small' | 'medium' | 'large', LayerSpec> = {
  small: { sigma: [0.4, 1.1], count: [1500, 4000], opacity: [0.5, 1], streak: [1.5, 3] },
  medium: { sigma: [1.3, 2.5], count: [200, 600], opacity: [0.4, 0.9], streak: [1.2, 2] },
  large: { sigma: [3.5, 8], count: [20, 80], opacity: [0.3, 0.7], streak: [1, 1.4] },
};
const SUBSETS: Record<SnowSize, (keyof typeof LAYERS)[]> = { S: ['small'], M: ['small', 'medium'], L: ['small', 'medium', 'large'] };

export function synthSnow(clean: Image, p: SnowParams, rng: Generator): SnowResult {
  const size = pick(p.size, () => rng.pick(['S', 'M', 'L'] as const));
  const density = pick(p.density, () => rng.uniform(0.6, 1.4));
  const angle = pick(p.angle, () => rng.uniform(70, 110));
  const color = pick(p.color, () => rng.uniform(0.85, 1));
  const veil = pick(p.veil, () => (size === 'S' ? 0 : rng.uniform(0, 0.8)));
  const accumulation = pick(p.accumulation, () => { const on = rng.random() < 0.4, v = rng.uniform(0.2, 0.6); return on ? v : 0; });
  const frame = resolveFrame(clean, p.frame), scale = frameScale(frame);
  const H = clean.height, W = clean.width, n = H * W;
  const keep = new Float32Array(n).fill(1); // Π(1 − b_k), the transparency left after all flakes
  const t = (angle * Math.PI) / 180, ux = Math.cos(t), uy = -Math.sin(t); // fall direction (image coords)
  let flakes = 0, logKeep = 0;
  for (const name of SUBSETS[size]) {
    const spec = LAYERS[name];
    // Counts are per full frame, i.e. a density of flakes per pixel. Centres are placed over the
    // image extended by a margin M (3σ of the widest flake) at that density, so flakes straddle the
    // borders exactly as they would in the full frame; the expected coverage uses the same area.
    const M = Math.ceil(3 * spec.sigma[1] * spec.streak[1] * scale);
    const ext = (W + 2 * M) * (H + 2 * M);
    const count = Math.round(rng.uniform(spec.count[0], spec.count[1]) * density * ext / (frame.fullWidth * frame.fullHeight));
    for (let k = 0; k < count; k++) {
      const s = rng.uniform(spec.sigma[0], spec.sigma[1]) * scale;
      const sa = s * rng.uniform(spec.streak[0], spec.streak[1]); // σ along the fall direction
      const o = rng.uniform(spec.opacity[0], spec.opacity[1]);
      const cx = rng.uniform(-M, W + M), cy = rng.uniform(-M, H + M);
      drawFlake(keep, H, W, cx, cy, sa, s, ux, uy, o);
      logKeep += Math.log(Math.max(1e-9, 1 - (2 * Math.PI * sa * s * o) / ext));
      flakes++;
    }
  }
  if (accumulation > 0) {
    const acc = settledSnow(clean, accumulation);
    for (let i = 0; i < n; i++) keep[i]! *= 1 - acc[i]!;
  }
  const z = new Float32Array(n);
  for (let i = 0; i < n; i++) z[i] = 1 - keep[i]!;
  const a = [color * 0.97, color * 0.985, color]; // slightly blue-white
  let base = clean;
  if (veil > 0) base = synthHaze(clean, { beta: veil, airlight: color, tint: 0.03, frame }, rng).image;
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) out[c * n + i] = a[c]! * z[i]! + base.data[c * n + i]! * (1 - z[i]!);
  return {
    image: clamp01({ data: out, channels: 3, height: H, width: W }), mask: z,
    params: { size, density, angle, color, veil, accumulation, flakes, expectedCoverage: 1 - Math.exp(logKeep) },
  };
}

/** Multiplies `keep` by (1 − b) for one anisotropic Gaussian flake b = o·exp(−½(a²/σa² + c²/σc²)). */
function drawFlake(keep: Float32Array, H: number, W: number, cx: number, cy: number, sa: number, sc: number, ux: number, uy: number, o: number): void {
  const r = Math.ceil(3 * Math.max(sa, sc));
  const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
  const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
  const ia = 1 / (2 * sa * sa), ic = 1 / (2 * sc * sc);
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
    const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
    const along = dx * ux + dy * uy, across = -dx * uy + dy * ux;
    const b = o * Math.exp(-along * along * ia - across * across * ic);
    if (b > 1e-4) keep[y * W + x]! *= 1 - b;
  }
}

/** Opacity of snow settled on upward-facing edges (see the header): strong vertical change, weak horizontal. */
function settledSnow(clean: Image, strength: number): Float32Array {
  const H = clean.height, W = clean.width, Y = blurPlane(luminance(clean), H, W, 0.8);
  const edge = new Float32Array(H * W), out = new Float32Array(H * W);
  for (let y = 1; y < H - 1; y++) for (let x = 1; x < W - 1; x++) {
    const i = y * W + x;
    const gy = Math.abs(Y[i + W]! - Y[i - W]!) / 2, gx = Math.abs(Y[i + 1]! - Y[i - 1]!) / 2;
    edge[i] = Math.min(1, Math.max(0, 8 * (gy - gx)));
  }
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let m = 0;
    for (let k = 0; k <= 2 && y - k >= 0; k++) m = Math.max(m, edge[(y - k) * W + x]! * (1 - 0.25 * k));
    out[y * W + x] = strength * m;
  }
  return out;
}
