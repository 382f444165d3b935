/**
 * toString for tensors, in the style of PyTorch's repr: values with a shared precision, long axes
 * abbreviated with "...", and the shape, dtype and grad function on the last line.
 */
import type { Tensor } from '../tensor';

const EDGE = 3; // entries shown at each end of an abbreviated axis
const LIMIT = 1000; // tensors with more elements are abbreviated

export function formatTensor(t: Tensor): string {
  if (t.disposed) return `tensor(<disposed>, shape=[${t.shape.join(', ')}])`;
  const values = t.data();
  const abbreviate = values.length > LIMIT;
  const integral = values.every((v) => Number.isInteger(v));
  const fmt = (v: number): string => (Number.isNaN(v) ? 'nan' : !Number.isFinite(v) ? (v > 0 ? 'inf' : '-inf') : integral ? `${v}.` : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(4) : v.toFixed(4));
  const strides = t.shape.map((_, d) => t.shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const render = (axis: number, offset: number, indent: string): string => {
    if (axis === t.ndim) return fmt(values[offset]!);
    const n = t.shape[axis]!;
    const idx = abbreviate && n > 2 * EDGE ? [...Array(EDGE).keys(), -1, ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)] : [...Array(n).keys()];
    const parts = idx.map((i) => (i === -1 ? '...' : render(axis + 1, offset + i * strides[axis]!, indent + ' ')));
    const sep = axis === t.ndim - 1 ? ', ' : `,${'\n'.repeat(t.ndim - axis - 1)}${indent} `;
    return `[${parts.join(sep)}]`;
  };
  const extras = [`shape=[${t.shape.join(', ')}]`, `dtype=${t.dtype}`];
  if (t.backend.name !== 'cpu') extras.push(`backend=${t.backend.name}`);
  if (t.node) extras.push(`grad_fn=${t.node.op}`);
  else if (t.requiresGrad) extras.push('requiresGrad=true');
  return `tensor(${render(0, 0, '       ')}, ${extras.join(', ')})`;
}
