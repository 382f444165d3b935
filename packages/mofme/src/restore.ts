// Whole-image inference with overlapping tiles (mofme-paper.md §1.1 and §7): the network is trained
// on 240x240 crops, so a photo is cut into windows of that size, each window is restored, and the
// windows' outputs are blended where they overlap.
//
// Blending. A window's output is least trustworthy near its edges (zero padding, attention that sees
// only the window), and averaging windows with flat weights makes that visible: every window edge
// becomes a seam where the average switches between a window's edge and another's interior (a
// 120-px grid on photos). Each window's output is therefore weighted by a separable raised cosine
//   w(i) = sin²(π (i + ½) / t),  i = 0 .. t-1,
// which is largest in the middle and falls to almost nothing at the edges (4e-5 for t = 240), so a
// pixel takes its value from the windows that see it near their centre, and the weight changes
// smoothly from one window to the next. The half-pixel shift keeps every weight above zero, also
// where only one window covers a pixel (image borders); the result is sum(w·out) / sum(w) per
// pixel in float64, so any positive weight gives that window's own value there. With stride = tile/2 the squared sines of neighbours add up to
// one (sin² + cos²); other strides are still exact because of the division. `blend: 'flat'` keeps
// the plain average (the official protocol's) for comparison. The PSNR and time of each tiling
// choice on the built-in test split are in README.md ("Whole-photo inference").
//
// Sides. The tile shrinks to the image (rounded up to the patch size) when the image is smaller,
// and the image is reflect-padded up to the tile when a side is not a multiple of the patch size,
// then cropped back. The last window of each row/column is placed flush with the edge, so every
// pixel is covered and no window reads padding it does not need.
//
// Memory is bounded whatever the image size: windows are visited in bands (one row of windows at a
// time); weighted sums are kept only for the rows the current band covers (C·tile·W doubles), and
// rows that no later band reaches are finished into the output at once. Each window runs under
// noGrad and tidy, so the tensors alive are one window's activations. A 12-megapixel photo thus
// needs its input and output planes (float32) plus a few tens of MB.

import { noGrad, tensor, tidy, type Tensor } from '@mofme/tensor';
import { toModelInput, type MoFME } from './model';

export interface RestoreOptions {
  /** window side in pixels, a multiple of the patch size (default 240: the training crop of the paper) */
  tile?: number;
  /**
   * step between windows; at most the tile. Default 180: on the built-in test split it scored the
   * same PSNR as 120 (the official stride) with the raised-cosine blend, with 2.1x fewer windows on
   * a 12 MP photo, and keeps 60 px of overlap to blend (README.md, "Whole-photo inference")
   */
  stride?: number;
  /** how overlapping windows are combined: 'cosine' (default, seamless) or 'flat' (plain average) */
  blend?: 'cosine' | 'flat';
  /** called after each window with (windows done, windows in all): progress for long photos */
  onTile?: (done: number, total: number) => void;
  /**
   * 'model' (default): values are in the model's input range [-1, 1] and the output is returned as
   * the model gives it. 'unit' (photos): pixels in [0, 1], mapped to [-1, 1] window by window (no
   * normalised copy of the whole photo), output clamped to [0, 1], and an output that is not a
   * number is an error naming the pixel (clamping would turn NaN into black silently).
   */
  range?: 'model' | 'unit';
}

export const DEFAULT_TILE = 240;
export const DEFAULT_STRIDE = 180;

/** Window starts along one axis of length `size`: 0, s, 2s, ... and one flush with the end. */
export function tileStarts(size: number, tile: number, stride: number): number[] {
  const starts: number[] = [];
  for (let s = 0; s + tile < size; s += stride) starts.push(s);
  starts.push(size - tile);
  return starts;
}

/** Blend weights along one side of a window (see the top of the file). */
export function blendWeights(side: number, blend: 'cosine' | 'flat'): Float64Array {
  return Float64Array.from({ length: side }, (_, i) => (blend === 'flat' ? 1 : Math.sin((Math.PI * (i + 0.5)) / side) ** 2));
}

/** Reflect indices 0..size-1 then size-2, size-3, ... (edge-replicated if the pad exceeds the image). */
function reflectIndex(size: number, padded: number): Int32Array {
  return Int32Array.from({ length: padded }, (_, i) => (i < size ? i : Math.max(0, 2 * (size - 1) - i)));
}

/** Planes [C, H, W] of one image, flat, in the values the model takes. */
export interface Planes { data: Float32Array; channels: number; height: number; width: number }

/**
 * Restore one image given as planes (`data` is C·H·W values in the model's input range) with
 * overlapping, blended windows; returns the model's output planes, C·H·W float32. Memory beyond
 * the input and output is one band of weighted sums (see the top of the file). The model runs in
 * eval mode (its previous mode is restored afterwards).
 */
export function restorePlanes(model: MoFME, img: Planes, options: RestoreOptions = {}): Float32Array {
  const p = model.config.patchSize;
  const tile = options.tile ?? DEFAULT_TILE;
  const stride = options.stride ?? DEFAULT_STRIDE;
  if (!(Number.isInteger(tile) && tile > 0 && tile % p === 0)) throw new Error(`restore: tile ${tile} must be a positive multiple of the patch size ${p}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= tile)) throw new Error(`restore: stride ${stride} must be a whole number in [1, tile = ${tile}]`);
  const { channels: C, height: H, width: W } = img;
  if (img.data.length !== C * H * W) throw new Error(`restore: ${img.data.length} values for ${C}x${H}x${W} planes`);
  const roundUp = (v: number): number => Math.ceil(v / p) * p;
  const th = Math.min(tile, roundUp(H)), tw = Math.min(tile, roundUp(W)); // window sides
  const Hp = Math.max(H, th), Wp = Math.max(W, tw); // padded only when a side is below one window
  if (Hp > H || Wp > W) {
    // a side below one window: small, so a reflect-padded copy costs nothing; restore it, crop back
    const rows = reflectIndex(H, Hp), cols = reflectIndex(W, Wp);
    const padded = new Float32Array(C * Hp * Wp);
    for (let c = 0; c < C; c++) for (let i = 0; i < Hp; i++) for (let j = 0; j < Wp; j++) padded[(c * Hp + i) * Wp + j] = img.data[(c * H + rows[i]!) * W + cols[j]!]!;
    const out = restorePlanes(model, { data: padded, channels: C, height: Hp, width: Wp }, options);
    const cropped = new Float32Array(C * H * W);
    for (let c = 0; c < C; c++) for (let i = 0; i < H; i++) cropped.set(out.subarray((c * Hp + i) * Wp, (c * Hp + i) * Wp + W), (c * H + i) * W);
    return cropped;
  }

  const blend = options.blend ?? 'cosine';
  const unit = options.range === 'unit';
  const wy = blendWeights(th, blend), wx = blendWeights(tw, blend);
  const ys = tileStarts(H, th, stride), xs = tileStarts(W, tw, stride);
  const total = ys.length * xs.length;
  const out = new Float32Array(C * H * W);
  // weighted sums and weights for rows [top, top + th) of the image: one band
  const sum = new Float64Array(C * th * W), weight = new Float64Array(th * W);
  const window = new Float32Array(C * th * tw);
  const wasTraining = model.training;
  model.eval();
  let done = 0;
  try {
    for (const [band, top] of ys.entries()) {
      for (const x0 of xs) {
        for (let c = 0; c < C; c++) {
          for (let i = 0; i < th; i++) window.set(img.data.subarray((c * H + top + i) * W + x0, (c * H + top + i) * W + x0 + tw), (c * th + i) * tw);
        }
        const y = tidy(() => noGrad(() => {
          const x = tensor(window, { shape: [1, C, th, tw] });
          return model.forward(unit ? toModelInput(x) : x).image.data(); // [1, C, th, tw]
        }));
        for (let i = 0; i < th; i++) {
          for (let j = 0; j < tw; j++) {
            const w = wy[i]! * wx[j]!;
            weight[i * W + x0 + j]! += w;
            for (let c = 0; c < C; c++) sum[(c * th + i) * W + x0 + j]! += w * y[(c * th + i) * tw + j]!;
          }
        }
        options.onTile?.(++done, total);
      }
      // rows above the next band's top are final: write them out and move the band down
      const next = band + 1 < ys.length ? ys[band + 1]! : top + th;
      const finished = next - top;
      for (let i = 0; i < finished; i++) {
        for (let j = 0; j < W; j++) {
          const w = weight[i * W + j]!;
          for (let c = 0; c < C; c++) {
            const v = sum[(c * th + i) * W + j]! / w;
            if (unit && !Number.isFinite(v)) throw new Error(`restore: the model's output is ${v} at pixel (x ${j}, y ${top + i}) of a ${W}x${H} image: its weights overflow (a diverged run?); use an earlier checkpoint`);
            out[(c * H + top + i) * W + j] = unit ? (v < 0 ? 0 : v > 1 ? 1 : v) : v;
          }
        }
      }
      weight.copyWithin(0, finished * W);
      weight.fill(0, (th - finished) * W);
      for (let c = 0; c < C; c++) {
        sum.copyWithin(c * th * W, (c * th + finished) * W, (c + 1) * th * W);
        sum.fill(0, (c * th + th - finished) * W, (c + 1) * th * W);
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/**
 * Restore `x` [B, C, H, W] (normalised as the model expects) image by image with `restorePlanes`;
 * returns [B, C, H, W] on x's backend.
 */
export function restore(model: MoFME, x: Tensor, options: RestoreOptions = {}): Tensor {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const values = Float32Array.from(x.data());
  const result = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++) {
    const one = values.subarray(b * C * H * W, (b + 1) * C * H * W);
    result.set(restorePlanes(model, { data: one, channels: C, height: H, width: W }, options), b * C * H * W);
  }
  return tensor(result, { shape: [B, C, H, W], dtype: x.dtype, backend: x.backend });
}
