/**
 * Making tensors: from nested arrays or typed arrays, constants, ranges, and seeded random values.
 *
 * Every creation function takes an optional `{ dtype, backend, requiresGrad }`; the defaults are
 * float32 on the default backend (see device.ts). Random values are drawn on the host from a
 * seeded `Generator` and uploaded, so a seed gives the same numbers on every backend.
 */
import type { Backend, DType, Shape, TypedArray } from '../backend/backend';
import { Tensor, type NestedArray } from '../tensor';
import { getDefaultBackend } from '../device';
import { sizeOf, shapeToString } from '../shape';
import { defaultGenerator, type Generator } from '../random';

export interface TensorOptions {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

function make(values: TypedArray, shape: Shape, options: TensorOptions): Tensor {
  const backend = options.backend ?? getDefaultBackend();
  const dtype = options.dtype ?? 'float32';
  if (!backend.supports(dtype)) throw new Error(`backend '${backend.name}' does not support ${dtype}`);
  const typed = dtype === 'float64' ? (values instanceof Float64Array ? values : Float64Array.from(values)) : values instanceof Float32Array ? values : Float32Array.from(values);
  return new Tensor(backend.upload(typed), shape, options.requiresGrad ?? false);
}

function inferShape(value: NestedArray): number[] {
  const shape: number[] = [];
  let v: NestedArray = value;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0] as NestedArray;
    if (v === undefined) break;
  }
  return shape;
}

/**
 * A tensor from nested arrays (`tensor([[1, 2], [3, 4]])`) or a typed array with an explicit shape
 * (`tensor(new Float32Array(6), { shape: [2, 3] })`). Ragged nesting is an error.
 */
export function tensor(values: NestedArray | TypedArray | number[], options: TensorOptions & { shape?: Shape } = {}): Tensor {
  if (ArrayBuffer.isView(values)) {
    const shape = options.shape ?? [values.length];
    if (sizeOf(shape) !== values.length) throw new Error(`tensor: shape ${shapeToString(shape)} needs ${sizeOf(shape)} values, got ${values.length}`);
    const dtype = options.dtype ?? (values instanceof Float64Array ? 'float64' : 'float32');
    return make(values as TypedArray, shape, { ...options, dtype });
  }
  const shape = inferShape(values);
  const flat: number[] = [];
  const visit = (v: NestedArray, axis: number, path: string): void => {
    if (axis === shape.length) {
      if (typeof v !== 'number') throw new Error(`tensor: expected a number at ${path || 'the top'}, got ${Array.isArray(v) ? 'an array' : typeof v}`);
      flat.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[axis]) {
      throw new Error(`tensor: ragged nested array: ${path || 'the top'} has ${Array.isArray(v) ? v.length : 'no'} entries where ${shape[axis]} were expected`);
    }
    v.forEach((x, i) => visit(x, axis + 1, `${path}[${i}]`));
  };
  visit(values, 0, '');
  const final = options.shape ?? shape;
  if (sizeOf(final) !== flat.length) throw new Error(`tensor: shape ${shapeToString(final)} needs ${sizeOf(final)} values, got ${flat.length}`);
  return make(Float64Array.from(flat), final, options);
}

/** A 0-d tensor holding one number. */
export function scalar(value: number, options: TensorOptions = {}): Tensor {
  return make(Float64Array.of(value), [], options);
}

export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  const backend = options.backend ?? getDefaultBackend();
  const dtype = options.dtype ?? 'float32';
  if (shape.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`full: invalid shape ${shapeToString(shape)}`);
  return new Tensor(backend.fill(sizeOf(shape), value, dtype), shape, options.requiresGrad ?? false);
}

export const zeros = (shape: Shape, options: TensorOptions = {}): Tensor => full(shape, 0, options);
export const ones = (shape: Shape, options: TensorOptions = {}): Tensor => full(shape, 1, options);

const like = (t: Tensor, options: TensorOptions): TensorOptions => ({ dtype: t.dtype, backend: t.backend, ...options });
export const zerosLike = (t: Tensor, options: TensorOptions = {}): Tensor => full(t.shape, 0, like(t, options));
export const onesLike = (t: Tensor, options: TensorOptions = {}): Tensor => full(t.shape, 1, like(t, options));
export const fullLike = (t: Tensor, value: number, options: TensorOptions = {}): Tensor => full(t.shape, value, like(t, options));

/** start, start+step, ... up to but excluding end (like numpy.arange). */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  return make(Float64Array.from({ length: n }, (_, i) => start + i * step), [n], options);
}

/** The n x m identity matrix. */
export function eye(n: number, m = n, options: TensorOptions = {}): Tensor {
  const values = new Float64Array(n * m);
  for (let i = 0; i < Math.min(n, m); i++) values[i * m + i] = 1;
  return make(values, [n, m], options);
}

/** Uniform in [low, high). */
export function uniform(shape: Shape, low = 0, high = 1, options: RandomOptions = {}): Tensor {
  const g = options.generator ?? defaultGenerator;
  return make(Float64Array.from({ length: sizeOf(shape) }, () => g.uniform(low, high)), shape, options);
}

/** Uniform in [0, 1). */
export const rand = (shape: Shape, options: RandomOptions = {}): Tensor => uniform(shape, 0, 1, options);

/** Normal with mean 0 and standard deviation 1 (or the given mean and std). */
export function randn(shape: Shape, options: RandomOptions & { mean?: number; std?: number } = {}): Tensor {
  const g = options.generator ?? defaultGenerator;
  return make(Float64Array.from({ length: sizeOf(shape) }, () => g.normal(options.mean ?? 0, options.std ?? 1)), shape, options);
}
