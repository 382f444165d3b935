// Router calibration: how well do a router's weights predict which expert helps a token?
//
// The paper motivates the Uncertainty-aware Router by calibration ("a linear router gives poorly
// calibrated weights") but no number of it survives in the available sources, so this file defines
// one that can be computed for any router, linear or UaR, MoE or MoFME (docs/uar.md justifies it):
//
// 1. Counterfactual expert losses. For one block, run the network E more times with that block's
//    routing forced to a single expert e for every token (weight 1: both a softmax row and a unit
//    vector), every other block replaying the routing it chose in the plain forward. The loss of
//    token t under expert e, L[t, e], is the squared error of the output pixels in t's patch, so the
//    "expert that helps t most" is argmin_e L[t, e]. (Forcing all tokens at once lets the tokens
//    interact through later attention; a per-token swap would cost N·E forwards.)
// 2. Reliability, in the expected-calibration-error style of classifiers: the router's prediction
//    is its largest weight, its confidence that weight's share p = |w_top| / Σ_e |w_e| (absolute
//    values, so the UaR's signed unit vectors are read the same way), and the prediction is correct
//    when it is the expert of step 1. Tokens are binned by confidence; a calibrated router has, in
//    each bin, accuracy = confidence, and ECE = Σ_b (n_b / T)·|accuracy_b − confidence_b|.
//    Chance accuracy is 1/E.
// 3. The swap test: the loss increase when each token's k chosen experts are replaced by k others
//    (drawn from the unchosen, keeping the weights), per confidence bin. A router whose weights mean
//    something loses more when confident choices are swapped away; a router that routes by noise
//    loses nothing on average.

import { Generator, noGrad, tensor, tidy, type Tensor } from '@mofme/tensor';
import type { MoFME } from './model';
import { withRoutingOverride, type Routing } from './router';

/** One block's per-token counterfactuals, T = B·N tokens in row-major (image, patch row, patch column). */
export interface TokenCounterfactuals {
  /** experts E */
  experts: number;
  /** tokens T */
  tokens: number;
  /** the block's own routing weights, [T, E] */
  weights: Float64Array;
  /** L[t, e]: token t's patch loss with the block forced to expert e alone, [T, E] */
  expertLoss: Float64Array;
  /** token t's patch loss under the router's own choice, [T] */
  chosenLoss: Float64Array;
  /** token t's patch loss with its k chosen experts swapped for k unchosen ones, [T]; null if E < 2k */
  swappedLoss: Float64Array | null;
}

/** Mean squared error of each p×p patch, averaged over channels: out, target [B, C, H, W] -> [B·N]. */
export function patchLosses(out: Tensor, target: Tensor, patch: number): Float64Array {
  const [B, C, H, W] = out.shape as [number, number, number, number];
  if (target.shape.join() !== out.shape.join()) throw new Error(`patchLosses: output [${out.shape.join(', ')}] and target [${target.shape.join(', ')}] differ`);
  const o = out.data(), g = target.data();
  const rows = H / patch, cols = W / patch;
  const loss = new Float64Array(B * rows * cols);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          const i = ((b * C + c) * H + y) * W + x;
          loss[(b * rows + Math.floor(y / patch)) * cols + Math.floor(x / patch)]! += (o[i]! - g[i]!) ** 2;
        }
  const per = C * patch * patch;
  return loss.map((v) => v / per);
}

/** A routing of the same shape as `like` that sends every token to `expert` alone, with weight 1. */
function forcedRouting(like: Routing, expert: number): Routing {
  const [B, N, E] = like.weights.shape as [number, number, number];
  const w = new Float64Array(B * N * E);
  for (let t = 0; t < B * N; t++) w[t * E + expert] = 1;
  const weights = tensor(w, { shape: [B, N, E], dtype: like.weights.dtype, backend: like.weights.backend });
  return { weights, indices: new Int32Array(B * N).fill(expert), k: 1 };
}

/** Each token's k chosen experts replaced by k unchosen ones (seeded draw), carrying the same weights. */
function swappedRouting(like: Routing, generator: Generator): Routing | null {
  const [B, N, E] = like.weights.shape as [number, number, number];
  const k = like.k;
  if (E < 2 * k) return null;
  const own = like.weights.data();
  const w = new Float64Array(B * N * E), indices = new Int32Array(B * N * k);
  for (let t = 0; t < B * N; t++) {
    const chosen = Array.from(like.indices.subarray(t * k, t * k + k));
    const others = [...Array(E).keys()].filter((e) => !chosen.includes(e));
    for (let j = 0; j < k; j++) {
      const pick = others.splice(generator.int(others.length), 1)[0]!; // without replacement
      w[t * E + pick] = own[t * E + chosen[j]!]!;
      indices[t * k + j] = pick;
    }
  }
  return { weights: tensor(w, { shape: [B, N, E], dtype: like.weights.dtype, backend: like.weights.backend }), indices, k };
}

/**
 * The counterfactual losses of block `layer` on one batch: `x` [B, 3, H, W] in [−1, 1] (the model's
 * input), `target` [B, 3, H, W] in [0, 1]. The model is put in evaluation mode. Costs E + 2 forwards.
 */
export function tokenCounterfactuals(model: MoFME, x: Tensor, target: Tensor, layer: number, seed = 0): TokenCounterfactuals {
  model.eval();
  const p = model.config.patchSize;
  return noGrad(() => tidy(() => {
    // the plain forward, recording every block's routing so that the counterfactuals replay it
    const recorded: Routing[] = [];
    const plain = withRoutingOverride((r) => (recorded.push(r), r), () => model.forward(x));
    const own = recorded[layer];
    if (!own) throw new Error(`tokenCounterfactuals: block ${layer} has no router (the network has ${recorded.length} routed blocks; a dense model has none)`);
    const [, , E] = own.weights.shape as [number, number, number];
    // each counterfactual forward in its own scope: its activations are freed before the next one
    const lossWith = (replace: Routing): Float64Array =>
      tidy(() => patchLosses(withRoutingOverride((_r, call) => (call === layer ? replace : recorded[call]!), () => model.forward(x)).image, target, p));
    const chosenLoss = patchLosses(plain.image, target, p);
    const T = chosenLoss.length;
    const expertLoss = new Float64Array(T * E);
    for (let e = 0; e < E; e++) {
      const l = lossWith(forcedRouting(own, e));
      for (let t = 0; t < T; t++) expertLoss[t * E + e] = l[t]!;
    }
    const swap = swappedRouting(own, new Generator(seed));
    return { experts: E, tokens: T, weights: Float64Array.from(own.weights.data()), expertLoss, chosenLoss, swappedLoss: swap ? lossWith(swap) : null };
  }));
}

/** One confidence bin of the reliability diagram. */
export interface ReliabilityBin {
  /** confidence range [lo, hi) (the last bin includes 1) */
  lo: number;
  hi: number;
  tokens: number;
  /** mean confidence of its tokens (NaN when empty) */
  confidence: number;
  /** share of its tokens whose top expert is the best one (NaN when empty) */
  accuracy: number;
  /** mean loss increase when the chosen experts are swapped away (NaN when empty or not measured) */
  swapIncrease: number;
}

/** The calibration of one router over a set of tokens. */
export interface CalibrationReport {
  tokens: number;
  experts: number;
  bins: ReliabilityBin[];
  /** expected calibration error Σ_b (n_b/T)|accuracy_b − confidence_b| */
  ece: number;
  /** share of tokens whose top expert is the best one, against `chance` = 1/E */
  accuracy: number;
  chance: number;
  meanConfidence: number;
  /** mean loss increase of the swap test over all tokens (NaN when not measured) */
  swapIncrease: number;
  /** share of tokens for which swapping increased the loss (NaN when not measured) */
  swapHurts: number;
}

/** What `calibrationReport` reads: weights and expert losses [T, E], the swap test optional. */
export interface CalibrationInput {
  experts: number;
  weights: ArrayLike<number>;
  expertLoss: ArrayLike<number>;
  chosenLoss?: ArrayLike<number> | null;
  swappedLoss?: ArrayLike<number> | null;
}

/** Reliability bins, ECE, accuracy and the swap test from per-token weights and expert losses. */
export function calibrationReport(input: CalibrationInput, binCount = 10): CalibrationReport {
  const E = input.experts;
  const T = input.weights.length / E;
  if (!Number.isInteger(T) || input.expertLoss.length !== T * E) {
    throw new Error(`calibrationReport: weights (${input.weights.length} values) and expert losses (${input.expertLoss.length}) must both be [T, ${E}]`);
  }
  const swap = input.chosenLoss && input.swappedLoss ? { chosen: input.chosenLoss, swapped: input.swappedLoss } : null;
  const acc = Array.from({ length: binCount }, () => ({ n: 0, conf: 0, correct: 0, swap: 0 }));
  let correct = 0, confSum = 0, swapSum = 0, hurts = 0;
  for (let t = 0; t < T; t++) {
    let top = 0, best = 0, mass = 0;
    for (let e = 0; e < E; e++) {
      const w = Math.abs(input.weights[t * E + e]!);
      mass += w;
      if (w > Math.abs(input.weights[t * E + top]!)) top = e; // ties: lower index
      if (input.expertLoss[t * E + e]! < input.expertLoss[t * E + best]!) best = e;
    }
    const confidence = mass > 0 ? Math.abs(input.weights[t * E + top]!) / mass : 1 / E;
    const bin = acc[Math.min(binCount - 1, Math.floor(confidence * binCount))]!;
    const hit = top === best ? 1 : 0;
    bin.n++, bin.conf += confidence, bin.correct += hit;
    correct += hit, confSum += confidence;
    if (swap) {
      const inc = swap.swapped[t]! - swap.chosen[t]!;
      bin.swap += inc, swapSum += inc, hurts += inc > 0 ? 1 : 0;
    }
  }
  const bins = acc.map((b, i) => ({
    lo: i / binCount, hi: (i + 1) / binCount, tokens: b.n,
    confidence: b.n ? b.conf / b.n : NaN, accuracy: b.n ? b.correct / b.n : NaN, swapIncrease: b.n && swap ? b.swap / b.n : NaN,
  }));
  const ece = bins.reduce((s, b) => (b.tokens ? s + (b.tokens / T) * Math.abs(b.accuracy - b.confidence) : s), 0);
  return {
    tokens: T, experts: E, bins, ece, accuracy: correct / T, chance: 1 / E, meanConfidence: confSum / T,
    swapIncrease: swap ? swapSum / T : NaN, swapHurts: swap ? hurts / T : NaN,
  };
}

/** Concatenate counterfactuals of several batches of the same block (same E). */
export function concatCounterfactuals(parts: readonly TokenCounterfactuals[]): TokenCounterfactuals {
  const E = parts[0]?.experts ?? 0;
  if (parts.some((p) => p.experts !== E)) throw new Error('concatCounterfactuals: the parts have different expert counts');
  const cat = (pick: (p: TokenCounterfactuals) => Float64Array): Float64Array => {
    const out = new Float64Array(parts.reduce((s, p) => s + pick(p).length, 0));
    let at = 0;
    for (const p of parts) out.set(pick(p), at), (at += pick(p).length);
    return out;
  };
  const allSwapped = parts.every((p) => p.swappedLoss);
  return {
    experts: E, tokens: parts.reduce((s, p) => s + p.tokens, 0),
    weights: cat((p) => p.weights), expertLoss: cat((p) => p.expertLoss), chosenLoss: cat((p) => p.chosenLoss),
    swappedLoss: allSwapped ? cat((p) => p.swappedLoss!) : null,
  };
}

/** The calibration of every routed block of a model, and pooled over blocks. */
export interface ModelCalibration {
  blocks: CalibrationReport[];
  pooled: CalibrationReport;
}

/**
 * Measure a model's router calibration on windows `x` [B, 3, H, W] (model input, [−1, 1]) with
 * targets [B, 3, H, W] ([0, 1]), `batch` windows per forward (memory stays bounded).
 */
export function measureCalibration(model: MoFME, x: Tensor, target: Tensor, batch = 16): ModelCalibration {
  const windows = x.shape[0]!;
  const perBlock: TokenCounterfactuals[] = [];
  for (let layer = 0; layer < model.config.depth; layer++) {
    const parts: TokenCounterfactuals[] = [];
    for (let at = 0; at < windows; at += batch) {
      const n = Math.min(batch, windows - at);
      parts.push(tokenCounterfactuals(model, x.narrow(0, at, n), target.narrow(0, at, n), layer, at));
    }
    perBlock.push(concatCounterfactuals(parts));
  }
  return { blocks: perBlock.map((c) => calibrationReport(c)), pooled: calibrationReport(concatCounterfactuals(perBlock)) };
}
