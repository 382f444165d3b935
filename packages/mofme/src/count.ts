// Parameter and compute counts of a MoFME configuration: the numbers behind the paper's efficiency
// claim ("more than 72% fewer parameters than the conventional MoE"), by part, so that a reader
// sees where the parameters and the multiply-adds go.
//
// Parameters come from the built module tree, never from a second description of the network:
// probes of the configuration with ONE block and one and two experts are built (createModel), and
// their named parameters are summed by name. Every block has the same shapes, and every expert (and
// router row) adds the same tensors, so the full count is exact by linearity: depth times the block,
// and each part affine in E. The probes keep the count cheap where the real model would not fit in
// memory (the paper's E = 128 MoE has 309 M parameters); they are cached per configuration.
// `parameterShapes` lists the full model's tensors by building it (tests and small configs). With
// `officialUnusedParams` on, the count includes the tensors the official code allocates but never
// uses, because that is what the official code counts (and what the paper's tables count).
//
// Compute (countFlops) stays arithmetic on the shapes: it depends on the image size and on how many
// experts each token visits (sparse vs dense execution), which a module tree does not know; tracing
// a forward pass at 240x240 instead would cost seconds per call. It counts multiply-accumulates
// (MACs) of every convolution, linear layer and attention matmul, plus the elementwise
// multiply-adds that are the MoE/FME method itself (FiLM modulation γ⊙h+β, the gated unit's
// product, the router-weighted mix), since those are what top-k sparsity saves. Norms,
// activations, softmaxes and bias additions are not counted (the fvcore/thop convention).

import type { Execution, MofmeConfig } from './config';
import { attnInnerOf, mlpHiddenOf, tokensOf } from './config';
import { createModel } from './model';

/** Parameters of one transformer block, split the way the paper compares MoE with MoFME. */
export interface BlockParameterCount {
  /** Pre-norm LayerNorm + fused qkv (no bias) + output projection. */
  attention: number;
  /** Router Linear D -> E (0 for the dense FFN). */
  router: number;
  /** All experts together: E full FFNs (moe) or E FiLM modulators (mofme); 0 for dense. */
  experts: number;
  /** One expert (0 for dense): the cost of adding an expert, the quantity FME shrinks. */
  perExpert: number;
  /** Everything in the FFN that is not router or expert: the dense FFN itself (dense), nothing
   *  (moe), or LN + gated unit + shared FFN (mofme). */
  shared: number;
  /** attention + router + experts + shared. */
  total: number;
}

export interface ParameterCount {
  /** Every allocated value, including officially-unused tensors when `officialUnusedParams`. */
  total: number;
  parts: {
    head: number; // conv 3 -> C_h and its ResBlocks, at full resolution
    patchEmbed: number; // p x p stride-p conv C_h -> D, then LayerNorm
    posEmbed: number; // official [1, N, D] tensor that is never added (0 unless officialUnusedParams)
    blocks: number; // all transformer blocks
    unpatchify: number; // Linear D -> p²·C_t
    tail: number; // ResBlocks at C_t, conv C_t -> C_t/2, ResBlocks, conv -> 3
  };
  /** One block (all blocks are identical in shape). */
  perBlock: BlockParameterCount;
  /** Values that never influence the output, hence never get a gradient: the official positional
   *  embedding, the per-FiLM-expert LayerNorms, and (with officialExpertSlots) the last FiLM expert
   *  of every block. */
  unused: number;
  /** total − unused. */
  trainable: number;
}

/** Number of values in a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** One tensor of the model: its dotted name (PyTorch state-dict style) and shape. */
export interface ParamSpec {
  /** Dotted name, e.g. `blocks.0.ffn.experts.film.3.gamma.weight`. */
  readonly name: string;
  readonly shape: readonly number[];
}

/** Every parameter of the model built from `config`, in registration order (builds the model). */
export function parameterShapes(c: MofmeConfig): ParamSpec[] {
  return createModel(c).namedParameters().map(([name, p]) => ({ name, shape: [...p.shape] }));
}

const probes = new Map<string, [string, number][]>();

/** Sizes of the named parameters of the one-block probe of `c` with `experts` experts (cached). */
function probeSizes(c: MofmeConfig, experts: number): [string, number][] {
  const probe: MofmeConfig = { ...c, depth: 1, experts, topk: Math.min(c.topk, experts) };
  const key = JSON.stringify(probe);
  let sizes = probes.get(key);
  if (!sizes) {
    sizes = createModel(probe).namedParameters().map(([n, p]) => [n, numel(p.shape)]);
    probes.set(key, sizes);
  }
  return sizes;
}

/** Parameters of a configuration, with a breakdown by part and per block. */
export function countParameters(c: MofmeConfig): ParameterCount {
  // Probes with one and (for mixtures) two experts: every count is affine in E (each expert and
  // each router row adds the same tensors), so q(E) = q(1) + (E − 1)·(q(2) − q(1)) is exact.
  const one = probeSizes(c, 1);
  const two = c.ffn === 'dense' ? one : probeSizes(c, 2);
  const sumOf = (sizes: [string, number][], prefix: string): number =>
    sizes.reduce((s, [n, k]) => (n === prefix || n.startsWith(`${prefix}.`) ? s + k : s), 0);
  const sum = (prefix: string): number => {
    const q1 = sumOf(one, prefix);
    return q1 + (c.experts - 1) * (sumOf(two, prefix) - q1);
  };
  const head = sum('head');
  const patchEmbed = sum('patchEmbed');
  const posEmbed = sum('posEmbed');
  const unpatchify = sum('unpatchify');
  const tail = sum('tail');

  const attention = sum('blocks.0.attn');
  const router = sum('blocks.0.ffn.router');
  // one expert: a full pre-norm FFN (moe) or a FiLM modulator (mofme), 2(D² + D) + its dead LN
  const firstExpert = c.ffn === 'moe' ? 'blocks.0.ffn.experts.0' : 'blocks.0.ffn.experts.film.0';
  const perExpert = c.ffn === 'dense' ? 0 : sumOf(one, firstExpert);
  const experts = c.ffn === 'dense' ? 0 : sum('blocks.0.ffn.experts');
  const shared = sum('blocks.0.ffn') - router - experts; // dense FFN, or LN_f + gated unit + shared FFN
  const perBlock: BlockParameterCount = { attention, router, experts, perExpert, shared, total: attention + router + experts + shared };
  const blocks = c.depth * perBlock.total;

  let unused = posEmbed;
  if (c.ffn === 'mofme') {
    const deadNorm = sumOf(one, `${firstExpert}.norm`); // the never-called LN of each FiLM expert
    unused += c.depth * c.experts * deadNorm;
    if (c.officialExpertSlots) unused += c.depth * (perExpert - deadNorm); // the last FiLM expert's γ and β
  }
  const total = head + patchEmbed + posEmbed + blocks + unpatchify + tail;
  return {
    total,
    parts: { head, patchEmbed, posEmbed, blocks, unpatchify, tail },
    perBlock,
    unused,
    trainable: total - unused,
  };
}

/** Multiply-accumulates of one forward pass, by part. */
export interface FlopParts {
  head: number;
  patchEmbed: number;
  /** All blocks' attention: qkv and output projections plus the two N x N matmuls. */
  attention: number;
  /** All blocks' routers (×(M+1) passes when the UaR is active). */
  router: number;
  /** All blocks' experts (E per token in dense execution, k in sparse), including the mix. */
  experts: number;
  /** All blocks' non-expert FFN work: the dense FFN, or MoFME's gated unit and shared FFN. */
  shared: number;
  unpatchify: number;
  tail: number;
}

export interface FlopCount {
  /** MACs under the config's own `execution`. */
  total: number;
  execution: Execution;
  parts: FlopParts;
  /** MACs if every expert runs on every token (the official code). */
  dense: number;
  /** MACs if only the k selected experts run on each token (gather/scatter). */
  sparse: number;
}

export interface FlopOptions {
  /** Count the training-mode forward (decides whether the UaR's MC passes run). Default false. */
  training?: boolean;
}

/**
 * Forward-pass multiply-accumulates for one H x W image (batch 1). H and W must be multiples of
 * the patch size. Dense and sparse differ only in the experts: sparse assumes each token visits
 * exactly k experts (ties at the k-th weight are broken by index, see docs/model-plan.md).
 */
export function countFlops(c: MofmeConfig, height: number, width: number, options: FlopOptions = {}): FlopCount {
  if (height % c.patchSize !== 0 || width % c.patchSize !== 0) {
    throw new RangeError(`countFlops: ${height}x${width} is not a multiple of patchSize ${c.patchSize}`);
  }
  const dense = flopParts(c, height, width, 'dense', options.training ?? false);
  const sparse = flopParts(c, height, width, 'sparse', options.training ?? false);
  const sum = (f: FlopParts) => Object.values(f).reduce((a, b) => a + b, 0);
  const parts = c.execution === 'dense' ? dense : sparse;
  return { total: sum(parts), execution: c.execution, parts, dense: sum(dense), sparse: sum(sparse) };
}

function flopParts(c: MofmeConfig, h: number, w: number, execution: Execution, training: boolean): FlopParts {
  const pixels = h * w;
  const n = tokensOf(c, h, w);
  const d = c.dim;
  const hidden = mlpHiddenOf(c);
  const inner = attnInnerOf(c);
  const p = c.patchSize;
  const ch = c.headChannels;
  const ct = c.tailChannels;
  const half = ct / 2;
  // A 3x3 'same' conv costs pixels · C_in · C_out · 9 MACs.
  const conv3 = (inC: number, outC: number) => pixels * inC * outC * 9;

  const head = conv3(3, ch) + c.headResBlocks * 2 * conv3(ch, ch);
  const patchEmbed = n * ch * p * p * d; // one (C_h·p²) x D matmul per token
  // qkv: N·D·3·inner; scores QKᵀ and weights·V: heads · N² · headDim each; out: N·inner·D.
  const attnPerBlock = n * d * 3 * inner + 2 * c.heads * n * n * c.headDim + n * inner * d;
  const ffn = 2 * n * d * hidden;

  let router = 0;
  let experts = 0;
  let shared = 0;
  if (c.ffn === 'dense') {
    shared = ffn;
  } else {
    const uarActive = c.router === 'uar' && (training ? c.uar.whenTraining : c.uar.whenEval) === 'uar';
    // UaR: M dropout passes + (numerator 'clean') one clean pass. With dropout on the logits the
    // matmul is shared by all passes, so only one projection is paid for.
    const passes = !uarActive
      ? 1
      : c.uar.dropoutPlace === 'logits'
        ? 1
        : c.uar.samples + (c.uar.numerator === 'clean' ? 1 : 0);
    router = passes * n * d * c.experts;
    // How many experts each token visits. Under officialExpertSlots the dense loop runs the GELU
    // slot (free) and FiLM experts 0..E−2, so E−1 FiLM evaluations.
    const visited =
      execution === 'sparse'
        ? c.topk
        : c.ffn === 'mofme' && c.officialExpertSlots
          ? c.experts - 1
          : c.experts;
    const mix = (execution === 'sparse' ? c.topk : c.experts) * n * d; // Σ_e w_e · out_e
    if (c.ffn === 'moe') {
      experts = visited * ffn + mix;
    } else {
      // FiLM expert: γ = W_γ h, β = W_β h (2·N·D²), then γ⊙h + β (N·D).
      experts = visited * (2 * n * d * d + n * d) + mix;
      // Gated unit GELU(W_a u) ⊙ (W_b u): 2·N·D² + N·D for the product; then the shared FFN.
      shared = 2 * n * d * d + n * d + ffn;
    }
  }

  const unpatchify = n * d * p * p * ct;
  const tail =
    c.tailResBlocks * 2 * conv3(ct, ct) + conv3(ct, half) + c.tailResBlocks * 2 * conv3(half, half) + conv3(half, 3);
  return {
    head,
    patchEmbed,
    attention: c.depth * attnPerBlock,
    router: c.depth * router,
    experts: c.depth * experts,
    shared: c.depth * shared,
    unpatchify,
    tail,
  };
}

/** Fraction of parameters that MoFME saves relative to MoE at the same config otherwise:
 *  1 − params(mofme)/params(moe). The paper's ">72%" is this at E=128 (official estimator). */
export function mofmeParameterSaving(c: MofmeConfig): number {
  const moe = countParameters({ ...c, ffn: 'moe', officialExpertSlots: false }).total;
  const mofme = countParameters({ ...c, ffn: 'mofme' }).total;
  return 1 - mofme / moe;
}
