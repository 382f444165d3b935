// Whole-image inference with overlapping tiles (mofme-paper.md §1.1 and §7): the network is trained
// on fixed-size crops (240x240 in the paper, 128x128 for the bundled model), so a photo is cut into
// windows of about that size, each window is restored, and the windows' outputs are blended where
// they overlap.
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
// rows that no later band reaches are finished at once and handed to a sink (`restoreRows`), which
// can quantise them straight into the encoder's 8-bit samples; the windows are read from a source
// that can convert them from the decoded samples (`PixelSource`). Each window runs under noGrad
// and tidy, so the tensors alive are one window's activations. A 12-megapixel photo thus needs its
// decoded and its output samples (36 MB each at 8 bits) plus one band (31 MB) and one window's
// activations; `restorePlanes` is the same with float32 planes in and out (144 MB each at 12 MP).
// Those activations are fresh memory only in the first window (the backend recycles them after),
// and fresh memory is slow to touch the first time, so a helper thread faults it in ahead of use
// (`reserveRestoreMemory`).

import { CpuBackend, getDefaultBackend, noGrad, tensor, tidy, type Tensor } from '@mofme/tensor';
import { toModelInput, type MoFME } from './model';
import type { MofmeConfig } from './config';

export interface RestoreOptions {
  /**
   * window side in pixels, a multiple of the patch size. Default 192: on the built-in test split
   * the bundled model scored 0.06 dB more PSNR with 192-px windows than with 240 (the paper's crop)
   * and 0.2 dB more than with 128 (its own training crop), at a third of 240's CPU time per image
   * (README.md, "Whole-photo inference")
   */
  tile?: number;
  /**
   * step between windows; at most the tile. Default 144 (3/4 of the tile): the best PSNR of the
   * 192-px strides measured (96, 144, 192), half the windows of stride 96, and 48 px of overlap
   * left to blend (stride = tile leaves none: every window edge is a hard seam)
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

export const DEFAULT_TILE = 192;
export const DEFAULT_STRIDE = 144;

/**
 * About what one th x tw window asks of fresh memory the first time (from the second window on the
 * backend recycles it): `tensors`, the new arrays of its activations, and `scratch`, the fast
 * kernels' largest working set (the attention product and its softmax, in and out). Measured for
 * the bundled model, the layers freeing their temporaries under noGrad (nn inference.ts): 7.6,
 * 31.5, 58.9 and 70.5 MiB of arrays at 128, 192, 240 and 256 px, 3, 11, 25 and 33 MiB of
 * scratch; fitted by feature maps at full resolution, about 5 of each width the head and tail
 * use, plus two [heads, N, N] attention maps (within 1 MiB from 192 px up, 4 MiB over at 128).
 * An estimate: what it misses is faulted in as usual, what it overshoots a helper touched for
 * nothing.
 */
function windowMemory(config: MofmeConfig, th: number, tw: number): { tensors: number; scratch: number } {
  const pixels = th * tw, tokens = pixels / config.patchSize ** 2;
  const attention = config.heads * tokens * tokens * 4; // bytes of one [heads, N, N] float32 map
  return { tensors: 5 * (config.headChannels + config.tailChannels) * pixels * 4 + 2 * attention, scratch: 2 * attention };
}

/**
 * Have a helper thread fault in the memory the first window will need (`windowMemory`), so the
 * first window does not pay the page faults on the main thread (CpuBackend.reserve; tensor's
 * prefault.ts: 4-5 ms of CPU time per MiB on the measured VM, ~200 ms for a first 192-px window).
 * Returns at once. `restoreRows` calls it itself; a caller that has other work to do first
 * (decoding the photo) can call it earlier, with the image size if known. Nothing happens when
 * the memory is already there (a warm process) or the backend is not the CPU one.
 */
export function reserveRestoreMemory(model: MoFME, options: Pick<RestoreOptions, 'tile'> = {}, height = Infinity, width = Infinity): void {
  const backend = getDefaultBackend();
  if (!(backend instanceof CpuBackend)) return;
  const p = model.config.patchSize, tile = options.tile ?? DEFAULT_TILE;
  const side = (size: number): number => Math.min(tile, Math.ceil(size / p) * p);
  const { tensors, scratch } = windowMemory(model.config, side(height), side(width));
  if (tensors > 0) void backend.reserve(tensors, scratch); // (NaN for a stand-in model without a full config)
}

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
 * Where `restoreRows` reads its windows from: an image of `channels` x `height` x `width` values
 * that copies any window into planes on request. A photo can thus stay in its decoded 8- or
 * 16-bit samples (a quarter or half of float32 planes) and be converted one window at a time.
 */
export interface PixelSource {
  channels: number;
  height: number;
  width: number;
  /** copy rows [y0, y0 + h) x columns [x0, x0 + w) of every channel into `into` as [C, h, w] */
  readWindow(y0: number, x0: number, h: number, w: number, into: Float32Array): void;
}

/**
 * Receives finished output rows, top to bottom, each row once: `rows` holds C planes of `n` rows of
 * the image's width (value (c, i, j) at (c·n + i)·width + j) for image rows y0 .. y0 + n - 1. The
 * array is reused for the next rows: copy what you keep.
 */
export type RowSink = (y0: number, n: number, rows: Float32Array) => void;

/** A source over planes already in memory. */
export function planesSource(img: Planes): PixelSource {
  const { data, channels: C, height: H, width: W } = img;
  if (data.length !== C * H * W) throw new Error(`restore: ${data.length} values for ${C}x${H}x${W} planes`);
  return {
    channels: C, height: H, width: W,
    readWindow(y0, x0, h, w, into) {
      for (let c = 0; c < C; c++) for (let i = 0; i < h; i++) into.set(data.subarray((c * H + y0 + i) * W + x0, (c * H + y0 + i) * W + x0 + w), (c * h + i) * w);
    },
  };
}

/**
 * Restore one image given as planes (`data` is C·H·W values in the model's input range) with
 * overlapping, blended windows; returns the model's output planes, C·H·W float32 (`restoreRows`
 * writing into one array).
 */
export function restorePlanes(model: MoFME, img: Planes, options: RestoreOptions = {}): Float32Array {
  const source = planesSource(img);
  const { channels: C, height: H, width: W } = img;
  const out = new Float32Array(C * H * W);
  restoreRows(model, source, (y0, n, rows) => {
    for (let c = 0; c < C; c++) out.set(rows.subarray(c * n * W, (c + 1) * n * W), (c * H + y0) * W);
  }, options);
  return out;
}

/**
 * Restore the image `source` reads with overlapping, blended windows and hand the output to `sink`
 * band by band (see the top of the file). Memory is one band of weighted sums, one window and one
 * band of finished rows, whatever the image size; the caller decides where the rows go (planes,
 * 8-bit samples for an encoder). The model runs in eval mode (its previous mode is restored
 * afterwards).
 */
export function restoreRows(model: MoFME, source: PixelSource, sink: RowSink, options: RestoreOptions = {}): void {
  const p = model.config.patchSize;
  const tile = options.tile ?? DEFAULT_TILE;
  const stride = options.stride ?? DEFAULT_STRIDE;
  if (!(Number.isInteger(tile) && tile > 0 && tile % p === 0)) throw new Error(`restore: tile ${tile} must be a positive multiple of the patch size ${p}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= tile)) throw new Error(`restore: stride ${stride} must be a whole number in [1, tile = ${tile}]`);
  const { channels: C, height: H, width: W } = source;
  const roundUp = (v: number): number => Math.ceil(v / p) * p;
  const th = Math.min(tile, roundUp(H)), tw = Math.min(tile, roundUp(W)); // window sides
  const Hp = Math.max(H, th), Wp = Math.max(W, tw); // padded only when a side is below one window
  if (Hp > H || Wp > W) {
    // a side below one window: read it reflect-padded through index maps (no padded copy), restore
    // at the padded size and hand on only the rows and columns inside the image
    const rows = reflectIndex(H, Hp), cols = reflectIndex(W, Wp);
    const line = new Float32Array(C * W), cropped = new Float32Array(C * th * W);
    const padded: PixelSource = {
      channels: C, height: Hp, width: Wp,
      readWindow(y0, x0, h, w, into) {
        for (let i = 0; i < h; i++) {
          source.readWindow(rows[y0 + i]!, 0, 1, W, line); // one source row, every channel
          for (let c = 0; c < C; c++) for (let j = 0; j < w; j++) into[(c * h + i) * w + j] = line[c * W + cols[x0 + j]!]!;
        }
      },
    };
    restoreRows(model, padded, (y0, n, band) => {
      const keep = Math.min(n, H - y0);
      if (keep <= 0) return;
      for (let c = 0; c < C; c++) for (let i = 0; i < keep; i++) cropped.set(band.subarray((c * n + i) * Wp, (c * n + i) * Wp + W), (c * keep + i) * W);
      sink(y0, keep, cropped.subarray(0, C * keep * W));
    }, options);
    return;
  }

  reserveRestoreMemory(model, { tile }, H, W);
  const blend = options.blend ?? 'cosine';
  const unit = options.range === 'unit';
  const wy = blendWeights(th, blend), wx = blendWeights(tw, blend);
  const ys = tileStarts(H, th, stride), xs = tileStarts(W, tw, stride);
  const total = ys.length * xs.length;
  // weighted sums and weights for rows [top, top + th) of the image: one band
  const sum = new Float64Array(C * th * W), weight = new Float64Array(th * W);
  const window = new Float32Array(C * th * tw), finishedRows = new Float32Array(C * th * W);
  const wasTraining = model.training;
  model.eval();
  let done = 0;
  try {
    for (const [band, top] of ys.entries()) {
      for (const x0 of xs) {
        source.readWindow(top, x0, th, tw, window);
        const y = tidy(() => noGrad(() => {
          const x = tensor(window, { shape: [1, C, th, tw] });
          return model.forward(unit ? toModelInput(x) : x).image.data(); // [1, C, th, tw]
        }));
        // (row by row along contiguous memory: the same additions as pixel by pixel, in the same
        // order for each sum, 2-6 ms a window faster than walking the channels innermost)
        for (let i = 0; i < th; i++) {
          const wi = wy[i]!, at = i * W + x0;
          for (let j = 0; j < tw; j++) weight[at + j]! += wi * wx[j]!;
          for (let c = 0; c < C; c++) {
            const to = (c * th + i) * W + x0, from = (c * th + i) * tw;
            for (let j = 0; j < tw; j++) sum[to + j]! += wi * wx[j]! * y[from + j]!;
          }
        }
        options.onTile?.(++done, total);
      }
      // rows above the next band's top are final: hand them on and move the band down
      const next = band + 1 < ys.length ? ys[band + 1]! : top + th;
      const finished = next - top;
      let finite = true;
      for (let c = 0; c < C; c++) {
        for (let i = 0; i < finished; i++) {
          const from = (c * th + i) * W, to = (c * finished + i) * W, at = i * W;
          for (let j = 0; j < W; j++) {
            const v = sum[from + j]! / weight[at + j]!;
            if (!unit) { finishedRows[to + j] = v; continue; }
            if (!Number.isFinite(v)) finite = false;
            finishedRows[to + j] = v < 0 ? 0 : v > 1 ? 1 : v;
          }
        }
      }
      if (!finite) notANumber(sum, weight, C, th, W, finished, top, H);
      sink(top, finished, finishedRows.subarray(0, C * finished * W));
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
}

/** The one-line error for a band with an output that is not a number, naming its first pixel (row by row, then by channel). */
function notANumber(sum: Float64Array, weight: Float64Array, C: number, th: number, W: number, rows: number, top: number, H: number): never {
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < W; j++) {
      for (let c = 0; c < C; c++) {
        const v = sum[(c * th + i) * W + j]! / weight[i * W + j]!;
        if (!Number.isFinite(v)) throw new Error(`restore: the model's output is ${v} at pixel (x ${j}, y ${top + i}) of a ${W}x${H} image: its weights overflow (a diverged run?); use an earlier checkpoint`);
      }
    }
  }
  throw new Error('restore: a band had an output that is not a number, then none was found'); // (cannot happen: the same division twice)
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
