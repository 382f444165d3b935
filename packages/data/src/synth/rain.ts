/**
 * Rain streaks, and rain + fog as in the Outdoor-Rain dataset.
 *
 * RAIN (data.md §4.2; the Photoshop recipe behind Rain100/Rain800/Rain1400 and Rain100H's layers):
 * sparse bright seeds → motion blur of length L at angle θ → slight Gaussian blur (streak width) →
 * screen blend over the photo:  I = 1 − (1 − J)(1 − S).  Screen blending is what "a semi-transparent
 * bright layer in front of the scene" does: it brightens, never darkens, and saturates smoothly at 1.
 * A raindrop is brighter than what is behind it (Garg & Nayar), hence a positive layer.
 * We render 1–3 layers at different depths z (1 = nearest). Perspective makes a near drop's streak
 * longer (the image-plane speed of a falling drop scales with 1/distance), wider and brighter, and
 * the camera focused on the scene defocuses it: per layer
 *   length ∝ z, width σ = σ₀·(0.6 + 0.8 z), brightness ∝ z, extra defocus σ = 1.5·z² px,
 * and each layer's angle jitters ±4° around the wind direction.
 *   θ ∈ [70°, 110°] (90 = vertical), L ∈ [15, 50] px and density ∈ [0.3 %, 2 %] of pixels seeding a
 *   streak (both at 720x480; scaled with the frame), intensity ∈ [0.35, 0.9], width σ₀ ∈ [0.5, 1] px.
 * VEIL. The countless drops too far to resolve scatter light like fog (Rain100H's accumulation term
 * O = α(B + S) + (1 − α)A): I ← I·(1 − v(x)) + A·v(x) with v = veil·(1 − exp(−d(x))) growing with the
 * depth prior d, veil ∈ [0, 0.25]·(density / 2 %) (heavier rain, thicker veil), A ∈ [0.75, 0.95].
 *
 * RAIN + FOG (data.md §4.5, a transcription of liruoteng/HeavyRainRemoval datagen/*.m):
 *   I = T ⊙ (J' + S) + (1 − T) ⊙ A,   T = exp(−β·gaussblur(d, 5 px))
 * with J' the photo pre-blurred by σ = min(1, |N(0.5, 0.5)|), S = tr · motionblur(max(0, N(m, v)))
 * where m = −4·(0.2 + 0.05U), v = 0.7 + 0.3U (variance), L = randi(40) + 20 px, θ ∈ {80, 85, …, 100},
 * tr = 0.2 + 0.04L + 0.05U, then J' + S clipped at 1 before the fog; β = 2.6 + 2U, A = 0.25 + 0.7U.
 * (The MATLAB code also upsamples the noise by s ∈ [1.01, 1.21] bicubically; we approximate that
 * mild smoothing by a σ = 0.5 px blur.) Depth comes from the prior in common.ts.
 */
import type { Image } from '../image';
import { clamp01 } from '../image';
import { Generator } from '@mofme/tensor';
import { blurImage, blurPlane, depthPrior, frameScale, pick, resolveFrame, splatLine, type Frame } from './common';
import { synthHaze } from './haze';

export interface RainParams {
  /** mean streak angle in degrees, 90 = vertical (counter-clockwise from +x, y up); default U[70, 110] */
  angle?: number;
  /** number of depth layers 1..3; default randint(1, 3) */
  layers?: number;
  /** streak length in px at 720x480 for the nearest layer; default U[15, 50] */
  length?: number;
  /** fraction of pixels seeding a streak, summed over layers; default U[0.003, 0.02] */
  density?: number;
  /** peak streak brightness before blending; default U[0.35, 0.9] */
  intensity?: number;
  /** streak width as a Gaussian σ in px; default U[0.5, 1] */
  width?: number;
  /** max deviation of each layer's angle from `angle`, degrees; default 4 */
  jitter?: number;
  /** strength of the distant-rain veil at infinite depth; default U[0, 0.25]·density/0.02 */
  veil?: number;
  /** brightness of the veil's light; default U[0.75, 0.95] */
  airlight?: number;
  frame?: Partial<Frame>;
}

export interface RainResult { image: Image; mask: Float32Array; params: Required<Omit<RainParams, 'frame'>> }

export function synthRain(clean: Image, p: RainParams, rng: Generator): RainResult {
  const angle = pick(p.angle, () => rng.uniform(70, 110));
  const layers = pick(p.layers, () => rng.integer(1, 3));
  const length = pick(p.length, () => rng.uniform(15, 50));
  const density = pick(p.density, () => rng.uniform(0.003, 0.02));
  const intensity = pick(p.intensity, () => rng.uniform(0.35, 0.9));
  const width = pick(p.width, () => rng.uniform(0.5, 1));
  const jitter = p.jitter ?? 4;
  const veil = pick(p.veil, () => rng.uniform(0, 0.25) * Math.min(1, density / 0.02));
  const airlight = pick(p.airlight, () => rng.uniform(0.75, 0.95));
  const frame = resolveFrame(clean, p.frame), scale = frameScale(frame);
  const H = clean.height, W = clean.width, n = H * W;
  const S = new Float32Array(n);
  for (let l = 0; l < layers; l++) {
    // depth factor f: 1 for the nearest layer, smaller for farther ones
    const f = layers === 1 ? 1 : 0.55 + 0.45 * (l / (layers - 1));
    const layer = new Float32Array(n);
    const th = angle + jitter * rng.uniform(-1, 1);
    const L = Math.max(2, length * f * scale);
    // Seeds are placed over the crop extended by the streak length, so streaks cross crop borders
    // as they would in the full frame.
    const pad = L / 2, area = (H + 2 * pad) * (W + 2 * pad);
    const count = Math.round((density / layers) * area);
    for (let k = 0; k < count; k++) {
      const x = rng.uniform(-pad, W + pad), y = rng.uniform(-pad, H + pad);
      splatLine(layer, H, W, x, y, L, th + rng.uniform(-1, 1), intensity * f * rng.uniform(0.5, 1));
    }
    // width and defocus grow with nearness; σ's add in quadrature (two Gaussian blurs in a row)
    const sigma = Math.hypot(width * (0.6 + 0.8 * f), 1.5 * f * f) * Math.max(0.7, scale);
    const blurred = blurPlane(layer, H, W, sigma);
    for (let i = 0; i < n; i++) S[i] = 1 - (1 - S[i]!) * (1 - Math.min(1, blurred[i]!));
  }
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) out[c * n + i] = 1 - (1 - clean.data[c * n + i]!) * (1 - S[i]!);
  if (veil > 0) {
    const depth = blurPlane(depthPrior(clean, frame, 1.2), H, W, 5 * scale);
    for (let i = 0; i < n; i++) {
      const v = veil * (1 - Math.exp(-depth[i]!));
      for (let c = 0; c < 3; c++) out[c * n + i] = out[c * n + i]! * (1 - v) + airlight * v;
    }
  }
  return { image: clamp01({ data: out, channels: 3, height: H, width: W }), mask: S, params: { angle, layers, length, density, intensity, width, jitter, veil, airlight } };
}

export interface RainFogParams {
  /** streak angle, one of 80, 85, 90, 95, 100 in Outdoor-Rain; default drawn from those */
  angle?: number;
  /** streak length in px at 720x480; default randint(21, 60) */
  length?: number;
  /** fog scattering coefficient; default 2.6 + 2U */
  beta?: number;
  /** airlight (grey); default 0.25 + 0.7U */
  airlight?: number;
  /** Gaussian σ of the pre-blur of the clean photo; default min(1, |N(0.5, 0.5)|) */
  preBlur?: number;
  /** depth map (H×W, [0,1]) to use instead of the prior */
  depth?: Float32Array;
  frame?: Partial<Frame>;
}

export interface RainFogResult {
  image: Image; mask: Float32Array; transmission: Float32Array;
  params: Required<Omit<RainFogParams, 'depth' | 'frame'>> & { noiseMean: number; noiseVar: number; tr: number };
}

export function synthRainFog(clean: Image, p: RainFogParams, rng: Generator): RainFogResult {
  const angle = pick(p.angle, () => 80 + 5 * rng.integer(0, 4));
  const length = pick(p.length, () => rng.integer(1, 40) + 20);
  const beta = pick(p.beta, () => 2.6 + 2 * rng.random());
  const airlight = pick(p.airlight, () => 0.25 + 0.7 * rng.random());
  const preBlur = pick(p.preBlur, () => Math.min(1, Math.abs(0.5 + 0.5 * rng.normal())));
  const noiseMean = -4 * (0.2 + 0.05 * rng.random());
  const noiseVar = 0.7 + 0.3 * rng.random();
  const tr = 0.2 + 0.04 * length + 0.05 * rng.random();
  const frame = resolveFrame(clean, p.frame), scale = frameScale(frame);
  const H = clean.height, W = clean.width, n = H * W;
  const L = Math.max(2, length * scale);
  // Motion blur of the clipped noise field max(0, N(m, v)). Only the ~16 % positive samples
  // contribute, so we splat a line (value/L per pixel: fspecial('motion') averages) for each.
  const pad = Math.ceil(L / 2), sd = Math.sqrt(noiseVar);
  const streak = new Float32Array(n);
  for (let y = -pad; y < H + pad; y++) for (let x = -pad; x < W + pad; x++) {
    const v = noiseMean + sd * rng.normal();
    if (v > 0) splatLine(streak, H, W, x, y, L, angle, v / L);
  }
  const S = blurPlane(streak, H, W, 0.5);
  for (let i = 0; i < n; i++) S[i] = tr * S[i]!;
  const J = preBlur > 0.05 ? blurImage(clean, preBlur) : clean;
  const rain = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) rain[c * n + i] = Math.min(1, J.data[c * n + i]! + S[i]!);
  const rainImg: Image = { data: rain, channels: 3, height: H, width: W };
  // Fog over the rainy image; depth is computed from the clean photo (the scene), not the rain.
  const depth = p.depth ?? blurPlane(depthPrior(clean, frame, 1.2), H, W, 5 * scale);
  const hz = synthHaze(rainImg, { beta, airlight, tint: 0, depth, frame }, rng);
  return {
    image: clamp01(hz.image), mask: S, transmission: hz.transmission,
    params: { angle, length, beta, airlight, preBlur, noiseMean, noiseVar, tr },
  };
}
