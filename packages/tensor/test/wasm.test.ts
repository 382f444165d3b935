/**
 * The fast float32 kernels (src/backend/wasm) against plain loops written here.
 *
 * Every WebAssembly result is compared with a naive triple loop accumulated in float64, so the
 * tolerance only has to cover float32 rounding of a k-term sum: |err| <= 1e-6 * k * max|a||b|
 * plus a little. Shapes include the awkward ones for a packed 4x8 kernel (1, 3, 17, 33, 65: not
 * multiples of the panel sizes) and depths past one k block (KC = 256), in all four
 * transA/transB variants, with and without batch broadcasting, on one and two threads, with the
 * worker path forced even for tiny products (parallelMinFlops: 0).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConvSpec, MatmulSpec, WindowSpec } from '../src/backend/backend';
import { matmulNaive, ReferenceCpuBackend } from '../src/backend/cpu-reference';
import { CpuBackend } from '../src/backend/cpu';
import {
  createWasmKernels,
  fastKernelsEnabled,
  setFastKernelsEnabled,
  sharedFastKernels,
  wasmSimdAvailable,
  WASM_GEOMETRY,
  type FastKernels,
} from '../src/backend/wasm/index';
import { sleb, uleb } from '../src/backend/wasm/emit';
import { col2imFast, im2colFast } from '../src/backend/cpu-window';

// ---------- references ----------

function refMatmul(a: Float32Array, b: Float32Array, s: MatmulSpec): Float32Array {
  const { batch, m, k, n, batchA, batchB, transA, transB } = s;
  const out = new Float32Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const ao = batchA === 1 ? 0 : bi * m * k;
    const bo = batchB === 1 ? 0 : bi * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const av = a[ao + (transA ? p * m + i : i * k + p)]!;
          const bv = b[bo + (transB ? j * k + p : p * n + j)]!;
          acc += av * bv;
        }
        out[bi * m * n + i * n + j] = acc;
      }
    }
  }
  return out;
}

function refIm2col(x: Float32Array, s: WindowSpec): Float32Array {
  const { batch, channels: C, height: H, width: W, kh, kw, outH, outW } = s;
  const cols = new Float32Array(batch * C * kh * kw * outH * outW);
  let q = 0;
  for (let b = 0; b < batch; b++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < kh; i++)
        for (let j = 0; j < kw; j++)
          for (let oh = 0; oh < outH; oh++)
            for (let ow = 0; ow < outW; ow++) {
              const ih = oh * s.strideH - s.padH + i * s.dilationH;
              const iw = ow * s.strideW - s.padW + j * s.dilationW;
              cols[q++] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[((b * C + c) * H + ih) * W + iw]! : s.padValue;
            }
  return cols;
}

/** seeded uniform [-1, 1) so failures reproduce */
function rand(n: number, seed: number): Float32Array {
  let st = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    st ^= st << 13; st >>>= 0;
    st ^= st >>> 17;
    st ^= st << 5; st >>>= 0;
    out[i] = (st / 2 ** 32) * 2 - 1;
  }
  return out;
}

function close(got: Float32Array, want: Float32Array, k: number, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  const tol = 1e-6 * (k + 8);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (!(d <= tol)) assert.unreachable(`${what}: element ${i} is ${got[i]}, want ${want[i]} (tol ${tol})`);
  }
}

function spec(batch: number, m: number, k: number, n: number, batchA: number, batchB: number, transA: boolean, transB: boolean): MatmulSpec {
  return { batch, m, k, n, batchA, batchB, transA, transB };
}

function check(K: FastKernels, s: MatmulSpec, seed: number, tag = ''): void {
  const a = rand(s.batchA * s.m * s.k, seed);
  const b = rand(s.batchB * s.k * s.n, seed + 7);
  const a0 = a.slice(), b0 = b.slice();
  const got = K.matmul(a, b, s);
  close(got, refMatmul(a, b, s), s.k, `${K.name} ${tag} ${JSON.stringify(s)}`);
  assert.equal(a, a0, 'A unchanged');
  assert.equal(b, b0, 'B unchanged');
}

// ---------- the emitter ----------

test('LEB128 encodings match the spec examples', () => {
  assert.equal(uleb(0), [0]);
  assert.equal(uleb(127), [127]);
  assert.equal(uleb(128), [0x80, 0x01]);
  assert.equal(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.equal(sleb(-1), [0x7f]);
  assert.equal(sleb(63), [63]);
  assert.equal(sleb(64), [0xc0, 0x00]);
  assert.equal(sleb(-64), [0x40]);
  assert.equal(sleb(-123456), [0xc0, 0xbb, 0x78]);
});

test('WebAssembly SIMD is available on Node 20', () => {
  assert.ok(wasmSimdAvailable());
});

// ---------- matmul ----------

const pools: [string, FastKernels][] = [];
test.before(() => {
  pools.push(['1 thread', createWasmKernels({ threads: 1 })]);
  pools.push(['2 threads forced', createWasmKernels({ threads: 2, parallelMinFlops: 0, parallelMinValues: 0, mapMinSize: 0 })]);
  pools.push(['2 threads', createWasmKernels({ threads: 2 })]);
});
test.after(() => {
  for (const [, K] of pools) K.dispose();
});

test('thread counts and names', () => {
  assert.is(pools[0]![1].threads, 1);
  assert.is(pools[0]![1].name, 'wasm-simd x1 thread');
  assert.is(pools[1]![1].threads, 2);
  assert.is(pools[1]![1].name, 'wasm-simd x2 threads');
});

test('the constructor does not wait for its workers: a job posted at once is right, and started resolves with every thread', async () => {
  const K = createWasmKernels({ threads: 2, parallelMinFlops: 0 });
  const alive = setInterval(() => {}, 1000); // the workers are unref()ed: hold the process open while awaiting them
  try {
    const spec = { batch: 1, m: 33, k: 70, n: 41, batchA: 1, batchB: 1, transA: false, transB: false };
    const a = Float32Array.from({ length: 33 * 70 }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: 70 * 41 }, (_, i) => Math.cos(i * 0.3));
    const want = new Float32Array(33 * 41);
    matmulNaive(a, b, want, spec);
    const first = K.matmul(a, b, spec); // most likely before the worker is up: the calling thread does every task
    assert.is(await K.started, 2);
    const later = K.matmul(a, b, spec);
    for (const got of [first, later]) for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-4, `element ${i}`);
  } finally {
    clearInterval(alive);
    K.dispose();
  }
});

const odd = [1, 3, 17, 33, 65];
test('odd sizes, all trans variants, 1 and 2 threads', () => {
  let seed = 1;
  for (const [tag, K] of pools.slice(0, 2)) {
    for (const m of odd) for (const k of [1, 3, 33]) for (const n of odd) {
      for (const transA of [false, true]) for (const transB of [false, true]) {
        check(K, spec(1, m, k, n, 1, 1, transA, transB), seed++, tag);
      }
    }
  }
});

test('depth past one k block, several C blocks per item, re-split small outputs (multi-task), all trans variants', () => {
  const { KC, MC, NC } = WASM_GEOMETRY;
  for (const [tag, K] of pools) {
    for (const [m, k, n] of [[MC * 2 + 3, KC + 1, NC + 9], [5, 2 * KC + 17, 9], [130, KC, 66], [1, 600, NC * 2 + 1], [32, 1000, 288]] as const) {
      for (const transA of [false, true]) for (const transB of [false, true]) {
        check(K, spec(1, m, k, n, 1, 1, transA, transB), m * 31 + k + n, tag);
      }
    }
  }
});

test('batches and broadcasting (batchA or batchB of 1), all trans variants', () => {
  for (const [tag, K] of pools) {
    for (const [bA, bB] of [[3, 3], [1, 3], [3, 1], [1, 1]] as const) {
      for (const transA of [false, true]) for (const transB of [false, true]) {
        check(K, spec(3, 17, 33, 9, bA, bB, transA, transB), bA * 10 + bB, tag);
        check(K, spec(3, 65, 300, 70, bA, bB, transA, transB), bA * 10 + bB + 1, tag);
      }
    }
  }
});

test('empty products: k = 0 gives zeros, m or n = 0 gives an empty array', () => {
  const K = pools[1]![1];
  assert.equal(K.matmul(new Float32Array(0), new Float32Array(0), spec(2, 3, 0, 4, 2, 2, false, false)), new Float32Array(24));
  assert.is(K.matmul(new Float32Array(0), new Float32Array(12), spec(1, 0, 3, 4, 1, 1, false, false)).length, 0);
  assert.is(K.matmul(new Float32Array(6), new Float32Array(0), spec(1, 2, 3, 0, 1, 1, false, false)).length, 0);
});

test('operands longer than the spec are read only up to their size; results are fresh arrays', () => {
  const K = pools[0]![1];
  const s = spec(1, 5, 6, 7, 1, 1, false, true);
  const a = rand(5 * 6 + 10, 3), b = rand(6 * 7 + 3, 4);
  const got = K.matmul(a, b, s);
  close(got, refMatmul(a.subarray(0, 30), b.subarray(0, 42), s), 6, 'long operands');
  assert.ok(!(got.buffer instanceof SharedArrayBuffer), 'result must not alias the shared wasm memory');
  const again = K.matmul(a, b, s);
  assert.ok(got !== again && got.buffer !== again.buffer);
  assert.equal(got, again);
});

test('property: random shapes, batches, broadcasting and transposes (fast-check)', () => {
  for (const [tag, K] of pools.slice(0, 2)) {
    fc.assert(
      fc.property(
        fc.record({
          batch: fc.integer({ min: 1, max: 3 }),
          m: fc.integer({ min: 1, max: 70 }),
          k: fc.integer({ min: 1, max: 70 }),
          n: fc.integer({ min: 1, max: 70 }),
          broadcastA: fc.boolean(),
          broadcastB: fc.boolean(),
          transA: fc.boolean(),
          transB: fc.boolean(),
          seed: fc.integer({ min: 1, max: 1e9 }),
        }),
        (r) => {
          const s = spec(r.batch, r.m, r.k, r.n, r.broadcastA ? 1 : r.batch, r.broadcastB ? 1 : r.batch, r.transA, r.transB);
          check(K, s, r.seed, tag);
        },
      ),
      { numRuns: 60, seed: 20261125 },
    );
  }
});

test('a 256 product is identical on 1 and 2 threads (same kernel, same summation order)', () => {
  const s = spec(1, 256, 256, 256, 1, 1, false, false);
  const a = rand(256 * 256, 11), b = rand(256 * 256, 12);
  assert.equal(pools[0]![1].matmul(a, b, s), pools[2]![1].matmul(a, b, s));
});

test('unshared memory (browser without cross-origin isolation): one thread, same results', () => {
  const K = createWasmKernels({ threads: 2, sharedMemory: false });
  try {
    assert.is(K.threads, 1);
    for (const transA of [false, true]) for (const transB of [false, true]) check(K, spec(2, 33, 65, 17, 1, 2, transA, transB), 9, 'unshared');
  } finally {
    K.dispose();
  }
});

test('dispose: the kernels refuse further work', () => {
  const K = createWasmKernels({ threads: 2 });
  K.dispose();
  assert.throws(() => K.matmul(new Float32Array(1), new Float32Array(1), spec(1, 1, 1, 1, 1, 1, false, false)));
});

// ---------- im2col / col2im ----------

const windows: WindowSpec[] = [];
function win(batch: number, channels: number, height: number, width: number, kh: number, kw: number, stride: [number, number], pad: [number, number], dil: [number, number], padValue = 0): WindowSpec {
  const outH = Math.floor((height + 2 * pad[0] - dil[0] * (kh - 1) - 1) / stride[0]) + 1;
  const outW = Math.floor((width + 2 * pad[1] - dil[1] * (kw - 1) - 1) / stride[1]) + 1;
  return { batch, channels, height, width, kh, kw, strideH: stride[0], strideW: stride[1], padH: pad[0], padW: pad[1], dilationH: dil[0], dilationW: dil[1], outH, outW, padValue };
}
windows.push(
  win(2, 3, 7, 9, 3, 3, [1, 1], [1, 1], [1, 1]),
  win(1, 2, 8, 5, 3, 2, [2, 3], [1, 2], [1, 1]),
  win(1, 1, 9, 9, 3, 3, [1, 2], [2, 2], [2, 2]),
  win(2, 2, 6, 6, 2, 2, [2, 2], [0, 0], [1, 1], -Infinity),
  win(1, 2, 5, 4, 5, 4, [1, 1], [4, 3], [1, 1], -Infinity),
  win(1, 1, 1, 1, 1, 1, [1, 1], [0, 0], [1, 1]),
  win(1, 3, 4, 3, 3, 3, [3, 3], [3, 3], [1, 1]),
);

test('im2col matches the per-element reference (padding, stride, dilation, -Infinity pad)', () => {
  for (const s of windows) {
    const x = rand(s.batch * s.channels * s.height * s.width, s.height * 13 + s.kw);
    assert.equal(im2colFast(x, s), refIm2col(x, s), JSON.stringify(s));
  }
});

test('col2im is the adjoint of im2col: <im2col(x), y> = <x, col2im(y)>', () => {
  for (const s of windows) {
    if (s.padValue !== 0) continue;
    const x = rand(s.batch * s.channels * s.height * s.width, 5);
    const y = rand(s.batch * s.channels * s.kh * s.kw * s.outH * s.outW, 6);
    const cx = im2colFast(x, s), xy = col2imFast(y, s);
    assert.is(xy.length, x.length);
    let l = 0, r = 0;
    for (let i = 0; i < y.length; i++) l += cx[i]! * y[i]!;
    for (let i = 0; i < x.length; i++) r += x[i]! * xy[i]!;
    assert.ok(Math.abs(l - r) <= 1e-4 * (1 + Math.abs(l)), `${l} vs ${r} for ${JSON.stringify(s)}`);
  }
});

// ---------- direct convolution ----------

/**
 * The direct convolution kernels (conv.ts) against the reference loops of cpu-reference.ts in
 * float64, on random geometries: every stride, padding (including past the filter's reach),
 * dilation and groups, few and many channels, images tall enough to be cut into several bands.
 */
const convReference = new ReferenceCpuBackend();
const convGeometry = fc.record({
  batch: fc.integer({ min: 1, max: 2 }), groups: fc.constantFrom(1, 2), cgIn: fc.integer({ min: 1, max: 5 }), cgOut: fc.integer({ min: 1, max: 9 }),
  k: fc.integer({ min: 1, max: 3 }), stride: fc.integer({ min: 1, max: 3 }), pad: fc.integer({ min: 0, max: 3 }), dilation: fc.integer({ min: 1, max: 2 }),
  height: fc.integer({ min: 1, max: 14 }), width: fc.integer({ min: 1, max: 21 }), seed: fc.integer({ min: 1, max: 1000 }),
}).map((g) => {
  const outH = Math.floor((g.height + 2 * g.pad - g.dilation * (g.k - 1) - 1) / g.stride) + 1;
  const outW = Math.floor((g.width + 2 * g.pad - g.dilation * (g.k - 1) - 1) / g.stride) + 1;
  return { spec: { batch: g.batch, channels: g.cgIn * g.groups, height: g.height, width: g.width, kh: g.k, kw: g.k, strideH: g.stride, strideW: g.stride, padH: g.pad, padW: g.pad, dilationH: g.dilation, dilationW: g.dilation, outH, outW, padValue: 0, outChannels: g.cgOut * g.groups, groups: g.groups }, seed: g.seed };
}).filter(({ spec }) => spec.outH >= 1 && spec.outW >= 1);

function assertConvClose(got: Float32Array, want: Float64Array, terms: number, label: string): void {
  assert.is(got.length, want.length, label);
  const tol = 1e-5 * Math.sqrt(terms) + 1e-6;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)))) throw new Error(`${label}: element ${i} is ${got[i]}, reference ${want[i]}`);
  }
}

/** reference results by geometry and seed: every kernel pool is checked against the same ones */
const convWanted = new Map<string, Float64Array>();
function wanted(key: string, compute: () => Float64Array): Float64Array {
  if (!convWanted.has(key)) convWanted.set(key, compute());
  return convWanted.get(key)!;
}

function checkConv(K: FastKernels, spec: ConvSpec, seed: number, label: string): void {
  const up = (a: Float32Array) => convReference.upload(Float64Array.from(a));
  const key = JSON.stringify(spec) + seed;
  const x = rand(spec.batch * spec.channels * spec.height * spec.width, seed);
  const w = rand((spec.outChannels * spec.channels * spec.kh * spec.kw) / spec.groups, seed + 1);
  const bias = rand(spec.outChannels, seed + 2);
  const dy = rand(spec.batch * spec.outChannels * spec.outH * spec.outW, seed + 3);
  const taps = (spec.channels / spec.groups) * spec.kh * spec.kw;
  const name = `${label} ${JSON.stringify(spec)}`;
  assertConvClose(K.conv2d(x, w, bias, spec), wanted(`f${key}`, () => convReference.download(convReference.conv2d(up(x), up(w), up(bias), spec)!) as Float64Array), taps, `forward ${name}`);
  const dx = K.conv2dBackwardInput(dy, w, spec);
  if (spec.strideH === 1) assertConvClose(dx!, wanted(`i${key}`, () => convReference.download(convReference.conv2dBackwardInput(up(dy), up(w), spec)!) as Float64Array), spec.outChannels * spec.kh * spec.kw, `input gradient ${name}`);
  else assert.is(dx, null, 'strided input gradients are left to col2im');
  assertConvClose(K.conv2dBackwardFilter(dy, x, spec), wanted(`w${key}`, () => convReference.download(convReference.conv2dBackwardFilter(up(dy), up(x), spec)!) as Float64Array), spec.batch * spec.outH * spec.outW, `filter gradient ${name}`);
}

test('direct convolution: forward, input and filter gradient match the reference loops on random geometries', () => {
  // bands of a few rows (even one) put band seams inside these small images
  const smallBands = createWasmKernels({ threads: 2, parallelMinFlops: 0, convBandBytes: 2048 });
  try {
    for (const [label, K] of [...pools, ['2 threads, 2 KiB bands', smallBands] as [string, FastKernels]]) {
      fc.assert(fc.property(convGeometry, ({ spec, seed }) => checkConv(K, spec, seed, label)), { numRuns: 25, seed: 4242 });
    }
  } finally {
    smallBands.dispose();
  }
});

test('direct convolution: few and many channels, images cut into several bands', () => {
  for (const [label, K] of pools) {
    // 3 -> 16, 16 -> 16, 128 -> 8 narrow, and 24 -> 3 tall enough for two 1 MiB bands; odd widths;
    // and a whole 240x240 tile at 16 -> 16 channels, the size the network really runs
    const geometries: [number, number, number, number, number][] = [[2, 3, 16, 96, 37], [1, 16, 16, 110, 61], [1, 128, 8, 9, 13], [1, 24, 3, 120, 101], [1, 16, 16, 240, 240]];
    for (const [batch, channels, outChannels, height, width] of geometries) {
      const spec = { batch, channels, height, width, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, outH: height, outW: width, padValue: 0, outChannels, groups: 1 };
      checkConv(K, spec, height + width, label);
    }
  }
});

// ---------- row kernels ----------

/** float32 values that differ by at most `ulps` units in the last place (equal, or both NaN) */
function ulpDistance(a: number, b: number): number {
  if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) return 0;
  const bits = new Int32Array(new Float32Array([a, b]).buffer);
  const key = (i: number) => (bits[i]! < 0 ? -(bits[i]! & 0x7fffffff) : bits[i]!);
  return Math.abs(key(0) - key(1));
}

test("softmax rows: the reference loop's float32 results (at most 1 ulp apart, nearly all equal), any row length and scale", () => {
  const reference = new ReferenceCpuBackend();
  // odd and even rows, a single value, attention's 900-key rows; -Infinity and NaN among the values
  // and the real size: one 240x240 tile of the tiny model, 30x30 = 900 tokens, 4 heads (3.24M values)
  const shapes: [number, number, number][] = [[1, 1, 1], [3, 7, 0.25], [5, 2, -0.7], [17, 33, 1], [64, 900, 0.25], [4 * 900, 900, 0.25]];
  for (const [label, K] of pools) {
    for (const [rows, n, scale] of shapes) {
      const x = Float32Array.from({ length: rows * n }, (_, i) => Math.sin(i * 1.37) * 9);
      if (rows * n > 20) { x[5] = -Infinity; x[n + 1] = NaN; x[2 * n + 2] = 120; x[2 * n + 3] = -120; }
      const got = K.softmax(x, rows, n, scale);
      const want = reference.download(reference.softmax(reference.upload(x), rows, n, scale));
      let off = 0;
      for (let i = 0; i < got.length; i++) {
        const d = ulpDistance(got[i]!, want[i]!);
        assert.ok(d <= 1, `${label} [${rows}, ${n}] scale ${scale}: element ${i} is ${got[i]}, reference ${want[i]}`);
        off += d;
      }
      assert.ok(off <= got.length * 1e-4, `${label} [${rows}, ${n}]: ${off} elements 1 ulp off`);
    }
  }
});

test("GELU: the TypeScript float32 loop's values exactly (lengths not a multiple of 4, large |x|, NaN, infinities, signed zeros)", () => {
  const typescript = new CpuBackend({ fastKernels: null });
  for (const [label, K] of pools) {
    // ... and the real size: the FFN hidden layer of a batch of 4 tiles of the tiny model (4 x 900 tokens x 192)
    for (const n of [1, 3, 4, 7, 1001, 4 * 900 * 192]) {
      const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731) * (i % 7 === 0 ? 40 : 4));
      if (n > 10) { x[5] = NaN; x[6] = Infinity; x[7] = -Infinity; x[8] = 0; x[9] = -0; }
      const got = K.gelu(x);
      const want = typescript.download(typescript.gelu(typescript.upload(x), 'none'));
      for (let i = 0; i < n; i++) assert.ok(ulpDistance(got[i]!, want[i]!) === 0, `${label} n ${n}: gelu(${x[i]}) = ${got[i]}, TypeScript ${want[i]}`);
    }
  }
});

test("GELU backward: the TypeScript float32 loop's values (g GELU'(x); lengths not a multiple of 4, large |x|, NaN, infinities, signed zeros)", () => {
  const typescript = new CpuBackend({ fastKernels: null });
  for (const [label, K] of pools) {
    // ... and the real size: the gradient of the FFN hidden layer of a batch of 4 tiles of the tiny model
    for (const n of [1, 3, 4, 7, 1001, 4 * 900 * 192]) {
      const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731) * (i % 7 === 0 ? 40 : 4));
      const g = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.377) * (i % 11 === 0 ? 1e30 : 2));
      if (n > 10) { x[5] = NaN; x[6] = Infinity; x[7] = -Infinity; x[8] = 0; x[9] = -0; g[10] = NaN; }
      const got = K.geluBackward(x, g);
      const want = typescript.download(typescript.geluBackward(typescript.upload(x), typescript.upload(g), 'none'));
      for (let i = 0; i < n; i++) assert.ok(ulpDistance(got[i]!, want[i]!) === 0, `${label} n ${n}: ${g[i]} gelu'(${x[i]}) = ${got[i]}, TypeScript ${want[i]}`);
    }
  }
});

test("softmax backward and LayerNorm forward and backward: the reference loops' float32 results (1 ulp at most, nearly all equal; dw and db within float32 sums of the float64 ones), odd and real sizes", () => {
  const float32Loops = new CpuBackend({ fastKernels: null }), float64 = new ReferenceCpuBackend();
  const close = (label: string, got: Float32Array, want: ArrayLike<number>): void => {
    let off = 0;
    for (let i = 0; i < want.length; i++) {
      const d = ulpDistance(got[i]!, want[i]!);
      assert.ok(d <= 1, `${label}: element ${i} is ${got[i]}, reference ${want[i]}`);
      off += d;
    }
    assert.ok(off <= Math.max(1, want.length * 1e-3), `${label}: ${off} of ${want.length} elements 1 ulp off`);
  };
  // odd row lengths (the kernels go two values at a time), a single value, a ViT's [2048, 384], one tile's 3600 tokens of 49
  for (const [rows, n] of [[1, 1], [3, 5], [7, 48], [2048, 384], [3600, 49]] as const) {
    const x = Float32Array.from({ length: rows * n }, (_, i) => Math.sin(i * 1.3) * 3 + (i % 7));
    const g = Float32Array.from({ length: rows * n }, (_, i) => Math.cos(i * 0.7));
    const w = Float32Array.from({ length: n }, (_, i) => 1 + 0.1 * Math.sin(i)), b = Float32Array.from({ length: n }, (_, i) => 0.1 * i);
    for (const [label, K] of pools) {
      const where = `${label} [${rows}, ${n}]`;
      const y = float32Loops.softmax(float32Loops.upload(x), rows, n, 0.25);
      close(`${where} softmax backward`, K.softmaxBackward(float32Loops.download(y) as Float32Array, g, rows, n, 0.25), float32Loops.download(float32Loops.softmaxBackward(y, float32Loops.upload(g), rows, n, 0.25)));
      for (const [wv, bv] of [[w, b], [null, null]] as const) {
        const up = (v: Float32Array | null) => v && float32Loops.upload(v);
        const want = float32Loops.layerNorm(float32Loops.upload(x), up(wv), up(bv), rows, n, 1e-5);
        const got = K.layerNorm(x, wv, bv, rows, n, 1e-5);
        close(`${where} layerNorm`, got.out, float32Loops.download(want.out));
        close(`${where} layerNorm stats`, got.stats, float32Loops.download(want.stats));
        const back = K.layerNormBackward(g, x, wv, got.stats, rows, n);
        close(`${where} layerNorm dx`, back.dx, float32Loops.download(float32Loops.layerNormBackward(float32Loops.upload(g), float32Loops.upload(x), up(wv), want.stats, rows, n).dx));
        // dw and db are sums over the rows: against the float64 loop, within what float32 sums of 64 rows can lose
        const exact = float64.layerNormBackward(float64.upload(Float64Array.from(g)), float64.upload(Float64Array.from(x)), wv && float64.upload(Float64Array.from(wv)), float64.upload(Float64Array.from(got.stats)), rows, n);
        const [dw, db] = [float64.download(exact.dweight), float64.download(exact.dbias)];
        for (let j = 0; j < n; j++) {
          assert.ok(Math.abs(back.dweight[j]! - dw[j]!) <= 1e-5 * (Math.abs(dw[j]!) + rows), `${where} dweight[${j}] ${back.dweight[j]}, float64 ${dw[j]}`);
          assert.ok(Math.abs(back.dbias[j]! - db[j]!) <= 1e-5 * (Math.abs(db[j]!) + rows), `${where} dbias[${j}] ${back.dbias[j]}, float64 ${db[j]}`);
        }
      }
    }
  }
});

test('elementwise kernels: the reference loops bit for bit (add, sub, mul, div with broadcasting; relu, step), random shapes and real sizes', () => {
  const reference = new ReferenceCpuBackend();
  const special = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -3e38];
  const values = (n: number, seed: number): Float32Array => {
    const v = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.917 + seed) * (i % 5 === 0 ? 1e3 : 3));
    for (let i = 0; i < special.length && i * 13 < n; i++) v[i * 13] = special[i]!;
    return v;
  };
  const check = (label: string, backend: CpuBackend, op: 'add' | 'sub' | 'mul' | 'div', aShape: number[], bShape: number[]): void => {
    const outShape = aShape.map((d, i) => Math.max(d, bShape[i]!));
    const a = values(aShape.reduce((p, d) => p * d, 1), 1), b = values(bShape.reduce((p, d) => p * d, 1), 2);
    const got = backend.download(backend.binary(op, backend.upload(a), aShape, backend.upload(b), bShape, outShape));
    const want = reference.download(reference.binary(op, reference.upload(a), aShape, reference.upload(b), bShape, outShape));
    for (let i = 0; i < want.length; i++) assert.ok(ulpDistance(got[i]!, Math.fround(want[i]!)) === 0, `${label} ${op} [${aShape}] [${bShape}]: element ${i} is ${got[i]}, reference ${want[i]}`);
  };
  for (const [label, K] of pools) {
    const backend = new CpuBackend({ fastKernels: K });
    // the model's real shapes: a residual add of one tile's feature map, a bias per channel of the
    // FFN's 1024 features (and of a router's 4 logits, and over two trailing axes), a bias per
    // channel of an image (NCHW), a value per row, a scalar
    check(label, backend, 'add', [1, 16, 240, 240], [1, 16, 240, 240]);
    check(label, backend, 'add', [1, 900, 1024], [1, 1, 1024]);
    check(label, backend, 'add', [1, 900, 4], [1, 1, 4]);
    check(label, backend, 'mul', [5, 7, 900, 3], [1, 1, 900, 3]);
    check(label, backend, 'mul', [2, 16, 120, 120], [1, 16, 1, 1]);
    check(label, backend, 'div', [1817, 48], [1817, 1]);
    check(label, backend, 'sub', [1, 3, 240, 240], [1, 1, 1, 1]);
    check(label, backend, 'sub', [1, 1, 1, 1], [1, 3, 240, 240]);
    for (const op of ['relu', 'step'] as const) {
      for (const n of [5, 4 * 900 * 192 + 3]) {
        const x = values(n, 3);
        const got = backend.download(backend.unary(op, backend.upload(x)));
        const want = reference.download(reference.unary(op, reference.upload(x)));
        for (let i = 0; i < n; i++) assert.ok(Object.is(got[i], want[i]), `${label} ${op}(${x[i]}) = ${got[i]}, reference ${want[i]}`);
      }
    }
    // random shapes of rank 1-4, each axis of one operand broadcast at random (size 1)
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      fc.constantFrom('add', 'sub', 'mul', 'div'),
      (shape, aOne, bOne, op) => {
        check(label, backend, op as 'add', shape.map((d, i) => (aOne[i] ? 1 : d)), shape.map((d, i) => (bOne[i] && !aOne[i] ? 1 : d)));
      },
    ), { numRuns: 60, seed: 7 });
  }
});

test('out of WebAssembly memory is a one-line error naming the op, the shapes and the bytes, never a trap', () => {
  const K = pools[0]![1];
  // a 3x3 filter dilated by 1000 reaches over 2001 rows: one band of 64 channels of such rows,
  // 11000 wide, is 5.6 GB, more than wasm32's 4 GiB (the input itself is one 9000-pixel row)
  const spec = { batch: 1, channels: 64, height: 1, width: 9000, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: 1000, padW: 1000, dilationH: 1000, dilationW: 1000, outH: 1, outW: 9000, padValue: 0, outChannels: 4, groups: 1 };
  const x = new Float32Array(64 * 9000), w = new Float32Array(4 * 64 * 9);
  try {
    K.conv2d(x, w, null, spec);
    assert.unreachable('expected an out-of-memory error');
  } catch (e) {
    const message = (e as Error).message;
    assert.not.match(message, /\n/);
    assert.match(message, /^out of WebAssembly memory: conv2d x \[1, 64, 1, 9000\], weight \[4, 64, 3, 3\]/);
    assert.match(message, /needs \d+ MiB/);
    assert.match(message, /smaller batch or crop/);
  }
  // the kernels still work afterwards
  checkConv(K, { ...spec, channels: 2, width: 9, outW: 9, height: 5, outH: 5, padH: 1, padW: 1, dilationH: 1, dilationW: 1 }, 3, 'after the error');
  // an operand shorter than its spec is a clear error too, not a read past its end
  assert.throws(() => K.conv2d(new Float32Array(3), new Float32Array(4 * 2 * 9), null, { ...spec, channels: 2, width: 9, outW: 9, height: 5, outH: 5, padH: 1, padW: 1, dilationH: 1, dilationW: 1 }), /conv2d: input has 3 values, x \[1, 2, 5, 9\]/);
});

// ---------- selection and process behaviour ----------

test('MOFME_KERNELS=ts and setFastKernelsEnabled(false) turn the fast path off', () => {
  const before = process.env.MOFME_KERNELS;
  try {
    process.env.MOFME_KERNELS = 'ts';
    assert.is(fastKernelsEnabled(), false);
    assert.is(sharedFastKernels(), undefined);
    setFastKernelsEnabled(true);
    assert.is(fastKernelsEnabled(), true, 'the API flag wins over the environment');
    setFastKernelsEnabled(undefined);
    delete process.env.MOFME_KERNELS;
    assert.is(fastKernelsEnabled(), true);
    const shared = sharedFastKernels();
    assert.ok(shared && shared.threads >= 1);
    assert.is(sharedFastKernels(), shared, 'one process-wide instance');
    setFastKernelsEnabled(false);
    assert.is(fastKernelsEnabled(), false);
    assert.is(sharedFastKernels(), undefined);
  } finally {
    setFastKernelsEnabled(undefined);
    if (before === undefined) delete process.env.MOFME_KERNELS;
    else process.env.MOFME_KERNELS = before;
  }
});

const here = fileURLToPath(new URL('.', import.meta.url));
const pkg = join(here, '..');

/** A script that multiplies on 2 threads, checks one entry, and never calls dispose(). */
const childScript = (from: string) => `
import { createWasmKernels } from ${JSON.stringify(from)};
const K = createWasmKernels({ threads: 2, parallelMinFlops: 0 });
const n = 40, a = new Float32Array(n * n).fill(1), b = new Float32Array(n * n).fill(2);
const c = K.matmul(a, b, { batch: 1, m: n, k: n, n, batchA: 1, batchB: 1, transA: false, transB: true });
if (c[n * n - 1] !== 80 || K.threads !== 2) throw new Error('wrong: ' + c[0] + ' threads ' + K.threads);
console.log('ok', K.name);
`;

test('from the TypeScript sources: workers start and never keep the process alive', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', childScript(join(pkg, 'src/backend/wasm/index.ts'))], {
    cwd: pkg, encoding: 'utf8', timeout: 30_000,
  });
  assert.is(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  assert.match(r.stdout, 'ok wasm-simd x2 threads');
});

test('from a tsup bundle (plain node, no tsx): workers start and the process exits', () => {
  const out = mkdtempSync(join(tmpdir(), 'mofme-wasm-'));
  try {
    const build = spawnSync(join(pkg, 'node_modules/.bin/tsup'),
      ['src/backend/wasm/index.ts', '--format', 'esm', '--target', 'node20', '--out-dir', out, '--no-config', '--silent'],
      { cwd: pkg, encoding: 'utf8', timeout: 60_000 });
    assert.is(build.status, 0, build.stderr);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', childScript(join(out, 'index.js'))], {
      cwd: out, encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' },
    });
    assert.is(r.status, 0, `exit ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
    assert.match(r.stdout, 'ok wasm-simd x2 threads');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
