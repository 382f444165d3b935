/**
 * Movement ops: they rearrange, select or copy elements without arithmetic.
 *
 * Their backwards are the inverse rearrangement: permute undoes itself with the inverse
 * permutation, slice's adjoint is padding with zeros, gather's is scatter-add, and so on.
 * Tensors are always contiguous; reshape shares storage (free), the others copy through the
 * backend's `strided`, `pad`, `gather` and `scatterAdd` primitives.
 */
import { Tensor } from '../tensor';
import { normalizeAxes, normalizeAxis, resolveReshape, sameShape, shapeToString, sizeOf, stridesOf, broadcastShapes } from '../shape';
import { record } from './record';
import { binaryKernel } from './elementwise';
import { traceAttrs, traceOp } from '../trace';

/** Same data, new shape (one axis may be -1). Free: the storage is shared. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = resolveReshape(x.shape, shape);
  if (sameShape(target, x.shape)) return x;
  return record('reshape', [x], new Tensor(x.storage, target), (g) => [reshape(g, x.shape)]);
}

/** Merge axes startAxis..endAxis into one. */
export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normalizeAxis('flatten', startAxis, x.ndim), e = normalizeAxis('flatten', endAxis, x.ndim);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normalizeAxis('unsqueeze', axis, x.ndim + 1);
  return reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
}

/** Drop size-1 axes (all of them, or the one given). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined) return reshape(x, x.shape.filter((s) => s !== 1));
  const a = normalizeAxis('squeeze', axis, x.ndim);
  if (x.shape[a] !== 1) return x;
  return reshape(x, [...x.shape.slice(0, a), ...x.shape.slice(a + 1)]);
}

/** Reorder axes: out axis d is input axis order[d].  Backward: the inverse permutation. */
export function permute(x: Tensor, order: readonly number[]): Tensor {
  const ord = order.map((a) => normalizeAxis('permute', a, x.ndim));
  if (ord.length !== x.ndim || new Set(ord).size !== ord.length) {
    throw new Error(`permute: [${order.join(', ')}] is not a permutation of the ${x.ndim} axes of ${shapeToString(x.shape)}`);
  }
  if (ord.every((a, i) => a === i)) return x;
  const inStrides = stridesOf(x.shape);
  const outShape = ord.map((a) => x.shape[a]!);
  const y = new Tensor(x.backend.strided(x.storage, outShape, ord.map((a) => inStrides[a]!), 0), outShape);
  const inverse = new Array<number>(ord.length);
  ord.forEach((a, i) => { inverse[a] = i; });
  traceAttrs('permute', { perm: ord }); // trace.ts: what the shapes do not tell
  return record('permute', [x], y, (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const a = normalizeAxis('transpose', axis0, x.ndim), b = normalizeAxis('transpose', axis1, x.ndim);
  const order = [...x.shape.keys()];
  [order[a], order[b]] = [order[b]!, order[a]!];
  return permute(x, order);
}

/**
 * Broadcast to a larger shape (size-1 axes repeat; new axes on the left; -1 keeps a size).
 * Backward: the sum over the repeated axes, which autograd's central reduction does.
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const target = shape.map((s, d) => (s === -1 ? x.shape[d - (shape.length - x.ndim)]! : s));
  const full = broadcastShapes('expand', x.shape, target);
  if (!sameShape(full, target)) throw new Error(`expand: cannot expand ${shapeToString(x.shape)} to ${shapeToString(shape)}`);
  if (sameShape(target, x.shape)) return x;
  const lead = target.length - x.ndim;
  const inStrides = stridesOf(x.shape);
  const strides = target.map((s, d) => (d < lead || x.shape[d - lead] === 1 ? 0 : inStrides[d - lead]!));
  return record('expand', [x], new Tensor(x.backend.strided(x.storage, target, strides, 0), target), (g) => [g]);
}

/** Sub-ranges per axis: ranges[d] = [start, end) or null for the whole axis. Backward: zero padding. */
export function slice(x: Tensor, ranges: readonly (readonly [number, number] | null)[]): Tensor {
  if (ranges.length > x.ndim) throw new Error(`slice: ${ranges.length} ranges for a tensor of rank ${x.ndim}`);
  const bounds = x.shape.map((s, d) => {
    const r = ranges[d];
    if (!r) return [0, s] as const;
    const start = r[0] < 0 ? r[0] + s : r[0], end = r[1] < 0 ? r[1] + s : r[1];
    if (start < 0 || end > s || start > end) throw new Error(`slice: range [${r[0]}, ${r[1]}) is out of bounds for axis ${d} of ${shapeToString(x.shape)}`);
    return [start, end] as const;
  });
  if (bounds.every(([a, b], d) => a === 0 && b === x.shape[d])) return x;
  const outShape = bounds.map(([a, b]) => b - a);
  const strides = stridesOf(x.shape);
  const offset = bounds.reduce((acc, [a], d) => acc + a * strides[d]!, 0);
  const y = new Tensor(x.backend.strided(x.storage, outShape, strides, offset), outShape);
  traceAttrs('slice', { starts: bounds.map(([a]) => a) });
  return record('slice', [x], y, (g) => [pad(g, bounds.map(([a, b], d) => [a, x.shape[d]! - b]))]);
}

/** `length` entries of `axis` from `start`. */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normalizeAxis('narrow', axis, x.ndim);
  const ranges: ([number, number] | null)[] = x.shape.map(() => null);
  ranges[a] = [start, start + length];
  return slice(x, ranges);
}

/** Constant padding: pads[d] = [before, after] for each leading axis d. Backward: the matching slice. */
export function pad(x: Tensor, pads: readonly (readonly [number, number])[], value = 0): Tensor {
  if (pads.length > x.ndim) throw new Error(`pad: ${pads.length} pad pairs for a tensor of rank ${x.ndim}`);
  const full = x.shape.map((_, d) => pads[d] ?? ([0, 0] as const));
  if (full.some(([a, b]) => a < 0 || b < 0 || !Number.isInteger(a) || !Number.isInteger(b))) throw new Error(`pad: pads must be non-negative integers, got ${JSON.stringify(pads)}`);
  const outShape = x.shape.map((s, d) => s + full[d]![0] + full[d]![1]);
  const y = new Tensor(x.backend.pad(x.storage, x.shape, full, value), outShape);
  traceAttrs('pad', { pads: full, value });
  return record('pad', [x], y, (g) => [slice(g, full.map(([a], d) => [a, a + x.shape[d]!]))]);
}

/** Reverse the order along `axes`. Backward: the same flip. */
export function flip(x: Tensor, axes: number | readonly number[]): Tensor {
  const ax = normalizeAxes('flip', axes, x.ndim);
  const strides = stridesOf(x.shape);
  // walk each flipped axis backwards: start at its last entry, step by minus its stride
  const offset = ax.reduce((acc, a) => acc + Math.max(0, x.shape[a]! - 1) * strides[a]!, 0);
  const y = new Tensor(x.backend.strided(x.storage, x.shape, strides.map((s, d) => (ax.includes(d) ? -s : s)), offset), x.shape);
  traceAttrs('flip', { axes: ax });
  return record('flip', [x], y, (g) => [flip(g, ax)]);
}

/**
 * Join tensors along an existing axis. Each input is zero-padded into its place and the pieces
 * are added (composed from primitives); the backward hands each input its slice of the gradient.
 */
export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new Error('concat: needs at least one tensor');
  const first = tensors[0]!;
  const a = normalizeAxis('concat', axis, first.ndim);
  for (const t of tensors) {
    if (t.ndim !== first.ndim || t.shape.some((s, d) => d !== a && s !== first.shape[d])) {
      throw new Error(`concat: shapes ${tensors.map((u) => shapeToString(u.shape)).join(', ')} differ outside axis ${axis}`);
    }
  }
  if (tensors.length === 1) return first;
  const total = tensors.reduce((n, t) => n + t.shape[a]!, 0);
  let offset = 0;
  let out: Tensor | null = null;
  const starts: number[] = [];
  for (const t of tensors) {
    starts.push(offset);
    const pads = t.shape.map((_, d) => (d === a ? [offset, total - offset - t.shape[a]!] : [0, 0]) as [number, number]);
    const placed = new Tensor(t.backend.pad(t.storage, t.shape, pads, 0), t.shape.map((s, d) => (d === a ? total : s)));
    out = out === null ? placed : binaryKernel('add', out, placed);
    offset += t.shape[a]!;
  }
  traceAttrs('concat', { axis: a });
  return record('concat', [...tensors], out!, (g) => tensors.map((t, i) => narrow(g, a, starts[i]!, t.shape[a]!)));
}

/** Join tensors of equal shape along a new axis. */
export function stack(tensors: readonly Tensor[], axis = 0): Tensor {
  return concat(tensors.map((t) => unsqueeze(t, axis)), axis);
}

/** Cut along `axis` into pieces of `sizes` (an array), or of equal size `sizes` (the last may be smaller). */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normalizeAxis('split', axis, x.ndim);
  const n = x.shape[a]!;
  const parts = typeof sizes === 'number' ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : [...sizes];
  if (parts.reduce((s, p) => s + p, 0) !== n) throw new Error(`split: sizes [${parts.join(', ')}] do not add up to ${n} (axis ${axis} of ${shapeToString(x.shape)})`);
  let start = 0;
  return parts.map((p) => { const t = narrow(x, a, start, p); start += p; return t; });
}

function checkIndex(op: string, x: Tensor, index: Tensor, axis: number): void {
  if (index.ndim !== x.ndim) throw new Error(`${op}: index of shape ${shapeToString(index.shape)} must have the rank of the input ${shapeToString(x.shape)}`);
  index.shape.forEach((s, d) => {
    if (d !== axis && s > x.shape[d]!) throw new Error(`${op}: index shape ${shapeToString(index.shape)} exceeds input shape ${shapeToString(x.shape)} on axis ${d}`);
  });
  if (index.backend !== x.backend) throw new Error(`${op}: index lives on backend '${index.backend.name}', input on '${x.backend.name}'`);
}

/** torch.gather: out[..i..] = x[.. index[..i..] along axis ..].  Backward: scatter-add into zeros. */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = normalizeAxis('gather', axis, x.ndim);
  checkIndex('gather', x, index, a);
  const idx = index.dtype === x.dtype ? index : cast(index, x.dtype);
  const y = new Tensor(x.backend.gather(x.storage, x.shape, a, idx.storage, idx.shape), idx.shape);
  traceAttrs('gather', { axis: a, index: idx }); // the index becomes the node's second input
  return record('gather', [x], y, (g) => [scatterAdd(x.shape, a, idx, g)]);
}

/** zeros(shape) with src added at the positions index names along axis.  Backward: gather. */
export function scatterAdd(shape: readonly number[], axis: number, index: Tensor, src: Tensor): Tensor {
  const a = normalizeAxis('scatterAdd', axis, shape.length);
  if (!sameShape(index.shape, src.shape)) throw new Error(`scatterAdd: index ${shapeToString(index.shape)} and src ${shapeToString(src.shape)} must have the same shape`);
  const idx = index.dtype === src.dtype ? index : cast(index, src.dtype);
  const y = new Tensor(src.backend.scatterAdd(src.storage, idx.storage, idx.shape, a, shape), shape);
  return record('scatterAdd', [src], y, (g) => [gather(g, a, idx)]);
}

/** Select whole slices along `axis` by a 1-d index (e.g. token rows routed to one expert). */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  const a = normalizeAxis('indexSelect', axis, x.ndim);
  if (index.ndim !== 1) throw new Error(`indexSelect: index must be 1-d, got ${shapeToString(index.shape)}`);
  const shape = x.shape.map((s, d) => (d === a ? index.shape[0]! : s));
  const view = x.shape.map((_, d) => (d === a ? index.shape[0]! : 1));
  return gather(x, a, expand(reshape(index, view), shape));
}

/** The k largest entries along `axis` (largest first) and their indices. Values are differentiable. */
export function topk(x: Tensor, k: number, axis = -1): { values: Tensor; indices: Tensor } {
  const a = normalizeAxis('topk', axis, x.ndim);
  const n = x.shape[a]!;
  if (!Number.isInteger(k) || k < 0 || k > n) throw new Error(`topk: k=${k} must be an integer in [0, ${n}] for axis ${axis} of ${shapeToString(x.shape)}`);
  const last = x.ndim - 1;
  const moved = a === last ? x : transpose(x, a, last);
  const indicesLast = new Tensor(x.backend.topkIndices(moved.storage, moved.shape, k), [...moved.shape.slice(0, -1), k]);
  traceOp('topk', [moved], indicesLast, { k }); // trace.ts: indices are not differentiable, so not recorded
  const values = gather(moved, last, indicesLast);
  if (a === last) return { values, indices: indicesLast };
  return { values: transpose(values, a, last), indices: transpose(indicesLast, a, last) };
}

/** The same data, outside the graph. */
export function detach(x: Tensor): Tensor {
  return traceOp('detach', [x], new Tensor(x.storage, x.shape)); // trace.ts: an identity in a traced graph
}

/** A copy with its own storage.  Backward: identity. */
export function clone(x: Tensor): Tensor {
  const y = new Tensor(x.backend.strided(x.storage, x.shape, stridesOf(x.shape), 0), x.shape);
  return record('clone', [x], y, (g) => [g]);
}

/** Convert to another dtype.  Backward: convert the gradient back. */
export function cast(x: Tensor, dtype: 'float32' | 'float64'): Tensor {
  if (x.dtype === dtype) return x;
  if (!x.backend.supports(dtype)) throw new Error(`cast: backend '${x.backend.name}' does not support ${dtype}`);
  return record('cast', [x], new Tensor(x.backend.cast(x.storage, dtype), x.shape), (g) => [cast(g, x.dtype)]);
}

/** Copy to another backend (and dtype).  Backward: copy the gradient back. */
export function toBackend(x: Tensor, backend: import('../backend/backend').Backend, dtype = x.dtype): Tensor {
  if (backend === x.backend) return cast(x, dtype);
  if (!backend.supports(dtype)) throw new Error(`to: backend '${backend.name}' does not support ${dtype}`);
  const host = x.backend.download(x.storage);
  const data = dtype === 'float64' ? Float64Array.from(host) : Float32Array.from(host);
  return record('to', [x], new Tensor(backend.upload(data), x.shape), (g) => [toBackend(g, x.backend, x.dtype)]);
}
