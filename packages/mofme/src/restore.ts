// Whole-image inference with overlapping tiles, the official evaluation protocol (mofme-paper.md §1.1
// and §7): the network is trained on 240x240 crops, so a 480x720 image is cut into 240x240 windows
// at stride 120, each window is restored, and every output pixel is the average of the windows that
// cover it. Averaging overlapping windows also hides the seams that independent tiles would leave.
//
// Tile and stride are options. Sides that are not covered exactly are handled by
//   - shrinking the tile to the image (rounded up to the patch size) when the image is smaller, and
//   - reflect-padding the image up to the tile when a side is not a multiple of the patch size,
// then cropping back. The last window of each row/column is placed flush with the edge, so every
// pixel is covered and no window reads padding it does not need.
//
// Memory stays flat: each window runs under noGrad and tidy, and only its output values are added
// into host accumulators (sum and count), so the peak is one window's activations.

import { indexSelect, noGrad, tensor, tidy, type Tensor } from '@mofme/tensor';
import type { MoFME } from './model';

export interface RestoreOptions {
  /** window side in pixels, a multiple of the patch size (default 240, official) */
  tile?: number;
  /** step between windows (default 120, official); at most the tile */
  stride?: number;
}

/** Window starts along one axis of length `size`: 0, s, 2s, ... and one flush with the end. */
export function tileStarts(size: number, tile: number, stride: number): number[] {
  const starts: number[] = [];
  for (let s = 0; s + tile < size; s += stride) starts.push(s);
  starts.push(size - tile);
  return starts;
}

/** Reflect indices 0..size-1 then size-2, size-3, ... (edge-replicated if the pad exceeds the image). */
function reflectIndex(size: number, padded: number): Float64Array {
  return Float64Array.from({ length: padded }, (_, i) => {
    if (i < size) return i;
    const r = 2 * (size - 1) - i;
    return Math.max(0, r);
  });
}

/**
 * Restore `x` [B, 3, H, W] (normalised as the model expects) with overlapping windows; returns
 * [B, 3, H, W]. The model runs in eval mode (its previous mode is restored afterwards).
 */
export function restore(model: MoFME, x: Tensor, options: RestoreOptions = {}): Tensor {
  const p = model.config.patchSize;
  const tile = options.tile ?? 240;
  const stride = options.stride ?? 120;
  if (tile % p !== 0) throw new Error(`restore: tile ${tile} must be a multiple of the patch size ${p}`);
  if (!(stride >= 1 && stride <= tile)) throw new Error(`restore: stride ${stride} must be in [1, tile = ${tile}]`);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const roundUp = (v: number): number => Math.ceil(v / p) * p;
  const th = Math.min(tile, roundUp(H)), tw = Math.min(tile, roundUp(W)); // window sides
  const Hp = Math.max(H, th), Wp = Math.max(W, tw); // padded only when a side is below one window

  const wasTraining = model.training;
  model.eval();
  try {
    return tidy(() => {
      let xp = x; // [B, C, Hp, Wp]
      if (Hp > H) xp = indexSelect(xp, 2, tensor(reflectIndex(H, Hp), { dtype: x.dtype, backend: x.backend }));
      if (Wp > W) xp = indexSelect(xp, 3, tensor(reflectIndex(W, Wp), { dtype: x.dtype, backend: x.backend }));
      const sum = new Float64Array(B * C * Hp * Wp);
      const count = new Float64Array(Hp * Wp);
      for (const y0 of tileStarts(Hp, th, stride)) {
        for (const x0 of tileStarts(Wp, tw, stride)) {
          const out = tidy(() => noGrad(() => model.forward(xp.slice([null, null, [y0, y0 + th], [x0, x0 + tw]])).image.data())); // [B, C, th, tw]
          for (let bc = 0; bc < B * C; bc++) {
            for (let i = 0; i < th; i++) {
              const src = (bc * th + i) * tw, dst = (bc * Hp + y0 + i) * Wp + x0;
              for (let j = 0; j < tw; j++) sum[dst + j]! += out[src + j]!;
            }
          }
          for (let i = 0; i < th; i++) for (let j = 0; j < tw; j++) count[(y0 + i) * Wp + x0 + j]! += 1;
        }
      }
      // average and crop back to H x W
      const result = new Float64Array(B * C * H * W);
      for (let bc = 0; bc < B * C; bc++) {
        for (let i = 0; i < H; i++) {
          for (let j = 0; j < W; j++) result[(bc * H + i) * W + j] = sum[(bc * Hp + i) * Wp + j]! / count[i * Wp + j]!;
        }
      }
      return tensor(result, { shape: [B, C, H, W], dtype: x.dtype, backend: x.backend });
    });
  } finally {
    model.train(wasTraining);
  }
}
