/**
 * GPU backend benchmark: matmul and conv2d (forward + backward, via im2col + matmul) on the
 * gpu.js backend, with the three costs a GPU user pays reported apart:
 * - compile: the first call of each new kernel (gpu.js transpiles to GLSL, the driver compiles);
 * - transfer: upload of the inputs and download of the result;
 * - compute: the kernels alone, inputs and outputs staying on the device (best of `reps`; a
 *   1-element download at the end forces the GPU to finish, since GL calls are asynchronous).
 * GFLOP/s counts 2*m*k*n per matmul.
 *
 * Run: xvfb-run -a node --conditions=source --import tsx bench/gpu.bench.ts [mode]
 * where mode is webgpu, headlessgl or cpu (gpu.js's JavaScript mode, for comparison); without
 * one, every GPU path that opens here (webgpu, then headlessgl, which needs the X display).
 * On llvmpipe (software GL) the numbers measure the CPU, not a GPU: see GPU.md.
 */
import { createGpuBackend, type GpuBackend } from '../src/gpu/index';
import type { MatmulSpec, Storage, WindowSpec } from '../src/backend/backend';

const reps = Number(process.env.REPS ?? 3);
// every GPU path that opens here, or the one named on the command line
const asked = process.argv[2] as 'webgpu' | 'headlessgl' | 'cpu' | undefined;
const gpus: GpuBackend[] = [];
for (const mode of asked ? [asked] : (['webgpu', 'headlessgl'] as const)) {
  try {
    gpus.push(createGpuBackend({ mode }));
  } catch (e) {
    // a benchmark reports what it could not measure, and why, rather than failing `pnpm bench`
    console.log(`gpu.js ${mode} bench skipped: ${(e as Error).message.split('\n').slice(1).join(' ').trim()}`);
  }
}
let gpu: GpuBackend;
for (gpu of gpus) {
  console.log(`# ${gpu.describe()}`);
  console.log(`# ${new Date().toISOString().slice(0, 10)}, node ${process.version}, best of ${reps}`);

  const random = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const ms = (t: number): string => t.toFixed(1).padStart(8);

  /** Force completion: reading one value waits for every queued GL command. */
  const sync = (s: Storage): void => gpu.finish(s);

  /** Time `step` (which returns storages to free): first call = compile + run, then best of reps. */
  function timeIt(step: () => Storage[]): { first: number; best: number } {
    let t0 = performance.now();
    let outs = step();
    sync(outs[0]!);
    const first = performance.now() - t0;
    outs.forEach((s) => gpu.dispose(s));
    let best = Infinity;
    for (let r = 0; r < reps; r++) {
      t0 = performance.now();
      outs = step();
      sync(outs[0]!);
      best = Math.min(best, performance.now() - t0);
      outs.forEach((s) => gpu.dispose(s));
    }
    return { first, best };
  }

  console.log('\n| op | upload ms | compute ms | GFLOP/s | download ms | compile ms (first call - steady) |');
  console.log('|---|---|---|---|---|---|');
  for (const n of [256, 512, 1024]) {
    const a = random(n * n), b = random(n * n);
    let t0 = performance.now();
    const da = gpu.upload(a), db = gpu.upload(b);
    sync(db);
    const upload = performance.now() - t0;
    const spec: MatmulSpec = { batch: 1, m: n, k: n, n, batchA: 1, batchB: 1, transA: false, transB: false };
    const { first, best } = timeIt(() => [gpu.matmul(da, db, spec)]);
    const out = gpu.matmul(da, db, spec);
    sync(out);
    t0 = performance.now();
    gpu.download(out);
    const download = performance.now() - t0;
    [da, db, out].forEach((s) => gpu.dispose(s));
    console.log(`| matmul ${n} | ${ms(upload)} | ${ms(best)} | ${((2 * n ** 3) / best / 1e6).toFixed(2)} | ${ms(download)} | ${ms(first - best)} |`);
  }

  /**
   * conv2d 3x3, C -> O channels, HxW, batch 1, padding 1, written as the engine does it:
   * forward  cols = im2col(x) [C*9, HW];  y = W [O, C*9] @ cols
   * backward dW = dy [O, HW] @ cols^T;    dcols = W^T @ dy;  dx = col2im(dcols)
   */
  for (const [C, O, H] of [[16, 16, 32], [64, 64, 64]] as const) {
    const W = H, K = C * 9, L = H * W;
    const spec: WindowSpec = {
      batch: 1, channels: C, height: H, width: W, kh: 3, kw: 3, strideH: 1, strideW: 1, padH: 1, padW: 1,
      dilationH: 1, dilationW: 1, outH: H, outW: W, padValue: 0,
    };
    const t0 = performance.now();
    const x = gpu.upload(random(C * H * W)), w = gpu.upload(random(O * K)), dy = gpu.upload(random(O * L));
    sync(dy);
    const upload = performance.now() - t0;
    const mm = (m: number, k: number, n: number, transA: boolean, transB: boolean): MatmulSpec => ({ batch: 1, m, k, n, batchA: 1, batchB: 1, transA, transB });
    const fwd = timeIt(() => {
      const cols = gpu.im2col(x, spec);
      const y = gpu.matmul(w, cols, mm(O, K, L, false, false));
      gpu.dispose(cols);
      return [y];
    });
    const bwd = timeIt(() => {
      const cols = gpu.im2col(x, spec);
      const dw = gpu.matmul(dy, cols, mm(O, L, K, false, true));
      const dcols = gpu.matmul(w, dy, mm(K, O, L, true, false));
      const dx = gpu.col2im(dcols, spec);
      gpu.dispose(cols);
      gpu.dispose(dcols);
      return [dx, dw];
    });
    [x, w, dy].forEach((s) => gpu.dispose(s));
    const flop = 2 * O * K * L;
    console.log(`| conv2d ${C}->${O} ${H}x${W} forward | ${ms(upload)} | ${ms(fwd.best)} | ${(flop / fwd.best / 1e6).toFixed(2)} | - | ${ms(fwd.first - fwd.best)} |`);
    console.log(`| conv2d ${C}->${O} ${H}x${W} backward (dx, dW) | - | ${ms(bwd.best)} | ${((2 * flop) / bwd.best / 1e6).toFixed(2)} | - | ${ms(bwd.first - bwd.best)} |`);
  }
  console.log(`\n# kernels compiled: ${gpu.stats.compiled} in ${gpu.stats.compileMs.toFixed(0)} ms (first calls); live buffers at exit: ${gpu.memory().buffers}`);
}
