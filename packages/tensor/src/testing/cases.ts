/**
 * The op table: every differentiable op with a generator of valid inputs.
 *
 * One table serves two suites:
 *  - the gradient properties (test/gradcheck.test.ts): for random inputs drawn from each case,
 *    autodiff must agree with central finite differences in float64 on the CPU;
 *  - the backend conformance suite (conformance.ts): each case's forward and gradients on a
 *    backend must match the float64 CPU reference within the backend's tolerance.
 * Input generators keep values in each op's smooth domain (log and sqrt of positives, no ties for
 * max, no values at relu's kink, ...): see arbitraries.ts for why.
 */
import fc from 'fast-check';
import type { Tensor } from '../tensor';
import * as ops from '../ops';
import { Generator } from '../random';
import { broadcastPairArb, shapeArb, valuesArb, type ShapeOptions, type TensorData, type ValueOptions } from './arbitraries';

export interface OpCase {
  name: string;
  inputs: fc.Arbitrary<TensorData[]>;
  fn: (...xs: Tensor[]) => Tensor;
  /** inputs that are differentiable (default: all) */
  grad?: boolean[];
  /** extra tolerance factor for float32 backends on ops that amplify rounding */
  tolerance?: number;
}

const elementwiseShapes: ShapeOptions = { minRank: 0, maxRank: 4, maxSide: 3 };

function unary(name: string, fn: (x: Tensor) => Tensor, values: ValueOptions = {}): OpCase {
  return { name, fn, inputs: shapeArb(elementwiseShapes).chain((s) => valuesArb(s, values)).map((x) => [x]) };
}

function binary(name: string, fn: (a: Tensor, b: Tensor) => Tensor, a: ValueOptions = {}, b: ValueOptions = a): OpCase {
  return {
    name,
    fn,
    inputs: broadcastPairArb(elementwiseShapes).chain(([sa, sb]) => fc.tuple(valuesArb(sa, a), valuesArb(sb, b))),
  };
}

/**
 * A binary op with a kink where a == b (maximum, minimum): a on the grid 0.1 k + 0.05, b on the
 * grid 0.1 k, so every pair differs by at least 0.05 whatever the broadcasting pairs up.
 */
function separated(name: string, fn: (a: Tensor, b: Tensor) => Tensor): OpCase {
  const grid = (offset: number) => (d: TensorData): TensorData => ({ shape: d.shape, values: d.values.map((v) => Math.round(v * 10) / 10 + offset) });
  return { ...binary(name, fn), inputs: binary(name, fn).inputs.map(([a, b]) => [grid(0.05)(a!), grid(0)(b!)]) };
}

/** one input of a shape drawn with `shape`, values drawn with `values` */
function withShape(shape: ShapeOptions, values: ValueOptions = {}): fc.Arbitrary<TensorData> {
  return shapeArb(shape).chain((s) => valuesArb(s, values));
}

function reduction(name: string, op: (x: Tensor, axes: number[] | undefined, keepdim: boolean) => Tensor, values: ValueOptions = {}): OpCase[] {
  // the axes are part of the case: enumerate a few fixed choices so inputs stay plain data
  const choices: [string, number[] | undefined, boolean, number][] = [
    ['all', undefined, false, 1], ['axis0', [0], false, 1], ['last,keepdim', [-1], true, 1], ['0,2', [0, 2], false, 3], ['1,2 keepdim', [1, 2], true, 3],
  ];
  return choices.map(([label, axes, keepdim, minRank]) => ({
    name: `${name}(${label})`,
    fn: (x: Tensor) => op(x, axes, keepdim),
    inputs: withShape({ minRank, maxRank: 4, maxSide: 3 }, values).map((x) => [x]),
  }));
}

const positive: ValueOptions = { min: 0.2, max: 3 };
const awayFromZero: ValueOptions = { awayFrom: [0], margin: 0.05 };

function convCase(name: string, options: { stride?: number; padding?: number; dilation?: number; groups?: number; bias?: boolean }, channels: [number, number], kernel: number): OpCase {
  const [cin, cout] = channels;
  const g = options.groups ?? 1;
  return {
    name,
    fn: (x: Tensor, w: Tensor, b?: Tensor) => ops.conv2d(x, w, b ?? null, options),
    inputs: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: kernel + 1, max: kernel + 3 }), fc.integer({ min: kernel + 1, max: kernel + 3 })).chain(([B, H, W]) =>
      fc.tuple(
        valuesArb([B, cin, H, W]),
        valuesArb([cout, cin / g, kernel, kernel]),
        ...(options.bias ? [valuesArb([cout])] : []),
      ),
    ),
    tolerance: 4,
  };
}

export const OP_CASES: OpCase[] = [
  // ---- unary ----
  unary('neg', ops.neg),
  unary('exp', ops.exp),
  unary('log', ops.log, positive),
  unary('sqrt', ops.sqrt, positive),
  unary('abs', ops.abs, awayFromZero),
  unary('relu', ops.relu, awayFromZero),
  unary('sigmoid', ops.sigmoid, { min: -6, max: 6 }),
  unary('tanh', ops.tanh),
  unary('erf', ops.erf),
  unary('sin', ops.sin),
  unary('cos', ops.cos),
  unary('gelu', (x) => ops.gelu(x)),
  unary('gelu(tanh)', (x) => ops.gelu(x, 'tanh')),
  unary('clamp(-0.5, 1)', (x) => ops.clamp(x, -0.5, 1), { awayFrom: [-0.5, 1], margin: 0.05 }),
  unary('square', (x) => ops.mul(x, x)),
  // ---- binary, broadcasting ----
  binary('add', ops.add),
  binary('sub', ops.sub),
  binary('mul', ops.mul),
  binary('div', ops.div, {}, { min: 0.5, max: 2 }),
  binary('pow', ops.pow, positive, { min: -2, max: 2 }),
  separated('maximum', ops.maximum),
  separated('minimum', ops.minimum),
  {
    name: 'where',
    fn: (c, a, b) => ops.where(ops.gt(c!, 0), a!, b!),
    inputs: broadcastPairArb(elementwiseShapes).chain(([sa, sb]) => fc.tuple(valuesArb(sa, awayFromZero), valuesArb(sa), valuesArb(sb))),
    grad: [false, true, true],
  },
  // ---- reductions ----
  ...reduction('sum', (x, a, k) => ops.sum(x, a, k)),
  ...reduction('mean', (x, a, k) => ops.mean(x, a, k)),
  ...reduction('max', (x, a, k) => ops.max(x, a, k), { distinct: true, margin: 0.01 }),
  ...reduction('min', (x, a, k) => ops.min(x, a, k), { distinct: true, margin: 0.01 }),
  ...reduction('var', (x, a, k) => ops.variance(x, a, { keepdim: k, correction: 0 })),
  {
    name: 'var(unbiased, last)',
    fn: (x) => ops.variance(x!, -1),
    inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 4 }).filter((x) => x.shape[x.shape.length - 1]! > 1).map((x) => [x]),
  },
  // ---- matmul ----
  {
    name: 'matmul(2d)',
    fn: ops.matmul,
    inputs: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })).chain(([m, k, n]) => fc.tuple(valuesArb([m, k]), valuesArb([k, n]))),
    tolerance: 4,
  },
  {
    name: 'matmul(batched, broadcast)',
    fn: ops.matmul,
    inputs: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), broadcastPairArb({ minRank: 0, maxRank: 2, maxSide: 3 }))
      .chain(([m, k, n, [ba, bb]]) => fc.tuple(valuesArb([...ba, m, k]), valuesArb([...bb, k, n]))),
    tolerance: 4,
  },
  {
    name: 'matmul(vector)',
    fn: ops.matmul,
    inputs: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })).chain(([m, k]) => fc.tuple(valuesArb([m, k]), valuesArb([k]))),
  },
  // ---- movement ----
  { name: 'reshape', fn: (x) => ops.reshape(x!, [-1]), inputs: withShape({ maxRank: 4, maxSide: 3 }).map((x) => [x]) },
  { name: 'permute', fn: (x) => ops.permute(x!, [2, 0, 1]), inputs: withShape({ minRank: 3, maxRank: 3, maxSide: 3 }).map((x) => [x]) },
  { name: 'transpose', fn: (x) => ops.transpose(x!, 0, -1), inputs: withShape({ minRank: 2, maxRank: 4, maxSide: 3 }).map((x) => [x]) },
  { name: 'expand', fn: (x) => ops.expand(x!, [2, 3, 4]), inputs: fc.constantFrom([3, 1], [1, 4], [1, 1], [2, 1, 4]).chain((s) => valuesArb(s)).map((x) => [x]) },
  { name: 'slice', fn: (x) => ops.slice(x!, [[1, 3], null, [0, 2]]), inputs: withShape({ minRank: 3, maxRank: 3, maxSide: 4 }).filter((x) => x.shape[0]! >= 3 && x.shape[2]! >= 2).map((x) => [x]) },
  { name: 'pad', fn: (x) => ops.pad(x!, [[1, 0], [2, 1]], 0.5), inputs: withShape({ minRank: 2, maxRank: 3, maxSide: 3 }).map((x) => [x]) },
  { name: 'flip', fn: (x) => ops.flip(x!, [0, -1]), inputs: withShape({ minRank: 2, maxRank: 4, maxSide: 3 }).map((x) => [x]) },
  {
    name: 'concat',
    fn: (a, b) => ops.concat([a!, b!, a!], 1),
    inputs: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })).chain(([n, ka, kb]) => fc.tuple(valuesArb([n, ka]), valuesArb([n, kb]))),
  },
  { name: 'stack', fn: (a, b) => ops.stack([a!, b!], 1), inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 3 }).chain((x) => fc.tuple(fc.constant(x), valuesArb(x.shape))) },
  { name: 'split', fn: (x) => { const [p, q] = ops.split(x!, [1, x!.shape[0]! - 1], 0); return ops.mul(ops.sum(p!), ops.sum(q!)); }, inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 4 }).filter((x) => x.shape[0]! >= 2).map((x) => [x]) },
  // ---- indexing ----
  {
    name: 'gather',
    fn: (x, i) => ops.gather(x!, 1, i!),
    inputs: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 })).chain(([r, c, k]) =>
      fc.tuple(valuesArb([r, c]), fc.array(fc.integer({ min: 0, max: c - 1 }), { minLength: r * k, maxLength: r * k }).map((v) => ({ shape: [r, k], values: v })))),
    grad: [true, false],
  },
  {
    name: 'indexSelect',
    fn: (x, i) => ops.indexSelect(x!, 0, i!),
    inputs: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 })).chain(([r, c, k]) =>
      fc.tuple(valuesArb([r, c]), fc.array(fc.integer({ min: 0, max: r - 1 }), { minLength: k, maxLength: k }).map((v) => ({ shape: [k], values: v })))),
    grad: [true, false],
  },
  {
    name: 'scatterAdd',
    fn: (src, i) => ops.scatterAdd([3, src!.shape[1]!], 0, i!, src!),
    inputs: fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 3 })).chain(([r, c]) =>
      fc.tuple(valuesArb([r, c]), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: r * c, maxLength: r * c }).map((v) => ({ shape: [r, c], values: v })))),
    grad: [true, false],
  },
  { name: 'topk(values)', fn: (x) => ops.topk(x!, 2, -1).values, inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 4 }, { distinct: true, margin: 0.01 }).filter((x) => x.shape[x.shape.length - 1]! >= 2).map((x) => [x]) },
  // ---- neural-network functions ----
  { name: 'softmax', fn: (x) => ops.softmax(x!, -1), inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 4 }, { min: -4, max: 4 }).map((x) => [x]) },
  { name: 'softmax(scaled)', fn: (x) => ops.softmax(x!, -1, 0.37), inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 5 }, { min: -4, max: 4 }).map((x) => [x]) },
  { name: 'softmax(axis 0)', fn: (x) => ops.softmax(x!, 0), inputs: withShape({ minRank: 2, maxRank: 3, maxSide: 4 }).map((x) => [x]) },
  { name: 'logSoftmax', fn: (x) => ops.logSoftmax(x!, -1), inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 4 }, { min: -4, max: 4 }).map((x) => [x]) },
  {
    name: 'layerNorm',
    fn: (x, w, b) => ops.layerNorm(x!, 1, w!, b!, 1e-5),
    inputs: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 5 })).chain(([n, d]) => fc.tuple(valuesArb([n, d]), valuesArb([d]), valuesArb([d]))),
    tolerance: 4,
  },
  { name: 'layerNorm(2 axes, no affine)', fn: (x) => ops.layerNorm(x!, 2), inputs: withShape({ minRank: 3, maxRank: 3, maxSide: 3 }).filter((x) => x.shape[1]! * x.shape[2]! > 1).map((x) => [x]), tolerance: 4 },
  { name: 'dropout(p=0.3, seeded)', fn: (x) => ops.dropout(x!, 0.3, true, new Generator(7)), inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 4 }).map((x) => [x]) },
  convCase('conv2d(3x3, pad 1, bias)', { padding: 1, bias: true }, [2, 3], 3),
  convCase('conv2d(stride 2)', { stride: 2 }, [2, 2], 2),
  convCase('conv2d(dilation 2, pad 2)', { dilation: 2, padding: 2 }, [1, 2], 2),
  convCase('conv2d(groups 2)', { groups: 2, padding: 1 }, [4, 2], 3),
  // the direct-convolution kernels' edge cases: strided phases with padding and groups, padding
  // beyond the filter's reach (the input gradient crops), 1x1, dilation with stride, depthwise
  convCase('conv2d(stride 2, pad 1, groups 2, bias)', { stride: 2, padding: 1, groups: 2, bias: true }, [2, 4], 3),
  convCase('conv2d(pad 2 > reach)', { padding: 2 }, [2, 3], 2),
  convCase('conv2d(1x1, 5 out, bias)', { bias: true }, [3, 5], 1),
  convCase('conv2d(dilation 2, stride 2, pad 1)', { dilation: 2, stride: 2, padding: 1 }, [1, 2], 2),
  convCase('conv2d(depthwise 3x3)', { groups: 3, padding: 1 }, [3, 3], 3),
  {
    name: 'avgPool2d(2)',
    fn: (x) => ops.avgPool2d(x!, 2),
    inputs: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 2, max: 5 }), fc.integer({ min: 2, max: 5 })).chain(([c, h, w]) => valuesArb([1, c, h, w])).map((x) => [x]),
  },
  {
    name: 'maxPool2d(2, stride 1, pad 1)',
    fn: (x) => ops.maxPool2d(x!, 2, { stride: 1, padding: 1 }),
    inputs: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 2, max: 4 }), fc.integer({ min: 2, max: 4 })).chain(([c, h, w]) => valuesArb([1, c, h, w], { distinct: true, margin: 0.01 })).map((x) => [x]),
  },
  // ---- losses ----
  binaryLoss('l1Loss', (p, t) => ops.l1Loss(p, t)),
  binaryLoss('mseLoss', (p, t) => ops.mseLoss(p, t)),
  binaryLoss('smoothL1Loss', (p, t) => ops.smoothL1Loss(p, t, 0.5)),
  binaryLoss('smoothL1Loss(sum)', (p, t) => ops.smoothL1Loss(p, t, 1, 'sum')),
  {
    name: 'crossEntropy',
    fn: (x, y) => ops.crossEntropy(x!, y!),
    inputs: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 4 })).chain(([n, c]) =>
      fc.tuple(valuesArb([n, c]), fc.array(fc.integer({ min: 0, max: c - 1 }), { minLength: n, maxLength: n }).map((v) => ({ shape: [n], values: v })))),
    grad: [true, false],
  },
];

/** losses: prediction and target of one shape, kept apart where |d| would hit a kink (0, ±beta) */
function binaryLoss(name: string, fn: (p: Tensor, t: Tensor) => Tensor): OpCase {
  return {
    name,
    fn,
    inputs: withShape({ minRank: 1, maxRank: 3, maxSide: 3 }).chain((p) =>
      valuesArb(p.shape, { min: -2, max: 2 }).map((t) => {
        // keep |p - t| away from 0, 0.5 and 1 (the kinks of |d| and of smoothL1 with beta 0.5 or 1)
        const values = t.values.map((tv, i) => {
          let d = p.values[i]! - tv;
          for (const k of [0, 0.5, 1]) if (Math.abs(Math.abs(d) - k) < 0.05) d = (d >= 0 ? 1 : -1) * (k + 0.05);
          return p.values[i]! - d;
        });
        return [p, { shape: t.shape, values }];
      })),
  };
}
