/**
 * Image file I/O: bytes ⇄ `Image` (float32 CHW in [0,1]).
 *
 * Backends. sharp (libvips; its prebuilt native binary comes from the npm packages
 * `@img/sharp-<platform>`) is the fast path: a 720x480 JPEG decodes in a few ms. If sharp cannot be
 * loaded (unsupported platform, missing binary) — or `MOFME_DATA_CODEC=js` is set — we fall back to
 * the pure-JS codecs pngjs and jpeg-js, which are 4–10x slower but need nothing native.
 * BMP (which libvips does not read) is parsed by a small reader below for the common uncompressed
 * 24/32-bit case; anything else is reported as unsupported.
 *
 * Conversion rules (the same in both backends, matching PIL's `Image.convert('RGB')`, which the
 * official PyTorch loaders use):
 *   - the format is sniffed from the magic bytes, never from the extension (real datasets contain
 *     BMPs named .png);
 *   - grey → RGB by replicating the grey value into all three channels;
 *   - alpha is DROPPED (not composited): colour channels are kept as stored;
 *   - 8-bit samples are divided by 255, 16-bit samples by 65535 (full precision is kept);
 *   - EXIF orientation is NOT applied: a degraded image and its ground truth must stay pixel-aligned
 *     as stored, whatever their metadata says.
 * Any decoding failure (corrupt, truncated, not an image) throws an Error naming the file.
 * These rules are for dataset pairs. Photos a user restores are read by `readPhoto` instead (at the
 * end of this file): EXIF orientation applied, alpha, 16 bits and grey kept for writing back.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';
import type { Image, RawImage } from './image';
import { imageToRaw, rawToImage, resizeImage } from './image';

type SharpFn = typeof import('sharp').default;
let sharpPromise: Promise<SharpFn | null> | null = null;

/** Loads sharp once; resolves to null when it is unavailable or disabled by MOFME_DATA_CODEC=js. */
export function loadSharp(): Promise<SharpFn | null> {
  if (!sharpPromise) {
    sharpPromise = process.env.MOFME_DATA_CODEC === 'js'
      ? Promise.resolve(null)
      : import('sharp').then((m) => (m.default ?? m) as unknown as SharpFn).catch(() => null);
  }
  return sharpPromise;
}

/**
 * Forces the pure-JS codecs ('js') or goes back to preferring sharp ('auto'). Affects this thread
 * only (loader workers read MOFME_DATA_CODEC); used by tests and the bench to exercise the fallback.
 */
export function setCodecBackend(backend: 'auto' | 'js'): void {
  sharpPromise = backend === 'js' ? Promise.resolve(null) : null;
}

/** Which backend decodes and encodes: 'sharp' or the pure-JS 'js' fallback. */
export async function codecBackend(): Promise<'sharp' | 'js'> {
  return (await loadSharp()) ? 'sharp' : 'js';
}

export type ImageFormat = 'png' | 'jpeg' | 'bmp' | 'webp' | 'tiff' | 'unknown';

/** Identifies an image format from its first bytes. */
export function sniffFormat(b: Uint8Array): ImageFormat {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'bmp';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[8] === 0x57 && b[9] === 0x45) return 'webp';
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 42) || (b[0] === 0x4d && b[1] === 0x4d && b[3] === 42))) return 'tiff';
  return 'unknown';
}

export interface DecodeOptions {
  /** resize to exactly width×height after decoding (the official MoFME loader uses 720x480) */
  resize?: { width: number; height: number };
}

/**
 * Decodes image bytes to interleaved RGB integers (the loader crops these before converting to
 * float, which is cheaper than converting the whole image). `name` is used in error messages.
 */
export async function decodeRaw(bytes: Uint8Array, name = '<buffer>', opts: DecodeOptions = {}): Promise<RawImage> {
  const fmt = sniffFormat(bytes);
  if (fmt === 'unknown') throw new Error(`Cannot decode "${name}": not a PNG, JPEG, BMP, WebP or TIFF file (${bytes.length} bytes)`);
  let raw: RawImage;
  try {
    const sharp = fmt === 'bmp' ? null : await loadSharp();
    if (sharp) {
      return await decodeWithSharp(sharp, bytes, fmt, opts);
    }
    if (fmt === 'png') raw = decodePngJs(bytes);
    else if (fmt === 'jpeg') raw = decodeJpegJs(bytes);
    else if (fmt === 'bmp') raw = decodeBmp(bytes);
    else throw new Error(`${fmt.toUpperCase()} needs sharp, which is not available`);
  } catch (e) {
    throw new Error(`Cannot decode "${name}" (${fmt}): ${(e as Error).message}`);
  }
  if (opts.resize && (opts.resize.width !== raw.width || opts.resize.height !== raw.height)) {
    raw = imageToRaw(resizeImage(rawToImage(raw), opts.resize.height, opts.resize.width), raw.bits);
  }
  return raw;
}

async function decodeWithSharp(sharp: SharpFn, bytes: Uint8Array, fmt: ImageFormat, opts: DecodeOptions): Promise<RawImage> {
  // failOn 'warning' (the default) makes libvips reject truncated JPEG/PNG data instead of
  // returning a half-grey image. autoOrient is off by default, which is what we want (see header).
  let pipe = sharp(bytes, { failOn: 'warning' });
  // 16-bit? For PNG the IHDR bit depth is byte 24 (8-byte signature + 4 length + 4 "IHDR" + 8 w/h);
  // JPEG/WebP are 8-bit; only TIFF needs a metadata pass (which costs a second parse).
  const deep = fmt === 'png' ? bytes[24] === 16 : fmt === 'tiff' ? (await pipe.metadata()).depth === 'ushort' : false;
  pipe = pipe.removeAlpha().toColourspace(deep ? 'rgb16' : 'srgb');
  if (opts.resize) pipe = pipe.resize(opts.resize.width, opts.resize.height, { fit: 'fill' });
  const { data, info } = await pipe.raw({ depth: deep ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
  if (deep) {
    // Copy into a fresh, 2-byte-aligned buffer (Buffer slices may start at odd offsets).
    const u16 = new Uint16Array(info.width * info.height * 3);
    new Uint8Array(u16.buffer).set(data);
    return { data: u16, width: info.width, height: info.height, bits: 16 };
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, bits: 8 };
}

function decodePngJs(bytes: Uint8Array): RawImage {
  // pngjs always expands to RGBA (grey replicated, palette resolved); skipRescale keeps 16-bit data.
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), { skipRescale: true });
  const n = png.width * png.height;
  const deep = png.depth === 16;
  const src = png.data as unknown as ArrayLike<number>;
  const out = deep ? new Uint16Array(3 * n) : new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) { out[3 * i] = src[4 * i]!; out[3 * i + 1] = src[4 * i + 1]!; out[3 * i + 2] = src[4 * i + 2]!; }
  return { data: out, width: png.width, height: png.height, bits: deep ? 16 : 8 };
}

function decodeJpegJs(bytes: Uint8Array): RawImage {
  // formatAsRGBA:false returns packed RGB (grey JPEGs replicated), 2x faster than RGBA.
  const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
  if (j.data.length !== j.width * j.height * 3) throw new Error('jpeg-js returned an incomplete image');
  return { data: j.data, width: j.width, height: j.height, bits: 8 };
}

/** Uncompressed Windows BMP (BITMAPINFOHEADER or later; 24-bit, or 32-bit BI_RGB/BI_BITFIELDS). */
function decodeBmp(b: Uint8Array): RawImage {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 54) throw new Error('BMP header truncated');
  const offset = dv.getUint32(10, true), headerSize = dv.getUint32(14, true);
  const width = dv.getInt32(18, true), rawH = dv.getInt32(22, true);
  const bpp = dv.getUint16(28, true), compression = dv.getUint32(30, true);
  if (headerSize < 40) throw new Error(`BMP core header (size ${headerSize}) is not supported`);
  if (!(bpp === 24 || bpp === 32) || !(compression === 0 || compression === 3)) {
    throw new Error(`BMP with ${bpp} bits/pixel and compression ${compression} is not supported (only uncompressed 24/32-bit)`);
  }
  const height = Math.abs(rawH), bottomUp = rawH > 0, bytesPP = bpp / 8;
  const stride = Math.ceil((width * bpp) / 32) * 4; // rows are padded to 4 bytes
  if (width <= 0 || height <= 0 || offset + stride * height > b.length) throw new Error(`BMP pixel data truncated (${width}x${height})`);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = offset + (bottomUp ? height - 1 - y : y) * stride;
    for (let x = 0; x < width; x++) {
      const p = row + x * bytesPP, o = 3 * (y * width + x);
      out[o] = b[p + 2]!; out[o + 1] = b[p + 1]!; out[o + 2] = b[p]!; // stored as BGR(A)
    }
  }
  return { data: out, width, height, bits: 8 };
}

/** Decodes image bytes to a float32 CHW `Image` in [0,1]. */
export async function decodeImage(bytes: Uint8Array, name = '<buffer>', opts: DecodeOptions = {}): Promise<Image> {
  return rawToImage(await decodeRaw(bytes, name, opts));
}

/** Reads an image file (PNG, JPEG, BMP; WebP/TIFF with sharp) to a float32 CHW `Image` in [0,1]. */
export async function readImage(path: string, opts: DecodeOptions = {}): Promise<Image> {
  return decodeImage(await readBytes(path), path, opts);
}

/** Reads a file's bytes; a missing file gives an error that names it. */
export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new Error(`Cannot read image "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Width and height from the file header (sharp reads only the header; the fallback decodes). */
export async function imageSize(path: string): Promise<{ width: number; height: number }> {
  const bytes = await readBytes(path);
  const sharp = sniffFormat(bytes) === 'bmp' ? null : await loadSharp();
  if (sharp) {
    try {
      const m = await sharp(bytes).metadata();
      if (m.width && m.height) return { width: m.width, height: m.height };
    } catch (e) {
      throw new Error(`Cannot decode "${path}": ${(e as Error).message}`);
    }
  }
  const r = await decodeRaw(bytes, path);
  return { width: r.width, height: r.height };
}

export interface PngOptions { /** 8 (default) or 16 bits per sample */ bits?: 8 | 16 }
export interface JpegOptions { /** 1..100, default 90 */ quality?: number }

/** Encodes an Image as an RGB PNG. */
export async function encodePng(img: Image, opts: PngOptions = {}): Promise<Uint8Array> {
  return encodeRawPng(imageToRaw(img, opts.bits ?? 8));
}

/** Encodes interleaved RGB samples (8 or 16 bits) as an RGB PNG. */
async function encodeRawPng(raw: RawImage): Promise<Uint8Array> {
  const sharp = raw.bits === 8 ? await loadSharp() : null;
  if (sharp) {
    const input = Buffer.from(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
    return new Uint8Array(await sharp(input, { raw: { width: raw.width, height: raw.height, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer());
  }
  // pngjs handles 16-bit output (sharp's raw input is 8-bit only): it reads 16-bit input samples as
  // native-endian uint16 from the data buffer and writes them big-endian as PNG requires.
  const png = new PNG({ width: raw.width, height: raw.height });
  png.data = Buffer.from(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
  return new Uint8Array(PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false, bitDepth: raw.bits }));
}

/** Encodes an Image as a baseline JPEG (4:2:0 chroma subsampling with sharp). */
export async function encodeJpeg(img: Image, opts: JpegOptions = {}): Promise<Uint8Array> {
  const quality = opts.quality ?? 90;
  const raw = imageToRaw(img, 8);
  const sharp = await loadSharp();
  if (sharp) {
    const input = Buffer.from(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
    return new Uint8Array(await sharp(input, { raw: { width: raw.width, height: raw.height, channels: 3 } }).jpeg({ quality }).toBuffer());
  }
  // jpeg-js wants RGBA.
  const n = raw.width * raw.height, rgba = new Uint8Array(4 * n);
  for (let i = 0; i < n; i++) { rgba[4 * i] = raw.data[3 * i]!; rgba[4 * i + 1] = raw.data[3 * i + 1]!; rgba[4 * i + 2] = raw.data[3 * i + 2]!; rgba[4 * i + 3] = 255; }
  return new Uint8Array(jpeg.encode({ data: rgba, width: raw.width, height: raw.height }, quality).data);
}

/** Writes an Image; the format follows the extension (.png, .jpg/.jpeg). */
export async function writeImage(path: string, img: Image, opts: PngOptions & JpegOptions = {}): Promise<void> {
  const ext = extname(path).toLowerCase();
  let bytes: Uint8Array;
  if (ext === '.png') bytes = await encodePng(img, opts);
  else if (ext === '.jpg' || ext === '.jpeg') bytes = await encodeJpeg(img, opts);
  else throw new Error(`writeImage "${path}": unsupported extension "${ext}" (use .png, .jpg or .jpeg)`);
  await writeFile(path, bytes);
}

// ---- photos: what `mofme restore` reads and writes ----------------------------------------------
//
// A dataset image must stay pixel-aligned with its ground truth as stored, so readImage ignores
// EXIF orientation and drops alpha (above). A user's photo is different: it should come back as
// the viewer shows it and in the form it came in. readPhoto therefore
//   - applies the EXIF orientation (a phone's portrait JPEG is stored sideways plus a tag);
//   - keeps the alpha channel apart, as stored (the network restores RGB only);
//   - remembers 16-bit samples and one-channel (grey) storage;
// and encodePhotoPng writes the restored RGB back in that form: alpha reattached unchanged,
// 16 bits if the input had 16, one grey channel (the mean of the restored R, G, B, since the grey
// input was replicated into three equal channels) if the input was grey.

/** A photo as read for restoration: oriented RGB, plus what is needed to write it back alike. */
export interface Photo {
  /** RGB planes in [0, 1], EXIF orientation applied; grey inputs replicated into R, G, B */
  image: Image;
  /** the alpha channel as stored (H·W samples of `bits` bits, oriented like the image), or null */
  alpha: Uint8Array | Uint16Array | null;
  /** bits per sample of the input: 16-bit inputs are written back as 16-bit PNGs */
  bits: 8 | 16;
  /** the input stored one colour channel (grey, with or without alpha) */
  grey: boolean;
  /** the EXIF orientation tag that was applied (1: none) */
  orientation: number;
}

/**
 * The same photo kept in its decoded samples: interleaved RGB integers instead of float planes, a
 * quarter of the memory at 8 bits (36 MB instead of 144 MB for 12 megapixels). Whole-photo
 * restoration converts it one window at a time (image.ts `rawWindowInto`).
 */
export interface RawPhoto extends Omit<Photo, 'image'> {
  /** interleaved RGB samples, EXIF orientation applied; grey inputs replicated into R, G, B */
  raw: RawImage;
}

/** Reads a photo for restoration (see above); errors name the file. Needs sharp for EXIF and TIFF/WebP. */
export async function readPhoto(path: string): Promise<Photo> {
  const { raw, ...rest } = await readRawPhoto(path);
  return { ...rest, image: rawToImage(raw) };
}

/** Reads a photo for restoration as `readPhoto` does, keeping its samples (`RawPhoto`). */
export async function readRawPhoto(path: string): Promise<RawPhoto> {
  const bytes = await readBytes(path);
  const fmt = sniffFormat(bytes);
  const sharp = fmt === 'bmp' ? null : await loadSharp();
  try {
    if (sharp) return await readPhotoWithSharp(sharp, bytes);
    if (fmt === 'png') return readPngPhotoJs(bytes);
  } catch (e) {
    throw new Error(`Cannot decode "${path}" (${fmt}): ${(e as Error).message}`);
  }
  // BMP, or JPEG without sharp: no alpha or grey to keep (and no EXIF reader): the plain rule
  const raw = await decodeRaw(bytes, path);
  return { raw, alpha: null, bits: raw.bits, grey: false, orientation: 1 };
}

async function readPhotoWithSharp(sharp: SharpFn, bytes: Uint8Array): Promise<RawPhoto> {
  const meta = await sharp(bytes, { failOn: 'warning' }).metadata();
  const deep = meta.depth === 'ushort';
  const hasAlpha = Boolean(meta.hasAlpha);
  const grey = (meta.channels ?? 3) - (hasAlpha ? 1 : 0) === 1;
  // rotate() with no angle applies the EXIF orientation (and drops the tag)
  let pipe = sharp(bytes, { failOn: 'warning' }).rotate().toColourspace(deep ? 'rgb16' : 'srgb');
  pipe = hasAlpha ? pipe.ensureAlpha() : pipe.removeAlpha();
  const { data, info } = await pipe.raw({ depth: deep ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  const n = info.width * info.height, ch = info.channels;
  if (ch !== (hasAlpha ? 4 : 3)) throw new Error(`expected ${hasAlpha ? 4 : 3} channels after conversion, got ${ch}`);
  // samples in a fresh, aligned array (Buffer slices may start at odd offsets)
  const samples = deep ? new Uint16Array(n * ch) : new Uint8Array(n * ch);
  new Uint8Array(samples.buffer).set(data);
  return { ...splitAlpha(samples, info.width, info.height, ch, deep ? 16 : 8), grey, orientation: meta.orientation ?? 1 };
}

/** pngjs fallback (no sharp): PNG carries grey, alpha and 16 bits; it has no EXIF orientation to apply. */
function readPngPhotoJs(bytes: Uint8Array): RawPhoto {
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), { skipRescale: true });
  const samples = (png.depth === 16 ? Uint16Array : Uint8Array).from(png.data as unknown as ArrayLike<number>); // RGBA
  const colorType = (png as unknown as { colorType?: number }).colorType ?? 6;
  const split = splitAlpha(samples, png.width, png.height, 4, png.depth === 16 ? 16 : 8);
  // pngjs always expands to RGBA: keep its alpha only when the file has one (colour types 4 and 6)
  return { ...split, alpha: colorType === 4 || colorType === 6 ? split.alpha : null, grey: colorType === 0 || colorType === 4, orientation: 1 };
}

/** Interleaved RGB(A) samples -> interleaved RGB samples (the same array when there is no alpha) and the alpha samples. */
function splitAlpha(samples: Uint8Array | Uint16Array, width: number, height: number, ch: number, bits: 8 | 16): Pick<RawPhoto, 'raw' | 'alpha' | 'bits'> {
  if (ch === 3) return { raw: { data: samples, width, height, bits }, alpha: null, bits };
  const n = width * height;
  const rgb = bits === 16 ? new Uint16Array(3 * n) : new Uint8Array(3 * n);
  const alpha = bits === 16 ? new Uint16Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    rgb[3 * i] = samples[ch * i]!; rgb[3 * i + 1] = samples[ch * i + 1]!; rgb[3 * i + 2] = samples[ch * i + 2]!;
    alpha[i] = samples[ch * i + 3]!;
  }
  return { raw: { data: rgb, width, height, bits }, alpha, bits };
}

/**
 * The samples of the PNG a restored photo is written as, in the form of the photo it came from:
 * interleaved, `channels` per pixel (grey or RGB, plus alpha), at the photo's bits. Filled band by
 * band with `setPhotoPngRows` while the photo is restored (no float copy of the whole output) and
 * encoded by `finishPhotoPng`.
 */
export interface PhotoPng {
  width: number;
  height: number;
  like: Pick<Photo, 'alpha' | 'bits' | 'grey'>;
  channels: number;
  samples: Uint8Array | Uint16Array;
}

export function createPhotoPng(width: number, height: number, like: Pick<Photo, 'alpha' | 'bits' | 'grey'>): PhotoPng {
  const n = height * width;
  if (like.alpha && like.alpha.length !== n) throw new Error(`encodePhotoPng: the alpha channel has ${like.alpha.length} samples for a ${width}x${height} image`);
  const channels = (like.grey ? 1 : 3) + (like.alpha ? 1 : 0);
  return { width, height, like, channels, samples: like.bits === 16 ? new Uint16Array(n * channels) : new Uint8Array(n * channels) };
}

/**
 * Quantise restored rows y0 .. y0+n-1 into `png`: `rows` holds R, G and B planes of n rows
 * (3·n·width values in [0, 1], clamped here). Grey photos get the mean of R, G and B (the grey
 * input was replicated into three equal channels); alpha is copied from the photo unchanged.
 */
export function setPhotoPngRows(png: PhotoPng, y0: number, n: number, rows: Float32Array): void {
  const { width, height, like, channels: ch, samples } = png;
  if (y0 < 0 || y0 + n > height || rows.length < 3 * n * width) throw new Error(`setPhotoPngRows: rows ${y0}..${y0 + n - 1} (${rows.length} values) do not fit a ${width}x${height} image`);
  const max = 2 ** like.bits - 1, colour = like.grey ? 1 : 3, plane = n * width;
  const quantise = (v: number): number => Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * max);
  for (let i = 0; i < plane; i++) {
    const o = ch * (y0 * width + i);
    if (like.grey) samples[o] = quantise((rows[i]! + rows[plane + i]! + rows[2 * plane + i]!) / 3);
    else for (let c = 0; c < 3; c++) samples[o + c] = quantise(rows[c * plane + i]!);
    if (like.alpha) samples[o + colour] = like.alpha[y0 * width + i]!;
  }
}

/** Encodes the filled samples (a plain 8-bit RGB photo gives the same bytes as encodePng). */
export async function finishPhotoPng(png: PhotoPng): Promise<Uint8Array> {
  const { width, height, like, samples } = png;
  if (!like.alpha && !like.grey) return encodeRawPng({ data: samples, width, height, bits: like.bits });
  // PNG colour types: 0 grey, 2 RGB, 4 grey + alpha, 6 RGB + alpha. pngjs takes 16-bit samples
  // native-endian from the buffer (whose byte offset must be 0) and writes them big-endian.
  const colorType = (like.grey ? 0 : 2) + (like.alpha ? 4 : 0);
  const options = { colorType, inputColorType: colorType, inputHasAlpha: Boolean(like.alpha), bitDepth: like.bits } as never;
  const out = new PNG({ width, height, ...(options as object) } as never);
  out.data = Buffer.from(samples.buffer, 0, samples.byteLength);
  return new Uint8Array(PNG.sync.write(out, options));
}

/**
 * Encodes a restored RGB image as a PNG in the form of the photo it came from (`like`): alpha
 * reattached, 16 bits kept, grey written as one channel (mean of R, G, B). A plain 8-bit RGB photo
 * gives the same bytes as encodePng.
 */
export async function encodePhotoPng(img: Image, like: Pick<Photo, 'alpha' | 'bits' | 'grey'>): Promise<Uint8Array> {
  const png = createPhotoPng(img.width, img.height, like);
  setPhotoPngRows(png, 0, img.height, img.data);
  return finishPhotoPng(png);
}
