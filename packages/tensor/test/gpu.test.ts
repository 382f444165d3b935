/**
 * The gpu.js backend against the CPU reference.
 *
 * Three layers, each registered only where it can run:
 * 1. Always: detection gives a reason string, mode errors name the fix, and the kernels run in
 *    gpu.js's `cpu` mode (the same generated kernel sources, executed as JavaScript) through
 *    the shared conformance suite. This catches kernel-logic bugs on any machine.
 * 2. With headless GL (the native `gl` module plus an X display, e.g. `xvfb-run -a`): the shared
 *    conformance suite (primitives, then every op forward and backward) on the real GL path,
 *    the gpu.js pitfalls (long loops, immutable outputs, a kernel fed its own output), the size
 *    limit, a small MLP training on the GPU with the CPU's losses, and the memory counter back
 *    at its start after a tidy training step.
 * 3. MOFME_REQUIRE_GPU=1 (set in CI): a missing headless GL fails the run instead of skipping,
 *    and the backend must be gpu.js's HeadlessGLKernel, so "it passed" means "it ran on GL".
 * Without headless GL, one line says why layer 2 was skipped.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
// the package entry first, so its modules initialise in their intended order
import { tensor, randn, mseLoss, conv2d, tidy, noGrad, Generator, CpuBackend, type Tensor, type Backend } from '../src/index';
import { backendConformanceCases } from '../src/testing/index';
import { createGpuBackend, detectHeadlessGL, WebGpuBackend, type GpuBackend } from '../src/gpu/index';

const requireGpu = process.env.MOFME_REQUIRE_GPU === '1';
const detection = detectHeadlessGL();

// ---- 1. everywhere ----------------------------------------------------------------------------

test('headless-GL detection gives a reason string', () => {
  assert.type(detection.reason, 'string');
  assert.ok(detection.reason.length > 10, detection.reason);
  if (requireGpu) assert.ok(detection.ok, `MOFME_REQUIRE_GPU=1 but headless GL is unavailable: ${detection.reason}`);
});

test('asking for a GPU path that is not there throws with the reason, never falls back', () => {
  assert.throws(() => createGpuBackend({ mode: 'webgl2' }), /needs a browser/);
  if (!detection.ok) {
    assert.throws(() => createGpuBackend({ mode: 'headlessgl' }), (e: Error) => e.message.includes(detection.reason.slice(0, 30)));
  }
  // auto: WebGPU first, then headless GL; whatever it returns is a real GPU path, else it throws
  let auto: GpuBackend | null = null;
  try {
    auto = createGpuBackend({ mode: 'auto' });
  } catch (e) {
    assert.match((e as Error).message, /does not fall back/);
    assert.match((e as Error).message, /webgpu: .*\n.*headlessgl: /s);
  }
  if (auto) {
    assert.ok(auto.isAccelerated);
    assert.ok(['webgpu', 'headlessgl'].includes(auto.info().mode), auto.describe());
    if (auto instanceof WebGpuBackend) void auto.destroy();
  }
});

const cpuMode = createGpuBackend({ mode: 'cpu' });
test('gpu.js cpu mode says it is not accelerated', () => {
  assert.is(cpuMode.isAccelerated, false);
  assert.match(cpuMode.describe(), /cpu/);
});
// gpu.js cpu mode runs each kernel thread as a JavaScript call: reductions up to 1e6 keep it quick
for (const c of backendConformanceCases(cpuMode, { samples: 2, largestReduction: 1e6 })) test(`[gpu.js cpu mode] ${c.name}`, c.run);

// ---- 2. on a real gpu.js GPU path: headless GL, and WebGPU ---------------------------------------

/**
 * Everything a GPU backend must pass, whichever path launches its kernels: the shared conformance
 * suite, the gpu.js pitfalls, the size limit, and small models training with the CPU's losses
 * while a tidy step leaks nothing.
 */
function deviceSuite(gpu: GpuBackend, label: 'headlessgl' | 'webgpu', kernelClass: string): void {
  const info = gpu.info();
  const cpu = new CpuBackend({});
  console.log(`GPU suite on ${gpu.describe()}`);
  test(`[${label}] really on ${kernelClass} (no silent fallback)`, () => {
    assert.is(info.kernelClass, kernelClass);
    assert.is(info.mode, label);
    assert.ok(gpu.isAccelerated);
    assert.is(gpu.supports('float64'), false);
  });
  for (const c of backendConformanceCases(gpu)) test(c.name, c.run);

  const close = (got: Float32Array, want: ArrayLike<number>, tol: number, label: string): void => {
    let worst = 0, at = -1;
    for (let i = 0; i < want.length; i++) {
      const err = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
      if (!(err <= worst)) { worst = err; at = i; }
    }
    assert.is(got.length, want.length, `${label}: length`);
    assert.ok(worst <= tol, `${label}: worst relative error ${worst} at ${at} (got ${got[at]}, want ${want[at]})`);
  };
  const rand = (n: number, seed = 1): Float32Array => {
    const g = new Generator(seed);
    return Float32Array.from({ length: n }, () => g.uniform(-1, 1));
  };

  test(`[${label}] loops longer than gpu.js loopMaxIterations (1000) are not cut short`, () => {
    const k = 3000;
    const a = rand(4 * k, 2), b = rand(k * 3, 3);
    const spec = { batch: 1, m: 4, k, n: 3, batchA: 1, batchB: 1, transA: false, transB: false };
    close(gpu.download(gpu.matmul(gpu.upload(a), gpu.upload(b), spec)), cpu.download(cpu.matmul(cpu.upload(a), cpu.upload(b), spec)), 1e-4, 'matmul k=3000');
    const v = rand(5000, 4);
    close(gpu.download(gpu.reduce('sum', gpu.upload(v), [5000], [0])), cpu.download(cpu.reduce('sum', cpu.upload(v), [5000], [0])), 1e-4, 'sum of 5000');
    close(gpu.download(gpu.reduce('max', gpu.upload(v), [5000], [0])), cpu.download(cpu.reduce('max', cpu.upload(v), [5000], [0])), 0, 'max of 5000');
  });

  test(`[${label}] two calls of the same kernel return two live tensors (immutable outputs)`, () => {
    const x = gpu.upload(Float32Array.from([1, 2, 3])), y = gpu.upload(Float32Array.from([10, 20, 30]));
    const ex = gpu.unary('neg', x), ey = gpu.unary('neg', y);
    assert.equal(Array.from(gpu.download(ex)), [-1, -2, -3]);
    assert.equal(Array.from(gpu.download(ey)), [-10, -20, -30]);
    for (const s of [x, y, ex, ey]) gpu.dispose(s);
  });

  test(`[${label}] a kernel fed its own output (relu(relu(x)), x+x chains) stays correct`, () => {
    let s = gpu.upload(Float32Array.from([-1, 2, -3, 4]));
    const first = s;
    for (let i = 0; i < 4; i++) {
      const next = gpu.unary('relu', s);
      const sum = gpu.binary('add', next, [4], next, [4], [4]);
      if (s !== first) gpu.dispose(s);
      gpu.dispose(next);
      s = sum;
    }
    assert.equal(Array.from(gpu.download(s)), [0, 32, 0, 64]);
    assert.equal(Array.from(gpu.download(first)), [-1, 2, -3, 4]);
    gpu.dispose(s); gpu.dispose(first);
  });

  test(`[${label}] one kernel source fed inputs of different sizes reads each through its own texel grid`, () => {
    // Slicing row 0 of a [2, 37] and of a [60, 37] tensor, and gathering rows of a [3, 50] and a
    // [90, 50] tensor, generate the same kernel source. gpu.js bakes each input texture's width
    // into the compiled shader, so the kernel must not be shared across input sizes (this was the
    // "scatterAdd after indexSelect" bug: the gradient's gather reused a kernel built for another size).
    for (const rows of [2, 60, 5]) {
      const x = rand(rows * 37, rows);
      const got = gpu.download(gpu.strided(gpu.upload(x), [37], [1], 0));
      close(got, x.subarray(0, 37), 0, `row 0 of [${rows}, 37]`);
    }
    const index = Float32Array.from([1, 0, 2, 1]);
    for (const rows of [3, 90]) {
      const x = rand(rows * 50, rows + 1);
      const idx = new Float32Array(4 * 50);
      for (let r = 0; r < 4; r++) idx.fill(index[r]!, r * 50, (r + 1) * 50);
      const got = gpu.download(gpu.gather(gpu.upload(x), [rows, 50], 0, gpu.upload(idx), [4, 50]));
      const want = cpu.download(cpu.gather(cpu.upload(x), [rows, 50], 0, cpu.upload(idx), [4, 50]));
      close(got, want, 0, `gather rows of [${rows}, 50]`);
    }
  });

  test(`[${label}] dispose frees, double dispose is harmless, use after dispose is an error`, () => {
    const before = gpu.memory();
    const s = gpu.upload(rand(100));
    assert.equal(gpu.memory(), { buffers: before.buffers + 1, bytes: before.bytes + 400 });
    gpu.dispose(s);
    gpu.dispose(s);
    assert.equal(gpu.memory(), before);
    assert.throws(() => gpu.download(s), /disposed/);
    assert.throws(() => gpu.unary('exp', s), /disposed/);
  });

  test(`[${label}] a tensor larger than the texture limit is refused with a clear error`, () => {
    assert.throws(() => gpu.fill(info.maxElements + 1, 0, 'float32'), /does not fit on this device|too large for the GPU kernels/);
    // kernels index in float32, exact up to 2^24: one element more is refused whatever the device allows
    assert.throws(() => gpu.fill(2 ** 24 + 1, 0, 'float32'), /too large for the GPU kernels, which index in float32/);
    assert.throws(() => gpu.upload(new Float64Array(3)), /only float32/);
  });

  // ---- a small model trains on the GPU like on the CPU ----

  /** A small regression model: its shapes, its forward pass, and its SGD learning rate. */
  interface TinyModel { seed: number; x: number[]; y: number[]; params: { shape: number[]; std: number }[]; lr: number; forward(x: Tensor, p: Tensor[]): Tensor }

  /** Plain SGD on `model` in tidy steps; returns the loss of each step and the live buffers after each. */
  function train(backend: Backend, model: TinyModel, steps: number): { losses: number[]; memory: number[] } {
    const gen = new Generator(model.seed);
    const opts = { backend, generator: gen };
    const x = randn(model.x, opts), yTrue = randn(model.y, opts);
    const params = model.params.map(({ shape, std }) => randn(shape, { ...opts, std }));
    for (const p of params) p.requiresGrad = true;
    const losses: number[] = [], memory: number[] = [];
    for (let s = 0; s < steps; s++) {
      losses.push(tidy(() => {
        const l = mseLoss(model.forward(x, params), yTrue);
        l.backward();
        noGrad(() => {
          for (const p of params) {
            p.assign(p.sub(p.grad!.mul(model.lr)));
            p.grad!.dispose();
            p.grad = null;
          }
        });
        return l.item();
      }));
      memory.push(backend.memory().buffers);
    }
    for (const t of [x, yTrue, ...params]) t.dispose();
    return { losses, memory };
  }

  const models: [string, TinyModel, number][] = [
    ['a 2-layer MLP', {
      seed: 7, x: [32, 8], y: [32, 2], lr: 0.1,
      params: [{ shape: [8, 16], std: 0.3 }, { shape: [16], std: 0.1 }, { shape: [16, 2], std: 0.3 }, { shape: [2], std: 0.1 }],
      forward: (x, [w1, b1, w2, b2]) => x.matmul(w1!).add(b1!).relu().matmul(w2!).add(b2!),
    }, 5],
    ['a conv block (3x3 conv, ReLU, strided 3x3 conv, global mean)', {
      seed: 11, x: [2, 3, 12, 12], y: [2, 4], lr: 0.2,
      params: [{ shape: [8, 3, 3, 3], std: 0.2 }, { shape: [8], std: 0.1 }, { shape: [4, 8, 3, 3], std: 0.2 }, { shape: [4], std: 0.1 }],
      forward: (x, [w1, b1, w2, b2]) => conv2d(conv2d(x, w1!, b1!, { padding: 1 }).relu(), w2!, b2!, { padding: 1, stride: 2 }).mean([2, 3]),
    }, 6],
  ];
  for (const [name, model, steps] of models) {
    test(`[${label}] ${name} trains on the GPU with the CPU losses, and a tidy step leaks nothing`, () => {
      const start = gpu.memory();
      const g = train(gpu, model, steps);
      const c = train(new CpuBackend({}), model, steps);
      for (let i = 0; i < steps; i++) assert.ok(Math.abs(g.losses[i]! - c.losses[i]!) <= 1e-4 * (1 + c.losses[i]!), `step ${i}: gpu ${g.losses[i]} vs cpu ${c.losses[i]}`);
      assert.ok(g.losses[steps - 1]! < g.losses[0]!, `loss should fall: ${g.losses}`);
      // every step ends with exactly the inputs and parameters alive
      assert.ok(g.memory.every((m) => m === g.memory[0]), `live buffers after each step: ${g.memory}`);
      assert.equal(gpu.memory(), start);
    });
  }

  test(`[${label}] tensors created with { backend: gpu } live on the GPU`, () => {
    const t = tensor([[1, 2], [3, 4]], { backend: gpu });
    assert.is(t.backend, gpu as GpuBackend);
    assert.equal(t.matmul(t).toArray(), [[7, 10], [15, 22]]);
  });
}

if (!detection.ok) {
  console.log(`GPU suite on headless GL skipped: ${detection.reason}`);
} else {
  deviceSuite(createGpuBackend({ mode: 'headlessgl' }), 'headlessgl', 'HeadlessGLKernel');
}

// WebGPU: Dawn (npm `webgpu`) on Vulkan, or on OpenGL ES over EGL (Mesa llvmpipe without a GPU).
// MOFME_REQUIRE_WEBGPU=1 (set in CI) turns "not available" into a failure.
const requireWebGpu = process.env.MOFME_REQUIRE_WEBGPU === '1';
let webgpu: GpuBackend | null = null;
let webgpuWhy = '';
try {
  webgpu = createGpuBackend({ mode: 'webgpu' });
} catch (e) {
  webgpuWhy = (e as Error).message.split('\n').join(' ');
}
test('WebGPU is available when required', () => {
  if (requireWebGpu) assert.ok(webgpu, `MOFME_REQUIRE_WEBGPU=1 but: ${webgpuWhy}`);
  if (!webgpu) assert.match(webgpuWhy, /webgpu/);
});
if (!webgpu) {
  console.log(`GPU suite on WebGPU skipped: ${webgpuWhy}`);
} else {
  test('[webgpu] a kernel that fails on the device is reported by the next read, naming it', async () => {
    // on a backend of its own, destroyed at the end: after a device error a backend stays failed
    const broken = createGpuBackend({ mode: 'webgpu' }) as WebGpuBackend;
    // a source gpu.js cannot translate: the worker records the failure and skips later work
    const bad = { source: 'function(x) {\n  return notDefinedAnywhere(x[this.thread.x]);\n}', size: 4, args: ['storage'] as const };
    const x = broken.upload(Float32Array.from([1, 2, 3, 4]));
    const y = (broken as unknown as { run(k: typeof bad, ...a: unknown[]): import('../src/backend/backend').Storage }).run(bad, x);
    assert.throws(() => broken.download(y), /kernel function\(x\) -> 4 values failed on the WebGPU device/);
    // sticky: later reads throw too, rather than return results computed after a skipped step
    assert.throws(() => broken.download(x), /failed on the WebGPU device/);
    await broken.destroy();
    assert.throws(() => broken.upload(Float32Array.from([1])), /destroyed/);
  });
  deviceSuite(webgpu, 'webgpu', 'WebGPUKernel');
}

test.run();
