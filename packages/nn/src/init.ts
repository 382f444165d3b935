/**
 * Initialisers: the random starting values of parameters, drawn from a seeded Generator.
 *
 * Why it matters: a layer's output variance is (fan_in x weight variance x input variance), so
 * weights must shrink like 1/sqrt(fan_in) or activations explode or vanish with depth. The
 * defaults here are PyTorch's, so a fresh model has the parameter statistics of the official code:
 * - `nn.Linear` / `nn.Conv2d` weights: kaiming-uniform with a = sqrt(5). The gain is
 *   sqrt(2 / (1 + a^2)) = sqrt(1/3) and the bound sqrt(3) * gain / sqrt(fan_in), which simplifies to
 *   U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
 * - their biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) too.
 * - LayerNorm / GroupNorm: weight ones, bias zeros.
 *
 * Every function here comes in two forms, as in `torch.nn.init`:
 * - `kaimingUniform(shape, options)` returns a new tensor,
 * - `kaimingUniform_(param, options)` overwrites a parameter in place (`param.assign`) and returns it,
 *   for re-initialising a built model (timm's `trunc_normal_(m.weight, std=.02)`).
 *
 * Determinism: every draw comes from `options.generator`, else from the generator of the
 * innermost `withInitDefaults({ generator })` scope, else the engine's `defaultGenerator`. Build a
 * model inside `withInitDefaults({ generator: new Generator(seed) }, () => new Model(...))` and the
 * same seed gives the same weights, bit for bit, on every backend.
 */
import { erfScalar, defaultGenerator, getDefaultBackend, tensor, full, type Backend, type DType, type Generator, type Tensor } from '@mofme/tensor';

/** Where new parameters come from: the random stream, their dtype and their backend. */
export interface InitOptions {
  generator?: Generator;
  dtype?: DType;
  backend?: Backend;
}

const scopes: InitOptions[] = [];

/**
 * Build modules with these defaults (a model-wide generator, dtype or backend) for the duration
 * of `fn`. Options given to a layer directly still win. Scopes nest; the innermost wins.
 */
export function withInitDefaults<T>(options: InitOptions, fn: () => T): T {
  scopes.push({ ...scopes[scopes.length - 1], ...options });
  try {
    return fn();
  } finally {
    scopes.pop();
  }
}

/** The effective options: explicit ones, then the current scope's, then the engine defaults. */
export function resolveInit(options: InitOptions = {}): Required<InitOptions> {
  const scope = scopes[scopes.length - 1] ?? {};
  return {
    generator: options.generator ?? scope.generator ?? defaultGenerator,
    dtype: options.dtype ?? scope.dtype ?? 'float32',
    backend: options.backend ?? scope.backend ?? getDefaultBackend(),
  };
}

/**
 * fan_in and fan_out of a weight of shape [out, in, ...kernel] (PyTorch's convention): each output
 * sums in * prod(kernel) inputs, each input feeds out * prod(kernel) outputs. A 1-d tensor has
 * fan_in = fan_out = its length.
 */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length === 0) throw new Error('fans: a scalar has no fan-in');
  if (shape.length === 1) return { fanIn: shape[0]!, fanOut: shape[0]! };
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

/** The recommended gain for a nonlinearity (torch.nn.init.calculate_gain). */
export function calculateGain(nonlinearity: 'linear' | 'conv' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu', param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv': case 'sigmoid': return 1;
    case 'tanh': return 5 / 3;
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': { const a = param ?? 0.01; return Math.sqrt(2 / (1 + a * a)); }
  }
}

function make(shape: readonly number[], options: InitOptions, draw: (g: Generator) => number): Tensor {
  const { generator, dtype, backend } = resolveInit(options);
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = draw(generator);
  return tensor(values, { shape, dtype, backend });
}

// ---- value constructors ----

export function zeros(shape: readonly number[], options: InitOptions = {}): Tensor {
  const { dtype, backend } = resolveInit(options);
  return full(shape, 0, { dtype, backend });
}
export function ones(shape: readonly number[], options: InitOptions = {}): Tensor {
  const { dtype, backend } = resolveInit(options);
  return full(shape, 1, { dtype, backend });
}
export function constant(shape: readonly number[], value: number, options: InitOptions = {}): Tensor {
  const { dtype, backend } = resolveInit(options);
  return full(shape, value, { dtype, backend });
}

/** U(low, high). */
export function uniform(shape: readonly number[], low: number, high: number, options: InitOptions = {}): Tensor {
  return make(shape, options, (g) => g.uniform(low, high));
}

/** N(mean, std^2). */
export function normal(shape: readonly number[], mean = 0, std = 1, options: InitOptions = {}): Tensor {
  return make(shape, options, (g) => g.normal(mean, std));
}

export interface KaimingOptions extends InitOptions {
  /** negative slope of the rectifier after this layer; sqrt(5) reproduces PyTorch's Linear/Conv default */
  a?: number;
  /** preserve the variance of the forward pass ('fanIn') or of the backward pass ('fanOut') */
  mode?: 'fanIn' | 'fanOut';
  nonlinearity?: 'relu' | 'leaky_relu' | 'linear';
}

/**
 * He initialisation: U(-bound, bound) with bound = gain * sqrt(3 / fan), gain for leaky ReLU with
 * slope a. Defaults reproduce PyTorch's layer default (a = sqrt(5), fan_in, leaky_relu).
 */
export function kaimingUniform(shape: readonly number[], options: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(shape);
  const fan = (options.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  const nl = options.nonlinearity ?? 'leaky_relu';
  const gain = nl === 'leaky_relu' ? calculateGain('leaky_relu', options.a ?? Math.sqrt(5)) : calculateGain(nl);
  const bound = fan === 0 ? 0 : gain * Math.sqrt(3 / fan); // uniform(-b, b) has variance b^2 / 3
  return uniform(shape, -bound, bound, options);
}

/** He normal: N(0, (gain / sqrt(fan))^2), default relu gain sqrt(2) with a = 0. */
export function kaimingNormal(shape: readonly number[], options: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(shape);
  const fan = (options.mode ?? 'fanIn') === 'fanIn' ? fanIn : fanOut;
  const nl = options.nonlinearity ?? 'leaky_relu';
  const gain = nl === 'leaky_relu' ? calculateGain('leaky_relu', options.a ?? 0) : calculateGain(nl);
  return normal(shape, 0, fan === 0 ? 0 : gain / Math.sqrt(fan), options);
}

/** Glorot/Xavier uniform: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)): balances both passes. */
export function xavierUniform(shape: readonly number[], options: InitOptions & { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = fans(shape);
  const bound = (options.gain ?? 1) * Math.sqrt(6 / (fanIn + fanOut));
  return uniform(shape, -bound, bound, options);
}

/** Glorot/Xavier normal: N(0, gain^2 * 2 / (fan_in + fan_out)). */
export function xavierNormal(shape: readonly number[], options: InitOptions & { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = fans(shape);
  return normal(shape, 0, (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut)), options);
}

export interface TruncNormalOptions extends InitOptions {
  mean?: number;
  std?: number;
  /** absolute cut-offs, as in torch.nn.init.trunc_normal_ (default -2 and 2, i.e. absolute values) */
  a?: number;
  b?: number;
}

/**
 * N(mean, std^2) conditioned on [a, b] (absolute bounds, PyTorch's convention: with std 0.02 the
 * default [-2, 2] cuts nothing). Sampled by rejection: draw normals until one lands inside. The
 * acceptance probability Phi(b') - Phi(a') is computed first so that a hopeless interval is an
 * error instead of an endless loop.
 */
export function truncNormal(shape: readonly number[], options: TruncNormalOptions = {}): Tensor {
  const mean = options.mean ?? 0, std = options.std ?? 1, a = options.a ?? -2, b = options.b ?? 2;
  if (!(a < b) || !(std > 0)) throw new Error(`truncNormal: need a < b and std > 0, got a=${a}, b=${b}, std=${std}`);
  const cdf = (x: number): number => 0.5 * (1 + erfScalar(x / Math.SQRT2));
  const accept = cdf((b - mean) / std) - cdf((a - mean) / std);
  if (accept < 1e-4) throw new Error(`truncNormal: [${a}, ${b}] holds only ${accept} of N(${mean}, ${std}^2); rejection sampling would not end`);
  return make(shape, options, (g) => {
    for (;;) {
      const x = g.normal(mean, std);
      if (x >= a && x <= b) return x;
    }
  });
}

// ---- in-place forms (torch.nn.init.*_) ----

type Sampler<O> = (shape: readonly number[], options: O) => Tensor;

/** Make an in-place initialiser from a value constructor: same dtype and backend as the parameter. */
function inPlace<O extends InitOptions>(sample: Sampler<O>): (param: Tensor, options?: O) => Tensor {
  return (param, options = {} as O) => param.assign(sample(param.shape, { ...options, dtype: param.dtype, backend: param.backend }));
}

export const zeros_ = inPlace<InitOptions>(zeros);
export const ones_ = inPlace<InitOptions>(ones);
export const constant_ = (param: Tensor, value: number): Tensor => param.assign(full(param.shape, value, { dtype: param.dtype, backend: param.backend }));
export const uniform_ = (param: Tensor, low = 0, high = 1, options: InitOptions = {}): Tensor =>
  param.assign(uniform(param.shape, low, high, { ...options, dtype: param.dtype, backend: param.backend }));
export const normal_ = (param: Tensor, mean = 0, std = 1, options: InitOptions = {}): Tensor =>
  param.assign(normal(param.shape, mean, std, { ...options, dtype: param.dtype, backend: param.backend }));
export const kaimingUniform_ = inPlace<KaimingOptions>(kaimingUniform);
export const kaimingNormal_ = inPlace<KaimingOptions>(kaimingNormal);
export const xavierUniform_ = inPlace<InitOptions & { gain?: number }>(xavierUniform);
export const xavierNormal_ = inPlace<InitOptions & { gain?: number }>(xavierNormal);
export const truncNormal_ = inPlace<TruncNormalOptions>(truncNormal);

/** PyTorch's default bias init for a layer whose weight has this shape: U(+-1/sqrt(fan_in)). */
export function defaultBias(weightShape: readonly number[], size: number, options: InitOptions = {}): Tensor {
  const { fanIn } = fans(weightShape);
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform([size], -bound, bound, options);
}
