/**
 * Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), readable by
 * Python's `safetensors` / `torch` and writable by them.
 *
 * A file is three parts:
 *   [8 bytes]  N, the header length, an unsigned 64-bit little-endian integer
 *   [N bytes]  a UTF-8 JSON object: for each tensor name {"dtype": "F32", "shape": [2, 3],
 *              "data_offsets": [begin, end]}, plus an optional "__metadata__" map of strings to
 *              strings (we keep the model config there). It must start with '{'; trailing spaces
 *              are allowed, and writers pad with them so the data starts 8-byte aligned.
 *   [rest]     the byte buffer: each tensor's elements, row-major and little-endian, at
 *              [begin, end) relative to the start of the buffer.
 * The spec is strict about the buffer: the tensors' ranges must not overlap and must cover it
 * entirely (no holes, so nothing can hide in a checkpoint), and end - begin must equal
 * (product of shape) x (bytes per element).
 *
 * Reading is defensive. A file is untrusted input, so every field is checked before use and every
 * failure is a `SafetensorsError` naming the file and the problem. The header length is capped
 * (100 MB, as the reference implementation does) before anything is allocated, and no allocation
 * is larger than the file itself, so a corrupt or hostile file cannot hang the process or
 * exhaust memory.
 *
 * Writing is atomic: the bytes go to a temporary file in the same directory, which is fsync-ed and
 * then renamed over the target. A crash mid-save leaves the previous checkpoint intact, never a
 * half-written one (rename within a directory is atomic on POSIX file systems).
 *
 * Our tensors are float32 or float64 (F32, F64). Reading also accepts F16 and BF16 (converted to
 * float32) and the integer and bool dtypes (converted to float: exact up to 2^24 in float32);
 * the 8-bit float formats are recognised but rejected as unsupported.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { tensor, type Backend, type DType, type Tensor } from '@mofme/tensor';

/** Bytes per element of every dtype the format defines. */
export const SAFETENSORS_DTYPES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** The largest header we accept (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(readonly file: string, readonly problem: string) {
    super(`safetensors: ${file}: ${problem}`);
    this.name = 'SafetensorsError';
  }
}

/** One tensor as stored: its dtype name, shape and raw little-endian bytes. */
export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export interface ParsedSafetensors {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

export interface ParseOptions {
  /** a name for error messages (the path, when reading a file) */
  source?: string;
  /** dtype of the tensors made (default: float64 for F64 entries, float32 for everything else) */
  dtype?: DType;
  backend?: Backend;
}

/** obj[key] = value, also for key '__proto__' (a plain assignment would set the prototype instead). */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---- writing ----

/**
 * The bytes of a safetensors file holding `tensors` (F32 or F64 by each tensor's dtype) and
 * `metadata`. Tensors are laid out by decreasing element size, then by name (as the reference
 * writer does), so every tensor is aligned to its element size.
 */
export function serializeSafetensors(tensors: Record<string, Tensor> | Map<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors : Object.entries(tensors))].map(([name, t]) => {
    if (name === '__metadata__') throw new Error("serializeSafetensors: '__metadata__' is reserved and cannot name a tensor");
    const dtype = t.dtype === 'float64' ? 'F64' : 'F32';
    return { name, dtype, shape: [...t.shape], data: t.data() };
  });
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`serializeSafetensors: metadata values must be strings; '${k}' is ${typeof v} (JSON.stringify it)`);
  }
  entries.sort((a, b) => b.data.BYTES_PER_ELEMENT - a.data.BYTES_PER_ELEMENT || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    const size = e.data.byteLength;
    setOwn(header, e.name, { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + size] });
    offset += size;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8; // pad with spaces so the data starts 8-byte aligned
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const e of entries) {
    writeLittleEndian(e.data, out, at);
    at += e.data.byteLength;
  }
  return out;
}

function writeLittleEndian(data: Float32Array | Float64Array, out: Uint8Array, at: number): void {
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + at, data.byteLength);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float64Array) view.setFloat64(i * 8, data[i]!, true);
    else view.setFloat32(i * 4, data[i]!, true);
  }
}

/**
 * Node's file-system errors name no file for a failed write ("ENOSPC: no space left on device,
 * write"): say which file, keeping the error's code for callers that branch on it.
 */
function namingFile(path: string, e: unknown): Error {
  const err = e as NodeJS.ErrnoException;
  return Object.assign(new Error(`cannot write ${path}: ${err.message ?? String(e)}`), { code: err.code, path });
}

/** Write `bytes` to `path` atomically: temp file in the same directory, fsync, rename. */
export function writeFileAtomicSync(path: string, bytes: Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  let fd: number;
  try { fd = openSync(tmp, 'w'); } catch (e) { throw namingFile(path, e); }
  try {
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd); // the data is on disk before the name points at it
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw namingFile(path, e);
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw namingFile(path, e);
  }
  fsyncDirectory(dirname(path));
}

/** The async form of writeFileAtomicSync. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  const handle = await open(tmp, 'w').catch((e: unknown) => { throw namingFile(path, e); });
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await unlink(tmp).catch(() => undefined);
    throw namingFile(path, e);
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw namingFile(path, e);
  }
  fsyncDirectory(dirname(path));
}

/** Persist the rename itself (the directory entry). Best effort: not every platform allows it. */
function fsyncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* e.g. Windows cannot open directories */ }
}

export async function saveSafetensors(path: string, tensors: Record<string, Tensor> | Map<string, Tensor>, metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}
export function saveSafetensorsSync(path: string, tensors: Record<string, Tensor> | Map<string, Tensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomicSync(path, serializeSafetensors(tensors, metadata));
}

// ---- reading ----

/**
 * Validate the header and cut the buffer into raw tensors, without converting anything. Every
 * error is a SafetensorsError naming `source`.
 */
export function parseSafetensorsRaw(bytes: Uint8Array, source = '<bytes>'): { tensors: Map<string, RawTensor>; metadata: Record<string, string> } {
  const fail = (problem: string): never => { throw new SafetensorsError(source, problem); };
  if (bytes.length < 8) fail(`the file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
  const headerLength = Number(n);
  if (8 + headerLength > bytes.length) fail(`header length ${headerLength} runs beyond the end of the file (${bytes.length} bytes): the file is truncated or corrupt`);
  if (headerLength < 2) fail(`header length ${headerLength} is too small for a JSON object`);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    fail('the header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(`the header must start with '{', found ${JSON.stringify(text.slice(0, 10))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`the header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('the header is not a JSON object');

  const bufferStart = 8 + headerLength;
  const bufferLength = bytes.length - bufferStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ value '${k}' is ${v === null ? 'null' : typeof v}, not a string`);
        setOwn(metadata, k, v as string);
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (typeof dtype !== 'string') fail(`${where}: missing or non-string dtype`);
    const itemSize = SAFETENSORS_DTYPES[dtype as string];
    if (itemSize === undefined || !Object.hasOwn(SAFETENSORS_DTYPES, dtype as string)) fail(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`${where}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > bufferLength) fail(`${where}: data_offsets [${begin}, ${end}] run beyond the data buffer (${bufferLength} bytes): the file is truncated or corrupt`);
    // the element count, refusing to overflow: it can never honestly exceed the buffer
    let count = 1;
    for (const s of shape as number[]) {
      count *= s;
      if (count > Number.MAX_SAFE_INTEGER / 8) { count = Infinity; break; } // beyond any file
    }
    if (count * itemSize! !== end - begin) {
      fail(`${where}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${Number.isFinite(count) ? count * itemSize! : 'more than 2^53'} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  // the ranges must tile the buffer exactly: sorted by begin, each starts where the previous ended
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of sorted) {
    if (e.begin < cursor) fail(`tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] overlap another tensor's bytes`);
    if (e.begin > cursor) fail(`bytes [${cursor}, ${e.begin}) of the data buffer belong to no tensor (the spec forbids holes)`);
    cursor = e.end;
  }
  if (cursor !== bufferLength) fail(`the data buffer is ${bufferLength} bytes but the tensors cover only ${cursor}: trailing bytes or a corrupt header`);

  const tensors = new Map<string, RawTensor>();
  for (const e of entries) tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: bytes.subarray(bufferStart + e.begin, bufferStart + e.end) });
  return { tensors, metadata };
}

/** Decode a raw tensor's little-endian bytes to numbers (float32 or float64 array). */
export function decodeRaw(raw: RawTensor, source = '<bytes>', name = '?'): Float32Array | Float64Array {
  const { dtype, bytes } = raw;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length / SAFETENSORS_DTYPES[dtype]!;
  // an aligned private copy of the bytes (not bytes.slice(): on a Node Buffer that is a view)
  const copy = (): ArrayBuffer => { const c = new Uint8Array(bytes.length); c.set(bytes); return c.buffer; };
  const f32 = (fill: (i: number) => number): Float32Array => { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = fill(i); return a; };
  switch (dtype) {
    case 'F32': {
      if (LITTLE_ENDIAN_HOST) return new Float32Array(copy());
      return f32((i) => view.getFloat32(4 * i, true));
    }
    case 'F64': {
      if (LITTLE_ENDIAN_HOST) return new Float64Array(copy());
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = view.getFloat64(8 * i, true);
      return a;
    }
    case 'F16': return f32((i) => halfToFloat(view.getUint16(2 * i, true)));
    // bfloat16 is the top half of a float32: shift the 16 bits up and reinterpret
    case 'BF16': { const buf = new DataView(new ArrayBuffer(4)); return f32((i) => { buf.setUint32(0, view.getUint16(2 * i, true) << 16); return buf.getFloat32(0); }); }
    case 'BOOL': return f32((i) => (view.getUint8(i) ? 1 : 0));
    case 'U8': return f32((i) => view.getUint8(i));
    case 'I8': return f32((i) => view.getInt8(i));
    case 'I16': return f32((i) => view.getInt16(2 * i, true));
    case 'U16': return f32((i) => view.getUint16(2 * i, true));
    case 'I32': return f32((i) => view.getInt32(4 * i, true));
    case 'U32': return f32((i) => view.getUint32(4 * i, true));
    case 'I64': return f32((i) => Number(view.getBigInt64(8 * i, true)));
    case 'U64': return f32((i) => Number(view.getBigUint64(8 * i, true)));
    default: throw new SafetensorsError(source, `tensor '${name}': dtype ${dtype} is recognised but not supported (only F64, F32, F16, BF16 and the integer types load)`);
  }
}

/** IEEE 754 half precision (1 sign, 5 exponent, 10 mantissa bits) to a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // subnormal: 0.m x 2^-14
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Parse a whole safetensors file's bytes into tensors and metadata. */
export function parseSafetensors(bytes: Uint8Array, options: ParseOptions = {}): ParsedSafetensors {
  const source = options.source ?? '<bytes>';
  const { tensors: raw, metadata } = parseSafetensorsRaw(bytes, source);
  const tensors: Record<string, Tensor> = {};
  for (const [name, r] of raw) {
    const values = decodeRaw(r, source, name);
    const dtype = options.dtype ?? (r.dtype === 'F64' ? 'float64' : 'float32');
    setOwn(tensors, name, tensor(values, { shape: r.shape, dtype, ...(options.backend ? { backend: options.backend } : {}) }));
  }
  return { tensors, metadata };
}

export async function loadSafetensors(path: string, options: Omit<ParseOptions, 'source'> = {}): Promise<ParsedSafetensors> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new SafetensorsError(path, `cannot read the file (${(e as Error).message})`);
  }
  return parseSafetensors(bytes, { ...options, source: path });
}
export function loadSafetensorsSync(path: string, options: Omit<ParseOptions, 'source'> = {}): ParsedSafetensors {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new SafetensorsError(path, `cannot read the file (${(e as Error).message})`);
  }
  return parseSafetensors(bytes, { ...options, source: path });
}
