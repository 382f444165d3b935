/**
 * A tiny WebAssembly binary emitter: just enough of the format to write our kernels by hand.
 *
 * A `.wasm` file is a short header followed by numbered sections (types, imports, functions,
 * exports, code). Every integer in it is LEB128-encoded (7 bits per byte, high bit = "more
 * follows"), every vector is a length followed by its items, and function bodies are a flat
 * sequence of stack-machine instructions with structured control flow (block / loop / if, each
 * closed by `end`). That is the whole trick: the module is a few hundred bytes produced at
 * runtime from readable TypeScript, so there is no toolchain to install, nothing opaque committed,
 * and tests run straight from the sources (see README.md for the alternatives we rejected).
 *
 * How to read kernel code written with it: `I.*` returns the bytes of one instruction, and a
 * function body is an array of those pieces (nested arrays are flattened). The helpers at the
 * bottom (`forRange`, `whileLoop`) build the usual loop shapes from block/loop/br_if so that the
 * kernels read like structured code. Locals are numbered: parameters first, then declared locals.
 *
 * Reference: https://webassembly.github.io/spec/core/binary/ and the SIMD proposal's opcode table.
 */

/** Value types, as their one-byte codes in the binary format. */
export const T = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
type ValType = (typeof T)[keyof typeof T];

/** A piece of code: a byte, or (nested) arrays of pieces. Flattened when the module is written. */
export type Code = number | readonly Code[];

function flatten(code: Code, out: number[] = []): number[] {
  if (typeof code === 'number') out.push(code);
  else for (const c of code) flatten(c, out);
  return out;
}

/** Unsigned LEB128: 7 payload bits per byte, least significant first, high bit set on all but the last. */
export function uleb(n: number): number[] {
  const out: number[] = [];
  n >>>= 0;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (two's complement; stop once the remaining bits are all copies of the sign bit). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  n |= 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function utf8(s: string): number[] {
  const bytes = Array.from(new TextEncoder().encode(s));
  return [...uleb(bytes.length), ...bytes];
}

function vec(items: readonly number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** Memory immediate of loads and stores: alignment hint (log2 bytes) and a constant byte offset. */
function memarg(align: number, offset: number): number[] {
  return [...uleb(align), ...uleb(offset)];
}

/** 0xFD-prefixed SIMD instruction. */
function simd(op: number): number[] {
  return [0xfd, ...uleb(op)];
}

/** A float constant (f32.const, f64.const): the opcode, then the value's little-endian bytes. */
function floatConst(opcode: number, Floats: Float32ArrayConstructor | Float64ArrayConstructor): (v: number) => Code {
  return (v) => [opcode, ...new Uint8Array(new Floats([v]).buffer)];
}

const EMPTY = 0x40; // block type: no params, no results

/**
 * Instructions. Only what the kernels use; add more from the spec's opcode table as needed.
 * Loads and stores take the constant offset as an argument: it is free (folded into the address
 * computation) so unrolled loops use it instead of pointer arithmetic.
 */
export const I = {
  // control
  block: (body: Code): Code => [0x02, EMPTY, body, 0x0b],
  loop: (body: Code): Code => [0x03, EMPTY, body, 0x0b],
  if: (then: Code, otherwise?: Code): Code =>
    otherwise === undefined ? [0x04, EMPTY, then, 0x0b] : [0x04, EMPTY, then, 0x05, otherwise, 0x0b],
  br: (depth: number): Code => [0x0c, ...uleb(depth)],
  br_if: (depth: number): Code => [0x0d, ...uleb(depth)],
  return: 0x0f,
  call: (fn: number): Code => [0x10, ...uleb(fn)],
  drop: 0x1a,
  select: 0x1b,
  // locals
  get: (l: number): Code => [0x20, ...uleb(l)],
  set: (l: number): Code => [0x21, ...uleb(l)],
  tee: (l: number): Code => [0x22, ...uleb(l)],
  // memory
  i32_load: (offset = 0): Code => [0x28, ...memarg(2, offset)],
  f32_load: (offset = 0): Code => [0x2a, ...memarg(2, offset)],
  i32_store: (offset = 0): Code => [0x36, ...memarg(2, offset)],
  f32_store: (offset = 0): Code => [0x38, ...memarg(2, offset)],
  /** memory.copy dst src len (memmove semantics: overlapping ranges are fine) */
  memory_copy: [0xfc, ...uleb(10), 0x00, 0x00] as Code,
  /** memory.fill dst value len */
  memory_fill: [0xfc, ...uleb(11), 0x00] as Code,
  // i32
  i32: (v: number): Code => [0x41, ...sleb(v)],
  i32_eqz: 0x45,
  i32_eq: 0x46,
  i32_ne: 0x47,
  i32_lt_u: 0x49,
  i32_gt_u: 0x4b,
  i32_le_u: 0x4d,
  i32_ge_u: 0x4f,
  i32_add: 0x6a,
  i32_sub: 0x6b,
  i32_mul: 0x6c,
  i32_and: 0x71,
  i32_div_u: 0x6e,
  i32_shl: 0x74,
  // f32
  f32: floatConst(0x43, Float32Array),
  f32_add: 0x92,
  f32_mul: 0x94,
  // SIMD (f32x4 lanes in a v128)
  v128_load: (offset = 0): Code => [simd(0x00), ...memarg(4, offset)],
  /** load one f32 and broadcast it to all four lanes (one instruction: vbroadcastss on x86) */
  v128_load32_splat: (offset = 0): Code => [simd(0x09), ...memarg(2, offset)],
  v128_store: (offset = 0): Code => [simd(0x0b), ...memarg(4, offset)],
  v128_zero: [simd(0x0c), ...new Array<number>(16).fill(0)] as Code,
  f32x4_splat: simd(0x13) as Code,
  /**
   * Picks four f32 lanes from two vectors: lanes 0-3 are the first operand's, 4-7 the second's.
   * (This is i8x16.shuffle with byte indices; V8 recognises the common patterns as one
   * unpcklps / unpckhps / movlhps / movhlps.)
   */
  f32x4_shuffle: (l0: number, l1: number, l2: number, l3: number): Code =>
    [simd(0x0d), ...[l0, l1, l2, l3].flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3])],
  /** lane `l` of an f32x4 as an f32 */
  f32x4_extract_lane: (l: number): Code => [simd(0x1f), l],
  f32x4_add: simd(0xe4) as Code,
  f32x4_mul: simd(0xe6) as Code,
  /** b < a ? a : b per lane (x86 maxps: one instruction, NaN not propagated, unlike f32x4.max) */
  f32x4_pmax: simd(0xeb) as Code,
  /** lanes where a != b all ones (NaN != NaN) */
  f32x4_ne: simd(0x42) as Code,
  v128_or: simd(0x50) as Code,
  /** 1 when any bit of the vector is set */
  v128_any_true: simd(0x53) as Code,
  /** load 8 bytes and repeat them: f32 lanes (a, b, a, b) */
  v128_load64_splat: (offset = 0): Code => [simd(0x0a), ...memarg(3, offset)],
  f32_max: 0x97,
  f64_div: 0xa3,
  // f64 (scalar) and f64x2: the row kernels (row-kernels.ts) compute in double precision so that
  // their float32 results are the reference loops' results, rounded once
  f64: floatConst(0x44, Float64Array),
  f64_add: 0xa0,
  f64_promote_f32: 0xbb,
  /** two f32 into lanes 0-1, zeros above (an 8-byte load) */
  v128_load64_zero: (offset = 0): Code => [simd(0x5d), ...memarg(3, offset)],
  /** one f32 into lane 0, zeros above */
  v128_load32_zero: (offset = 0): Code => [simd(0x5c), ...memarg(2, offset)],
  /** the low 8 bytes (two f32 lanes) of a vector */
  v128_store64_lane0: (offset = 0): Code => [simd(0x5b), ...memarg(3, offset), 0],
  f64x2_splat: simd(0x14) as Code,
  f64x2_extract_lane: (l: number): Code => [simd(0x21), l],
  /** f32 lanes 0-1 -> f64 lanes 0-1 (exact) */
  f64x2_promote_low_f32x4: simd(0x5f) as Code,
  /** f64 lanes 0-1 -> f32 lanes 0-1, rounded to nearest even (as Math.fround), zeros above */
  f32x4_demote_f64x2_zero: simd(0x5e) as Code,
  f64x2_add: simd(0xf0) as Code,
  f64x2_sub: simd(0xf1) as Code,
  f64x2_mul: simd(0xf2) as Code,
  f64x2_div: simd(0xf3) as Code,
  f64x2_abs: simd(0xec) as Code,
  f64x2_neg: simd(0xed) as Code,
  /** lanes where a >= b all ones */
  f64x2_ge: simd(0x4c) as Code,
  /** (a & mask) | (b & ~mask): per bit, a where the mask (on top of the stack) is set */
  v128_bitselect: simd(0x52) as Code,
  /** a < b ? b : a per lane (maxpd: one instruction; a NaN in a is kept) */
  f64x2_pmax: simd(0xf7) as Code,
  /** each i64 lane shifted left by an i32 count */
  i64x2_shl: simd(0xcb) as Code,
};

/** `local += delta` for an i32 local. */
export function inc(local: number, delta: Code): Code {
  return [I.get(local), delta, I.i32_add, I.set(local)];
}

/**
 * for (i = from; i < to; i += step) body   (unsigned compare; `to` is re-evaluated each time,
 * so pass a local or a constant). Inside `body`, `br 1` would leave the loop, `br 0` restart it
 * without the increment, so bodies here never branch out on their own.
 */
export function forRange(i: number, from: Code, to: Code, step: Code, body: Code): Code {
  return [
    from, I.set(i),
    I.block(I.loop([
      I.get(i), to, I.i32_ge_u, I.br_if(1),
      body,
      inc(i, step),
      I.br(0),
    ])),
  ];
}

/** while (cond) body */
export function whileLoop(cond: Code, body: Code): Code {
  return I.block(I.loop([cond, I.i32_eqz, I.br_if(1), body, I.br(0)]));
}

/** One function of a module under construction. */
export interface FuncDef {
  name: string;
  params: ValType[];
  results: ValType[];
  /** extra locals, numbered after the parameters */
  locals: ValType[];
  body: Code;
}

/**
 * Assembles a module that imports its memory as `env.memory` (shared when `shared`, so worker
 * threads can instantiate the same module over the same bytes) and exports every function by name.
 * Functions may call each other by their index in `funcs`.
 */
export function assembleModule(funcs: readonly FuncDef[], memory: { min: number; max: number; shared: boolean }): Uint8Array<ArrayBuffer> {
  const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];

  // one type per function (duplicates are allowed, and keep the code obvious)
  const types = funcs.map((f) => [0x60, ...vec(f.params.map((p) => [p])), ...vec(f.results.map((r) => [r]))]);
  const limits = memory.shared
    ? [0x03, ...uleb(memory.min), ...uleb(memory.max)]
    : [0x01, ...uleb(memory.min), ...uleb(memory.max)];
  const imports = [[...utf8('env'), ...utf8('memory'), 0x02, ...limits]];
  const functions = funcs.map((_, i) => uleb(i));
  const exports = funcs.map((f, i) => [...utf8(f.name), 0x00, ...uleb(i)]);
  const bodies = funcs.map((f) => {
    // run-length encode the locals: (count, type) pairs
    const groups: number[][] = [];
    for (const t of f.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]!++;
      else groups.push([1, t]);
    }
    const body = [...uleb(groups.length), ...groups.flatMap(([n, t]) => [...uleb(n!), t!]), ...flatten(f.body), 0x0b];
    return [...uleb(body.length), ...body];
  });

  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec(imports)),
    ...section(3, vec(functions)),
    ...section(7, vec(exports)),
    ...section(10, vec(bodies)),
  ]);
}
