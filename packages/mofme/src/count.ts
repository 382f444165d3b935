// Parameter and compute counts of a MoFME configuration, by arithmetic from the architecture
// alone: no tensors are built. These are the numbers behind the paper's efficiency claim ("more
// than 72% fewer parameters than the conventional MoE"), and they let a reader see where the
// parameters and the multiply-adds go before running anything.
//
// Parameters: each part is written as the sum of its layers' weight and bias sizes, in the same
// order as docs/model-plan.md's module tree; `parameterShapes` (params.ts) lists the same tensors
// one by one, and the tests check that the two agree. With `officialUnusedParams` on, the count
// includes the tensors the official code allocates but never uses, because that is what the
// official code counts (and what the paper's tables count).
//
// Compute: multiply-accumulates (MACs) of every convolution, linear layer and attention matmul,
// plus the elementwise multiply-adds that are the MoE/FME method itself (FiLM modulation γ⊙h+β,
// the gated unit's product, the router-weighted mix), since those are what top-k sparsity saves.
// Norms, activations, softmaxes and bias additions are not counted (the fvcore/thop convention).

import type { Execution, MofmeConfig } from './config';
import { attnInnerOf, mlpHiddenOf, tokensOf } from './config';

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

const linear = (inF: number, outF: number, bias = true) => inF * outF + (bias ? outF : 0);
const conv = (inC: number, outC: number, k: number) => inC * outC * k * k + outC;
const layerNorm = (d: number) => 2 * d;
const resBlock = (c: number) => 2 * conv(c, c, 3);

/** Parameters of one expert of the given kind: a full pre-norm FFN, or a FiLM modulator. */
function perExpertParams(c: MofmeConfig): number {
  const d = c.dim;
  if (c.ffn === 'moe') return layerNorm(d) + linear(d, mlpHiddenOf(c)) + linear(mlpHiddenOf(c), d);
  if (c.ffn === 'mofme') {
    // γ(h) = W_γ h + b_γ and β(h) = W_β h + b_β, both D -> D: 2(D² + D). Quadratic in D but
    // ~mlpRatio·2 = 8x smaller than an FFN expert's 2·D·4D — the whole point of FME.
    return linear(d, d) + linear(d, d) + (c.officialUnusedParams ? layerNorm(d) : 0);
  }
  return 0;
}

/** Parameters of a configuration, with a breakdown by part and per block. */
export function countParameters(c: MofmeConfig): ParameterCount {
  const d = c.dim;
  const hidden = mlpHiddenOf(c);
  const ch = c.headChannels;
  const ct = c.tailChannels;
  const p = c.patchSize;

  const head = conv(3, ch, 3) + c.headResBlocks * resBlock(ch);
  const patchEmbed = conv(ch, d, p) + layerNorm(d);
  const tokens = tokensOf(c, c.imageSize, c.imageSize);
  const posEmbed = c.officialUnusedParams ? tokens * d : 0;
  const unpatchify = linear(d, p * p * ct);
  const half = ct / 2;
  const tail =
    c.tailResBlocks * resBlock(ct) + conv(ct, half, 3) + c.tailResBlocks * resBlock(half) + conv(half, 3, 3);

  // qkv has no bias (official `to_qkv`), the output projection has one.
  const attention = layerNorm(d) + linear(d, 3 * attnInnerOf(c), false) + linear(attnInnerOf(c), d);
  const ffnCore = linear(d, hidden) + linear(hidden, d); // fc1, fc2 (no norm)
  const perExpert = perExpertParams(c);
  let router = 0;
  let experts = 0;
  let shared = 0;
  if (c.ffn === 'dense') {
    shared = layerNorm(d) + ffnCore;
  } else {
    router = linear(d, c.experts);
    experts = c.experts * perExpert;
    // mofme: LN_f, the gated unit GELU(W_a u)⊙(W_b u) (two D -> D Linears), the shared FFN.
    shared = c.ffn === 'mofme' ? layerNorm(d) + 2 * linear(d, d) + ffnCore : 0;
  }
  const perBlock: BlockParameterCount = {
    attention,
    router,
    experts,
    perExpert,
    shared,
    total: attention + router + experts + shared,
  };
  const blocks = c.depth * perBlock.total;

  let unused = posEmbed;
  if (c.ffn === 'mofme') {
    if (c.officialUnusedParams) unused += c.depth * c.experts * layerNorm(d);
    if (c.officialExpertSlots) unused += c.depth * 2 * linear(d, d); // the last FiLM expert's γ and β
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
