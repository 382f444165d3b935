/**
 * Kernel source generators for the gpu.js backend.
 *
 * gpu.js compiles a kernel from the *source text* of a JavaScript function (it parses it with
 * acorn and emits GLSL or WGSL). We hand it strings that we build here rather than real
 * functions, for three reasons:
 * 1. Transpilers cannot touch them. tsx, esbuild and tsup rewrite TypeScript functions (helper
 *    calls, renamed locals, `__name(...)` wrappers) and gpu.js would then fail to parse the
 *    result, or parse something subtly different. A string is the same in src and in dist.
 * 2. Every shape-dependent number (sizes, strides, loop bounds) is written into the source as a
 *    literal. Loops therefore have constant bounds, which GLSL ES 1.0 requires; gpu.js would
 *    otherwise silently cut a loop whose bound is an argument at `loopMaxIterations` (1000).
 *    It also lets the GLSL compiler fold the index arithmetic.
 * 3. Broadcasting and strided reads of any rank unroll into straight-line code, with no arrays
 *    of strides (gpu.js has no dynamic local arrays).
 * Each distinct source is compiled once and cached by the backend, so "one kernel per (op,
 * shape)" falls out of caching by source text.
 *
 * Every storage is a flat 1-D texture of float32, read as `x[flatIndex]`, and every kernel
 * writes a flat 1-D output, so kernels can feed each other whatever the logical shape is.
 * The thread's flat output index is `this.thread.x`.
 *
 * Index arithmetic runs in float32 (GLSL ES 1.0 has slow, 16-bit-minimum ints). Integers up to
 * 2^24 are exact in float32, and integer division is done as floor((i + 0.5) / s): the +0.5
 * keeps the quotient at least 0.5/s away from an integer, so rounding in the division can never
 * push it across one (a plain floor(i / s) can return 2.9999 -> 2 for i = 3s on some GPUs).
 */
import { sizeOf, stridesOf, type BinaryOp, type MatmulSpec, type ReduceOp, type Shape, type UnaryOp, type WindowSpec } from '../backend/backend';

/** A float literal GLSL accepts: integers get a ".0", negatives get parentheses. */
function lit(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`gpu backend: cannot write ${n} as a literal; pass it as an argument`);
  const s = Number.isInteger(n) ? `${n}.0` : String(n);
  return n < 0 ? `(${s})` : s;
}

/** A kernel: gpu.js source text, the output element count, and how many arguments are storages vs numbers. */
export interface KernelSource {
  /** cache key and gpu.js source */
  source: string;
  /** output elements */
  size: number;
  /**
   * the type of each argument, in order: 'storage' (a flat float32 tensor on the device),
   * 'host' (a Float32Array to upload) or 'number' (a float uniform)
   */
  args: readonly ('storage' | 'host' | 'number')[];
}

/**
 * gpu.js's type inference is weak in two places, so the generated code avoids both: a bare
 * `0.0` in a ternary branch becomes a GLSL int (and `cond ? float : int` does not compile), and a
 * `let` holding a boolean is declared as a float. Conditions are therefore written inline in
 * `if (...)`, and values default to a float variable that an `if` overwrites.
 */
const guarded = (conds: string[], lines: string[]): string[] =>
  conds.length === 0 ? lines : [`if (${conds.join(' && ')}) {`, ...lines.map((l) => `  ${l}`), '}'];

const fn = (params: string[], body: string[]): string => `function(${params.join(', ')}) {\n  ${body.join('\n  ')}\n}`;

/**
 * Lines that split the flat index `flat` into per-axis coordinates `${prefix}0..` of `shape`
 * (row-major: the last axis varies fastest). Axes of size 1 get the constant 0.
 */
function decompose(flat: string, shape: Shape, prefix: string): string[] {
  const lines: string[] = [];
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    const s = shape[d]!;
    if (s === 1) { lines.push(`let ${prefix}${d} = 0.0;`); continue; }
    if (d === 0) { lines.push(`let ${prefix}${d} = ${rest};`); continue; }
    const q = `${prefix}q${d}`;
    lines.push(`let ${q} = Math.floor((${rest} + 0.5) / ${lit(s)});`);
    lines.push(`let ${prefix}${d} = ${rest} - ${q} * ${lit(s)};`);
    rest = q;
  }
  return lines;
}

/** `offset + sum_d coord_d * strides[d]`, skipping zero strides. */
function dot(prefix: string, strides: readonly number[], offset = 0): string {
  const terms = strides.flatMap((s, d) => (s === 0 ? [] : [s === 1 ? `${prefix}${d}` : `${prefix}${d} * ${lit(s)}`]));
  if (offset !== 0 || terms.length === 0) terms.unshift(lit(offset));
  return terms.join(' + ');
}

/** Strides that read `inShape` while walking `outShape` (same rank): broadcast axes get 0. */
function broadcastStrides(inShape: Shape, outShape: Shape): number[] {
  const s = stridesOf(inShape);
  return outShape.map((o, d) => (inShape[d] === 1 && o !== 1 ? 0 : s[d]!));
}

const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((s, d) => s === b[d]);

/**
 * The flat index into an input of shape `inShape` broadcast to `outShape`, given coordinates
 * `c0..` of the output. Equal shapes read at the output index itself (no decomposition).
 */
function broadcastIndex(inShape: Shape, outShape: Shape): string {
  if (sameShape(inShape, outShape)) return 'i';
  return dot('c', broadcastStrides(inShape, outShape));
}

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

export const copyKernel = (size: number): KernelSource => ({
  source: fn(['x'], ['return x[this.thread.x];']),
  size,
  args: ['storage'],
});

/** The upload: the same copy with a host array as its argument, which gpu.js moves to the device. */
export const uploadKernel = (size: number): KernelSource => ({ ...copyKernel(size), args: ['host'] });

export const fillKernel = (size: number): KernelSource => ({
  source: fn(['v'], ['return v;']),
  size,
  args: ['number'],
});

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

/** Each unary op as lines computing `y` from `v`, in the gpu.js JavaScript subset. */
const UNARY: Record<UnaryOp, string[]> = {
  neg: ['let y = -v;'],
  exp: ['let y = Math.exp(v);'],
  log: ['let y = Math.log(v);'],
  sqrt: ['let y = Math.sqrt(v);'],
  abs: ['let y = Math.abs(v);'],
  sign: ['let y = v > 0.0 ? 1.0 : (v < 0.0 ? -1.0 : 0.0);'],
  step: ['let y = v > 0.0 ? 1.0 : 0.0;'],
  relu: ['let y = v > 0.0 ? v : 0.0;'],
  // exp(-|v|) never overflows; for v < 0, sigmoid(v) = e^v / (1 + e^v) = 1 - sigmoid(-v)
  sigmoid: ['let e = Math.exp(-Math.abs(v));', 'let y = v >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);'],
  // GLSL ES 1.0 has no tanh; (1 - e^{-2|v|}) / (1 + e^{-2|v|}) with the sign put back never overflows
  tanh: ['let t = Math.exp(-2.0 * Math.abs(v));', 'let m = (1.0 - t) / (1.0 + t);', 'let y = v < 0.0 ? -m : m;'],
  // Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7, below float32 resolution near 1
  erf: [
    'let a = Math.abs(v);',
    'let t = 1.0 / (1.0 + 0.3275911 * a);',
    'let p = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;',
    'let m = 1.0 - p * Math.exp(-a * a);',
    'let y = v < 0.0 ? -m : m;',
  ],
  sin: ['let y = Math.sin(v);'],
  cos: ['let y = Math.cos(v);'],
};

export const unaryKernel = (op: UnaryOp, size: number): KernelSource => ({
  source: fn(['x'], ['let v = x[this.thread.x];', ...UNARY[op], 'return y;']),
  size,
  args: ['storage'],
});

/** Each binary op as lines computing `y` from `p` (left) and `q` (right). */
const BINARY: Record<BinaryOp, string[]> = {
  add: ['let y = p + q;'],
  sub: ['let y = p - q;'],
  mul: ['let y = p * q;'],
  div: ['let y = p / q;'],
  // GLSL pow(p, q) is undefined for p < 0 (and for 0^0): use |p|^q, then fix the sign for odd
  // integer exponents. A negative base with a fractional exponent is NaN, like Math.pow; sqrt of
  // a negative number is how we make a NaN at run time (GLSL has no NaN literal).
  pow: [
    'let m = Math.pow(Math.abs(p), q);',
    'let odd = q - 2.0 * Math.floor(q * 0.5);',
    'let neg = Math.floor(q) == q ? (odd == 1.0 ? -m : m) : Math.sqrt(-1.0 - Math.abs(p));',
    'let y = q == 0.0 ? 1.0 : (p < 0.0 ? neg : (p == 0.0 ? (q > 0.0 ? 0.0 : 1.0 / p) : m));',
  ],
  max: ['let y = Math.max(p, q);'],
  min: ['let y = Math.min(p, q);'],
  eq: ['let y = p == q ? 1.0 : 0.0;'],
  ne: ['let y = p != q ? 1.0 : 0.0;'],
  lt: ['let y = p < q ? 1.0 : 0.0;'],
  le: ['let y = p <= q ? 1.0 : 0.0;'],
  gt: ['let y = p > q ? 1.0 : 0.0;'],
  ge: ['let y = p >= q ? 1.0 : 0.0;'],
};

/** The output coordinates, decomposed only when some input actually needs them. */
function coordsIfBroadcast(inShapes: Shape[], outShape: Shape): string[] {
  return inShapes.every((s) => sameShape(s, outShape)) ? [] : decompose('i', outShape, 'c');
}

export function binaryKernel(op: BinaryOp, aShape: Shape, bShape: Shape, outShape: Shape): KernelSource {
  return {
    source: fn(['a', 'b'], [
      'let i = this.thread.x;',
      ...coordsIfBroadcast([aShape, bShape], outShape),
      `let p = a[${broadcastIndex(aShape, outShape)}];`,
      `let q = b[${broadcastIndex(bShape, outShape)}];`,
      ...BINARY[op],
      'return y;',
    ]),
    size: sizeOf(outShape),
    args: ['storage', 'storage'],
  };
}

export function whereKernel(condShape: Shape, aShape: Shape, bShape: Shape, outShape: Shape): KernelSource {
  return {
    source: fn(['cond', 'a', 'b'], [
      'let i = this.thread.x;',
      ...coordsIfBroadcast([condShape, aShape, bShape], outShape),
      `let k = cond[${broadcastIndex(condShape, outShape)}];`,
      `let p = a[${broadcastIndex(aShape, outShape)}];`,
      `let q = b[${broadcastIndex(bShape, outShape)}];`,
      'return k != 0.0 ? p : q;',
    ]),
    size: sizeOf(outShape),
    args: ['storage', 'storage', 'storage'],
  };
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

/**
 * The most iterations one kernel invocation may loop through, over all its loops together.
 * Mesa's llvmpipe (the software rasteriser under both headless GL and Dawn's OpenGL ES backend,
 * i.e. CI and any machine without a GPU) silently stops a shader loop after 65535 iterations,
 * counted per invocation, so a single thread summing 1e6 terms returned 65405. Reductions and
 * matmul therefore never give one thread more than `MAX_LOOP_TERMS` terms: longer ones are cut
 * into chunks reduced by further passes (see `reduceKernel`, `matmulKernel`). Kernels whose loop
 * cannot be chunked refuse a longer loop with an error (`checkLoop`) instead of a wrong answer.
 * 4096 keeps each pass's loop far below the cap and gives a GPU many threads per reduction.
 */
const MAX_LOOP_TERMS = 4096;

/** Throws a one-line error when a kernel would loop more than llvmpipe completes (see MAX_LOOP_TERMS). */
function checkLoop(what: string, iterations: number): void {
  if (iterations > 65535) {
    throw new Error(`gpu backend: ${what} needs ${iterations} loop iterations in one GPU thread; software GPUs (Mesa llvmpipe) stop a loop after 65535, so this is refused rather than computed wrong; run it on the CPU backend`);
  }
}

/** How many chunks of at most MAX_LOOP_TERMS terms a reduction of `terms` terms is cut into. */
const chunksOf = (terms: number): number => Math.max(1, Math.ceil(terms / MAX_LOOP_TERMS));

/**
 * One pass of a reduction: thread (o, c) reduces chunk c (at most MAX_LOOP_TERMS consecutive
 * reduced cells, in row-major order of the reduced axes) of output cell o. The output is laid out
 * [outCells, chunks]; with one chunk that is exactly the reduced tensor, otherwise the backend
 * reduces the partials along their last axis in further passes (see GpuBackend.reduce).
 * Max and min start from the chunk's first element (so no infinity literal is needed). A sum
 * inside a chunk is split into ~sqrt(C) blocks of ~sqrt(C) terms (sum of block sums), so float32
 * rounding grows like 2*sqrt(C) instead of C; the passes add the chunk sums like a tree.
 */
export function reduceKernel(op: ReduceOp, shape: Shape, axes: readonly number[]): KernelSource {
  const reduced = new Set(axes);
  const strides = stridesOf(shape);
  const outShape = shape.map((s, d) => (reduced.has(d) ? 1 : s));
  const keptStrides = strides.map((s, d) => (reduced.has(d) ? 0 : s));
  const rShape = shape.filter((_, d) => reduced.has(d));
  const rStrides = strides.filter((_, d) => reduced.has(d));
  const R = sizeOf(rShape);
  const chunks = chunksOf(R);
  const C = Math.min(R, MAX_LOOP_TERMS);
  // offset of the j-th reduced cell: decompose j over the reduced axes
  const offsetOf = (j: string): string[] => [...decompose(j, rShape, 'r'), `let off = base + ${dot('r', rStrides)};`];
  const combine = op === 'sum' ? 'acc = acc + v;' : op === 'max' ? 'acc = Math.max(acc, v);' : 'acc = Math.min(acc, v);';
  const body = ['let i = this.thread.x;'];
  if (chunks > 1) {
    body.push(`let cell = Math.floor((i + 0.5) / ${lit(chunks)});`, `let first = (i - cell * ${lit(chunks)}) * ${lit(C)};`);
  } else {
    body.push('let cell = i;', 'let first = 0.0;');
  }
  body.push(...decompose('cell', outShape, 'c'), `let base = ${dot('c', keptStrides)};`);
  // the chunk's last term: R for the final (partial) chunk
  const inRange = (j: string): string => (R % C === 0 ? '' : `${j} < ${lit(R)}`);
  const guard = (j: string, lines: string[]): string[] => { const c = inRange(j); return c ? guarded([c], lines) : lines; };
  if (op === 'sum' && C > 64) {
    const B = Math.ceil(Math.sqrt(C));
    const nb = Math.ceil(C / B);
    const inChunk = B * nb === C ? [] : [`t + blk * ${lit(B)} < ${lit(C)}`];
    body.push(
      'let acc = 0.0;',
      `for (let blk = 0.0; blk < ${lit(nb)}; blk++) {`,
      '  let part = 0.0;',
      `  for (let t = 0.0; t < ${lit(B)}; t++) {`,
      `    let j = first + blk * ${lit(B)} + t;`,
      ...guarded([...inChunk, ...(inRange('j') ? [inRange('j')] : [])], [...offsetOf('j'), 'part = part + x[off];']).map((l) => `    ${l}`),
      '  }',
      '  acc = acc + part;',
      '}',
    );
  } else {
    if (op === 'sum') body.push('let acc = 0.0;');
    else body.push(...offsetOf('first'), 'let acc = x[off];');
    body.push(
      `for (let t = ${op === 'sum' ? '0.0' : '1.0'}; t < ${lit(C)}; t++) {`,
      '  let j = first + t;',
      ...guard('j', [...offsetOf('j'), 'let v = x[off];', combine]).map((l) => `  ${l}`),
      '}',
    );
  }
  body.push('return acc;');
  return { source: fn(['x'], body), size: sizeOf(outShape) * chunks, args: ['storage'] };
}

/** Index of the first maximum (minimum) along `axis`: a strict comparison keeps the earliest. */
export function argReduceKernel(op: 'argmax' | 'argmin', shape: Shape, axis: number): KernelSource {
  const strides = stridesOf(shape);
  const outShape = shape.map((s, d) => (d === axis ? 1 : s));
  const n = shape[axis]!;
  checkLoop(`${op} over an axis of ${n}`, n);
  const cmp = op === 'argmax' ? '>' : '<';
  return {
    source: fn(['x'], [
      'let i = this.thread.x;',
      ...decompose('i', outShape, 'c'),
      `let base = ${dot('c', strides.map((s, d) => (d === axis ? 0 : s)))};`,
      'let best = x[base];',
      'let at = 0.0;',
      `for (let j = 1.0; j < ${lit(n)}; j++) {`,
      `  let v = x[base + j * ${lit(strides[axis]!)}];`,
      `  if (v ${cmp} best) {`,
      '    best = v;',
      '    at = j;',
      '  }',
      '}',
      'return at;',
    ]),
    size: sizeOf(outShape),
    args: ['storage'],
  };
}

/**
 * Top-k in two passes with no sorting (sorting networks are awkward in a fragment shader):
 * 1. rank of each element within its row = how many elements beat it (larger, or equal with a
 *    lower index), so ranks are a permutation 0..n-1 with the required tie order;
 * 2. output slot j of a row is the index whose rank is j.
 * O(n^2) per row, which is fine for the small last axes top-k is used on (expert gating).
 */
export function topkRankKernel(rows: number, n: number): KernelSource {
  checkLoop(`topk over a last axis of ${n}`, n);
  return {
    source: fn(['x'], [
      'let i = this.thread.x;',
      `let row = Math.floor((i + 0.5) / ${lit(n)});`,
      `let col = i - row * ${lit(n)};`,
      `let base = row * ${lit(n)};`,
      'let v = x[i];',
      'let rank = 0.0;',
      `for (let l = 0.0; l < ${lit(n)}; l++) {`,
      '  let u = x[base + l];',
      '  if (u > v || (u == v && l < col)) {',
      '    rank = rank + 1.0;',
      '  }',
      '}',
      'return rank;',
    ]),
    size: rows * n,
    args: ['storage'],
  };
}

export function topkSelectKernel(rows: number, n: number, k: number): KernelSource {
  return {
    source: fn(['rank'], [
      'let i = this.thread.x;',
      `let row = Math.floor((i + 0.5) / ${lit(k)});`,
      `let slot = i - row * ${lit(k)};`,
      'let found = 0.0;',
      `for (let l = 0.0; l < ${lit(n)}; l++) {`,
      `  if (rank[row * ${lit(n)} + l] == slot) {`,
      '    found = l;',
      '  }',
      '}',
      'return found;',
    ]),
    size: rows * k,
    args: ['storage'],
  };
}

// ---------------------------------------------------------------------------------------------
// Linear algebra
// ---------------------------------------------------------------------------------------------

/**
 * out[bi, r, c] = sum_t A[bi, r, t] * B[bi, t, c], one thread per output element. The
 * transposed layouts only change the strides of the reads; a batch of 1 reads at stride 0.
 * A k longer than MAX_LOOP_TERMS is split: thread (q, bi, r, c) sums only the q-th run of
 * MAX_LOOP_TERMS values of t, the output is laid out [chunksOf(k), batch, m, n], and the backend
 * sums the partial products over the first axis (GpuBackend.matmul).
 */
export function matmulKernel(spec: MatmulSpec): KernelSource {
  const { batch, m, k, n, batchA, batchB, transA, transB } = spec;
  const aBatch = batchA === 1 ? 0 : m * k;
  const bBatch = batchB === 1 ? 0 : k * n;
  // A[r, t] at r*sr + t*st; B[t, c] at t*st + c*sc
  const [aR, aT] = transA ? [1, m] : [k, 1];
  const [bT, bC] = transB ? [1, k] : [n, 1];
  const term = (v: string, s: number): string => (s === 1 ? v : `${v} * ${lit(s)}`);
  const chunks = chunksOf(k);
  const K = Math.min(k, MAX_LOOP_TERMS);
  const tt = chunks > 1 ? 'tt' : 't';
  const step = [`acc = acc + a[aBase + ${term(tt, aT)}] * b[bBase + ${term(tt, bT)}];`];
  return {
    source: fn(['a', 'b'], [
      'let i = this.thread.x;',
      // coordinates c0 (chunk), c1 (batch), c2 (row), c3 (column)
      ...decompose('i', [chunks, batch, m, n], 'c'),
      `let aBase = ${dot('c', [0, aBatch, aR, 0])};`,
      `let bBase = ${dot('c', [0, bBatch, 0, bC])};`,
      'let acc = 0.0;',
      `for (let t = 0.0; t < ${lit(K)}; t++) {`,
      ...(chunks > 1 ? [`  let tt = c0 * ${lit(K)} + t;`, ...guarded(k % K === 0 ? [] : [`tt < ${lit(k)}`], step).map((l) => `  ${l}`)] : step.map((l) => `  ${l}`)),
      '}',
      'return acc;',
    ]),
    size: chunks * batch * m * n,
    args: ['storage', 'storage'],
  };
}

// ---------------------------------------------------------------------------------------------
// Movement
// ---------------------------------------------------------------------------------------------

export function stridedKernel(outShape: Shape, strides: readonly number[], offset: number): KernelSource {
  return {
    source: fn(['x'], ['let i = this.thread.x;', ...decompose('i', outShape, 'c'), `return x[${dot('c', strides, offset)}];`]),
    size: sizeOf(outShape),
    args: ['storage'],
  };
}

export function padKernel(shape: Shape, pads: readonly (readonly [number, number])[]): KernelSource {
  const outShape = shape.map((s, d) => s + pads[d]![0] + pads[d]![1]);
  const inside = shape.flatMap((s, d) => {
    const [before, after] = pads[d]!;
    const conds: string[] = [];
    if (before > 0) conds.push(`c${d} >= ${lit(before)}`);
    if (after > 0) conds.push(`c${d} < ${lit(before + s)}`);
    return conds;
  });
  const strides = stridesOf(shape);
  const shift = pads.reduce((acc, [before], d) => acc - before * strides[d]!, 0);
  // clamp the read to element 0 when outside, so no thread reads out of bounds
  return {
    source: fn(['x', 'value'], [
      'let i = this.thread.x;',
      ...decompose('i', outShape, 'c'),
      'let v = value;',
      ...guarded(inside, [`v = x[${dot('c', strides, shift)}];`]),
      'return v;',
    ]),
    size: sizeOf(outShape),
    args: ['storage', 'number'],
  };
}

export function gatherKernel(xShape: Shape, axis: number, indexShape: Shape): KernelSource {
  const xs = stridesOf(xShape);
  return {
    source: fn(['x', 'index'], [
      'let i = this.thread.x;',
      ...decompose('i', indexShape, 'c'),
      `return x[${dot('c', xs.map((s, d) => (d === axis ? 0 : s)))} + index[i] * ${lit(xs[axis]!)}];`,
    ]),
    size: sizeOf(indexShape),
    args: ['storage', 'storage'],
  };
}

/**
 * scatterAdd as a gather (GPUs have no atomic float add here): each output cell loops over the
 * index entries that could land in it (same coordinates on the other axes) and sums the source
 * values whose index equals its own coordinate on `axis`.
 */
export function scatterAddKernel(indexShape: Shape, axis: number, outShape: Shape): KernelSource {
  const is = stridesOf(indexShape);
  checkLoop(`scatterAdd of ${indexShape[axis]} entries along axis ${axis}`, indexShape[axis]!);
  const inRange = outShape.flatMap((s, d) => (d !== axis && indexShape[d]! < s ? [`c${d} < ${lit(indexShape[d]!)}`] : []));
  return {
    source: fn(['src', 'index'], [
      'let i = this.thread.x;',
      ...decompose('i', outShape, 'c'),
      `let base = ${dot('c', is.map((s, d) => (d === axis ? 0 : s)))};`,
      'let acc = 0.0;',
      ...guarded(inRange, [
        `for (let t = 0.0; t < ${lit(indexShape[axis]!)}; t++) {`,
        `  let pos = base + t * ${lit(is[axis]!)};`,
        `  if (index[pos] == c${axis}) {`,
        '    acc = acc + src[pos];',
        '  }',
        '}',
      ]),
      'return acc;',
    ]),
    size: sizeOf(outShape),
    args: ['storage', 'storage'],
  };
}

/** Columns [batch, C*kh*kw, outH*outW]: each thread finds its pixel, or reads the pad value. */
export function im2colKernel(s: WindowSpec): KernelSource {
  const L = s.outH * s.outW;
  const CK = s.channels * s.kh * s.kw;
  return {
    source: fn(['x', 'padValue'], [
      'let i = this.thread.x;',
      ...decompose('i', [s.batch, CK, L], 'c'),
      ...decompose('c1', [s.channels, s.kh, s.kw], 'k'),
      ...decompose('c2', [s.outH, s.outW], 'o'),
      `let y = o0 * ${lit(s.strideH)} - ${lit(s.padH)} + k1 * ${lit(s.dilationH)};`,
      `let xx = o1 * ${lit(s.strideW)} - ${lit(s.padW)} + k2 * ${lit(s.dilationW)};`,
      'let v = padValue;',
      ...guarded([`y >= 0.0`, `y < ${lit(s.height)}`, `xx >= 0.0`, `xx < ${lit(s.width)}`], [
        `v = x[((c0 * ${lit(s.channels)} + k0) * ${lit(s.height)} + y) * ${lit(s.width)} + xx];`,
      ]),
      'return v;',
    ]),
    size: s.batch * CK * L,
    args: ['storage', 'number'],
  };
}

/**
 * The adjoint of im2col, again as a gather: pixel (y, x) sums the column entries of every
 * kernel tap (ki, kj) whose window position (oy, ox) = ((y + padH - ki*dilH) / strideH, ...)
 * is a whole number inside the output grid.
 */
export function col2imKernel(s: WindowSpec): KernelSource {
  const L = s.outH * s.outW;
  const K = s.kh * s.kw;
  return {
    source: fn(['cols'], [
      'let i = this.thread.x;',
      ...decompose('i', [s.batch, s.channels, s.height, s.width], 'c'),
      'let acc = 0.0;',
      `for (let ki = 0.0; ki < ${lit(s.kh)}; ki++) {`,
      `  let ty = c2 + ${lit(s.padH)} - ki * ${lit(s.dilationH)};`,
      `  let oy = Math.floor((ty + 0.5) / ${lit(s.strideH)});`,
      `  for (let kj = 0.0; kj < ${lit(s.kw)}; kj++) {`,
      `    let tx = c3 + ${lit(s.padW)} - kj * ${lit(s.dilationW)};`,
      `    let ox = Math.floor((tx + 0.5) / ${lit(s.strideW)});`,
      `    if (ty >= 0.0 && oy * ${lit(s.strideH)} == ty && oy < ${lit(s.outH)} && tx >= 0.0 && ox * ${lit(s.strideW)} == tx && ox < ${lit(s.outW)}) {`,
      `      acc = acc + cols[((c0 * ${lit(s.channels)} + c1) * ${lit(K)} + ki * ${lit(s.kw)} + kj) * ${lit(L)} + oy * ${lit(s.outW)} + ox];`,
      '    }',
      '  }',
      '}',
      'return acc;',
    ]),
    size: s.batch * s.channels * s.height * s.width,
    args: ['storage'],
  };
}
