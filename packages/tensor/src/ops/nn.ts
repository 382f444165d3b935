/**
 * Neural-network functions: softmax, layerNorm, dropout and losses.
 *
 * Each is written as a composition of primitives, which autograd differentiates with no backward
 * code of its own; that composition is the definition. Numerical stability is handled in it
 * (softmax subtracts the row maximum, which cancels in the ratio and keeps exp from overflowing;
 * the maximum is detached because the result does not depend on it). softmax over the last axis
 * and layerNorm also have fused row kernels (Backend.softmax, Backend.layerNorm and their
 * backwards): one pass over memory instead of a kernel and an intermediate array per step of the
 * composition. Where the backend has them the op uses them; the gradient property tests and the
 * conformance suite hold them to the same results.
 */
import { Tensor } from '../tensor';
import { shapeToString } from '../shape';
import { defaultGenerator, type Generator } from '../random';
import { abs, add, div, exp, log, lt, mul, sqrt, sub, where } from './elementwise';
import { max, mean, sum } from './reduce';
import { detach, gather, reshape } from './movement';
import { rand } from './creation';
import { record } from './record';
import { traceAttrs } from '../trace';

/**
 * x viewed as [rows, n] for a row kernel over its last `trailing` axes, or null when the backend
 * lacks the kernel (or the tensor is empty): the caller then composes the op.
 */
function rowsOf(x: Tensor, trailing: number, has: unknown): { rows: number; n: number } | null {
  const n = x.shape.slice(x.ndim - trailing).reduce((a, b) => a * b, 1);
  return has && x.size > 0 && n > 0 ? { rows: x.size / n, n } : null;
}

/**
 * softmax(x)_i = e^{x_i - m} / sum_j e^{x_j - m}, with m the max along `axis`.
 * `scale` multiplies x first: softmax(x, -1, s) is softmax(mul(x, s)) (attention's q k^T / sqrt(d)),
 * which a backend with a softmax row kernel computes in the same pass instead of a pass of its own.
 */
export function softmax(x: Tensor, axis = -1, scale = 1): Tensor {
  const b = x.backend;
  const fused = x.ndim > 0 && (axis === -1 || axis === x.ndim - 1) ? rowsOf(x, 1, b.softmax && b.softmaxBackward) : null;
  if (fused) {
    // one kernel each way; backward from the output: dx = scale * y (dy - sum_j dy_j y_j)
    const { rows, n } = fused;
    if (scale !== 1) traceAttrs('softmax', { scale }); // trace.ts: what the shapes do not tell
    const y = new Tensor(b.softmax!(x.storage, rows, n, scale), x.shape);
    return record('softmax', [x], y, (g, out) => [new Tensor(b.softmaxBackward!(out.storage, g.storage, rows, n, scale), x.shape)]);
  }
  const z = scale === 1 ? x : mul(x, scale);
  const shifted = sub(z, detach(max(z, axis, true)));
  const e = exp(shifted);
  return div(e, sum(e, axis, true));
}

/** log softmax(x) = (x - m) - log sum_j e^{x_j - m}: stable, never takes log of a tiny ratio. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const shifted = sub(x, detach(max(x, axis, true)));
  return sub(shifted, log(sum(exp(shifted), axis, true)));
}

/**
 * Layer normalisation over the last `normalizedDims` axes: (x - mean) / sqrt(var + eps) * w + b,
 * with the biased variance (divide by N), as in PyTorch's nn.LayerNorm.
 */
export function layerNorm(x: Tensor, normalizedDims: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  if (normalizedDims < 1 || normalizedDims > x.ndim) throw new Error(`layerNorm: cannot normalise ${normalizedDims} trailing axes of ${shapeToString(x.shape)}`);
  const b = x.backend;
  const fused = rowsOf(x, normalizedDims, b.layerNorm && b.layerNormBackward);
  if (fused && (!weight || weight.dtype === x.dtype) && (!bias || bias.dtype === x.dtype)) {
    const { rows, n } = fused;
    const r = b.layerNorm!(x.storage, weight?.storage ?? null, bias?.storage ?? null, rows, n, eps);
    const stats = new Tensor(r.stats, [rows, 2]); // (mean, 1/std) per row, for the backward
    const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
    return record('layerNorm', inputs, new Tensor(r.out, x.shape), (g) => {
      const d = b.layerNormBackward!(g.storage, x.storage, weight?.storage ?? null, stats.storage, rows, n);
      const dweight = new Tensor(d.dweight, weight ? weight.shape : [n]), dbias = new Tensor(d.dbias, bias ? bias.shape : [n]);
      return [new Tensor(d.dx, x.shape), ...(weight ? [dweight] : []), ...(bias ? [dbias] : [])];
    });
  }
  const axes = Array.from({ length: normalizedDims }, (_, i) => x.ndim - normalizedDims + i);
  const mu = mean(x, axes, true);
  const centred = sub(x, mu);
  const variance = mean(mul(centred, centred), axes, true);
  let y = div(centred, sqrt(add(variance, eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/**
 * Inverted dropout: in training, zero each element with probability p and scale the survivors by
 * 1/(1-p), so the expected value is unchanged and evaluation needs no rescaling. Identity in eval.
 */
export function dropout(x: Tensor, p: number, training: boolean, generator: Generator = defaultGenerator): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const draws = rand(x.shape, { dtype: x.dtype, backend: x.backend, generator });
  const keepMask = lt(draws, 1 - p);
  const scaledMask = mul(keepMask, 1 / (1 - p));
  // only the scaled mask is read by the backward (d(x m)/dx = m): the draws and the 0/1 mask are
  // freed now, not when the caller's scope (a training step's tidy) ends
  draws.dispose();
  keepMask.dispose();
  return mul(x, scaledMask);
}

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(x: Tensor, reduction: Reduction): Tensor {
  return reduction === 'mean' ? mean(x) : reduction === 'sum' ? sum(x) : x;
}

function checkSame(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.join() !== b.shape.join()) throw new Error(`${op}: prediction ${shapeToString(a.shape)} and target ${shapeToString(b.shape)} must have the same shape`);
}

/** mean |pred - target| */
export function l1Loss(pred: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  checkSame('l1Loss', pred, target);
  return reduce(abs(sub(pred, target)), reduction);
}

/** mean (pred - target)^2 */
export function mseLoss(pred: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  checkSame('mseLoss', pred, target);
  const d = sub(pred, target);
  return reduce(mul(d, d), reduction);
}

/**
 * Smooth L1 (Huber divided by beta), the official MoFME training loss:
 * 0.5 d^2 / beta where |d| < beta, |d| - 0.5 beta elsewhere. Quadratic near 0 (smooth gradient),
 * linear far away (robust to outliers).
 */
export function smoothL1Loss(pred: Tensor, target: Tensor, beta = 1, reduction: Reduction = 'mean'): Tensor {
  checkSame('smoothL1Loss', pred, target);
  const b = pred.backend;
  if (beta > 0 && b.smoothL1 && b.smoothL1Backward && pred.dtype === target.dtype) {
    // one kernel each way instead of sub, abs, lt, mul, div, where (Backend.smoothL1)
    const loss = new Tensor(b.smoothL1(pred.storage, target.storage, beta), pred.shape);
    return reduce(record('smoothL1Loss', [pred, target], loss, (g, _y, needs) => {
      const dpred = new Tensor(b.smoothL1Backward!(pred.storage, target.storage, g.storage, beta), pred.shape);
      return [dpred, needs[1] ? mul(dpred, -1) : null];
    }), reduction);
  }
  const d = sub(pred, target);
  const ad = abs(d);
  if (beta === 0) return reduce(ad, reduction);
  return reduce(where(lt(ad, beta), div(mul(mul(d, d), 0.5), beta), sub(ad, 0.5 * beta)), reduction);
}

/**
 * Minus the PSNR of each image, averaged over the batch: mean_i 10·log10(MSE_i + floor), where MSE_i
 * is taken over every axis but the first. Restoration reports the mean PSNR over images, and this is
 * that metric (for pixels in [0, 1]) as a loss. Its gradient weighs each image by 1 / (MSE_i + floor):
 * an image already close to its target (light rain, raindrops, a clean photo) counts as much as a
 * thick haze, where a pixel loss over the batch lets the largest errors dominate. The floor caps the
 * PSNR one image can reach (1e-3: 30 dB) so near-perfect images cannot take over the gradient
 * either: with 1e-5 (50 dB) and clean samples in the batch, a fine-tuning run collapsed to the
 * identity (docs/recipe.md).
 */
export function psnrLoss(pred: Tensor, target: Tensor, floor = 1e-3): Tensor {
  checkSame('psnrLoss', pred, target);
  if (pred.ndim < 2) throw new Error(`psnrLoss: expected a batch [N, ...], got ${shapeToString(pred.shape)}`);
  const d = sub(pred, target);
  const perImage = mean(mul(d, d), Array.from({ length: pred.ndim - 1 }, (_, i) => i + 1));
  return mul(mean(log(add(perImage, floor))), 10 / Math.LN10);
}

/** Cross-entropy of logits [N, C] against integer class labels [N]. */
export function crossEntropy(logits: Tensor, labels: Tensor, reduction: Reduction = 'mean'): Tensor {
  if (logits.ndim !== 2 || labels.ndim !== 1 || labels.shape[0] !== logits.shape[0]) {
    throw new Error(`crossEntropy: expected logits [N, C] and labels [N], got ${shapeToString(logits.shape)} and ${shapeToString(labels.shape)}`);
  }
  const logp = logSoftmax(logits, 1);
  const picked = gather(logp, 1, reshape(labels, [labels.shape[0]!, 1]));
  return reduce(mul(reshape(picked, [labels.shape[0]!]), -1), reduction);
}
