/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 labelled 28x28 grey images of clothing in
 * ten classes, 60,000 for training and 10,000 for testing, a drop-in replacement for MNIST that
 * small models do not saturate. It is the standard benchmark of the downstream classification
 * experiment (scripts/downstream.ts) and is read offline from Debian's `dataset-fashion-mnist`
 * package (/usr/share/datasets/fashion-mnist), never downloaded.
 *
 * Format: gzipped IDX files (LeCun's MNIST format). A file is a big-endian header, magic
 * 0x00000801 (labels, u8 each) or 0x00000803 (images, u8 pixels) followed by the dimension sizes
 * as u32, then the raw bytes row-major. Pixels are scaled to [0, 1] by dividing by 255.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Where Debian's `dataset-fashion-mnist` puts the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The ten classes, by label index (the dataset's own order). */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export interface FashionMnist {
  split: 'train' | 'test';
  /** number of images */
  count: number;
  height: 28;
  width: 28;
  /** [count, 28, 28] pixels in [0, 1], row-major */
  images: Float32Array;
  /** [count] class indices 0..9 */
  labels: Uint8Array;
}

export interface FashionMnistOptions {
  /** folder of the four .gz files (default FASHION_MNIST_DIR) */
  dir?: string;
  /** keep the first `limit` images of the split (default all); the files are in random class order */
  limit?: number;
}

const FILES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

/** Parse one (already gunzipped) IDX file with the expected magic; returns its dims and the payload bytes. */
export function parseIdx(bytes: Uint8Array, file: string, magic: 0x801 | 0x803): { dims: number[]; data: Uint8Array } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 8) throw new Error(`${file}: ${bytes.length} bytes is too short for an IDX header`);
  const got = view.getUint32(0);
  if (got !== magic) throw new Error(`${file}: IDX magic 0x${got.toString(16).padStart(8, '0')}, expected 0x${magic.toString(16).padStart(8, '0')}`);
  const ndim = magic & 0xff;
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i));
  const offset = 4 + 4 * ndim;
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - offset !== size) {
    throw new Error(`${file}: header says [${dims.join(', ')}] = ${size} bytes, the file has ${bytes.length - offset}`);
  }
  return { dims, data: bytes.subarray(offset) };
}

function readIdx(dir: string, name: string, magic: 0x801 | 0x803): { dims: number[]; data: Uint8Array } {
  const path = join(dir, name);
  if (!existsSync(path)) {
    throw new Error(`Fashion-MNIST: ${path} is missing; install it with \`apt-get install dataset-fashion-mnist\` (or pass dir)`);
  }
  let raw: Uint8Array;
  try {
    raw = gunzipSync(readFileSync(path));
  } catch (e) {
    throw new Error(`${path}: not a gzip file (${(e as Error).message})`);
  }
  return parseIdx(raw, path, magic);
}

/** Read one split of Fashion-MNIST. */
export function loadFashionMnist(split: 'train' | 'test', options: FashionMnistOptions = {}): FashionMnist {
  if (split !== 'train' && split !== 'test') throw new Error(`loadFashionMnist: split "${String(split)}" is not train or test`);
  const dir = options.dir ?? FASHION_MNIST_DIR;
  const img = readIdx(dir, FILES[split].images, 0x803);
  const lab = readIdx(dir, FILES[split].labels, 0x801);
  const [n, h, w] = img.dims as [number, number, number];
  if (h !== 28 || w !== 28) throw new Error(`${join(dir, FILES[split].images)}: images are ${h}x${w}, expected 28x28`);
  if (lab.dims[0] !== n) throw new Error(`Fashion-MNIST ${split}: ${n} images but ${lab.dims[0]} labels`);
  const limit = options.limit ?? n;
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= n)) throw new Error(`loadFashionMnist: limit ${limit} is not in 1..${n}`);
  const images = new Float32Array(limit * 784);
  for (let i = 0; i < images.length; i++) images[i] = img.data[i]! / 255;
  const labels = new Uint8Array(lab.data.subarray(0, limit)); // a copy, not a view of the file
  for (let i = 0; i < limit; i++) {
    if (labels[i]! > 9) throw new Error(`${join(dir, FILES[split].labels)}: label ${labels[i]} at index ${i} is not in 0..9`);
  }
  return { split, count: limit, height: 28, width: 28, images, labels };
}
