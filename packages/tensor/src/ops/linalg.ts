/**
 * Matrix multiplication, and the ops built on it: conv2d (im2col + matmul) and pooling.
 *
 * `bmm` is the one differentiable matmul primitive, on 3-d operands whose batch is either shared
 * or 1 (broadcast). Its backward uses the transposed-operand forms of the backend kernel, so no
 * transposed copy is ever made:  for C = A B,  dA = dC B^T  and  dB = A^T dC.
 *
 * Convolution has two routes. Where the backend has a direct convolution kernel (`Backend.conv2d`,
 * e.g. the WebAssembly SIMD one of the fast CPU backend) the op calls it, and its backward calls
 * the matching input- and filter-gradient kernels. Otherwise (the kernel is absent or returns null
 * for this geometry or dtype) convolution is composed: `im2col` copies every receptive field into a
 * column, after which the convolution is one matrix product with the weight matrix, and its
 * backward comes for free from matmul's and im2col's (whose adjoint, col2im, adds each column entry
 * back to its pixel). Both routes compute the same sums (the conformance suite checks it).
 */
import type { ConvSpec, WindowSpec } from '../backend/backend';
import { Tensor } from '../tensor';
import { broadcastShapes, shapeToString, sizeOf } from '../shape';
import { record } from './record';
import { add } from './elementwise';
import { expand, reshape, squeeze, unsqueeze } from './movement';
import { max, mean, sum } from './reduce';
import { traceAttrs } from '../trace';

/** op(A) op(B) for A [batchA, m, k] (or [batchA, k, m] if transA) and B [batchB, k, n] (or [batchB, n, k]). */
export function bmm(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  const [batchA, ra, ca] = a.shape as [number, number, number];
  const [batchB, rb, cb] = b.shape as [number, number, number];
  const [m, k] = transA ? [ca, ra] : [ra, ca];
  const [k2, n] = transB ? [cb, rb] : [rb, cb];
  if (k !== k2 || (batchA !== batchB && batchA !== 1 && batchB !== 1)) {
    throw new Error(`matmul: shapes ${shapeToString(a.shape)}${transA ? 'ᵀ' : ''} and ${shapeToString(b.shape)}${transB ? 'ᵀ' : ''} do not match (inner sizes ${k} and ${k2})`);
  }
  if (a.dtype !== b.dtype) throw new Error(`matmul: dtype mismatch ${a.dtype} vs ${b.dtype}`);
  const batch = Math.max(batchA, batchB);
  const spec = { batch, m, k, n, batchA, batchB, transA, transB };
  const y = new Tensor(a.backend.matmul(a.storage, b.storage, spec), [batch, m, n]);
  traceAttrs('matmul', { transA, transB }); // trace.ts: what the shapes do not tell
  return record('matmul', [a, b], y, (g, _y, needs) => [
    // dop(A) = dC op(B)^T; stored transposed when transA:  dA = op(B) dC^T
    needs[0] ? (transA ? bmm(b, g, transB, true) : bmm(g, b, false, !transB)) : null,
    // dop(B) = op(A)^T dC; stored transposed when transB:  dB = dC^T op(A)
    needs[1] ? (transB ? bmm(g, a, true, transA) : bmm(a, g, !transA, false)) : null,
  ]);
}

/**
 * Matrix product with NumPy semantics: 1-d operands are vectors, leading (batch) axes broadcast.
 * A 2-d right operand (a weight matrix) folds the left operand's batch axes into its rows, so
 * x [B, T, D] @ W [D, E] is one [B*T, D] x [D, E] product.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: operands must be at least 1-d, got ${shapeToString(a.shape)} and ${shapeToString(b.shape)}`);
  if (a.ndim === 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.ndim === 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2) throw new Error(`matmul: shapes ${shapeToString(a.shape)} and ${shapeToString(b.shape)} do not match (inner sizes ${k} and ${k2})`);
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  if (b.ndim === 2) {
    const y = bmm(reshape(a, [1, sizeOf(batchA) * m, k]), reshape(b, [1, k, n]));
    return reshape(y, [...batchA, m, n]);
  }
  const batch = broadcastShapes('matmul', batchA, batchB);
  const B = sizeOf(batch);
  const as3 = (t: Tensor, tb: readonly number[], r: number, c: number): Tensor =>
    sizeOf(tb) === 1 ? reshape(t, [1, r, c]) : reshape(sizeOf(tb) === B ? t : expand(t, [...batch, r, c]), [B, r, c]);
  const y = bmm(as3(a, batchA, m, k), as3(b, batchB, k, n));
  return reshape(y, [...batch, m, n]);
}

/** im2col as a differentiable op: [B, C, H, W] -> [B, C*kh*kw, outH*outW].  Backward: col2im. */
export function im2col(x: Tensor, spec: WindowSpec): Tensor {
  const cols = new Tensor(x.backend.im2col(x.storage, spec), [spec.batch, spec.channels * spec.kh * spec.kw, spec.outH * spec.outW]);
  traceAttrs('im2col', { spec });
  return record('im2col', [x], cols, (g) => [new Tensor(x.backend.col2im(g.storage, spec), x.shape)]);
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

const pair = (v: number | [number, number] | undefined, d: number): [number, number] => (v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v);

export function windowSpec(op: string, x: Tensor, kh: number, kw: number, o: Conv2dOptions, padValue: number): WindowSpec {
  if (x.ndim !== 4) throw new Error(`${op}: expected input [batch, channels, height, width], got ${shapeToString(x.shape)}`);
  const [batch, channels, height, width] = x.shape as [number, number, number, number];
  const [strideH, strideW] = pair(o.stride, 1), [padH, padW] = pair(o.padding, 0), [dilationH, dilationW] = pair(o.dilation, 1);
  const outH = Math.floor((height + 2 * padH - dilationH * (kh - 1) - 1) / strideH) + 1;
  const outW = Math.floor((width + 2 * padW - dilationW * (kw - 1) - 1) / strideW) + 1;
  if (outH <= 0 || outW <= 0) throw new Error(`${op}: input ${shapeToString(x.shape)} is too small for a ${kh}x${kw} window (padding ${padH},${padW}, dilation ${dilationH},${dilationW})`);
  return { batch, channels, height, width, kh, kw, strideH, strideW, padH, padW, dilationH, dilationW, outH, outW, padValue };
}

/**
 * 2-d convolution (cross-correlation, as in every deep learning library), NCHW.
 * x [B, C, H, W], weight [O, C/groups, kh, kw], bias [O] -> [B, O, outH, outW].
 * With groups g, input and output channels are split into g independent convolutions.
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  if (weight.ndim !== 4) throw new Error(`conv2d: weight must be [out, in/groups, kh, kw], got ${shapeToString(weight.shape)}`);
  const [O, Cg, kh, kw] = weight.shape as [number, number, number, number];
  const groups = options.groups ?? 1;
  const spec = windowSpec('conv2d', x, kh, kw, options, 0);
  traceAttrs('conv2d', { spec, groups }); // read by the direct route's record (the im2col route records its own)
  if (spec.channels !== Cg * groups || O % groups !== 0) {
    throw new Error(`conv2d: input ${shapeToString(x.shape)} has ${spec.channels} channels but weight ${shapeToString(weight.shape)} with groups=${groups} expects ${Cg * groups} (and out channels divisible by groups)`);
  }
  const direct = directConv2d(x, weight, bias, { ...spec, outChannels: O, groups });
  if (direct) return direct;
  const L = spec.outH * spec.outW;
  const cols = im2col(x, spec); // [B, C*kh*kw, L]
  let y: Tensor;
  if (groups === 1) {
    y = bmm(reshape(weight, [1, O, Cg * kh * kw]), cols); // [B, O, L]
  } else {
    // [B*g, Cg*kh*kw, L] against per-group weights [g, O/g, Cg*kh*kw], batched over (B, g)
    const colsG = reshape(cols, [spec.batch * groups, Cg * kh * kw, L]);
    const wG = reshape(expand(reshape(weight, [1, groups, O / groups, Cg * kh * kw]), [spec.batch, groups, O / groups, Cg * kh * kw]), [spec.batch * groups, O / groups, Cg * kh * kw]);
    y = bmm(wG, colsG);
  }
  let out = reshape(y, [spec.batch, O, spec.outH, spec.outW]);
  if (bias) out = add(out, reshape(bias, [1, O, 1, 1]));
  return out;
}

/**
 * conv2d through the backend's direct kernels, or null where the backend has none for this case.
 * Backward: dx from `conv2dBackwardInput`, dW from `conv2dBackwardFilter` (each falling back to
 * col2im / im2col + matmul when the kernel declines), d(bias) = dy summed over batch and pixels.
 */
function directConv2d(x: Tensor, weight: Tensor, bias: Tensor | null, spec: ConvSpec): Tensor | null {
  const backend = x.backend;
  if (x.dtype !== weight.dtype || (bias && bias.dtype !== x.dtype)) return null;
  const storage = backend.conv2d?.(x.storage, weight.storage, bias?.storage ?? null, spec) ?? null;
  if (!storage) return null;
  const y = new Tensor(storage, [spec.batch, spec.outChannels, spec.outH, spec.outW]);
  const { batch: B, groups: G, outChannels: O } = spec;
  const K = (spec.channels / G) * spec.kh * spec.kw, L = spec.outH * spec.outW, Og = O / G;
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('conv2d', inputs, y, (g, _y, needs) => {
    const perGroup = (t: Tensor, rows: number): Tensor => reshape(t, [B * G, rows, L]); // [B, G*rows, L] -> [B*G, rows, L]
    const weightPerItem = (): Tensor => reshape(expand(reshape(weight, [1, G, Og, K]), [B, G, Og, K]), [B * G, Og, K]);
    let dx: Tensor | null = null, dw: Tensor | null = null;
    if (needs[0]) {
      const s = backend.conv2dBackwardInput?.(g.storage, weight.storage, spec) ?? null;
      // fallback: columns = W^T dy per (item, group), then each column entry back to its pixel
      dx = s ? new Tensor(s, x.shape) : new Tensor(backend.col2im(reshape(bmm(weightPerItem(), perGroup(g, Og), true, false), [B, G * K, L]).storage, spec), x.shape);
    }
    if (needs[1]) {
      const s = backend.conv2dBackwardFilter?.(g.storage, x.storage, spec) ?? null;
      // fallback: dW = sum over items of dy (im2col x)^T, per group
      dw = s ? new Tensor(s, weight.shape) : reshape(sum(reshape(bmm(perGroup(g, Og), perGroup(im2col(x, spec), K), false, true), [B, G, Og, K]), 0), weight.shape);
    }
    // d(bias): pixels first, then batch (two contiguous reductions, each a fast unit-stride loop)
    return [dx, dw, needs[2] ? sum(sum(g, [2, 3]), 0) : null];
  });
}

export interface PoolOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
}

/** Average over each window (padding counts as zeros, PyTorch's count_include_pad default). */
export function avgPool2d(x: Tensor, kernel: number | [number, number], options: PoolOptions = {}): Tensor {
  const [kh, kw] = pair(kernel, 1);
  const spec = windowSpec('avgPool2d', x, kh, kw, { stride: options.stride ?? [kh, kw], padding: options.padding ?? 0 }, 0);
  const cols = reshape(im2col(x, spec), [spec.batch, spec.channels, kh * kw, spec.outH * spec.outW]);
  return reshape(mean(cols, 2), [spec.batch, spec.channels, spec.outH, spec.outW]);
}

/** Maximum over each window (padding never wins: it reads -Infinity). */
export function maxPool2d(x: Tensor, kernel: number | [number, number], options: PoolOptions = {}): Tensor {
  const [kh, kw] = pair(kernel, 1);
  const spec = windowSpec('maxPool2d', x, kh, kw, { stride: options.stride ?? [kh, kw], padding: options.padding ?? 0 }, -Infinity);
  const cols = reshape(im2col(x, spec), [spec.batch, spec.channels, kh * kw, spec.outH * spec.outW]);
  return reshape(max(cols, 2), [spec.batch, spec.channels, spec.outH, spec.outW]);
}
