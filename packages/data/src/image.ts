/**
 * The package's image type and the pixel-level operations the loader needs: conversion between the
 * codecs' interleaved integer pixels (HWC, uint8/uint16) and the model's planar float32 (CHW, [0,1]),
 * cropping, bilinear resizing and the 8 dihedral transforms (flips/rotations).
 *
 * Layout: CHW means all red values first (row-major), then all green, then all blue:
 *   data[c*H*W + y*W + x].  This is what a conv net wants (NCHW once batched).
 * Codecs produce HWC (pixel-interleaved RGB), so `rawToImage` transposes while it scales
 * integers to [0,1] by dividing by 2^bits − 1 (255 or 65535) — exact for every 8-bit value.
 */

export interface Image {
  /** planar float32 pixels, CHW, values in [0, 1] */
  data: Float32Array;
  channels: 3;
  height: number;
  width: number;
}

/** Interleaved integer pixels straight from a codec: always 3 channels (RGB) after our conversion rule. */
export interface RawImage {
  data: Uint8Array | Uint16Array;
  width: number;
  height: number;
  /** 8 or 16: the maximum value is 2^bits − 1 */
  bits: 8 | 16;
}

export function createImage(height: number, width: number, fill = 0): Image {
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) {
    throw new Error(`createImage: bad size ${height}x${width} (need positive integers)`);
  }
  const data = new Float32Array(3 * height * width);
  if (fill) data.fill(fill);
  return { data, channels: 3, height, width };
}

export function cloneImage(img: Image): Image {
  return { data: img.data.slice(), channels: 3, height: img.height, width: img.width };
}

/** Throws unless `img` is a well-formed CHW image; `what` names it in the message. */
export function assertImage(img: Image, what = 'image'): void {
  if (!img || !(img.data instanceof Float32Array) || img.channels !== 3) {
    throw new Error(`${what}: expected { data: Float32Array, channels: 3, height, width }`);
  }
  if (img.data.length !== 3 * img.height * img.width) {
    throw new Error(`${what}: data length ${img.data.length} != 3*${img.height}*${img.width}`);
  }
}

/** Clamps every value to [0, 1] in place (synthesisers call this last). */
export function clamp01(img: Image): Image {
  const d = img.data;
  for (let i = 0; i < d.length; i++) { const v = d[i]!; d[i] = v < 0 ? 0 : v > 1 ? 1 : v; }
  return img;
}

/** HWC integers → CHW float in [0,1]. */
export function rawToImage(raw: RawImage): Image {
  const { width: w, height: h } = raw;
  const out = createImage(h, w);
  const scale = 1 / (raw.bits === 16 ? 65535 : 255);
  const n = w * h, src = raw.data, dst = out.data;
  for (let i = 0; i < n; i++) {
    dst[i] = src[3 * i]! * scale;
    dst[n + i] = src[3 * i + 1]! * scale;
    dst[2 * n + i] = src[3 * i + 2]! * scale;
  }
  return out;
}

/** Crops a window out of HWC integers straight into a CHW float Image (no full-size float copy). */
export function rawCropToImage(raw: RawImage, y0: number, x0: number, h: number, w: number): Image {
  const out = createImage(h, w);
  rawWindowInto(raw, y0, x0, h, w, out.data);
  return out;
}

/**
 * The window [y0, y0+h) × [x0, x0+w) of HWC integers as CHW floats in [0, 1], written into `into`
 * (3·h·w values): how whole-photo restoration reads a photo kept in its decoded samples.
 */
export function rawWindowInto(raw: RawImage, y0: number, x0: number, h: number, w: number, into: Float32Array): void {
  if (y0 < 0 || x0 < 0 || y0 + h > raw.height || x0 + w > raw.width) {
    throw new Error(`rawWindowInto: window ${h}x${w} at (${y0},${x0}) is outside the ${raw.height}x${raw.width} image`);
  }
  if (into.length < 3 * h * w) throw new Error(`rawWindowInto: ${into.length} values for a 3x${h}x${w} window`);
  const n = h * w, scale = 1 / (raw.bits === 16 ? 65535 : 255), src = raw.data, dst = into;
  for (let y = 0; y < h; y++) {
    let s = 3 * ((y0 + y) * raw.width + x0);
    for (let x = 0, i = y * w; x < w; x++, i++, s += 3) {
      dst[i] = src[s]! * scale; dst[n + i] = src[s + 1]! * scale; dst[2 * n + i] = src[s + 2]! * scale;
    }
  }
}

/** CHW float → HWC integers with rounding and clamping (the inverse of rawToImage up to quantisation). */
export function imageToRaw(img: Image, bits: 8 | 16 = 8): RawImage {
  assertImage(img);
  const { width: w, height: h } = img;
  const n = w * h, max = bits === 16 ? 65535 : 255;
  const dst = bits === 16 ? new Uint16Array(3 * n) : new Uint8Array(3 * n);
  const src = img.data;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < n; i++) {
      const v = src[c * n + i]!;
      dst[3 * i + c] = v <= 0 ? 0 : v >= 1 ? max : Math.round(v * max);
    }
  }
  return { data: dst, width: w, height: h, bits };
}

/** Copies the window [y0, y0+h) × [x0, x0+w) out of `img`. */
export function cropImage(img: Image, y0: number, x0: number, h: number, w: number): Image {
  if (y0 < 0 || x0 < 0 || y0 + h > img.height || x0 + w > img.width) {
    throw new Error(`cropImage: window ${h}x${w} at (${y0},${x0}) is outside the ${img.height}x${img.width} image`);
  }
  const out = createImage(h, w);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      const s = c * img.height * img.width + (y0 + y) * img.width + x0;
      out.data.set(img.data.subarray(s, s + w), c * h * w + y * w);
    }
  }
  return out;
}

/**
 * Bilinear resize with pixel-centre alignment (sample point x_src = (x + 0.5)·W/w − 0.5, the
 * convention of PIL/OpenCV/`align_corners=False`). When shrinking by more than 2x, we first
 * box-average by the integer part of the factor so that detail does not alias.
 */
export function resizeImage(img: Image, height: number, width: number): Image {
  if (height === img.height && width === img.width) return cloneImage(img);
  let src = img;
  const fy = Math.floor(img.height / height), fx = Math.floor(img.width / width);
  if (fy >= 2 || fx >= 2) src = boxDownsample(img, Math.max(1, fy), Math.max(1, fx));
  const out = createImage(height, width);
  const H = src.height, W = src.width, sy = H / height, sx = W / width;
  for (let y = 0; y < height; y++) {
    const fyp = Math.min(H - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fyp), y1 = Math.min(H - 1, y0 + 1), wy = fyp - y0;
    for (let x = 0; x < width; x++) {
      const fxp = Math.min(W - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fxp), x1 = Math.min(W - 1, x0 + 1), wx = fxp - x0;
      for (let c = 0; c < 3; c++) {
        const o = c * H * W, d = src.data;
        const top = d[o + y0 * W + x0]! * (1 - wx) + d[o + y0 * W + x1]! * wx;
        const bot = d[o + y1 * W + x0]! * (1 - wx) + d[o + y1 * W + x1]! * wx;
        out.data[c * height * width + y * width + x] = top * (1 - wy) + bot * wy;
      }
    }
  }
  return out;
}

function boxDownsample(img: Image, fy: number, fx: number): Image {
  const h = Math.floor(img.height / fy), w = Math.floor(img.width / fx);
  const out = createImage(h, w), inv = 1 / (fy * fx);
  for (let c = 0; c < 3; c++) {
    const o = c * img.height * img.width;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      let s = 0;
      for (let dy = 0; dy < fy; dy++) for (let dx = 0; dx < fx; dx++) s += img.data[o + (y * fy + dy) * img.width + x * fx + dx]!;
      out.data[c * h * w + y * w + x] = s * inv;
    }
  }
  return out;
}

/**
 * The 8 symmetries of a rectangle-turned-square (the dihedral group D4), numbered like the official
 * MoFME/MPRNet `data_augmentation(image, mode)`:
 *   0 identity, 1 flip up-down, 2 rot90, 3 rot90 + flip up-down, 4 rot180, 5 rot180 + flip,
 *   6 rot270, 7 rot270 + flip.   (rot = numpy.rot90, i.e. counter-clockwise)
 * Modes 2, 3, 6, 7 swap height and width. We express each mode as "output pixel (y, x) reads input
 * pixel (sy, sx)" and write one generic loop.
 */
export function dihedral(img: Image, mode: number): Image {
  if (!Number.isInteger(mode) || mode < 0 || mode > 7) throw new Error(`dihedral: mode ${mode} not in 0..7`);
  if (mode === 0) return img;
  const H = img.height, W = img.width;
  const swap = mode === 2 || mode === 3 || mode === 6 || mode === 7;
  const h = swap ? W : H, w = swap ? H : W;
  const out = createImage(h, w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const [sy, sx] = dihedralSource(mode, y, x, H, W);
    const si = sy * W + sx, di = y * w + x;
    out.data[di] = img.data[si]!;
    out.data[h * w + di] = img.data[H * W + si]!;
    out.data[2 * h * w + di] = img.data[2 * H * W + si]!;
  }
  return out;
}

/** For output (y, x) of `dihedral(mode)`, the input coordinate it copies (input is H×W). */
function dihedralSource(mode: number, y: number, x: number, H: number, W: number): [number, number] {
  // rot90 CCW of an H×W image gives W×H with out[y][x] = in[x][W-1-y].
  switch (mode) {
    case 0: return [y, x];
    case 1: return [H - 1 - y, x];                 // flipud
    case 2: return [x, W - 1 - y];                 // rot90
    case 3: return [x, y];                         // flipud(rot90): out[y] = rot90[W-1-y]
    case 4: return [H - 1 - y, W - 1 - x];         // rot180
    case 5: return [y, W - 1 - x];                 // flipud(rot180)
    case 6: return [H - 1 - x, y];                 // rot270
    default: return [H - 1 - x, W - 1 - y];        // 7: flipud(rot270)
  }
}
