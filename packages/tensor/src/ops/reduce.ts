/**
 * Reductions over any set of axes, with or without keeping the reduced axes (keepdim).
 *
 * sum and max/min are primitives with hand-written backwards; mean and var are composed from them.
 */
import { Tensor } from '../tensor';
import { normalizeAxes, normalizeAxis, reducedShape, sizeOf } from '../shape';
import { record } from './record';
import { binaryKernel, div, mul, sub } from './elementwise';
import { expand, reshape } from './movement';
import { traceAttrs } from '../trace';

/** Sum over `axes` (all when omitted).  d/dx = 1 for every element: the gradient is broadcast back. */
export function sum(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normalizeAxes('sum', axes, x.ndim);
  const kept = reducedShape(x.shape, ax, true);
  const y = new Tensor(x.backend.reduce('sum', x.storage, x.shape, ax), kept);
  const out = keepdim ? y : reshapeNoGrad(y, reducedShape(x.shape, ax, false));
  traceAttrs('sum', { axes: ax, keepdim }); // trace.ts: what the shapes do not tell
  return record('sum', [x], out, (g) => [expand(reshape(g, kept), [...x.shape])]);
}

/**
 * Max (or min) over `axes`. The gradient flows to the elements equal to the result; when several
 * tie, it is shared evenly among them (PyTorch's amax/amin convention).
 */
function extremum(op: 'max' | 'min', x: Tensor, axes: number | readonly number[] | undefined, keepdim: boolean): Tensor {
  const ax = normalizeAxes(op, axes, x.ndim);
  if (ax.some((a) => x.shape[a] === 0)) throw new Error(`${op}: cannot reduce over an empty axis of a tensor of shape [${x.shape.join(', ')}]`);
  const kept = reducedShape(x.shape, ax, true);
  const y = new Tensor(x.backend.reduce(op, x.storage, x.shape, ax), kept);
  const out = keepdim ? y : reshapeNoGrad(y, reducedShape(x.shape, ax, false));
  traceAttrs(op, { axes: ax, keepdim });
  return record(op, [x], out, (g) => {
    const isExtreme = binaryKernel('eq', x, y); // 1 where x equals the max of its group
    const count = new Tensor(x.backend.reduce('sum', isExtreme.storage, x.shape, ax), kept);
    return [mul(reshape(g, kept), div(isExtreme, count))];
  });
}
export const max = (x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor => extremum('max', x, axes, keepdim);
export const min = (x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor => extremum('min', x, axes, keepdim);

/** Mean over `axes`: sum / count. */
export function mean(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normalizeAxes('mean', axes, x.ndim);
  const count = sizeOf(ax.map((a) => x.shape[a]!));
  return div(sum(x, ax, keepdim), count);
}

/** Variance sum((x - mean)^2) / (N - correction); correction 1 (Bessel, PyTorch's default) or 0. */
export function variance(x: Tensor, axes?: number | readonly number[], options: { correction?: number; keepdim?: boolean } = {}): Tensor {
  const ax = normalizeAxes('var', axes, x.ndim);
  const n = sizeOf(ax.map((a) => x.shape[a]!));
  const centred = sub(x, mean(x, ax, true));
  const dof = Math.max(0, n - (options.correction ?? 1));
  return div(sum(mul(centred, centred), ax, options.keepdim ?? false), dof);
}

/** Index of the largest (smallest) entry along `axis`; ties give the first. Not differentiable. */
function argReduce(op: 'argmax' | 'argmin', x: Tensor, axis: number, keepdim: boolean): Tensor {
  const a = normalizeAxis(op, axis, x.ndim);
  if (x.shape[a] === 0) throw new Error(`${op}: axis ${axis} is empty`);
  return new Tensor(x.backend.argReduce(op, x.storage, x.shape, a), reducedShape(x.shape, [a], keepdim));
}
export const argmax = (x: Tensor, axis: number, keepdim = false): Tensor => argReduce('argmax', x, axis, keepdim);
export const argmin = (x: Tensor, axis: number, keepdim = false): Tensor => argReduce('argmin', x, axis, keepdim);

/** Same storage, another shape, outside the graph (the caller records the op). */
function reshapeNoGrad(t: Tensor, shape: number[]): Tensor {
  const r = new Tensor(t.storage, shape);
  t.dispose();
  return r;
}
