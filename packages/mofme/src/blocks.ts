// The transformer blocks of MoFME as a reusable API: three feed-forward layers behind one
// interface, and a pre-norm transformer block that takes any of them. The restoration network
// (model.ts), the ViT classifier (classifier.ts) and the segmenter (segmenter.ts) are all built
// from these classes; there is no second implementation anywhere.
//
// Every FFN layer maps tokens t [B, N, D] to the residual branch y [B, N, D] (the caller, usually
// `TransformerBlock`, adds it to t) and reports how it routed them:
//   DenseFfn : y = FFN(LN(t))                                        (the ViT baseline)
//   MoeFfn   : y = Σ_e w_e(t) · FFN_e(LN_e(t))                       (E full FFN experts, top-k)
//   FmeFfn   : y = FFN_shared( Σ_e w_e(t) · [γ_e(h) ⊙ h + β_e(h)] ),  h = GELU(W_a u) ⊙ (W_b u), u = LN(t)
// The FME layer (the paper's Fig. 3(b)) makes each expert a feature-wise linear modulation (FiLM)
// of one shared hidden state, followed by ONE shared FFN, so an extra expert costs 2(D² + D)
// parameters instead of a whole FFN (2·D·F + F + D + 2D): that is the paper's parameter saving.
//
// Routers (router.ts): the linear top-k router, or the paper's Uncertainty-aware Router (UaR).
// Optionally a layer also returns the Switch Transformer's load-balancing loss (Fedus et al. 2021,
// eq. 4): aux = E · Σ_e f_e · P_e, f_e the share of the token slots routed to expert e (a constant)
// and P_e the mean router probability of e (differentiable). It is E·(1/E)·1 = 1 when the routing is
// uniform and grows to E when every token goes to one expert, so adding λ·aux to a loss pushes the
// router towards using all experts. The restoration network never asks for it (the paper has none).
//
// Example (the package README runs this through a test):
//   const ffn = new FmeFfn({ dim: 32, hidden: 64, experts: 4, topk: 2, router: 'uar' });
//   const block = new TransformerBlock({ dim: 32, heads: 4 }, ffn);
//   const { t, routing } = block.forward(tokens); // tokens [B, N, 32] -> t [B, N, 32]

import { Generator, indexSelect, scatterAdd, tensor, zeros, type Tensor } from '@mofme/tensor';
import { FeedForward, LayerNorm, Linear, Module, ModuleList, MultiHeadSelfAttention, disposeTemporariesUnderNoGrad, disposeUnreadByBackward, resolveInit } from '@mofme/nn';
import { defaultUar, mlpHiddenOf, type Execution, type FfnKind, type MofmeConfig, type RouterKind, type TopkMode, type UarConfig } from './config';
import { affine, linearRoute, uarRoute, type Routing } from './router';

/** What an FFN layer returns: the residual branch and how the tokens were routed. */
export interface FfnOutput {
  /** [B, N, D], the branch the block adds to its input */
  y: Tensor;
  /** the router's decision (null: dense FFN, no router) */
  routing: Routing | null;
  /** the load-balancing loss, a scalar (null unless the layer was built with `loadBalance: true`) */
  auxLoss: Tensor | null;
}

/** The one interface of the three FFN layers. */
export interface FfnLayer extends Module {
  /** t [B, N, D] -> the residual branch [B, N, D], with routing statistics */
  apply(t: Tensor): FfnOutput;
}

/** Options every FFN layer takes. */
export interface FfnOptions {
  /** token width D */
  dim: number;
  /** hidden width F of the (shared) FFN; 4·D is the ViT convention */
  hidden: number;
  /** dropout after the GELU and after the second Linear of every FFN. Default 0: off unless asked */
  dropout?: number;
  /** LayerNorm epsilon. Default 1e-5, PyTorch's (and the official model's) */
  eps?: number;
  /** stream for initialisation, dropout and the UaR's MC dropout (default: the `withInitDefaults`
   *  scope's, else the engine's default generator) */
  generator?: Generator;
}

/** Options of the two mixtures (MoE, FME). */
export interface MixtureOptions extends FfnOptions {
  /** number of experts E */
  experts: number;
  /** experts kept per token, 1..E */
  topk: number;
  /** 'linear' (default: what the released code trained) or 'uar' (the paper's router) */
  router?: RouterKind;
  /** linear router's top-k form. Default 'maskThenSoftmax' (official: kept weights sum to 1) */
  topkMode?: TopkMode;
  /** UaR options, merged into `defaultUar` (read only with router 'uar') */
  uar?: Partial<UarConfig>;
  /** 'sparse' (default: runs each expert on its own tokens only, same output) or 'dense' */
  execution?: Execution;
  /** also return the load-balancing loss (default false: it costs one more router matmul) */
  loadBalance?: boolean;
}

/** Options of the FME layer only: the two reproductions of the official code (config.ts says why). */
export interface FmeOptions extends MixtureOptions {
  /** router column 0 weights GELU(h), column c ≥ 1 FiLM expert c−1 (official off-by-one). Default false */
  officialExpertSlots?: boolean;
  /** allocate the never-called LayerNorm of each FiLM expert (official dead tensors). Default false */
  officialUnusedParams?: boolean;
}

function checkFfnOptions(layer: string, o: FfnOptions): void {
  for (const key of ['dim', 'hidden'] as const) {
    if (!(Number.isInteger(o[key]) && o[key] > 0)) throw new Error(`${layer}: ${key} must be a positive integer, got ${o[key]}`);
  }
  const p = o.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`${layer}: dropout must be in [0, 1), got ${p}`);
}

function checkMixtureOptions(layer: string, o: MixtureOptions): void {
  checkFfnOptions(layer, o);
  if (!(Number.isInteger(o.experts) && o.experts >= 1)) throw new Error(`${layer}: experts must be an integer ≥ 1, got ${o.experts}`);
  if (!(Number.isInteger(o.topk) && o.topk >= 1 && o.topk <= o.experts)) {
    throw new Error(`${layer}: topk must be an integer in 1..experts (${o.experts}), got ${o.topk}`);
  }
}

/** The one MLP (nn's FeedForward): D -> F -> D with GELU, dropout, and an optional pre-norm. */
function mlp(o: FfnOptions, preNorm: boolean, generator: Generator): FeedForward {
  return new FeedForward(o.dim, o.hidden, { dropout: o.dropout ?? 0, preNorm, eps: o.eps ?? 1e-5, generator });
}

/** The stream of a layer: the explicit one, else the init scope's (createModel sets it). */
function streamOf(o: FfnOptions): Generator {
  return o.generator ?? resolveInit().generator;
}

// ---------------------------------------------------------------------------------------------
// Routing and expert execution, shared by both mixtures
// ---------------------------------------------------------------------------------------------

/** The router of a mixture: a Linear D -> E read by the linear router or the UaR. */
class RouterHead {
  readonly uar: UarConfig;
  constructor(readonly linear: Linear, readonly o: MixtureOptions, readonly rng: Generator) {
    this.uar = { ...defaultUar, ...o.uar };
  }
  /** t [B, N, D] -> routing weights [B, N, E] and the selection; the UaR only where it is active. */
  route(t: Tensor, training: boolean): Routing {
    const uarActive = this.o.router === 'uar' && (training ? this.uar.whenTraining : this.uar.whenEval) === 'uar';
    if (uarActive) return uarRoute(t, this.linear.weight, this.linear.bias, this.o.topk, this.uar, this.rng);
    return linearRoute(affine(t, this.linear.weight, this.linear.bias), this.o.topk, this.o.topkMode ?? 'maskThenSoftmax');
  }
  /** E · Σ_e f_e · P_e (see the header), or null when not asked for. */
  auxLoss(t: Tensor, routing: Routing): Tensor | null {
    if (!this.o.loadBalance) return null;
    const probs = affine(t, this.linear.weight, this.linear.bias).softmax(-1); // [B, N, E]
    const E = probs.shape[2]!;
    const slots = routing.indices.length;
    const share = new Float64Array(E); // f_e: fraction of the token slots that chose e
    for (const e of routing.indices) share[e]! += 1 / slots;
    const f = tensor(share, { dtype: t.dtype, backend: t.backend }); // [E]
    return probs.reshape([-1, E]).mean(0).mul(f).sum().mul(E); // scalar
  }
}

/** acc + term, both freed at once: neither a sum's gradient nor the gradients of the ops that
 *  made them (a product, a scatter-add) read them, and a training step would hold E of them */
function accumulate(acc: Tensor, term: Tensor): Tensor {
  const sum = acc.add(term);
  disposeUnreadByBackward(acc, term);
  return sum;
}

/**
 * Σ_c w[..., c] · slot(c, x) over router columns c, x [B, N, D] -> [B, N, D].
 * dense : every slot on every token, times its (mostly zero) weight: the official cost.
 * sparse: per column, gather the tokens that selected it, run the slot on those rows only, and
 *         scatter-add the weighted result back: k/E of the expert compute, the same sum.
 * The model decides, not its caller: on a backend that compiles a kernel per tensor shape
 * (`compilesPerShape`, gpu.js) sparse is run densely, because the gathered token counts change at
 * every step and each new count would compile new kernels (measured: ~100 compilations per tiny
 * training step, each step slower than the last); dense has fixed shapes and the same outputs.
 */
export function mixExperts(x: Tensor, routing: Routing, slot: (c: number, rows: Tensor) => Tensor, sparse: boolean): Tensor {
  const [B, N, D] = x.shape as [number, number, number];
  const E = routing.weights.shape[2]!;
  const w = routing.weights; // [B, N, E]
  let acc: Tensor | null = null;
  if (!sparse || x.backend.compilesPerShape) {
    for (let c = 0; c < E; c++) {
      const term = slot(c, x).mul(w.narrow(-1, c, 1)); // [B, N, D] · [B, N, 1]
      acc = acc ? accumulate(acc, term) : term;
    }
    return acc!;
  }
  const T = B * N, k = routing.k;
  const rowsOf: number[][] = Array.from({ length: E }, () => []); // tokens routed to each column
  for (let r = 0; r < T; r++) for (let j = 0; j < k; j++) rowsOf[routing.indices[r * k + j]!]!.push(r);
  const xt = x.reshape([T, D]); // [T, D]
  const wt = w.reshape([T, E]); // [T, E]
  for (let c = 0; c < E; c++) {
    const rows = rowsOf[c]!;
    if (rows.length === 0) continue;
    const n = rows.length;
    const idx = tensor(Float64Array.from(rows), { dtype: x.dtype, backend: x.backend }); // [n]
    const ye = slot(c, indexSelect(xt, 0, idx)); // [n, D]
    const we = indexSelect(wt, 0, idx).narrow(1, c, 1); // [n, 1]
    const placed = scatterAdd([T, D], 0, idx.reshape([n, 1]).expand([n, D]), ye.mul(we)); // [T, D]
    acc = acc ? accumulate(acc, placed) : placed;
  }
  return (acc ?? zeros([T, D], { dtype: x.dtype, backend: x.backend })).reshape([B, N, D]);
}

function checkTokens(layer: string, t: Tensor, dim: number): void {
  if (t.ndim !== 3 || t.shape[2] !== dim) throw new Error(`${layer}(dim=${dim}): expected tokens [B, N, ${dim}], got [${t.shape.join(', ')}]`);
}

// ---------------------------------------------------------------------------------------------
// The three FFN layers
// ---------------------------------------------------------------------------------------------

/** The ViT baseline's FFN: y = FFN(LN(t)). Parameters norm, fc1, fc2. */
export class DenseFfn extends FeedForward implements FfnLayer {
  readonly dim: number;
  constructor(options: FfnOptions) {
    checkFfnOptions('DenseFfn', options);
    const generator = streamOf(options);
    super(options.dim, options.hidden, { dropout: options.dropout ?? 0, preNorm: true, eps: options.eps ?? 1e-5, generator });
    this.dim = options.dim;
  }
  apply(t: Tensor): FfnOutput {
    checkTokens('DenseFfn', t, this.dim);
    return { y: this.forward(t), routing: null, auxLoss: null }; // [B, N, D]
  }
}

/** What both mixtures start with: their checked options, their stream, and the router (its
 *  parameters first, so the state-dict order is router, then the layer's own parts). */
abstract class Mixture<O extends MixtureOptions> extends Module implements FfnLayer {
  readonly router: Linear; // D -> E, reads the un-normalised t (official)
  protected readonly head: RouterHead;
  protected readonly rng: Generator;
  constructor(layer: string, readonly options: O) {
    super();
    checkMixtureOptions(layer, options);
    this.rng = streamOf(options);
    this.router = this.child('router', new Linear(options.dim, options.experts, { generator: this.rng }));
    this.head = new RouterHead(this.router, options, this.rng);
  }
  abstract apply(t: Tensor): FfnOutput;
}

/** The conventional MoE: E full pre-norm FFN experts mixed by a per-token top-k router. */
export class MoeFfn extends Mixture<MixtureOptions> {
  readonly experts: ModuleList<FeedForward>;
  constructor(options: MixtureOptions) {
    super('MoeFfn', options);
    this.experts = this.child('experts', new ModuleList(Array.from({ length: options.experts }, () => mlp(options, true, this.rng))));
  }
  apply(t: Tensor): FfnOutput {
    checkTokens('MoeFfn', t, this.options.dim);
    return disposeTemporariesUnderNoGrad(() => {
      const routing = this.head.route(t, this.training); // weights [B, N, E]
      const y = mixExperts(t, routing, (e, z) => this.experts.at(e).forward(z), (this.options.execution ?? 'sparse') === 'sparse');
      return { y, routing, auxLoss: this.head.auxLoss(t, routing) }; // [B, N, D]
    });
  }
}

/** One FiLM expert: m(h) = γ(h) ⊙ h + β(h), γ and β Linear D -> D of the hidden features (official). */
export class FilmExpert extends Module {
  readonly gamma: Linear;
  readonly beta: Linear;
  readonly norm: LayerNorm | null; // official dead tensor, never called (officialUnusedParams)
  constructor(dim: number, eps: number, unusedNorm: boolean, generator: Generator) {
    super();
    this.gamma = this.child('gamma', new Linear(dim, dim, { generator }));
    this.beta = this.child('beta', new Linear(dim, dim, { generator }));
    this.norm = unusedNorm ? this.child('norm', new LayerNorm(dim, { eps })) : null;
  }
  /** h [..., D] -> [..., D] */
  forward(h: Tensor): Tensor {
    return this.gamma.forward(h).mul(h).add(this.beta.forward(h));
  }
}

/** The gated unit shared by all experts: h = GELU(W_a u + b_a) ⊙ (W_b u + b_b) ("star-gelu"). */
export class GatedUnit extends Module {
  readonly gate: Linear;
  readonly value: Linear;
  constructor(dim: number, generator: Generator) {
    super();
    this.gate = this.child('gate', new Linear(dim, dim, { generator }));
    this.value = this.child('value', new Linear(dim, dim, { generator }));
  }
  forward(u: Tensor): Tensor {
    return this.gate.forward(u).gelu().mul(this.value.forward(u)); // [..., D]
  }
}

/** Holder of the FiLM experts (`experts.film.e`, the official nesting). */
class FmeExperts extends Module {
  readonly film: ModuleList<FilmExpert>;
  constructor(o: FmeOptions, generator: Generator) {
    super();
    const eps = o.eps ?? 1e-5, unused = o.officialUnusedParams ?? false;
    this.film = this.child('film', new ModuleList(Array.from({ length: o.experts }, () => new FilmExpert(o.dim, eps, unused, generator))));
  }
}

/** The FME layer (Fig. 3(b)): y = FFN_shared( Σ_c w_c(t) · slot_c(h) ), h = gated(LN(t)). */
export class FmeFfn extends Mixture<FmeOptions> {
  readonly norm: LayerNorm; // LN_f
  readonly base: GatedUnit;
  readonly experts: FmeExperts;
  readonly shared: FeedForward; // the official "adaptor": no norm of its own
  constructor(options: FmeOptions) {
    super('FmeFfn', options);
    this.norm = this.child('norm', new LayerNorm(options.dim, { eps: options.eps ?? 1e-5 }));
    this.base = this.child('base', new GatedUnit(options.dim, this.rng));
    this.experts = this.child('experts', new FmeExperts(options, this.rng));
    this.shared = this.child('shared', mlp(options, false, this.rng));
  }
  /** What router column c weights. officialExpertSlots: column 0 is a parameter-free GELU and
   *  column c ≥ 1 is FiLM c−1 (the official off-by-one; the last FiLM expert is never used). */
  slot(c: number, h: Tensor): Tensor {
    if (!this.options.officialExpertSlots) return this.experts.film.at(c).forward(h);
    return c === 0 ? h.gelu() : this.experts.film.at(c - 1).forward(h);
  }
  apply(t: Tensor): FfnOutput {
    checkTokens('FmeFfn', t, this.options.dim);
    return disposeTemporariesUnderNoGrad(() => {
      const routing = this.head.route(t, this.training); // weights [B, N, E]
      const h = this.base.forward(this.norm.forward(t)); // [B, N, D]
      const s = mixExperts(h, routing, (c, z) => this.slot(c, z), (this.options.execution ?? 'sparse') === 'sparse'); // [B, N, D]
      return { y: this.shared.forward(s), routing, auxLoss: this.head.auxLoss(t, routing) }; // [B, N, D] (hidden [B, N, F])
    });
  }
}

/** The FFN options of a MoFME config: what every block's FFN layer of the network is built from
 *  (model.ts hands its config over whole, so the FFN's fields are read here, where they act). */
export function ffnOptionsOf(c: MofmeConfig, generator: Generator): FmeOptions {
  return {
    dim: c.dim,
    hidden: mlpHiddenOf(c),
    dropout: c.dropout,
    eps: c.layerNormEps,
    generator,
    experts: c.experts,
    topk: c.topk,
    router: c.router,
    topkMode: c.topkMode,
    uar: c.uar,
    execution: c.execution,
    officialExpertSlots: c.officialExpertSlots,
    officialUnusedParams: c.officialUnusedParams,
  };
}

/** Build the FFN layer of a kind; `dense` ignores the mixture options. */
export function createFfn(kind: FfnKind, options: FmeOptions): FfnLayer {
  if (kind === 'dense') return new DenseFfn(options);
  if (kind === 'moe') return new MoeFfn(options);
  return new FmeFfn(options);
}

// ---------------------------------------------------------------------------------------------
// The transformer block
// ---------------------------------------------------------------------------------------------

export interface TransformerBlockOptions {
  /** token width D */
  dim: number;
  /** attention heads */
  heads: number;
  /** width of one head (default D / heads; the official MoFME uses 64 with D = 384) */
  headDim?: number;
  /** dropout after the attention's output projection. Default 0 */
  dropout?: number;
  /** LayerNorm epsilon. Default 1e-5 */
  eps?: number;
  /** dropout stream (default: the init scope's) */
  generator?: Generator;
}

/** What a block returns: the new tokens and its FFN's routing and auxiliary loss. */
export interface BlockOutput {
  t: Tensor; // [B, N, D]
  routing: Routing | null;
  auxLoss: Tensor | null;
}

/** A pre-norm transformer block: t ← t + Attn(LN(t)); t ← t + FFN-branch(t), any FFN layer. */
export class TransformerBlock extends Module {
  readonly attn: MultiHeadSelfAttention; // with its own pre-norm `norm`
  readonly ffn: FfnLayer;
  constructor(options: TransformerBlockOptions, ffn: FfnLayer) {
    super();
    const generator = options.generator ?? resolveInit().generator;
    this.attn = this.child('attn', new MultiHeadSelfAttention(options.dim, {
      heads: options.heads,
      ...(options.headDim !== undefined ? { headDim: options.headDim } : {}),
      projDropout: options.dropout ?? 0,
      preNorm: true,
      eps: options.eps ?? 1e-5,
      generator,
    }));
    this.ffn = this.child('ffn', ffn);
  }
  /** t [B, N, D] -> [B, N, D] */
  forward(t: Tensor): BlockOutput {
    // under noGrad the attention branch, the FFN's temporaries and `a` are freed on return
    return disposeTemporariesUnderNoGrad(() => {
      const a = t.add(this.attn.forward(t)); // [B, N, D]
      const { y, routing, auxLoss } = this.ffn.apply(a);
      return { t: a.add(y), routing, auxLoss };
    });
  }
}
