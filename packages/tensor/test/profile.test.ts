/**
 * The profiler (MOFME_PROFILE=1 / enableProfiling): kernel calls are counted under the right
 * kernel, op and phase, and the work figures follow from the shapes.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpuBackend, disableProfiling, enableProfiling, layerNorm, matmul, profileReport, resetProfile, tensor, withBackend } from '@mofme/tensor';

/** the row of a report table named `name` in phase `phase`, as [phase, calls, ms, share, ...] */
function row(report: string, section: string, name: string, phase: string): string[] | undefined {
  const part = report.split('\n\n').find((p) => p.startsWith(section))!;
  const line = part.split('\n').find((l) => l.trim().startsWith(`${name} `) && l.includes(` ${phase} `));
  return line?.trim().split(/\s+/).slice(1);
}

/** The report of running `fn` once on a fresh plain-TypeScript CPU backend with the profiler on. */
function profiledReport(fn: () => void): string {
  const backend = new CpuBackend({ fastKernels: null });
  enableProfiling(backend);
  resetProfile();
  try {
    withBackend(backend, fn);
  } finally {
    disableProfiling();
  }
  return profileReport();
}

test('a matmul forward and backward is filed per kernel, per op and per phase', () => {
  const report = profiledReport(() => {
    const a = tensor(new Float32Array(6 * 4).fill(1), { shape: [6, 4], requiresGrad: true });
    const b = tensor(new Float32Array(4 * 5).fill(1), { shape: [4, 5], requiresGrad: true });
    matmul(a, b).sum().backward();
  });
  const fwd = row(report, 'time per kernel', 'matmul', 'forward');
  const bwd = row(report, 'time per kernel', 'matmul', 'backward');
  assert.ok(fwd && bwd, report);
  assert.is(fwd![1], '1', 'one forward matmul');
  assert.is(bwd![1], '2', 'two backward matmuls (dA and dB)');
  const opFwd = row(report, 'time per op', 'matmul', 'forward');
  const opBwd = row(report, 'time per op', 'matmul', 'backward');
  assert.ok(opFwd && opBwd, report);
  assert.is(opFwd![1], '1');
  assert.is(opBwd![1], '1', 'one matmul node differentiated');
  assert.ok(row(report, 'time per op', 'sum', 'forward'), 'the sum op has its own row');
});

test('fused kernels are timed too: a layerNorm forward and backward', () => {
  const report = profiledReport(() => {
    const x = tensor(Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), { shape: [3, 4], requiresGrad: true });
    layerNorm(x, 1).sum().backward();
  });
  assert.is(row(report, 'time per kernel', 'layerNorm', 'forward')?.[1], '1', report);
  assert.is(row(report, 'time per kernel', 'layerNormBackward', 'backward')?.[1], '1', report);
  assert.is(row(report, 'time per op', 'layerNorm', 'backward')?.[1], '1', report);
});

test("the 'cpu' clock times kernels with the process's CPU time and says so", () => {
  const backend = new CpuBackend({ fastKernels: null });
  enableProfiling(backend, 'cpu');
  resetProfile();
  try {
    // a product big enough to take milliseconds of CPU on the TypeScript kernel
    withBackend(backend, () => { matmul(tensor(new Float32Array(300 * 300).fill(1), { shape: [300, 300] }), tensor(new Float32Array(300 * 300).fill(1), { shape: [300, 300] })); });
  } finally {
    disableProfiling();
  }
  const report = profileReport();
  assert.match(report, /time per kernel: [0-9.]+ ms CPU time/);
  const ms = Number(row(report, 'time per kernel', 'matmul', 'forward')?.[2]);
  assert.ok(ms > 0, report);
  enableProfiling(backend); // back to the wall clock for the tests after this one
  disableProfiling();
});

test('not profiling: the report stays empty', () => {
  resetProfile();
  const backend = new CpuBackend({ fastKernels: null });
  withBackend(backend, () => { matmul(tensor([[1, 2]]), tensor([[3], [4]])); });
  assert.match(profileReport(), /time per kernel: 0\.0 ms/);
});

test.run();
