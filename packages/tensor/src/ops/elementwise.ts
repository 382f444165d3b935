/**
 * Elementwise ops: unary functions, broadcasting binary arithmetic, comparisons and `where`.
 *
 * Each differentiable op is one function: the forward runs a backend kernel, and the backward
 * (the closure passed to `record`) sits right below it, with the derivative written in its comment.
 * Binary ops broadcast NumPy-style; their gradients come back in the output's shape and autograd
 * sums them to each input's shape.
 */
import type { BinaryOp, UnaryOp } from '../backend/backend';
import { Tensor } from '../tensor';
import { broadcastShapes, padShape, shapeToString } from '../shape';
import { record } from './record';
import { scalar } from './creation';
import { traceOp } from '../trace';

/** Numbers become 0-d tensors with the other operand's dtype and backend. */
export function lift(x: Tensor | number, like: Tensor): Tensor {
  return typeof x === 'number' ? scalar(x, { dtype: like.dtype, backend: like.backend }) : x;
}

function checkPair(op: string, a: Tensor, b: Tensor): void {
  if (a.backend !== b.backend) throw new Error(`${op}: operands live on different backends ('${a.backend.name}' and '${b.backend.name}'); move one with .to(backend)`);
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtype mismatch ${a.dtype} ${shapeToString(a.shape)} vs ${b.dtype} ${shapeToString(b.shape)}; cast one with .cast(dtype)`);
}

/** Run a binary kernel with broadcasting (no autograd). */
export function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  checkPair(op, a, b);
  const outShape = broadcastShapes(op, a.shape, b.shape);
  const rank = outShape.length;
  const storage = a.backend.binary(op, a.storage, padShape(a.shape, rank), b.storage, padShape(b.shape, rank), outShape);
  return new Tensor(storage, outShape);
}

function unaryKernel(op: UnaryOp, x: Tensor): Tensor {
  return new Tensor(x.backend.unary(op, x.storage), x.shape);
}

// ---- binary arithmetic ----

/** a + b.  d/da = 1, d/db = 1 */
export function add(a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return record('add', [a, B], binaryKernel('add', a, B), (g) => [g, g]);
}

/** a - b.  d/da = 1, d/db = -1 */
export function sub(a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return record('sub', [a, B], binaryKernel('sub', a, B), (g, _y, needs) => [g, needs[1] ? neg(g) : null]);
}

/** a * b.  d/da = b, d/db = a */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return record('mul', [a, B], binaryKernel('mul', a, B), (g, _y, needs) => [
    needs[0] ? mul(g, B) : null,
    needs[1] ? mul(g, a) : null,
  ]);
}

/** a / b.  d/da = 1/b, d/db = -a/b^2 = -y/b */
export function div(a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return record('div', [a, B], binaryKernel('div', a, B), (g, y, needs) => [
    needs[0] ? div(g, B) : null,
    needs[1] ? neg(div(mul(g, y), B)) : null,
  ]);
}

/** a ** b.  d/da = b a^(b-1), d/db = a^b ln a (taken as 0 where a <= 0, where ln a is undefined) */
export function pow(a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return record('pow', [a, B], binaryKernel('pow', a, B), (g, y, needs) => [
    needs[0] ? mul(g, mul(B, pow(a, sub(B, 1)))) : null,
    needs[1] ? mul(g, where(gt(a, 0), mul(y, log(a)), 0)) : null,
  ]);
}

/** elementwise max. The gradient goes to the larger input; on a tie it is split evenly (as in PyTorch). */
export function maximum(a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return record('maximum', [a, B], binaryKernel('max', a, B), (g) => {
    const share = add(binaryKernel('gt', a, B), mul(binaryKernel('eq', a, B), 0.5)); // 1, 0.5 or 0
    return [mul(g, share), mul(g, sub1(1, share))];
  });
}

/** elementwise min, the mirror of maximum. */
export function minimum(a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return record('minimum', [a, B], binaryKernel('min', a, B), (g) => {
    const share = add(binaryKernel('lt', a, B), mul(binaryKernel('eq', a, B), 0.5));
    return [mul(g, share), mul(g, sub1(1, share))];
  });
}

// `sub(1, x)` reads better than `neg(x).add(1)`; allow a number on the left for these two.
function sub1(a: number, b: Tensor): Tensor { return sub(lift(a, b), b); }
export { sub1 };

// ---- comparisons (not differentiable: the result is piecewise constant) ----

export function compare(op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge', a: Tensor, b: Tensor | number): Tensor {
  const B = lift(b, a);
  return traceOp('compare', [a, B], binaryKernel(op, a, B), { op }); // trace.ts: not differentiable, so not recorded
}
export const gt = (a: Tensor, b: Tensor | number): Tensor => compare('gt', a, b);
export const lt = (a: Tensor, b: Tensor | number): Tensor => compare('lt', a, b);

/** cond ? a : b, elementwise with broadcasting.  d/da = cond, d/db = 1 - cond */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const like = a instanceof Tensor ? a : b instanceof Tensor ? b : cond;
  const A = lift(a, like), B = lift(b, like);
  checkPair('where', A, B);
  const outShape = broadcastShapes('where', cond.shape, A.shape, B.shape);
  const r = outShape.length;
  const storage = A.backend.where(cond.storage, padShape(cond.shape, r), A.storage, padShape(A.shape, r), B.storage, padShape(B.shape, r), outShape);
  return record('where', [cond, A, B], new Tensor(storage, outShape), (g, _y, needs) => [
    null,
    needs[1] ? where(cond, g, 0) : null,
    needs[2] ? where(cond, 0, g) : null,
  ]);
}

// ---- unary ----

/** -x.  d/dx = -1 */
export function neg(x: Tensor): Tensor {
  return record('neg', [x], unaryKernel('neg', x), (g) => [neg(g)]);
}

/** e^x.  d/dx = e^x = y */
export function exp(x: Tensor): Tensor {
  return record('exp', [x], unaryKernel('exp', x), (g, y) => [mul(g, y)]);
}

/** ln x.  d/dx = 1/x */
export function log(x: Tensor): Tensor {
  return record('log', [x], unaryKernel('log', x), (g) => [div(g, x)]);
}

/** sqrt x.  d/dx = 1/(2 sqrt x) = 1/(2y) */
export function sqrt(x: Tensor): Tensor {
  return record('sqrt', [x], unaryKernel('sqrt', x), (g, y) => [div(g, mul(y, 2))]);
}

/** |x|.  d/dx = sign(x) (0 at 0, PyTorch's choice) */
export function abs(x: Tensor): Tensor {
  return record('abs', [x], unaryKernel('abs', x), (g) => [mul(g, unaryKernel('sign', x))]);
}

/**
 * max(x, 0).  d/dx = 1 where x > 0, else 0, read from the output (y > 0 exactly where x > 0, NaN
 * giving 0 either way): the backward keeps only y, so a layer may free x once it has y (nn's
 * ResBlock frees its first convolution's output, the largest activation of a training step).
 */
export function relu(x: Tensor): Tensor {
  return record('relu', [x], unaryKernel('relu', x), (g, y) => [mul(g, unaryKernel('step', y))]);
}

/** 1/(1+e^-x).  d/dx = y(1-y) */
export function sigmoid(x: Tensor): Tensor {
  return record('sigmoid', [x], unaryKernel('sigmoid', x), (g, y) => [mul(g, mul(y, sub1(1, y)))]);
}

/** tanh x.  d/dx = 1 - y^2 */
export function tanh(x: Tensor): Tensor {
  return record('tanh', [x], unaryKernel('tanh', x), (g, y) => [mul(g, sub1(1, mul(y, y)))]);
}

/** erf x.  d/dx = 2/sqrt(pi) e^(-x^2) */
export function erf(x: Tensor): Tensor {
  return record('erf', [x], unaryKernel('erf', x), (g) => [mul(g, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI)))]);
}

/** sin x.  d/dx = cos x */
export function sin(x: Tensor): Tensor {
  return record('sin', [x], unaryKernel('sin', x), (g) => [mul(g, unaryKernel('cos', x))]);
}

/** cos x.  d/dx = -sin x */
export function cos(x: Tensor): Tensor {
  return record('cos', [x], unaryKernel('cos', x), (g) => [neg(mul(g, unaryKernel('sin', x)))]);
}

// ---- composites: no backward code, their gradient follows from the ops they use ----

/** Limit x to [min, max]. The gradient passes where min <= x <= max, as in PyTorch. */
export function clamp(x: Tensor, min?: number, max?: number): Tensor {
  let y = x;
  if (min !== undefined) y = where(lt(x, min), min, y);
  if (max !== undefined) y = where(gt(x, max), max, y);
  return y;
}

/**
 * GELU, x * Phi(x) with Phi the standard normal CDF. 'none' is exact: Phi(x) = (1 + erf(x/sqrt 2))/2.
 * 'tanh' is the approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  // a fused kernel each way where the backend has one (Backend.gelu); the composition below is the definition
  if (x.backend.gelu && x.backend.geluBackward) {
    const y = new Tensor(x.backend.gelu(x.storage, approximate), x.shape);
    return record('gelu', [x], y, (g) => [new Tensor(x.backend.geluBackward!(x.storage, g.storage, approximate), x.shape)]);
  }
  if (approximate === 'tanh') {
    const inner = mul(add(x, mul(pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return mul(mul(x, 0.5), add(tanh(inner), 1));
  }
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}
