// Routers: how a token decides which experts process it, and with what weights.
//
// Both routers read the un-normalised residual stream t [B, N, D] (as the official code does: there
// is no LayerNorm before the router) and return a `Routing`: dense weights [B, N, E] that are
// exactly zero outside the k selected experts, plus the selected expert indices on the host
// (row-major [B, N, k]), which sparse execution and the router statistics read.
//
// - Linear router (what the released scripts trained): logits z = t W_rᵀ + b_r, keep the top k,
//   and either renormalise the softmax over the kept logits ('maskThenSoftmax', official code) or
//   zero the others after a full softmax ('softmaxThenZero', the paper's TopK(softmax(W_r x))).
// - Uncertainty-aware Router (the paper's UaR, mofme-paper.md §3.1 and §3.4): M passes of the router
//   with Monte-Carlo dropout give M probability vectors r_m; their mean μ and per-expert variance σ²
//   (a diagonal Σ) calibrate the clean probabilities r as
//         ř = Σ⁻¹ (r − μ) / ‖Σ⁻¹ (r − μ)‖₂            (a unit vector, signed)
//   i.e. each expert's deviation from the ensemble mean, measured in units of its own variance, so
//   that experts the router is unsure about (high variance) get small weights. Every choice the
//   paper leaves open is an option of `UarConfig` (config.ts).
//
// The selection itself (which k experts) is not differentiable; it is computed on the host from
// detached scores and enters the graph as a constant 0/1 mask. Ties go to the lower expert index.
//
// `withRoutingOverride` lets a measurement replace what the routers return inside one scope (the
// counterfactual forwards of calibration.ts: "what if this layer had used expert e?"); outside such
// a scope the routers are untouched. docs/uar.md explains why the UaR, as the paper writes it,
// routes almost at random: the numerator r − μ is the Monte-Carlo error of the mean, not a signal.

import { Generator, arange, bmm, compare, dropout, maximum, stack, topk, type Tensor } from '@mofme/tensor';
import type { TopkMode, UarConfig } from './config';

/** What a router hands to the experts (and to the statistics hook). */
export interface Routing {
  /** [B, N, E]; zero outside the selected experts. Linear: non-negative; UaR: signed, unit L2 norm. */
  weights: Tensor;
  /** Row-major [B, N, k] selected expert indices (host array, no gradient). */
  indices: Int32Array;
  /** experts kept per token */
  k: number;
}

/** y = x Wᵀ + b on the last axis, W [E, D] in PyTorch layout (no transposed copy: bmm's flag). */
export function affine(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const [E, D] = weight.shape as [number, number];
  const lead = x.shape.slice(0, -1); // [B, N]
  const rows = lead.reduce((a, b) => a * b, 1);
  const y = bmm(x.reshape([1, rows, D]), weight.reshape([1, E, D]), false, true).reshape([...lead, E]); // [B, N, E]
  return bias ? y.add(bias) : y;
}

/** The k largest entries of `scores` along the last axis (ties: lower index), as host indices and a 0/1 mask. */
export function selectTopk(scores: Tensor, k: number): { indices: Int32Array; mask: Tensor } {
  const E = scores.shape[scores.ndim - 1]!;
  const top = topk(scores.detach(), k, -1).indices; // [B, N, k]
  // the mask is the one-hot of each kept index summed over the k slots, made with tensor ops
  // rather than a host loop, so that a traced forward (ONNX export) routes every image by its own scores
  const experts = arange(0, E, 1, { dtype: scores.dtype, backend: scores.backend }); // [E]
  const mask = compare('eq', top.unsqueeze(-1), experts).sum(-2); // [B, N, k, E] -> [B, N, E]
  return { indices: Int32Array.from(top.data()), mask };
}

/** max(‖x‖₂, eps) over the last axis, keepdim. Written as sqrt(max(Σx², eps²)) so that an all-zero
 *  row has a finite gradient (sqrt'(0) is infinite; the max routes the gradient to the constant). */
export function normFloor(x: Tensor, eps: number): Tensor {
  return maximum(x.mul(x).sum(-1, true), eps * eps).sqrt(); // [..., 1]
}

/** Replaces a router's result inside `withRoutingOverride`; `call` counts router calls in the
 *  scope from 0, which in one forward of the network is the block index. */
export type RoutingOverride = (routing: Routing, call: number) => Routing;
let activeOverride: { replace: RoutingOverride; calls: number } | null = null;

/** Run `body` with every routing replaced by `replace` (scopes nest; the previous one is restored). */
export function withRoutingOverride<T>(replace: RoutingOverride, body: () => T): T {
  const previous = activeOverride;
  activeOverride = { replace, calls: 0 };
  try {
    return body();
  } finally {
    activeOverride = previous;
  }
}

/** What a router hands out: its own routing, or the override's replacement of it. */
function handOut(routing: Routing): Routing {
  return activeOverride ? activeOverride.replace(routing, activeOverride.calls++) : routing;
}

/** The linear router's weights from logits z [B, N, E]. */
export function linearRoute(logits: Tensor, k: number, mode: TopkMode): Routing {
  const { indices, mask } = selectTopk(logits, k);
  // Subtracting the (detached) row maximum keeps exp from overflowing; it cancels in both forms.
  const e = logits.sub(logits.detach().max(-1, true)).exp(); // [B, N, E]
  let weights: Tensor;
  if (mode === 'maskThenSoftmax') {
    // softmax over the kept logits only = softmax(where(kept, z, −∞)), without infinities
    const kept = e.mul(mask);
    weights = kept.div(kept.sum(-1, true)); // rows sum to 1
  } else {
    weights = e.div(e.sum(-1, true)).mul(mask); // TopK(softmax(z)): rows sum to ≤ 1
  }
  return handOut({ weights, indices, k });
}

/** How the UaR's M stochastic passes draw their dropout; tests inject fixed masks through this. */
export type McDropout = (x: Tensor, sample: number) => Tensor;

/**
 * The Uncertainty-aware Router. `t` [B, N, D], router weight [E, D] and bias [E].
 * The MC dropout is active whatever the module's mode: that is what MC dropout is.
 */
export function uarRoute(
  t: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  k: number,
  u: UarConfig,
  generator: Generator,
  mcDropout: McDropout = (x) => dropout(x, u.dropout, true, generator),
): Routing {
  const M = u.samples;
  // 1. M stochastic router passes -> probabilities r_m                               each [B, N, E]
  const samples: Tensor[] = [];
  if (u.dropoutPlace === 'input') {
    for (let m = 0; m < M; m++) samples.push(affine(mcDropout(t, m), weight, bias).softmax(-1));
  } else {
    const z = affine(t, weight, null); // one matmul shared by all samples
    for (let m = 0; m < M; m++) samples.push((bias ? mcDropout(z, m).add(bias) : mcDropout(z, m)).softmax(-1));
  }
  // 2. the clean (dropout-free) pass: the numerator's r(x) and the 'beforeCalibration' selector
  const cleanLogits = affine(t, weight, bias); // [B, N, E]
  return handOut(uarCalibrate(samples, cleanLogits, k, u));
}

/**
 * The calibration step of the UaR, a pure function of tensors (tested on hand-computed values):
 * `samples` are the M MC probability vectors [..., E], `cleanLogits` the dropout-free logits.
 */
export function uarCalibrate(samples: readonly Tensor[], cleanLogits: Tensor, k: number, u: UarConfig): Routing {
  const M = samples.length;
  const r = stack(samples, 0); // [M, B, N, E]
  let mu = r.mean(0); // [B, N, E]   μ
  const centred = r.sub(mu); // [M, B, N, E]
  let v = centred.mul(centred).sum(0).div(u.unbiased ? M - 1 : M).add(u.eps); // [B, N, E]  diag Σ
  if (u.detachStats) {
    mu = mu.detach();
    v = v.detach();
  }
  // 'beforeCalibration': the clean logits choose the k experts first; calibrate among those only.
  const pre = u.topk === 'beforeCalibration' ? selectTopk(cleanLogits, k) : null;
  const restrict = (d: Tensor): Tensor => (pre ? d.mul(pre.mask) : d);
  const unit = (d: Tensor): Tensor => d.div(normFloor(d, u.eps)); // d / max(‖d‖₂, eps)

  let c: Tensor; // calibrated, unit-norm, signed                                      [B, N, E]
  if (u.numerator === 'clean') {
    c = unit(restrict(cleanLogits.softmax(-1).sub(mu).div(v))); // Σ⁻¹(r − μ)/‖·‖
  } else {
    // 2025 code's shape: average over samples of the normalised Σ⁻¹(r_m − μ)
    const perSample = samples.map((rm) => unit(restrict(rm.sub(mu).div(v))));
    c = stack(perSample, 0).mean(0);
  }
  const s = u.sign === 'keep' ? c : u.sign === 'relu' ? c.relu() : c.abs();

  const sel = pre ?? selectTopk(s, k); // 'afterCalibration': keep the k largest calibrated values
  const w = s.mul(sel.mask);
  return { weights: w.div(normFloor(w, u.eps)), indices: sel.indices, k }; // unit L2 norm over the kept
}
