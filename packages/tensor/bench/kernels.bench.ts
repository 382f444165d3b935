/**
 * Kernel benchmark: float32 matmul, and conv2d as im2col + matmul against the direct convolution
 * kernels, in plain TypeScript and in the WebAssembly SIMD kernels on 1 and 2 threads.
 *
 *   cd packages/tensor && npx tsx bench/kernels.bench.ts            # everything
 *   npx tsx bench/kernels.bench.ts matmul                            # matmul only
 *
 * GFLOP/s = 2*m*n*k / best time. Each case is warmed up (V8 compiles wasm in two tiers: a fast
 * baseline first, the optimized code after a function has run a while) and then timed as the
 * best of several runs (at most BENCH_BUDGET_MS, default 4000, per case), because the measuring
 * VMs are noisy: other processes share the 2 cores, so check `uptime` first; a busy second core
 * makes "2 threads" look like 1, and a busy sibling halves even the 1-thread figures.
 *
 * The "naive TS" row is the textbook i-k-j loop over Float32Arrays (what a first engine does);
 * the engine's CPU reference backend is faster than that (packed 4x4 register kernel, ~5 GFLOP/s
 * per shared/docs/engines.md, outside the repo), the WASM kernels faster still.
 */
import type { ConvSpec, MatmulSpec, WindowSpec } from '../src/backend/backend';
import { createWasmKernels, type FastKernels } from '../src/backend/wasm/index';
import { col2imFast, im2colFast } from '../src/backend/cpu-window';

const only = process.argv[2];

function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** best time in ms of `reps` runs after `warm` untimed ones */
function best(fn: () => void, reps: number, warm = 1, budgetMs = Number(process.env.BENCH_BUDGET_MS ?? 4000)): number {
  for (let i = 0; i < warm; i++) fn();
  let t = Infinity;
  const start = performance.now();
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    t = Math.min(t, performance.now() - t0);
    if (performance.now() - start > budgetMs) break;
  }
  return t;
}

function naiveMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      const bo = p * n, co = i * n;
      for (let j = 0; j < n; j++) c[co + j]! += av * b[bo + j]!;
    }
  }
  return c;
}

const fmt = (x: number, d = 1) => x.toFixed(d).padStart(7);

const wasm1 = createWasmKernels({ threads: 1 });
const wasm2 = createWasmKernels({ threads: 2 });
const kernels: FastKernels[] = [wasm1, wasm2];

if (!only || only === 'matmul') {
  console.log('\n## matmul float32 C = A B (N x N), GFLOP/s (best time in ms)\n');
  console.log('| N | naive TS | ' + kernels.map((k) => k.name).join(' | ') + ' |');
  console.log('|---|---|' + kernels.map(() => '---|').join(''));
  for (const N of [256, 512, 1024]) {
    const a = rand(N * N), b = rand(N * N);
    const flop = 2 * N ** 3;
    const spec: MatmulSpec = { batch: 1, m: N, k: N, n: N, batchA: 1, batchB: 1, transA: false, transB: false };
    const tNaive = best(() => naiveMatmul(a, b, N, N, N), N >= 1024 ? 1 : 3, N >= 1024 ? 0 : 1);
    const cells = [`${fmt(flop / tNaive / 1e6)} (${tNaive.toFixed(1)})`];
    for (const K of kernels) {
      const t = best(() => K.matmul(a, b, spec), N >= 1024 ? 40 : 100, 3);
      cells.push(`${fmt(flop / t / 1e6)} (${t.toFixed(2)})`);
    }
    console.log(`| ${N} | ${cells.join(' | ')} |`);
  }

  console.log('\n## matmul 1024, transposed operands and batches (wasm, GFLOP/s)\n');
  console.log('| case | ' + kernels.map((k) => k.name).join(' | ') + ' |');
  console.log('|---|' + kernels.map(() => '---|').join(''));
  const cases: [string, MatmulSpec][] = [
    ['1024 A^T B', { batch: 1, m: 1024, k: 1024, n: 1024, batchA: 1, batchB: 1, transA: true, transB: false }],
    ['1024 A B^T', { batch: 1, m: 1024, k: 1024, n: 1024, batchA: 1, batchB: 1, transA: false, transB: true }],
    ['attention 16 x (256x64 @ 64x256)', { batch: 16, m: 256, k: 64, n: 256, batchA: 16, batchB: 16, transA: false, transB: true }],
    ['linear 4096x256 @ 256x256 (weight broadcast)', { batch: 1, m: 4096, k: 256, n: 256, batchA: 1, batchB: 1, transA: false, transB: false }],
  ];
  for (const [name, s] of cases) {
    const a = rand(s.batchA * s.m * s.k), b = rand(s.batchB * s.k * s.n);
    const flop = 2 * s.batch * s.m * s.n * s.k;
    const cells = kernels.map((K) => {
      const t = best(() => K.matmul(a, b, s), 10, 3);
      return `${fmt(flop / t / 1e6)} (${t.toFixed(2)})`;
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
}

if (!only || only === 'conv') {
  /** naive per-element im2col (what a first reference implementation looks like) */
  const naiveIm2col = (x: Float32Array, s: WindowSpec): Float32Array => {
    const { channels: C, height: H, width: W, kh, kw, outH, outW } = s;
    const cols = new Float32Array(C * kh * kw * outH * outW);
    for (let r = 0; r < C * kh * kw; r++) {
      const c = Math.floor(r / (kh * kw)), i = Math.floor(r / kw) % kh, j = r % kw;
      for (let q = 0; q < outH * outW; q++) {
        const oh = Math.floor(q / outW), ow = q % outW;
        const ih = oh * s.strideH - s.padH + i * s.dilationH, iw = ow * s.strideW - s.padW + j * s.dilationW;
        cols[r * outH * outW + q] = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[(c * H + ih) * W + iw]! : s.padValue;
      }
    }
    return cols;
  };

  console.log('\n## conv2d 3x3 pad 1 (batch 1): im2col + matmul vs the direct kernels, ms (GFLOP/s)\n');
  console.log('fwd: forward; fwd+bwd: forward, input gradient and filter gradient (3x the forward flops)\n');
  console.log('| shape | naive im2col | fast im2col | fast col2im | ' + kernels.map((k) => `im2col fwd ${k.name} | direct fwd ${k.name}`).join(' | ') + ' | ' + kernels.map((k) => `im2col fwd+bwd ${k.name} | direct fwd+bwd ${k.name}`).join(' | ') + ' |');
  console.log('|---|---|---|---|' + kernels.map(() => '---|---|---|---|').join(''));
  for (const [C, H, O] of [[64, 64, 64], [32, 240, 32], [3, 240, 16], [16, 240, 16], [128, 120, 128]] as const) {
    const s: ConvSpec = { batch: 1, channels: C, height: H, width: H, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 1, outH: H, outW: H, padValue: 0, outChannels: O, groups: 1 };
    const x = rand(C * H * H), w = rand(O * C * 9), dy = rand(O * H * H);
    const L = H * H, CK = C * 9;
    const fwdFlop = 2 * O * CK * L;
    const tNaive = best(() => naiveIm2col(x, s), 5);
    const tIm = best(() => im2colFast(x, s), 10);
    const cols = im2colFast(x, s);
    const tCol = best(() => col2imFast(cols, s), 10);
    const im2colFwd = (K: FastKernels) => K.matmul(w, im2colFast(x, s), { batch: 1, m: O, k: CK, n: L, batchA: 1, batchB: 1, transA: false, transB: false });
    const im2colFwdBwd = (K: FastKernels) => {
      const c = im2colFast(x, s);
      K.matmul(w, c, { batch: 1, m: O, k: CK, n: L, batchA: 1, batchB: 1, transA: false, transB: false });
      // dW = dY cols^T ; dCols = W^T dY ; dX = col2im(dCols)
      K.matmul(dy, c, { batch: 1, m: O, k: L, n: CK, batchA: 1, batchB: 1, transA: false, transB: true });
      col2imFast(K.matmul(w, dy, { batch: 1, m: CK, k: O, n: L, batchA: 1, batchB: 1, transA: true, transB: false }), s);
    };
    const directFwd = (K: FastKernels) => K.conv2d(x, w, null, s);
    const directFwdBwd = (K: FastKernels) => { K.conv2d(x, w, null, s); K.conv2dBackwardInput(dy, w, s); K.conv2dBackwardFilter(dy, x, s); };
    const cell = (t: number, flop: number) => `${t.toFixed(2)} (${(flop / t / 1e6).toFixed(1)})`;
    const fw = kernels.flatMap((K) => [best(() => im2colFwd(K), 10, 2), best(() => directFwd(K), 10, 2)]);
    const fb = kernels.flatMap((K) => [best(() => im2colFwdBwd(K), 10, 2), best(() => directFwdBwd(K), 10, 2)]);
    console.log(`| (1,${C},${H},${H})x${O} | ${tNaive.toFixed(2)} | ${tIm.toFixed(2)} | ${tCol.toFixed(2)} | ` +
      fw.map((t) => cell(t, fwdFlop)).join(' | ') + ' | ' + fb.map((t) => cell(t, 3 * fwdFlop)).join(' | ') + ' |');
  }
}

for (const K of kernels) K.dispose();
