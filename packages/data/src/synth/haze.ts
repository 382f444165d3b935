/**
 * Haze / fog with the Koschmieder atmospheric scattering model (data.md §4.1):
 *
 *   I(x) = J(x) · t(x) + A · (1 − t(x)),     t(x) = exp(−β · d(x))
 *
 * J clean image, I hazy image, t transmission (fraction of scene light that reaches the camera),
 * A airlight (the colour of the fog), β scattering coefficient, d depth normalised to [0, 1].
 * Without a depth map we use the depth prior of common.ts (far at the top, bright sky far).
 * Ranges: β ∈ [1, 2.5] (light to medium; Outdoor-Rain goes up to 4.6 = dense), A ∈ [0.75, 1],
 * with a slight blue-grey tint τ ∈ [0, 0.06] (A_rgb = A·(1−τ, 1−τ/2, 1)).
 *
 * Physical consequences the tests check: the dark channel rises (fog adds A(1−t) ≥ 0 of bright
 * light to every channel), contrast falls with β, and far (top) regions are hazier than near ones.
 */
import type { Image } from '../image';
import { clamp01 } from '../image';
import { Generator } from '@mofme/tensor';
import { blurPlane, depthPrior, pick, resolveFrame, frameScale, type Frame } from './common';

export interface HazeParams {
  /** scattering coefficient on normalised depth; default U[1, 2.5] */
  beta?: number;
  /** airlight brightness; default U[0.75, 1] */
  airlight?: number;
  /** blue-grey tint of the airlight; default U[0, 0.06] */
  tint?: number;
  /** exponent of the vertical depth ramp; default U[1, 1.5] */
  depthGamma?: number;
  /** depth map (H×W, ~[0,1]) to use instead of the prior */
  depth?: Float32Array;
  /** where this image sits in the full frame (for crops) */
  frame?: Partial<Frame>;
}

export interface HazeResult { image: Image; transmission: Float32Array; params: Required<Omit<HazeParams, 'depth' | 'frame'>> }

export function synthHaze(clean: Image, p: HazeParams, rng: Generator): HazeResult {
  const beta = pick(p.beta, () => rng.uniform(1, 2.5));
  const airlight = pick(p.airlight, () => rng.uniform(0.75, 1));
  const tint = pick(p.tint, () => rng.uniform(0, 0.06));
  const depthGamma = pick(p.depthGamma, () => rng.uniform(1, 1.5));
  const frame = resolveFrame(clean, p.frame);
  const H = clean.height, W = clean.width, n = H * W;
  // Outdoor-Rain smooths depth with σ = 5 px at 720x480 so that fog does not follow edges.
  const depth = p.depth ?? blurPlane(depthPrior(clean, frame, depthGamma), H, W, 5 * frameScale(frame));
  if (depth.length !== n) throw new Error(`synthHaze: depth has ${depth.length} values, image is ${H}x${W}`);
  const t = new Float32Array(n);
  for (let i = 0; i < n; i++) t[i] = Math.exp(-beta * depth[i]!);
  const A = [airlight * (1 - tint), airlight * (1 - tint / 2), airlight];
  const out = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) out[c * n + i] = clean.data[c * n + i]! * t[i]! + A[c]! * (1 - t[i]!);
  return { image: clamp01({ data: out, channels: 3, height: H, width: W }), transmission: t, params: { beta, airlight, tint, depthGamma } };
}
