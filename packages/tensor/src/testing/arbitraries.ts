/**
 * fast-check arbitraries for numeric property tests: shapes, broadcastable shape pairs, and
 * bounded tensor values that stay away from an op's kinks.
 *
 * They generate plain data (`{ shape, values }`), not tensors, so one sample can be turned into
 * tensors on any backend and dtype (`toTensor`). Values are finite and bounded: properties about
 * gradients are about smooth regions, and a finite difference across a kink (relu at 0, |x| at 0,
 * a tie in max) measures an average of two slopes, not a derivative.
 */
import fc from 'fast-check';
import type { Backend, DType, Shape } from '../backend/backend';
import { tensor } from '../ops/creation';
import type { Tensor } from '../tensor';

export interface TensorData {
  shape: number[];
  values: number[];
}

export interface ShapeOptions {
  minRank?: number;
  maxRank?: number;
  /** largest size of one axis */
  maxSide?: number;
  /** allow axes of size 0 */
  allowEmpty?: boolean;
}

/** A shape of rank minRank..maxRank with sides 1..maxSide (0 too when allowEmpty). */
export function shapeArb(options: ShapeOptions = {}): fc.Arbitrary<number[]> {
  const { minRank = 0, maxRank = 4, maxSide = 4, allowEmpty = false } = options;
  return fc.array(fc.integer({ min: allowEmpty ? 0 : 1, max: maxSide }), { minLength: minRank, maxLength: maxRank });
}

/**
 * Two shapes that broadcast together: start from one shape, then for the other drop some leading
 * axes and set some remaining sides to 1 (and randomly swap which is which).
 */
export function broadcastPairArb(options: ShapeOptions = {}): fc.Arbitrary<[number[], number[]]> {
  return shapeArb(options).chain((full) =>
    fc.tuple(
      fc.integer({ min: 0, max: full.length }),
      fc.array(fc.boolean(), { minLength: full.length, maxLength: full.length }),
      fc.boolean(),
    ).map(([drop, ones, swap]) => {
      const other = full.slice(drop).map((s, i) => (ones[i + drop] ? 1 : s));
      return (swap ? [other, full] : [full, other]) as [number[], number[]];
    }),
  );
}

export interface ValueOptions {
  min?: number;
  max?: number;
  /** keep every value at least `margin` away from these points (an op's kinks) */
  awayFrom?: number[];
  margin?: number;
  /** all values pairwise distinct, at least (max - min) / size apart (no ties for max/min/sort) */
  distinct?: boolean;
}

/** Values for a tensor of `shape`, bounded and away from kinks. */
export function valuesArb(shape: Shape, options: ValueOptions = {}): fc.Arbitrary<TensorData> {
  const { min = -2, max = 2, awayFrom = [], margin = 1e-2, distinct = false } = options;
  const n = shape.reduce((a, b) => a * b, 1);
  const value = fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).map((x) => {
    // push a value that landed too close to a kink out of the margin, staying inside [min, max]
    for (const k of awayFrom) if (Math.abs(x - k) < margin) x = x >= k ? Math.min(max, k + margin) : Math.max(min, k - margin);
    return x === 0 ? 0 : x; // no -0
  });
  let values = fc.array(value, { minLength: n, maxLength: n });
  if (distinct) {
    // keep only the order of the drawn values and space them evenly over [min, max]: every pair is
    // then (max - min) / n apart (filtering for distinct draws would reject almost every sample)
    values = values.map((vs) => {
      const order = vs.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const out = new Array<number>(vs.length);
      order.forEach(([, i], rank) => { out[i] = min + ((rank + 0.5) * (max - min)) / vs.length; });
      return out;
    });
  }
  return values.map((vs) => ({ shape: [...shape], values: vs }));
}

/** A bounded tensor of a random shape. */
export function tensorArb(shapeOptions: ShapeOptions = {}, valueOptions: ValueOptions = {}): fc.Arbitrary<TensorData> {
  return shapeArb(shapeOptions).chain((s) => valuesArb(s, valueOptions));
}

/** Turn generated data into a tensor on a backend and dtype. */
export function toTensor(data: TensorData, options: { dtype?: DType; backend?: Backend; requiresGrad?: boolean } = {}): Tensor {
  return tensor(Float64Array.from(data.values), { shape: data.shape, dtype: options.dtype ?? 'float64', ...(options.backend ? { backend: options.backend } : {}), requiresGrad: options.requiresGrad ?? false });
}

/** Number of runs per property: FC_NUM_RUNS in the environment, else the given default. */
export function numRuns(fallback = 30): number {
  const env = Number(globalThis.process?.env?.FC_NUM_RUNS);
  return Number.isFinite(env) && env > 0 ? env : fallback;
}
