/**
 * Flat light: a clean scene re-lit as under overcast sky — lower contrast, brighter or darker,
 * less saturated — used on the CLEAN photo before weather is synthesised over it, so that the pair
 * (weather over the flat scene, the flat scene) teaches a restorer that a grey, low-contrast scene
 * is not haze.
 *
 * Why it exists (measured, issue 14): the bundled model "dehazed" a sunlit grey rock face in the
 * test split, darkening it by about 0.12 in every channel. That one scene cost its rain images
 * 14 dB (31.8 -> 17.6 dB) and its raindrop images 9 dB, enough to turn the averages of rain and
 * raindrop negative, and it gave the clean-photo check 17.6 dB. Haze lowers contrast and lifts the
 * black level, and the synthesised training haze always comes over scenes with the contrast of a
 * sunny photo, so "low contrast" alone became the model's cue for haze. Flattening some clean
 * scenes (and keeping them as the target) breaks that shortcut: what remains to tell haze apart is
 * what only haze has, its growth with depth (the veil is thicker far away; see haze.ts).
 *
 * The model, per pixel and channel v of the scene J, with m the image's mean per channel and Y the
 * Rec. 601 luma after the first step:
 *   v1 = k (m + c (v - m))                  contrast c in [0.55, 0.95], exposure k in [0.85, 1.3]
 *   v2 = Y + (1 - s)(v1 - Y)                desaturation s in [0, 0.5]
 * clamped to [0, 1]. There is deliberately no additive lift: m + c (v - m) + (1 - c) A is exactly
 * haze of constant transmission c and airlight A, and the point is to show scenes that are NOT
 * haze. Contrast around the mean (dull light) and multiplicative exposure (a bright scene) are not
 * what a veil does, and there is no depth term either: the change is the same everywhere.
 */
import { createImage, type Image } from '../image';
import type { Generator } from '@mofme/tensor';

export interface FlatLightParams { contrast: number; exposure: number; desaturation: number }

export function flatLight(img: Image, rng: Generator): { image: Image; params: FlatLightParams } {
  const params = { contrast: rng.uniform(0.55, 0.95), exposure: rng.uniform(0.85, 1.3), desaturation: rng.uniform(0, 0.5) };
  const { contrast: c, exposure: k, desaturation: s } = params;
  const n = img.height * img.width, d = img.data;
  const out = createImage(img.height, img.width);
  for (let ch = 0; ch < 3; ch++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += d[ch * n + i]!;
    m /= n;
    for (let i = 0; i < n; i++) out.data[ch * n + i] = k * (m + c * (d[ch * n + i]! - m));
  }
  for (let i = 0; i < n; i++) {
    const r = out.data[i]!, g = out.data[n + i]!, b = out.data[2 * n + i]!;
    const y = 0.299 * r + 0.587 * g + 0.114 * b;
    out.data[i] = y + (1 - s) * (r - y); out.data[n + i] = y + (1 - s) * (g - y); out.data[2 * n + i] = y + (1 - s) * (b - y);
  }
  for (let i = 0; i < out.data.length; i++) out.data[i] = Math.min(1, Math.max(0, out.data[i]!));
  return { image: out, params };
}
