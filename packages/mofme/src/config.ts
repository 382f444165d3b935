// The MoFME model configuration: one typed object that fixes every architectural and behavioural
// choice of the network, three presets, and `resolveConfig`, which merges overrides into a preset
// and validates the result with errors that name the bad field and value.
//
// nanoGPT-style, each default carries the reason it has that value. Three kinds of reason recur:
// "official" (what the released MoFME-Pytorch code at HEAD 522deb8 does; see
// docs/model-plan.md for the provenance), "paper" (what the AAAI 2024 paper's formulas say where
// the code differs), and "ours" (an open choice the paper leaves to the implementer, decided here
// and switchable). This file holds no tensors and imports nothing, so it is also the light entry
// point `@mofme/mofme/config`: the CLI builds its flags and --help from it without loading the
// engine. The model, the counters and the CLI all read it.

// Every set of choices is declared once, as a list: the union type is read off it, validateConfig
// checks against it, and the command line builds its flags, help and error messages from it.

/** Which feed-forward sits in every transformer block:
 *  'dense' the plain pre-norm FFN of a ViT: the "dense baseline" of the paper;
 *  'moe'   E full pre-norm FFN experts mixed by a top-k router: the conventional MoE baseline;
 *  'mofme' the paper's FME layer: shared gated unit, E FiLM experts, router mix, one shared FFN. */
export const FFN_KINDS = ['dense', 'moe', 'mofme'] as const;
export type FfnKind = (typeof FFN_KINDS)[number];

/** How expert weights are computed from a token:
 *  'linear' softmax over a linear projection, with top-k: what the released scripts trained;
 *  'uar'    the paper's Uncertainty-aware Router (MC-dropout mean/variance whitening, unit norm). */
export const ROUTER_KINDS = ['linear', 'uar'] as const;
export type RouterKind = (typeof ROUTER_KINDS)[number];

/** How top-k interacts with the softmax of the linear router:
 *  'maskThenSoftmax' official code: logits below the k-th largest -> -inf, then softmax (sums to 1);
 *  'softmaxThenZero' paper formula TopK(softmax(Wx)): zero the rest, no renormalisation. */
export const TOPK_MODES = ['maskThenSoftmax', 'softmaxThenZero'] as const;
export type TopkMode = (typeof TOPK_MODES)[number];

/** How the experts are executed; both give the same output:
 *  'dense'  every expert on every token, times a mostly-zero weight (what the official code does);
 *  'sparse' gather the tokens routed to each expert, run it on those only, scatter-add back. On a
 *           backend that compiles a kernel per tensor shape (gpu.js: `Backend.compilesPerShape`)
 *           the model runs 'sparse' densely (blocks.ts, mixExperts): the gathered token counts
 *           change at every step, so every step would compile new kernels. */
export const EXECUTIONS = ['dense', 'sparse'] as const;
export type Execution = (typeof EXECUTIONS)[number];

/** Where the MC-dropout of the UaR sits:
 *  'input'  Dropout on the router's input x before W_r (mofme-paper.md §3.4 step 1);
 *  'logits' Dropout on the logits W_r x + b_r (cheaper: one matmul shared by all M samples). */
export const UAR_DROPOUT_PLACES = ['input', 'logits'] as const;
export type UarDropoutPlace = (typeof UAR_DROPOUT_PLACES)[number];

/** Which probability vector r(x) is compared with the MC mean in the numerator of the UaR:
 *  'clean'         one extra dropout-free pass: ř = Σ⁻¹(r_clean − μ)/‖·‖ (mofme-paper.md §3.4 step 4);
 *  'sampleAverage' the 2025 code: average over m of normalised Σ⁻¹(r_m − μ) (no extra pass). */
export const UAR_NUMERATORS = ['clean', 'sampleAverage'] as const;
export type UarNumerator = (typeof UAR_NUMERATORS)[number];

/** When the top-k selection happens relative to the UaR calibration:
 *  'afterCalibration'  calibrate all E weights, keep the k largest, renormalise to unit L2 norm;
 *  'beforeCalibration' keep the k experts with the largest clean logits, calibrate among them. */
export const UAR_TOPKS = ['afterCalibration', 'beforeCalibration'] as const;
export type UarTopk = (typeof UAR_TOPKS)[number];

/** What to do with negative calibrated weights (the whitened deviation has both signs):
 *  'keep' use ř literally (the paper's formula); an expert can be subtracted;
 *  'relu' clamp negatives to 0 before the final renormalisation (all-zero rows fall back, see plan);
 *  'abs'  use |ř| for both selection and weights. */
export const UAR_SIGNS = ['keep', 'relu', 'abs'] as const;
export type UarSign = (typeof UAR_SIGNS)[number];

/** What the router does in one mode (training or evaluation) when `router` is 'uar':
 *  'uar'    the full MC-dropout calibration;
 *  'linear' the plain linear router (the 2025 official code's evaluation behaviour). */
export const UAR_BEHAVIOURS = ['uar', 'linear'] as const;
export type UarBehaviour = (typeof UAR_BEHAVIOURS)[number];

/** The named options of the Uncertainty-aware Router (mofme-paper.md §3.1, §3.3, §3.4). The
 *  covariance is always diagonal (per-expert variance), as the reproduction report describes it;
 *  docs/model-plan.md §3.3 gives the forward pass these options plug into. */
export interface UarConfig {
  /** M, the number of Monte-Carlo dropout passes. 5: the `estimate_time` of the 2025 official code. */
  samples: number;
  /** Dropout probability of the MC passes. 0.1: the model's own dropout rate (§3.4 assumption). */
  dropout: number;
  /** Where that dropout sits. 'input': §3.4 step 1, dropout on the router's input features. */
  dropoutPlace: UarDropoutPlace;
  /** The r(x) of the numerator. 'clean': §3.4 step 4; the 2025 code's averaging cannot run anyway. */
  numerator: UarNumerator;
  /** Top-k relative to calibration. 'afterCalibration': Fig. 3(c) draws TopK as the last box. */
  topk: UarTopk;
  /** Negative weights. 'keep': the paper's formula as written; 'relu'/'abs' are ours to try. */
  sign: UarSign;
  /** ε added to the per-expert variance, and the floor of the L2 norm it is divided by (so an
   *  all-zero row stays 0 instead of NaN). 1e-5: the 2025 official code. */
  eps: number;
  /** Variance denominator M−1 (true) or M (false). True: the 2025 code divides by M−1 (= 4). */
  unbiased: boolean;
  /** Stop gradients through μ and σ². False: the paper states no stop-gradient; differentiate all. */
  detachStats: boolean;
  /** Behaviour in training mode. 'uar': the method is trained with the calibration it describes. */
  whenTraining: UarBehaviour;
  /** Behaviour in evaluation mode. 'uar' (MC at inference, seeded): the weights the FFN was trained
   *  on are unit-norm, possibly signed; switching to softmax weights at test time would change
   *  their scale. 'linear' reproduces the 2025 official code. */
  whenEval: UarBehaviour;
}

/** Every choice of the network. Image sides at run time may be any multiple of `patchSize`. */
export interface MofmeConfig {
  /** Side of the square training crop. 240 = official: the 480x720 All-Weather resize times the
   *  crop ratio (1/2, 1/3). Only the (unused) official positional embedding depends on it. */
  imageSize: number;
  /** Patch side p. 8 = official `--img-patch 8`: 240/8 = 30 -> 900 tokens. */
  patchSize: number;
  /** Token width D. 384 = official `--embed-dim 384`. */
  dim: number;
  /** Number of transformer blocks. 2 = official `--layer 2`. */
  depth: number;
  /** Attention heads. 8 = official MoWE default `n_heads`. */
  heads: number;
  /** Width of one head, independent of D. 64 = official `dim_head`; inner width 8x64 = 512 ≠ 384. */
  headDim: number;
  /** FFN hidden = mlpRatio·D unless `mlpHidden` is set. 4 = official `--scale-dim 4` (1536). */
  mlpRatio: number;
  /** Explicit FFN hidden width; overrides mlpRatio. Unset in every preset. */
  mlpHidden?: number;
  /** Channels of the full-resolution conv head. 32 = official `out_ch`. */
  headChannels: number;
  /** ResBlocks after the head's first conv. 2 = official (`head.1`, `head.2`). */
  headResBlocks: number;
  /** Channels where the tail starts (the un-patchify output). 128 = official out_ch·out_ch_scale
   *  = 32·4. The tail halves it once (128 -> 64), so it must be even. */
  tailChannels: number;
  /** ResBlocks at each of the tail's two widths. 1 = official (ResBlock(128), ResBlock(64)). */
  tailResBlocks: number;
  /** The FFN of every block. 'mofme': this package exists to implement the paper's layer. */
  ffn: FfnKind;
  /** Number of experts E (moe, mofme). 4 = the official test/inference scripts' default. */
  experts: number;
  /** Experts kept per token, 1..E. 2 = the official test/inference scripts' default. */
  topk: number;
  /** Router. 'linear': the only router the released code actually ran and trained; the UaR is
   *  one override away (`router: 'uar'`) and has its own options below. */
  router: RouterKind;
  /** Options of the Uncertainty-aware Router; read only when `router` is 'uar'. */
  uar: UarConfig;
  /** Top-k of the linear router. 'maskThenSoftmax': official, and the kept weights sum to 1. */
  topkMode: TopkMode;
  /** Expert execution. 'sparse': same output as 'dense', and the only way top-k saves compute,
   *  which is the paper's point; 'dense' reproduces the official cost. The model itself runs
   *  'sparse' densely on a backend that compiles per shape (see EXECUTIONS). */
  execution: Execution;
  /** Reproduce the official off-by-one in the MoFME mix: router column 0 weights GELU(h), column
   *  c≥1 weights FiLM expert c−1, the last FiLM expert is never used. Off: it is a bug. On: needed
   *  to load official MoFME checkpoints with identical outputs. */
  officialExpertSlots: boolean;
  /** Reproduce the official deepcopy-identical initial weights (the gated unit's two Linears equal;
   *  router and shared FFN equal across blocks). Off: independent init is the intended design. */
  officialSharedInit: boolean;
  /** Allocate the official code's dead tensors: the [1, N, D] positional embedding that is never
   *  added, and a never-called LayerNorm per FiLM expert. On in `paper` so that official
   *  checkpoints load strictly and parameter counts equal the published ones; off elsewhere. */
  officialUnusedParams: boolean;
  /** Dropout after the attention output projection, inside every FFN / expert / shared FFN.
   *  0.1 = official MoWE default. */
  dropout: number;
  /** Dropout on the tokens after the patch embedding. 0 = official `emb_dropout`. */
  embedDropout: number;
  /** LayerNorm epsilon. 1e-5 = PyTorch default, which the official code uses. */
  layerNormEps: number;
  /** Output = clamp(input + tail, 0, 1) instead of the official sigmoid(tail). Off in `paper`
   *  (the official network has no global residual). On in `tiny` and `small`: a network trained
   *  for minutes on a CPU must first learn to reproduce its input through a sigmoid, and in a few
   *  hundred steps it stays below the identity baseline (the degraded input itself); with the
   *  residual (and the tail's last convolution initialised to zero) it starts exactly at the
   *  identity and only has to learn the correction. */
  residualOutput: boolean;
}

/** The options of the UaR as we recommend them (mofme-paper.md §3.4). */
export const defaultUar: Readonly<UarConfig> = Object.freeze({
  samples: 5,
  dropout: 0.1,
  dropoutPlace: 'input',
  numerator: 'clean',
  topk: 'afterCalibration',
  sign: 'keep',
  eps: 1e-5,
  unbiased: true,
  detachStats: false,
  whenTraining: 'uar',
  whenEval: 'uar',
});

/** The official network as the released scripts build it (MoFME, E=4, top-2). Override `ffn`,
 *  `experts` and `topk` for the grid the paper trained: ffn ∈ {dense, moe, mofme}, E ∈ {4, 8, 16},
 *  k ∈ {2, 4}. Its parameter counts equal the official ones to the unit (test/count.test.ts). */
const paper: MofmeConfig = {
  imageSize: 240,
  patchSize: 8,
  dim: 384,
  depth: 2,
  heads: 8,
  headDim: 64,
  mlpRatio: 4,
  headChannels: 32,
  headResBlocks: 2,
  tailChannels: 128,
  tailResBlocks: 1,
  ffn: 'mofme',
  experts: 4,
  topk: 2,
  router: 'linear',
  uar: { ...defaultUar },
  topkMode: 'maskThenSoftmax',
  execution: 'sparse',
  officialExpertSlots: false,
  officialSharedInit: false,
  officialUnusedParams: true,
  dropout: 0.1,
  embedDropout: 0,
  layerNormEps: 1e-5,
  residualOutput: false,
};

/** A few-hundred-thousand-parameter model that learns something on 64x64 crops on 2 CPU cores in
 *  tens of minutes. Patch 4 (16x16 = 256 tokens at 64x64) keeps enough spatial detail at a small
 *  crop; D = 96 with 4 heads of 32 (inner 128 ≠ D, like the paper) keeps attention honest. The
 *  conv head/tail, which dominate the cost at every size (the paper's tail is 70% of its MACs),
 *  are 16 and 32 channels. Dropout 0: short runs on small data under-fit rather than over-fit. */
const small: MofmeConfig = {
  ...paper,
  imageSize: 64,
  patchSize: 4,
  dim: 96,
  depth: 2,
  heads: 4,
  headDim: 32,
  headChannels: 16,
  headResBlocks: 2,
  tailChannels: 32,
  tailResBlocks: 1,
  officialUnusedParams: false,
  dropout: 0,
  residualOutput: true,
};

/** The smallest model that still has every part of the paper's network: depth 2 (so the
 *  cross-block official-init switch means something), E=4 top-2, attention inner width (4x16 = 64)
 *  different from D = 48, one ResBlock in the head. Meant for tests, overfitting one batch, and a
 *  first training run of a few minutes on 64x64 crops (8x8 = 64 tokens at patch 8). */
const tiny: MofmeConfig = {
  ...paper,
  imageSize: 64,
  patchSize: 8,
  dim: 48,
  depth: 2,
  heads: 4,
  headDim: 16,
  headChannels: 16,
  headResBlocks: 1,
  tailChannels: 16,
  tailResBlocks: 1,
  officialUnusedParams: false,
  dropout: 0,
  residualOutput: true,
};

export const presets = { paper, small, tiny } as const satisfies Record<string, MofmeConfig>;
export type PresetName = keyof typeof presets;
export const presetNames = Object.keys(presets) as PresetName[];

/** What `resolveConfig` accepts on top of a preset: any subset, with `uar` merged field by field. */
export type ConfigOverrides = Partial<Omit<MofmeConfig, 'uar'>> & { uar?: Partial<UarConfig> };

/** A configuration problem, naming the field (dotted for `uar.*`) and the offending value. */
export class ConfigError extends Error {
  constructor(
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`invalid MoFME config: ${field} = ${JSON.stringify(value)}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** FFN hidden width: `mlpHidden` if set, else mlpRatio·D. */
export function mlpHiddenOf(config: MofmeConfig): number {
  return config.mlpHidden ?? config.dim * config.mlpRatio;
}

/** Attention inner width heads·headDim (512 in the paper preset, not D = 384). */
export function attnInnerOf(config: MofmeConfig): number {
  return config.heads * config.headDim;
}

/** Number of tokens for an H x W input: one per p x p patch, row-major. */
export function tokensOf(config: MofmeConfig, height: number, width: number): number {
  return (height / config.patchSize) * (width / config.patchSize);
}

/**
 * Start from a preset (by name, or a full config), apply overrides, validate, and return a frozen
 * config. Unknown override keys are errors (a typo must not silently leave a default in place).
 */
export function resolveConfig(
  preset: PresetName | MofmeConfig = 'paper',
  overrides: ConfigOverrides = {},
): Readonly<MofmeConfig> {
  let base: MofmeConfig;
  if (typeof preset === 'string') {
    if (!Object.hasOwn(presets, preset)) {
      throw new ConfigError('preset', preset, `unknown preset; expected one of ${presetNames.join(', ')}`);
    }
    base = presets[preset];
  } else {
    base = preset;
  }
  for (const key of Object.keys(overrides)) {
    if (!configKeys.has(key)) throw new ConfigError(key, (overrides as Record<string, unknown>)[key], 'unknown field');
  }
  for (const key of Object.keys(overrides.uar ?? {})) {
    if (!uarKeys.has(key)) throw new ConfigError(`uar.${key}`, (overrides.uar as Record<string, unknown>)[key], 'unknown field');
  }
  const { uar: uarOverrides, ...rest } = overrides;
  const merged: MofmeConfig = { ...base, ...rest, uar: { ...base.uar, ...uarOverrides } };
  // An explicit `mlpHidden: undefined` override means "back to mlpRatio"; drop the key.
  if (merged.mlpHidden === undefined) delete merged.mlpHidden;
  validateConfig(merged);
  return Object.freeze({ ...merged, uar: Object.freeze({ ...merged.uar }) });
}

const configKeys = new Set<string>([...Object.keys(paper), 'mlpHidden']);
const uarKeys = new Set<string>(Object.keys(defaultUar));

/** Throws a ConfigError for the first invalid field; returns normally for a valid config. */
export function validateConfig(c: MofmeConfig): void {
  const int = (field: string, v: unknown, min: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw new ConfigError(field, v, `must be an integer >= ${min}`);
    }
  };
  const rate = (field: string, v: unknown, lo: number, hiExclusive: number) => {
    if (typeof v !== 'number' || !(v >= lo && v < hiExclusive)) {
      throw new ConfigError(field, v, `must be a number in [${lo}, ${hiExclusive})`);
    }
  };
  const oneOf = (field: string, v: unknown, allowed: readonly string[]) => {
    if (typeof v !== 'string' || !allowed.includes(v)) {
      throw new ConfigError(field, v, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
    }
  };
  const bool = (field: string, v: unknown) => {
    if (typeof v !== 'boolean') throw new ConfigError(field, v, 'must be true or false');
  };

  int('imageSize', c.imageSize, 1);
  int('patchSize', c.patchSize, 1);
  if (c.imageSize % c.patchSize !== 0) {
    throw new ConfigError('imageSize', c.imageSize, `must be a multiple of patchSize (${c.patchSize})`);
  }
  int('dim', c.dim, 1);
  int('depth', c.depth, 1);
  int('heads', c.heads, 1);
  int('headDim', c.headDim, 1);
  if (typeof c.mlpRatio !== 'number' || !(c.mlpRatio > 0)) {
    throw new ConfigError('mlpRatio', c.mlpRatio, 'must be a positive number');
  }
  if (c.mlpHidden !== undefined) int('mlpHidden', c.mlpHidden, 1);
  else if (!Number.isInteger(c.dim * c.mlpRatio)) {
    throw new ConfigError('mlpRatio', c.mlpRatio, `dim·mlpRatio = ${c.dim * c.mlpRatio} is not an integer; set mlpHidden`);
  }
  int('headChannels', c.headChannels, 1);
  int('headResBlocks', c.headResBlocks, 0);
  int('tailChannels', c.tailChannels, 2);
  if (c.tailChannels % 2 !== 0) {
    throw new ConfigError('tailChannels', c.tailChannels, 'must be even (the tail halves it once)');
  }
  int('tailResBlocks', c.tailResBlocks, 0);
  oneOf('ffn', c.ffn, FFN_KINDS);
  oneOf('router', c.router, ROUTER_KINDS);
  oneOf('topkMode', c.topkMode, TOPK_MODES);
  oneOf('execution', c.execution, EXECUTIONS);
  bool('officialExpertSlots', c.officialExpertSlots);
  bool('officialSharedInit', c.officialSharedInit);
  bool('officialUnusedParams', c.officialUnusedParams);
  bool('residualOutput', c.residualOutput);
  rate('dropout', c.dropout, 0, 1);
  rate('embedDropout', c.embedDropout, 0, 1);
  if (typeof c.layerNormEps !== 'number' || !(c.layerNormEps > 0)) {
    throw new ConfigError('layerNormEps', c.layerNormEps, 'must be a positive number');
  }

  if (c.ffn !== 'dense') {
    int('experts', c.experts, 1);
    int('topk', c.topk, 1);
    if (c.topk > c.experts) {
      throw new ConfigError('topk', c.topk, `must not exceed experts (${c.experts})`);
    }
  } else if (c.router === 'uar') {
    throw new ConfigError('router', c.router, "needs ffn 'moe' or 'mofme' (a dense FFN has nothing to route)");
  }
  if (c.officialExpertSlots) {
    if (c.ffn !== 'mofme') {
      throw new ConfigError('officialExpertSlots', true, `only applies to ffn 'mofme' (ffn is '${c.ffn}')`);
    }
    if (c.experts < 2) {
      throw new ConfigError('experts', c.experts, 'officialExpertSlots needs at least 2 experts (column 0 is the GELU slot)');
    }
  }

  const u = c.uar;
  if (typeof u !== 'object' || u === null) throw new ConfigError('uar', u, 'must be an object');
  int('uar.samples', u.samples, 2);
  rate('uar.dropout', u.dropout, 0, 1);
  if (c.router === 'uar' && u.dropout === 0) {
    throw new ConfigError('uar.dropout', 0, 'must be > 0 with router uar: without dropout the MC variance is 0');
  }
  oneOf('uar.dropoutPlace', u.dropoutPlace, UAR_DROPOUT_PLACES);
  oneOf('uar.numerator', u.numerator, UAR_NUMERATORS);
  oneOf('uar.topk', u.topk, UAR_TOPKS);
  oneOf('uar.sign', u.sign, UAR_SIGNS);
  if (typeof u.eps !== 'number' || !(u.eps > 0)) throw new ConfigError('uar.eps', u.eps, 'must be a positive number');
  bool('uar.unbiased', u.unbiased);
  bool('uar.detachStats', u.detachStats);
  oneOf('uar.whenTraining', u.whenTraining, UAR_BEHAVIOURS);
  oneOf('uar.whenEval', u.whenEval, UAR_BEHAVIOURS);
}
