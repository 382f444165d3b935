/**
 * Engine benchmark: our tensor engine against its peers, in one run on one machine.
 *
 * Rows: matmul (float32, N = 256/512/1024), conv2d forward+backward at (1,64,64,64)x64 3x3 and
 * (1,32,240,240)x32 3x3, a pre-norm transformer block forward+backward, and a softmax + layerNorm
 * forward+backward. Columns: our CPU backend on each kernel path (plain TypeScript, WebAssembly
 * SIMD on 1 and 2 threads when available), our gpu.js backend on each GPU path that opens here (in
 * Node: WebGPU through Dawn, and headless GL, which `pnpm bench` runs under `xvfb-run -a`), @tensorflow/tfjs with its cpu and wasm
 * backends, and Debian's PyTorch (1 and 2 threads) when /usr/bin/python3 can import torch.
 * Figures are medians over repeated runs after a warm-up; "x peer" is how many times faster we
 * are than that peer (>1 = faster).
 *
 * The gpu.js rows time the kernels with inputs and outputs staying on the device (a one-element
 * read at the end waits for the queued GL work) and report the other two costs a GPU user pays
 * apart: transfer (upload of the inputs, download of the result) and compile (the first call,
 * which builds the new kernels: gpu.js transpiling to WGSL/GLSL and the driver compiling, minus
 * a steady call).
 *
 * Run: pnpm bench (from the repository root). Not part of the tests: timings depend on the machine.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, cpus } from 'node:os';
import * as T from '@mofme/tensor';
import * as tf from '@tensorflow/tfjs';
import { AdamW, FeedForward, LayerNorm, Module, MultiHeadSelfAttention } from '@mofme/nn';
import { createGpuBackend, type GpuBackend } from '@mofme/tensor/gpu';
import { createModel, resolveConfig } from '@mofme/mofme';
import '@tensorflow/tfjs-backend-wasm';

type Row = { case: string; engine: string; path: string; threads: number; ms: number | null; gflops: number | null; note?: string };
const rows: Row[] = [];
const quick = process.argv.includes('--quick');

/** median wall time in ms of fn() over `reps` runs after `warm` warm-up runs, stopping early past `budgetMs` */
function time(fn: () => void, reps = 5, warm = 1, budgetMs = 8000): number {
  for (let i = 0; i < warm; i++) fn();
  const ts: number[] = [];
  const start = performance.now();
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
    if (performance.now() - start > budgetMs) break;
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}
async function timeAsync(fn: () => Promise<void>, reps = 5, warm = 1, budgetMs = 8000): Promise<number> {
  for (let i = 0; i < warm; i++) await fn();
  const ts: number[] = [];
  const start = performance.now();
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
    if (performance.now() - start > budgetMs) break;
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

const sizes = quick ? [256] : [256, 512, 1024];
const convCases = [
  { name: 'conv2d fwd+bwd (1,64,64,64) x64 3x3', B: 1, C: 64, H: 64, W: 64, O: 64 },
  { name: 'conv2d fwd+bwd (1,32,240,240) x32 3x3', B: 1, C: 32, H: 240, W: 240, O: 32 },
].slice(0, quick ? 1 : 2);
const convFlops = (c: (typeof convCases)[number]) => 2 * c.B * c.O * c.H * c.W * c.C * 9; // one pass; fwd+bwd = 3 passes
const smCase = { name: 'softmax+layerNorm fwd+bwd (8,256,384)', shape: [8, 256, 384] };
/** a pre-norm ViT block: x + attn(ln1(x)), then + mlp(ln2(x)), GELU MLP, no dropout */
const blockCase = { name: 'transformer block fwd+bwd (1,256,128), 4 heads, MLP 512', B: 1, N: 256, D: 128, heads: 4, hidden: 512 };
// multiply-adds x2 of qkv, q k^T, attn v, output projection, both MLP layers; fwd+bwd = 3 passes
const blockFlops = 3 * 2 * (blockCase.N * blockCase.D * 3 * blockCase.D + 2 * blockCase.N * blockCase.N * blockCase.D + blockCase.N * blockCase.D * blockCase.D + 2 * blockCase.N * blockCase.D * blockCase.hidden);

// ---------------------------------------------------------------------------------------------
// ours: one CPU backend per kernel path
// ---------------------------------------------------------------------------------------------
function oursPaths(): { path: string; threads: number; backend: T.CpuBackend }[] {
  const paths: { path: string; threads: number; backend: T.CpuBackend }[] = [{ path: 'ts-blocked', threads: 1, backend: new T.CpuBackend({ fastKernels: null }) }];
  if (T.wasmSimdAvailable()) {
    for (const threads of [1, Math.min(2, availableParallelism())]) {
      paths.push({ path: 'wasm-simd', threads, backend: new T.CpuBackend({ fastKernels: T.createWasmKernels({ threads }) }) });
    }
  }
  return paths;
}

/**
 * Gradients dropped between timed runs as an optimizer's zeroGrad drops them: disposed, so that
 * their arrays go back to the CPU backend's pool (a gradient only set to null is garbage until the
 * GC, and the next run writes a fresh array: on this sandboxed machine the page faults of a fresh
 * 3 MB array cost about 20 ms of CPU, more than the kernel that fills it). PyTorch's `x.grad = None`
 * likewise hands the block back to its caching allocator at once.
 */
function dropGrads(...tensors: T.Tensor[]): void {
  for (const t of tensors) {
    t.grad?.dispose();
    t.grad = null;
  }
}

function oursMatmul(backend: T.Backend, n: number): number {
  const g = new T.Generator(1);
  const a = T.randn([n, n], { backend, generator: g }), b = T.randn([n, n], { backend, generator: g });
  return time(() => { T.tidy(() => { T.matmul(a, b); }); }, n >= 1024 ? 3 : 7);
}

function oursConv(backend: T.Backend, c: (typeof convCases)[number]): number {
  const g = new T.Generator(2);
  const x = T.randn([c.B, c.C, c.H, c.W], { backend, generator: g, requiresGrad: true });
  const w = T.randn([c.O, c.C, 3, 3], { backend, generator: g, std: 0.05, requiresGrad: true });
  return time(() => T.tidy(() => { T.conv2d(x, w, null, { padding: 1 }).sum().backward(); dropGrads(x, w); }), 3);
}

function oursConvForward(backend: T.Backend, c: (typeof convCases)[number]): number {
  const g = new T.Generator(2);
  const x = T.randn([c.B, c.C, c.H, c.W], { backend, generator: g });
  const w = T.randn([c.O, c.C, 3, 3], { backend, generator: g, std: 0.05 });
  return time(() => T.tidy(() => { T.noGrad(() => T.conv2d(x, w, null, { padding: 1 })); }), 3);
}

function oursSoftmaxLn(backend: T.Backend): number {
  const x = T.randn(smCase.shape, { backend, generator: new T.Generator(3), requiresGrad: true });
  const w = T.ones([384], { backend, requiresGrad: true }), b = T.zeros([384], { backend, requiresGrad: true });
  return time(() => T.tidy(() => { T.layerNorm(T.softmax(x, -1), 1, w, b).sum().backward(); dropGrads(x, w, b); }), 3);
}

class Block extends Module {
  readonly ln1: LayerNorm; readonly attn: MultiHeadSelfAttention; readonly ln2: LayerNorm; readonly mlp: FeedForward;
  constructor(c: typeof blockCase) {
    super();
    this.ln1 = this.child('ln1', new LayerNorm(c.D));
    this.attn = this.child('attn', new MultiHeadSelfAttention(c.D, { heads: c.heads, qkvBias: true }));
    this.ln2 = this.child('ln2', new LayerNorm(c.D));
    this.mlp = this.child('mlp', new FeedForward(c.D, c.hidden));
  }
  forward(x: T.Tensor): T.Tensor {
    const h = x.add(this.attn.forward(this.ln1.forward(x)));
    return h.add(this.mlp.forward(this.ln2.forward(h)));
  }
}

/** A transformer block forward + backward (input and weight gradients); `settle` waits for the result. */
function blockStep(backend: T.Backend): { inputs: T.Tensor[]; step: () => T.Tensor } {
  return T.withBackend(backend, () => {
    const block = new Block(blockCase);
    const x = T.randn([blockCase.B, blockCase.N, blockCase.D], { generator: new T.Generator(5), requiresGrad: true });
    const params = block.parameters();
    return {
      inputs: [x, ...params],
      step: () => {
        block.forward(x).sum().backward();
        const g = x.grad!; // returned: the caller reads it (so only dropped, not disposed)
        x.grad = null;
        dropGrads(...params);
        return g;
      },
    };
  });
}

function oursBlock(backend: T.Backend): number {
  const { step } = blockStep(backend);
  return time(() => T.tidy(() => { step(); }), 5);
}

/** One training step of the tiny MoFME (64x64, batch 8): forward, SmoothL1, backward, AdamW. No peer can run it. */
function oursTrainStep(backend: T.Backend): number {
  return T.withBackend(backend, () => {
    const model = createModel(resolveConfig('tiny'), { seed: 0 });
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const g = new T.Generator(4);
    const x = T.rand([8, 3, 64, 64], { generator: g }), y = T.rand([8, 3, 64, 64], { generator: g });
    return time(() => T.tidy(() => { const loss = T.smoothL1Loss(model.forward(x.mul(2).sub(1)).image, y); opt.zeroGrad(); loss.backward(); opt.step(); }), 3);
  });
}
const stepCase = 'tiny MoFME training step, 64x64, batch 8';

// ---------------------------------------------------------------------------------------------
// ours on the gpu.js backend
// ---------------------------------------------------------------------------------------------

/** Wait for the GPU to finish `t` (GPU work is queued when an op returns). */
const settle = (t: T.Tensor): void => (t.backend as GpuBackend).finish(t.storage);

/**
 * Time one case on the GPU: upload (create the inputs from host data), the first call (which
 * compiles its new kernels: gpu.js counts that time), download of the result, then the median of
 * steady calls with everything on the device.
 */
function gpuTimed(gpu: GpuBackend, make: () => { inputs: T.Tensor[]; step: () => T.Tensor }, reps: number): { ms: number; note: string } {
  let t0 = performance.now();
  const { inputs, step } = make();
  for (const t of inputs) settle(t);
  const uploadMs = performance.now() - t0;
  const compiled0 = gpu.stats.compiled;
  let downloadMs = 0, firstMs = 0;
  T.tidy(() => {
    const start = performance.now();
    const out = step();
    settle(out);
    firstMs = performance.now() - start;
    t0 = performance.now();
    out.toArray();
    downloadMs = performance.now() - t0;
  });
  const kernels = gpu.stats.compiled - compiled0;
  const ms = time(() => T.tidy(() => { settle(step()); }), reps, 0, 20000);
  // compile = first call minus a steady call: what the new kernels cost beyond running
  const compileMs = Math.max(0, firstMs - ms);
  for (const t of inputs) t.dispose();
  return { ms, note: `upload ${uploadMs.toFixed(1)} ms, download ${downloadMs.toFixed(1)} ms, compile ${compileMs.toFixed(0)} ms (${kernels} new kernels: first call - steady)` };
}

function gpuRows(gpu: GpuBackend): void {
  const path = `gpujs-${gpu.info().mode}`;
  const add = (name: string, r: { ms: number; note: string }, flops: number | null): void => {
    rows.push({ case: name, engine: 'ours', path, threads: 0, ms: r.ms, gflops: flops === null ? null : flops / r.ms / 1e6, note: r.note });
  };
  for (const n of sizes) {
    const r = gpuTimed(gpu, () => T.withBackend(gpu, () => {
      const g = new T.Generator(1);
      const a = T.randn([n, n], { generator: g }), b = T.randn([n, n], { generator: g });
      return { inputs: [a, b], step: () => T.matmul(a, b) };
    }), n >= 1024 ? 3 : 5);
    add(`matmul ${n}`, r, 2 * n ** 3);
  }
  for (const c of convCases) {
    const make = (backward: boolean) => () => T.withBackend(gpu, () => {
      const g = new T.Generator(2);
      const x = T.randn([c.B, c.C, c.H, c.W], { generator: g, requiresGrad: backward });
      const w = T.randn([c.O, c.C, 3, 3], { generator: g, std: 0.05, requiresGrad: backward });
      const step = backward
        ? () => { T.conv2d(x, w, null, { padding: 1 }).sum().backward(); const gx = x.grad!; x.grad = null; w.grad = null; return gx; }
        : () => T.noGrad(() => T.conv2d(x, w, null, { padding: 1 }));
      return { inputs: [x, w], step };
    });
    add(c.name.replace('fwd+bwd', 'forward'), gpuTimed(gpu, make(false), 3), convFlops(c));
    add(c.name, gpuTimed(gpu, make(true), 3), 3 * convFlops(c));
  }
  add(blockCase.name, gpuTimed(gpu, () => blockStep(gpu), 3), blockFlops);
}

/** Each gpu.js GPU path that opens here (WebGPU, headless GL), and why the others did not. */
function openGpus(): { backends: GpuBackend[]; reasons: string[] } {
  const backends: GpuBackend[] = [], reasons: string[] = [];
  for (const mode of ['webgpu', 'headlessgl'] as const) {
    try {
      backends.push(createGpuBackend({ mode }));
    } catch (e) {
      reasons.push(`${mode}: ${(e as Error).message.split('\n').slice(1).join(' ').trim() || (e as Error).message}`);
    }
  }
  return { backends, reasons };
}

// ---------------------------------------------------------------------------------------------
// tfjs peers
// ---------------------------------------------------------------------------------------------
async function tfjsCase(backendName: 'cpu' | 'wasm'): Promise<void> {
  await tf.setBackend(backendName);
  await tf.ready();
  for (const n of sizes) {
    const a = tf.randomNormal([n, n]), b = tf.randomNormal([n, n]);
    const ms = await timeAsync(async () => { const c = tf.matMul(a, b); await c.data(); c.dispose(); }, n >= 1024 ? 3 : 7);
    rows.push({ case: `matmul ${n}`, engine: 'tfjs', path: backendName, threads: 1, ms, gflops: (2 * n ** 3) / ms / 1e6 });
    a.dispose(); b.dispose();
  }
  for (const c of convCases) {
    const x = tf.randomNormal([c.B, c.H, c.W, c.C]), w = tf.randomNormal([3, 3, c.C, c.O]); // tfjs is NHWC
    const fwd = await timeAsync(async () => { const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'); await y.data(); y.dispose(); }, 3);
    rows.push({ case: c.name.replace('fwd+bwd', 'forward'), engine: 'tfjs', path: backendName, threads: 1, ms: fwd, gflops: convFlops(c) / fwd / 1e6 });
    let ms: number | null = null, note: string | undefined;
    if (backendName === 'wasm') {
      note = `forward only (${fwd.toFixed(1)} ms): tfjs-wasm has no Conv2DBackpropFilter kernel`;
    } else if (c.H > 64 || quick) {
      note = `skipped: tfjs-cpu's filter gradient takes minutes (about 2 min on the 64x64 case in the full run)`;
    } else {
      const grads = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, 'same').sum());
      ms = await timeAsync(async () => { const gs = grads([x, w]); await Promise.all(gs.map((t) => t.data())); gs.forEach((t) => t.dispose()); }, 1, 0, 1);
    }
    rows.push({ case: c.name, engine: 'tfjs', path: backendName, threads: 1, ms, gflops: ms ? (3 * convFlops(c)) / ms / 1e6 : null, note });
    x.dispose(); w.dispose();
  }
  {
    const { N, D, heads, hidden } = blockCase;
    const dh = D / heads;
    const v = (shape: number[]) => tf.variable(tf.randomNormal(shape, 0, 0.05));
    const [wqkv, bqkv, wo, bo, w1, b1, w2, b2] = [v([D, 3 * D]), v([3 * D]), v([D, D]), v([D]), v([D, hidden]), v([hidden]), v([hidden, D]), v([D])] as tf.Variable[];
    const [g1, be1, g2, be2] = [tf.variable(tf.ones([D])), tf.variable(tf.zeros([D])), tf.variable(tf.ones([D])), tf.variable(tf.zeros([D]))];
    const x = tf.variable(tf.randomNormal([N, D]));
    const ln = (t: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => { const { mean, variance } = tf.moments(t, -1, true); return t.sub(mean).div(variance.add(1e-5).sqrt()).mul(g).add(b); };
    const heads3 = (t: tf.Tensor) => t.reshape([N, heads, dh]).transpose([1, 0, 2]) as tf.Tensor3D;
    const f = () => {
      const qkv = ln(x, g1!, be1!).matMul(wqkv!).add(bqkv!);
      const [q, k, vv] = tf.split(qkv, 3, -1).map(heads3) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
      const attn = tf.softmax(tf.matMul(q, k, false, true).mul(dh ** -0.5));
      const o = tf.matMul(attn, vv).transpose([1, 0, 2]).reshape([N, D]);
      const h = x.add(o.matMul(wo!).add(bo!));
      const m = ln(h, g2!, be2!).matMul(w1!).add(b1!);
      const gelu = m.mul(tf.erf(m.mul(Math.SQRT1_2)).add(1)).mul(0.5); // exact GELU, as ours and PyTorch's default
      return h.add(gelu.matMul(w2!).add(b2!)).sum() as tf.Scalar;
    };
    const ms = await timeAsync(async () => { const { value, grads } = tf.variableGrads(f); await Promise.all(Object.values(grads).map((t) => t.data())); value.dispose(); Object.values(grads).forEach((t) => t.dispose()); }, 3);
    rows.push({ case: blockCase.name, engine: 'tfjs', path: backendName, threads: 1, ms, gflops: blockFlops / ms / 1e6 });
    [wqkv, bqkv, wo, bo, w1, b1, w2, b2, g1, be1, g2, be2, x].forEach((t) => t!.dispose());
  }
  const x = tf.randomNormal(smCase.shape);
  const lnGrad = tf.grad((xx: tf.Tensor) => {
    const s = tf.softmax(xx);
    const { mean, variance } = tf.moments(s, -1, true);
    return s.sub(mean).div(variance.add(1e-5).sqrt()).sum();
  });
  const ms = await timeAsync(async () => { const g = lnGrad(x); await g.data(); g.dispose(); }, 3);
  rows.push({ case: smCase.name, engine: 'tfjs', path: backendName, threads: 1, ms, gflops: null });
  x.dispose();
}

// ---------------------------------------------------------------------------------------------
// PyTorch (Debian's python3-torch), as a subprocess
// ---------------------------------------------------------------------------------------------
const torchScript = String.raw`
import json, sys, time, torch
cfg = json.loads(sys.argv[1])
out = []
def med(fn, reps):
    fn(); ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1000)
    ts.sort(); return ts[len(ts) // 2]
for threads in cfg["threads"]:
    torch.set_num_threads(threads)
    for n in cfg["sizes"]:
        a = torch.randn(n, n); b = torch.randn(n, n)
        out.append(dict(case=f"matmul {n}", threads=threads, ms=med(lambda: a @ b, 7)))
    for c in cfg["conv"]:
        x = torch.randn(c["B"], c["C"], c["H"], c["W"], requires_grad=True)
        w = (torch.randn(c["O"], c["C"], 3, 3) * 0.05).requires_grad_()
        def step():
            torch.nn.functional.conv2d(x, w, padding=1).sum().backward(); x.grad = None; w.grad = None
        out.append(dict(case=c["name"], threads=threads, ms=med(step, 3)))
        with torch.no_grad():
            out.append(dict(case=c["name"].replace("fwd+bwd", "forward"), threads=threads, ms=med(lambda: torch.nn.functional.conv2d(x, w, padding=1), 3)))
    b = cfg["block"]
    layer = torch.nn.TransformerEncoderLayer(b["D"], b["heads"], b["hidden"], dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    xb = torch.randn(b["B"], b["N"], b["D"], requires_grad=True)
    def blk():
        layer(xb).sum().backward(); xb.grad = None; layer.zero_grad(set_to_none=True)
    out.append(dict(case=b["name"], threads=threads, ms=med(blk, 5)))
    x = torch.randn(*cfg["sm"], requires_grad=True)
    ln = torch.nn.LayerNorm(cfg["sm"][-1])
    def sm():
        ln(torch.softmax(x, -1)).sum().backward(); x.grad = None
    out.append(dict(case=cfg["smName"], threads=threads, ms=med(sm, 3)))
print(json.dumps(dict(version=torch.__version__, rows=out)))
`;

function torchRows(): string {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return 'PyTorch column skipped: /usr/bin/python3 cannot import torch (apt-get install python3-torch to add it)';
  const cfg = { threads: [1, 2], sizes, conv: convCases, sm: smCase.shape, smName: smCase.name, block: blockCase };
  const run = spawnSync('/usr/bin/python3', ['-c', torchScript, JSON.stringify(cfg)], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '2', OMP_NUM_THREADS: '2' }, maxBuffer: 1 << 24 });
  if (run.status !== 0) return `PyTorch column failed: ${run.stderr.trim().split('\n').pop()}`;
  const res = JSON.parse(run.stdout) as { version: string; rows: { case: string; threads: number; ms: number }[] };
  for (const r of res.rows) {
    const n = /matmul (\d+)/.exec(r.case)?.[1];
    const conv = convCases.find((c) => c.name === r.case);
    const convFwd = convCases.find((c) => c.name.replace('fwd+bwd', 'forward') === r.case);
    const gflops = n ? (2 * Number(n) ** 3) / r.ms / 1e6 : conv ? (3 * convFlops(conv)) / r.ms / 1e6 : convFwd ? convFlops(convFwd) / r.ms / 1e6
      : r.case === blockCase.name ? blockFlops / r.ms / 1e6 : null;
    rows.push({ case: r.case, engine: `torch ${res.version}`, path: 'native', threads: r.threads, ms: r.ms, gflops });
  }
  return `PyTorch ${res.version} (Debian) via /usr/bin/python3`;
}

// ---------------------------------------------------------------------------------------------
async function main(): Promise<void> {
  console.log(`engine bench on ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, node ${process.version}${quick ? ' (quick)' : ''}\n`);
  for (const { path, threads, backend } of oursPaths()) {
    for (const n of sizes) {
      const ms = oursMatmul(backend, n);
      rows.push({ case: `matmul ${n}`, engine: 'ours', path, threads, ms, gflops: (2 * n ** 3) / ms / 1e6 });
    }
    for (const c of convCases) {
      const fms = oursConvForward(backend, c);
      rows.push({ case: c.name.replace('fwd+bwd', 'forward'), engine: 'ours', path, threads, ms: fms, gflops: convFlops(c) / fms / 1e6 });
      const ms = oursConv(backend, c);
      rows.push({ case: c.name, engine: 'ours', path, threads, ms, gflops: (3 * convFlops(c)) / ms / 1e6 });
    }
    const bms = oursBlock(backend);
    rows.push({ case: blockCase.name, engine: 'ours', path, threads, ms: bms, gflops: blockFlops / bms / 1e6 });
    rows.push({ case: smCase.name, engine: 'ours', path, threads, ms: oursSoftmaxLn(backend), gflops: null });
    rows.push({ case: stepCase, engine: 'ours', path, threads, ms: oursTrainStep(backend), gflops: null, note: path === 'ts-blocked' ? 'no JavaScript peer can train this conv + transformer model' : '' });
  }
  const gpus = openGpus();
  const gpuNotes: string[] = gpus.reasons.map((r) => `gpu.js column skipped: ${r}`);
  for (const gpu of gpus.backends) {
    console.log(`gpu.js column on ${gpu.info().mode} (${gpu.info().renderer})`);
    gpuRows(gpu);
    gpuNotes.push(`gpu.js column (thr "gpu"): ${gpu.describe()}`);
  }
  for (const b of ['cpu', 'wasm'] as const) await tfjsCase(b);
  const torchNote = torchRows();

  // print one table per case, with our best path's ratio against each peer
  const cases = [...new Set(rows.map((r) => r.case))];
  for (const c of cases) {
    const rs = rows.filter((r) => r.case === c);
    const best = rs.filter((r) => r.engine === 'ours' && r.ms !== null).sort((a, b) => a.ms! - b.ms!)[0];
    const plain = rs.find((r) => r.engine === 'ours' && r.path === 'ts-blocked');
    console.log(`\n${c}`);
    console.log(`  ${'engine'.padEnd(14)} ${'path'.padEnd(17)} ${'thr'.padStart(3)} ${'ms'.padStart(10)} ${'GFLOP/s'.padStart(8)}   ours(best)/peer`);
    for (const r of rs) {
      const ratio = r.engine !== 'ours' && r.ms && best?.ms ? `${(r.ms / best.ms).toFixed(2)}x faster`
        : r.engine === 'ours' && r.path !== 'ts-blocked' && r.ms && plain?.ms ? `(${(plain.ms / r.ms).toFixed(1)}x the plain TypeScript kernels)` : '';
      console.log(`  ${r.engine.padEnd(14)} ${r.path.padEnd(17)} ${(r.threads === 0 ? 'gpu' : String(r.threads)).padStart(3)} ${r.ms === null ? '       n/a' : r.ms.toFixed(1).padStart(10)} ${r.gflops === null ? '        ' : r.gflops.toFixed(2).padStart(8)}   ${ratio}${r.note ? ` ${r.note}` : ''}`);
    }
  }
  console.log('');
  for (const n of gpuNotes) console.log(n);
  console.log(torchNote);
  console.log('ratio = peer time / our best time (above 1: we are faster). FLOPs count a multiply-add as 2.');
  process.exit(0);
}

main().catch((e) => { console.error(e); process.exit(1); });
