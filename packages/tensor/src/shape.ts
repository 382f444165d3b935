/**
 * Pure shape arithmetic: broadcasting, axis normalisation, reduction shapes.
 *
 * Nothing here touches data. These helpers are shared by the ops (to compute output shapes and
 * to validate arguments) and by autograd (to sum a broadcast gradient back to its input's shape).
 */
import type { Shape } from './backend/backend';
export { sizeOf, stridesOf } from './backend/backend';

export function shapeToString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/**
 * NumPy broadcasting: align shapes on the right; each pair of sizes must be equal or one of
 * them 1, and the result takes the larger. Throws naming the op and both shapes otherwise.
 */
export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const shape of shapes) {
    for (let i = 0; i < shape.length; i++) {
      const d = rank - shape.length + i;
      const s = shape[i]!;
      if (s === out[d] || s === 1) continue;
      if (out[d] === 1) out[d] = s;
      else throw new Error(`${op}: shapes ${shapes.map(shapeToString).join(' and ')} cannot be broadcast together (axis ${d - rank}: ${out[d]} vs ${s})`);
    }
  }
  return out;
}

/** Left-pad a shape with 1s to the given rank (the broadcasting alignment). */
export function padShape(shape: Shape, rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

/** Turn a possibly negative axis into 0..rank-1, or throw naming the op. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(axis) || a < 0 || a >= rank) {
    throw new Error(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/** Normalise an axes argument (undefined = all axes) to sorted, unique, non-negative axes. */
export function normalizeAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normalizeAxis(op, a, rank)))].sort((x, y) => x - y);
  if (out.length !== list.length) throw new Error(`${op}: repeated axis in [${list.join(', ')}]`);
  return out;
}

/** The shape after reducing `axes`, keeping them as size 1 (keepdim) or dropping them. */
export function reducedShape(shape: Shape, axes: readonly number[], keepdim: boolean): number[] {
  const out: number[] = [];
  shape.forEach((s, d) => {
    if (!axes.includes(d)) out.push(s);
    else if (keepdim) out.push(1);
  });
  return out;
}

/** Resolve one -1 in a reshape target, checking the element count. */
export function resolveReshape(from: Shape, to: readonly number[]): number[] {
  const size = from.reduce((a, b) => a * b, 1);
  const unknown = to.indexOf(-1);
  if (to.filter((s) => s === -1).length > 1) throw new Error(`reshape: at most one -1 allowed in ${shapeToString(to)}`);
  const known = to.reduce((a, s) => (s === -1 ? a : a * s), 1);
  const out = [...to];
  if (unknown >= 0) {
    if (known === 0 || size % known !== 0) throw new Error(`reshape: cannot reshape ${shapeToString(from)} (${size} elements) into ${shapeToString(to)}`);
    out[unknown] = size / known;
  }
  if (out.some((s) => !Number.isInteger(s) || s < 0) || out.reduce((a, b) => a * b, 1) !== size) {
    throw new Error(`reshape: cannot reshape ${shapeToString(from)} (${size} elements) into ${shapeToString(to)}`);
  }
  return out;
}
