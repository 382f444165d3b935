/**
 * Gradient properties: for every differentiable op (the table in src/testing/cases.ts), on random
 * shapes and values, autodiff agrees with central finite differences in float64 on the CPU.
 * Convolution runs twice: on the fast CPU backend (in float64 it composes im2col + matmul) and on
 * the reference backend, whose direct conv2d kernels and their gradient kernels are the
 * specification of the WebAssembly ones. A failing case prints the op, the seed and the worst element.
 */
import { test } from 'uvu';
import fc from 'fast-check';
import { OP_CASES, gradcheck, numRuns, toTensor } from '@mofme/tensor/testing';
import { ReferenceCpuBackend, Tensor, tensor, mul, sum, withBackend } from '@mofme/tensor';

for (const opCase of OP_CASES) {
  test(`gradcheck ${opCase.name}`, () => {
    fc.assert(
      fc.property(opCase.inputs, (inputs) => {
        const xs = inputs.map((d, i) => toTensor(d, { dtype: 'float64', requiresGrad: opCase.grad?.[i] ?? true }));
        const r = gradcheck(opCase.fn, xs, { eps: 1e-6, atol: 1e-6, rtol: 1e-4 });
        if (!r.ok) throw new Error(`${opCase.name} on shapes ${inputs.map((d) => `[${d.shape}]`).join(' ')}: ${r.message}`);
      }),
      { numRuns: numRuns(25) },
    );
  });
}

const reference = new ReferenceCpuBackend();
for (const opCase of OP_CASES.filter((c) => c.name.startsWith('conv2d'))) {
  test(`gradcheck ${opCase.name} on the reference backend's direct convolution`, () => {
    fc.assert(
      fc.property(opCase.inputs, (inputs) => withBackend(reference, () => {
        const xs = inputs.map((d, i) => toTensor(d, { dtype: 'float64', backend: reference, requiresGrad: opCase.grad?.[i] ?? true }));
        const r = gradcheck(opCase.fn, xs, { eps: 1e-6, atol: 1e-6, rtol: 1e-4 });
        if (!r.ok) throw new Error(`${opCase.name} on shapes ${inputs.map((d) => `[${d.shape}]`).join(' ')}: ${r.message}`);
        if (opCase.fn(...xs).node?.op !== 'conv2d') throw new Error('the reference backend did not take the direct conv2d route');
      })),
      { numRuns: numRuns(10) },
    );
  });
}

test('gradcheck catches a deliberately wrong gradient', () => {
  // x^3 built with a backward that claims d/dx = 2x (the derivative of x^2): must be rejected
  const cubeWithWrongGradient = (x: Tensor): Tensor => {
    const y = mul(mul(x.detach(), x.detach()), x.detach());
    y.requiresGrad = true;
    y.node = { op: 'wrongCube', inputs: [x], backward: (g) => [mul(g, mul(x, 2))] };
    return y;
  };
  const x = tensor([0.5, -1.2, 2], { dtype: 'float64', requiresGrad: true });
  const r = gradcheck(cubeWithWrongGradient, [x]);
  if (r.ok) throw new Error('gradcheck accepted a wrong gradient');
  const right = gradcheck((t: Tensor) => sum(mul(mul(t, t), t)), [x]);
  if (!right.ok) throw new Error(right.message);
});

test('gradcheck fast mode agrees with full mode on a composite', () => {
  const f = (a: Tensor, b: Tensor): Tensor => a.matmul(b).tanh().sum(1);
  const a = toTensor({ shape: [3, 4], values: [...Array(12).keys()].map((i) => Math.sin(i)) }, { requiresGrad: true });
  const b = toTensor({ shape: [4, 2], values: [...Array(8).keys()].map((i) => Math.cos(i)) }, { requiresGrad: true });
  for (const mode of ['full', 'fast'] as const) {
    const r = gradcheck(f, [a, b], { mode });
    if (!r.ok) throw new Error(`${mode}: ${r.message}`);
  }
});

test.run();
