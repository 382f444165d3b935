/**
 * gradcheck: does autodiff agree with finite differences?
 *
 * The semantics follow PyTorch's torch.autograd.gradcheck. For f: inputs -> output and a random
 * cotangent v (the "upstream gradient"), autodiff gives the vector-Jacobian product vᵀJ in one
 * backward pass. Numerically, for each input element x_i,
 *     (vᵀJ)_i  ≈  (v·f(x + eps e_i) - v·f(x - eps e_i)) / (2 eps)          (central difference)
 * whose error is O(eps²) — with eps = 1e-6 in float64 that is ~1e-12, far below the tolerance, so
 * any disagreement beyond atol + rtol*|numeric| is a bug in a backward, not noise.
 *  - mode 'full' checks every input element (cost: 2 evaluations of f per element);
 *  - mode 'fast' checks one random direction u:  (vᵀJ)·u ≈ (v·f(x+eps u) - v·f(x-eps u)) / (2 eps),
 *    two evaluations in all, for big inputs (a projection can hide a wrong element only by chance).
 * Use float64 inputs on the CPU backend; float32 needs far looser tolerances.
 */
import { Tensor } from '../tensor';
import { noGrad } from '../autograd';
import { Generator } from '../random';
import { tensor } from '../ops/creation';
import { shapeToString } from '../shape';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  mode?: 'full' | 'fast';
  /** seed for the random cotangent (and the fast-mode direction) */
  seed?: number;
  /** which inputs to check (default: those with requiresGrad, else all) */
  check?: boolean[];
}

export interface GradcheckResult {
  ok: boolean;
  /** worst discrepancy, for the message */
  message: string;
  maxAbsError: number;
}

/** Check autodiff gradients of `fn` at `inputs`; returns a result (see assertGradcheck to throw). */
export function gradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3, mode = 'full', seed = 0 } = options;
  const gen = new Generator(seed);
  const check = options.check ?? inputs.map((t) => t.requiresGrad || !inputs.some((u) => u.requiresGrad));
  const like = (t: Tensor, values: ArrayLike<number>): Tensor => tensor(Float64Array.from(values), { shape: t.shape, dtype: t.dtype, backend: t.backend });

  // analytic: one backward with a random cotangent v
  const leaves = inputs.map((t, i) => like(t, t.data()).requiresGrad_(check[i]!));
  const out = fn(...leaves);
  const v = Float64Array.from({ length: out.size }, () => gen.uniform(-1, 1));
  if (!out.requiresGrad) {
    if (check.some(Boolean) && out.size > 0) return { ok: false, message: `gradcheck: the output (${shapeToString(out.shape)}) does not require grad: is the op recording its backward?`, maxAbsError: Infinity };
    return { ok: true, message: 'no gradient to check', maxAbsError: 0 };
  }
  out.backward(like(out, v));
  const analytic = leaves.map((t) => (t.grad ? t.grad.data() : new Float64Array(t.size)));

  // numeric: v · f(x) as a function of the input values
  const values = inputs.map((t) => Float64Array.from(t.data()));
  const vDotF = (): number => noGrad(() => {
    const y = fn(...values.map((vals, i) => like(inputs[i]!, vals))).data();
    if (y.length !== v.length) throw new Error(`gradcheck: the function's output size changed from ${v.length} to ${y.length} between calls`);
    let s = 0;
    for (let j = 0; j < y.length; j++) s += v[j]! * y[j]!;
    return s;
  });

  let worst = { excess: -Infinity, input: -1, index: -1, a: 0, n: 0 };
  let maxAbsError = 0;
  const consider = (input: number, index: number, a: number, n: number): void => {
    const err = Math.abs(a - n);
    if (!(err <= maxAbsError)) maxAbsError = err;
    const excess = err - (atol + rtol * Math.abs(n));
    if (!(excess <= worst.excess)) worst = { excess, input, index, a, n };
  };

  if (mode === 'full') {
    values.forEach((vals, i) => {
      if (!check[i]) return;
      for (let j = 0; j < vals.length; j++) {
        const x0 = vals[j]!;
        vals[j] = x0 + eps; const plus = vDotF();
        vals[j] = x0 - eps; const minus = vDotF();
        vals[j] = x0;
        consider(i, j, analytic[i]![j]!, (plus - minus) / (2 * eps));
      }
    });
  } else {
    const dirs = values.map((vals, i) => Float64Array.from(vals, () => (check[i] ? gen.uniform(-1, 1) : 0)));
    const base = values.map((vals) => vals.slice());
    const shift = (s: number): void => values.forEach((vals, i) => { for (let j = 0; j < vals.length; j++) vals[j] = base[i]![j]! + s * dirs[i]![j]!; });
    shift(eps); const plus = vDotF();
    shift(-eps); const minus = vDotF();
    shift(0);
    let a = 0;
    analytic.forEach((g, i) => { for (let j = 0; j < g.length; j++) a += g[j]! * dirs[i]![j]!; });
    consider(-1, -1, a, (plus - minus) / (2 * eps));
  }
  const ok = !(worst.excess > 0);
  const where = worst.input < 0 ? 'random projection' : `input ${worst.input} ${shapeToString(inputs[worst.input]!.shape)} at flat index ${worst.index}`;
  const message = worst.excess === -Infinity ? 'nothing to check (empty inputs)'
    : `${ok ? 'gradcheck passed' : 'gradcheck FAILED'}: worst at ${where}: analytic ${worst.a}, numeric ${worst.n}, |diff| ${Math.abs(worst.a - worst.n)} (allowed ${atol} + ${rtol}*|numeric|)`;
  return { ok, message, maxAbsError };
}

/** gradcheck that throws with the worst element on failure. */
export function assertGradcheck(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const r = gradcheck(fn, inputs, options);
  if (!r.ok) throw new Error(r.message);
}
