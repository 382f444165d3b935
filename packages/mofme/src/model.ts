// The MoFME restoration network (AAAI 2024, arXiv 2312.16610, Fig. 3), with its two baselines.
//
// Read top to bottom it is Fig. 3(a): a full-resolution conv head with ResBlocks, a patch embedding
// + LayerNorm, N pre-norm transformer blocks, a Linear "un-patchify", a conv tail with ResBlocks and
// a sigmoid. Only the FFN of each block changes between the three models (config.ffn):
//   dense : t + FFN(LN(t))                                    (the ViT baseline)
//   moe   : t + Σ_e w_e(t) · FFN_e(LN_e(t))                   (E full FFN experts, top-k router)
//   mofme : t + FFN_shared( Σ_e w_e(t) · [γ_e(h) ⊙ h + β_e(h)] ),  h = GELU(W_a u) ⊙ (W_b u), u = LN(t)
// The FME layer (Fig. 3(b)) makes each expert a feature-wise linear modulation (FiLM) of a shared
// hidden state followed by ONE shared FFN, so an extra expert costs 2(D² + D) parameters instead of
// a whole FFN (8D² + 5D + 2D): that is the paper's parameter saving.
//
// The plan this implements, with every name, shape and switch: docs/model-plan.md. Shapes in the
// comments are symbolic; the paper preset at 240x240 has Ch = 32, D = 384, N = 900, I = 512,
// F = 1536, Ct = 128. Layouts are PyTorch's, so official checkpoints load without transposes.

import { Generator, bmm, clamp, dropout, indexSelect, keep, noGrad, scatterAdd, tensor, zeros, type DType, type Tensor } from '@mofme/tensor';
import { Conv2d, LayerNorm, Linear, Module, ModuleList, PatchEmbed, PatchUnembed, ResBlock, init, withInitDefaults } from '@mofme/nn';
import { attnInnerOf, mlpHiddenOf, tokensOf, type MofmeConfig } from './config';
import { affine, linearRoute, uarRoute, type Routing } from './router';

/** One forward pass's result: the image and, per block, how its tokens were routed (null: dense FFN). */
export interface MofmeOutput {
  image: Tensor; // [B, 3, H, W] in [0, 1]
  routing: (Routing | null)[];
}

/** A transformer FFN variant: returns the residual branch (the block adds it) and its routing. */
interface FfnLayer extends Module {
  branch(t: Tensor): { y: Tensor; routing: Routing | null };
}

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/** Linear D->F, GELU, Dropout, Linear F->D, Dropout; with an optional LayerNorm in front (pre-norm).
 *  Names norm / fc1 / fc2: the dense FFN, each MoE expert, and (without norm) FME's shared FFN. */
export class Mlp extends Module {
  readonly norm: LayerNorm | null;
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly config: MofmeConfig, readonly rng: Generator, withNorm: boolean) {
    super();
    const D = config.dim, F = mlpHiddenOf(config);
    this.norm = withNorm ? this.child('norm', new LayerNorm(D, { eps: config.layerNormEps })) : null;
    this.fc1 = this.child('fc1', new Linear(D, F));
    this.fc2 = this.child('fc2', new Linear(F, D));
  }
  /** z [..., D] -> [..., D] (hidden [..., F]) */
  forward(z: Tensor): Tensor {
    const p = this.config.dropout;
    const u = this.norm ? this.norm.forward(z) : z;
    const hidden = dropout(this.fc1.forward(u).gelu(), p, this.training, this.rng); // [..., F]
    return dropout(this.fc2.forward(hidden), p, this.training, this.rng); // [..., D]
  }
}

/** Pre-norm multi-head self-attention, heads x headDim independent of D (official 8 x 64, D = 384). */
export class Attention extends Module {
  readonly norm: LayerNorm;
  readonly qkv: Linear; // D -> 3I, no bias; features q|k|v, head-major inside each
  readonly out: Linear; // I -> D
  constructor(readonly config: MofmeConfig, readonly rng: Generator) {
    super();
    const D = config.dim, I = attnInnerOf(config);
    this.norm = this.child('norm', new LayerNorm(D, { eps: config.layerNormEps }));
    this.qkv = this.child('qkv', new Linear(D, 3 * I, { bias: false }));
    this.out = this.child('out', new Linear(I, D));
  }
  /** t [B, N, D] -> the residual branch [B, N, D] */
  forward(t: Tensor): Tensor {
    const [B, N] = t.shape as [number, number];
    const H = this.config.heads, dh = this.config.headDim;
    const qkv = this.qkv.forward(this.norm.forward(t)); // [B, N, 3I]
    const [q, k, v] = qkv
      .reshape([B, N, 3, H, dh])
      .permute([2, 0, 3, 1, 4]) // [3, B, H, N, dh]
      .split(1, 0)
      .map((z) => z.reshape([B * H, N, dh]));
    const attn = bmm(q!, k!, false, true).mul(dh ** -0.5).softmax(-1); // [B·H, N, N], no mask
    const o = bmm(attn, v!).reshape([B, H, N, dh]).permute([0, 2, 1, 3]).reshape([B, N, H * dh]); // [B, N, I]
    return dropout(this.out.forward(o), this.config.dropout, this.training, this.rng); // [B, N, D]
  }
}

/** Route the tokens: the linear router, or the UaR when configured and active in this mode. */
function route(t: Tensor, router: Linear, c: MofmeConfig, training: boolean, rng: Generator): Routing {
  const uarActive = c.router === 'uar' && (training ? c.uar.whenTraining : c.uar.whenEval) === 'uar';
  if (uarActive) return uarRoute(t, router.weight, router.bias, c.topk, c.uar, rng);
  return linearRoute(affine(t, router.weight, router.bias), c.topk, c.topkMode); // logits [B, N, E]
}

/**
 * Σ_c w[..., c] · slot(c, x) over router columns c, x [B, N, D] -> [B, N, D].
 * dense : every slot on every token, times its (mostly zero) weight: the official cost.
 * sparse: per column, gather the tokens that selected it, run the slot on those rows only, and
 *         scatter-add the weighted result back: k/E of the expert compute, the same sum.
 */
export function mixExperts(x: Tensor, routing: Routing, slot: (c: number, rows: Tensor) => Tensor, sparse: boolean): Tensor {
  const [B, N, D] = x.shape as [number, number, number];
  const E = routing.weights.shape[2]!;
  const w = routing.weights; // [B, N, E]
  let acc: Tensor | null = null;
  if (!sparse) {
    for (let c = 0; c < E; c++) {
      const term = slot(c, x).mul(w.narrow(-1, c, 1)); // [B, N, D] · [B, N, 1]
      acc = acc ? acc.add(term) : term;
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
    acc = acc ? acc.add(placed) : placed;
  }
  return (acc ?? zeros([T, D], { dtype: x.dtype, backend: x.backend })).reshape([B, N, D]);
}

// ---------------------------------------------------------------------------------------------
// The three FFNs
// ---------------------------------------------------------------------------------------------

/** The ViT baseline's FFN: t + FFN(LN(t)). Parameters norm, fc1, fc2. */
export class DenseFfn extends Mlp implements FfnLayer {
  constructor(config: MofmeConfig, rng: Generator) {
    super(config, rng, true);
  }
  branch(t: Tensor): { y: Tensor; routing: Routing | null } {
    return { y: this.forward(t), routing: null }; // [B, N, D]
  }
}

/** The conventional MoE baseline: E full pre-norm FFN experts mixed by a per-token top-k router. */
export class MoeFfn extends Module implements FfnLayer {
  readonly router: Linear; // D -> E
  readonly experts: ModuleList<Mlp>;
  constructor(readonly config: MofmeConfig, readonly rng: Generator) {
    super();
    this.router = this.child('router', new Linear(config.dim, config.experts));
    this.experts = this.child('experts', new ModuleList(Array.from({ length: config.experts }, () => new Mlp(config, rng, true))));
  }
  branch(t: Tensor): { y: Tensor; routing: Routing } {
    const routing = route(t, this.router, this.config, this.training, this.rng); // weights [B, N, E]
    const y = mixExperts(t, routing, (e, z) => this.experts.at(e).forward(z), this.config.execution === 'sparse');
    return { y, routing }; // [B, N, D]
  }
}

/** One FiLM expert: m(h) = γ(h) ⊙ h + β(h), γ and β Linear D->D of the hidden features (official). */
export class FilmExpert extends Module {
  readonly gamma: Linear;
  readonly beta: Linear;
  readonly norm: LayerNorm | null; // official dead tensor, never called (officialUnusedParams)
  constructor(config: MofmeConfig) {
    super();
    this.gamma = this.child('gamma', new Linear(config.dim, config.dim));
    this.beta = this.child('beta', new Linear(config.dim, config.dim));
    this.norm = config.officialUnusedParams ? this.child('norm', new LayerNorm(config.dim, { eps: config.layerNormEps })) : null;
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
  constructor(config: MofmeConfig) {
    super();
    this.gate = this.child('gate', new Linear(config.dim, config.dim));
    this.value = this.child('value', new Linear(config.dim, config.dim));
  }
  forward(u: Tensor): Tensor {
    return this.gate.forward(u).gelu().mul(this.value.forward(u)); // [..., D]
  }
}

/** Holder of the FiLM experts (`experts.film.e`), leaving room for other expert kinds. */
class FmeExperts extends Module {
  readonly film: ModuleList<FilmExpert>;
  constructor(config: MofmeConfig) {
    super();
    this.film = this.child('film', new ModuleList(Array.from({ length: config.experts }, () => new FilmExpert(config))));
  }
}

/** The FME layer (Fig. 3(b)): FME(t) = FFN_shared( Σ_c w_c(t) · slot_c(h) ), h = gated(LN(t)). */
export class FmeFfn extends Module implements FfnLayer {
  readonly router: Linear; // D -> E, reads the un-normalised t
  readonly norm: LayerNorm; // LN_f
  readonly base: GatedUnit;
  readonly experts: FmeExperts;
  readonly shared: Mlp; // the official "adaptor": no norm of its own
  constructor(readonly config: MofmeConfig, readonly rng: Generator) {
    super();
    this.router = this.child('router', new Linear(config.dim, config.experts));
    this.norm = this.child('norm', new LayerNorm(config.dim, { eps: config.layerNormEps }));
    this.base = this.child('base', new GatedUnit(config));
    this.experts = this.child('experts', new FmeExperts(config));
    this.shared = this.child('shared', new Mlp(config, rng, false));
  }
  /** What router column c weights. officialExpertSlots: column 0 is a parameter-free GELU and
   *  column c ≥ 1 is FiLM c−1 (the official off-by-one; the last FiLM expert is never used). */
  slot(c: number, h: Tensor): Tensor {
    if (!this.config.officialExpertSlots) return this.experts.film.at(c).forward(h);
    return c === 0 ? h.gelu() : this.experts.film.at(c - 1).forward(h);
  }
  branch(t: Tensor): { y: Tensor; routing: Routing } {
    const routing = route(t, this.router, this.config, this.training, this.rng); // weights [B, N, E]
    const h = this.base.forward(this.norm.forward(t)); // [B, N, D]
    const s = mixExperts(h, routing, (c, z) => this.slot(c, z), this.config.execution === 'sparse'); // [B, N, D]
    return { y: this.shared.forward(s), routing }; // [B, N, D] (hidden [B, N, F])
  }
}

/** The FFN of `config.ffn`. */
export function createFfn(config: MofmeConfig, rng: Generator): FfnLayer {
  if (config.ffn === 'dense') return new DenseFfn(config, rng);
  if (config.ffn === 'moe') return new MoeFfn(config, rng);
  return new FmeFfn(config, rng);
}

/** A pre-norm transformer block: t ← t + Attn(LN(t)); t ← t + FFN-branch(t). */
export class Block extends Module {
  readonly attn: Attention;
  readonly ffn: FfnLayer;
  constructor(config: MofmeConfig, rng: Generator) {
    super();
    this.attn = this.child('attn', new Attention(config, rng));
    this.ffn = this.child('ffn', createFfn(config, rng));
  }
  forward(t: Tensor): { t: Tensor; routing: Routing | null } {
    const a = t.add(this.attn.forward(t)); // [B, N, D]
    const { y, routing } = this.ffn.branch(a);
    return { t: a.add(y), routing };
  }
}

/** Conv 3->Ch, then ResBlocks at full resolution. */
class Head extends Module {
  readonly conv: Conv2d;
  readonly res: ModuleList<ResBlock>;
  constructor(c: MofmeConfig) {
    super();
    this.conv = this.child('conv', new Conv2d(3, c.headChannels, 3, { padding: 1 }));
    this.res = this.child('res', new ModuleList(Array.from({ length: c.headResBlocks }, () => new ResBlock(c.headChannels))));
  }
  forward(x: Tensor): Tensor {
    let y = this.conv.forward(x); // [B, Ch, H, W]
    for (const r of this.res) y = r.forward(y);
    return y;
  }
}

/** ResBlocks at Ct, conv Ct->Ct/2, ResBlocks at Ct/2, conv Ct/2->3 (the official scale-1 upsampler is the identity). */
class Tail extends Module {
  readonly res1: ModuleList<ResBlock>;
  readonly reduce: Conv2d;
  readonly res2: ModuleList<ResBlock>;
  readonly out: Conv2d;
  constructor(c: MofmeConfig) {
    super();
    const ct = c.tailChannels, ct2 = ct / 2;
    this.res1 = this.child('res1', new ModuleList(Array.from({ length: c.tailResBlocks }, () => new ResBlock(ct))));
    this.reduce = this.child('reduce', new Conv2d(ct, ct2, 3, { padding: 1 }));
    this.res2 = this.child('res2', new ModuleList(Array.from({ length: c.tailResBlocks }, () => new ResBlock(ct2))));
    this.out = this.child('out', new Conv2d(ct2, 3, 3, { padding: 1 }));
  }
  forward(y: Tensor): Tensor {
    for (const r of this.res1) y = r.forward(y); // [B, Ct, H, W]
    y = this.reduce.forward(y); // [B, Ct/2, H, W]
    for (const r of this.res2) y = r.forward(y);
    return this.out.forward(y); // [B, 3, H, W]
  }
}

// ---------------------------------------------------------------------------------------------
// The network (Fig. 3(a))
// ---------------------------------------------------------------------------------------------

export class MoFME extends Module {
  readonly head: Head;
  readonly patchEmbed: PatchEmbed; // conv k = stride = p as reshape + matmul, then LayerNorm
  readonly posEmbed: Tensor | null; // official dead tensor: allocated, never added
  readonly blocks: ModuleList<Block>;
  readonly unpatchify: PatchUnembed; // Linear D -> p²·Ct per token, laid back onto its patch
  readonly tail: Tail;

  constructor(readonly config: MofmeConfig, readonly rng: Generator) {
    super();
    const c = config;
    this.head = this.child('head', new Head(c));
    this.patchEmbed = this.child('patchEmbed', new PatchEmbed(c.patchSize, c.headChannels, c.dim, { norm: true, eps: c.layerNormEps }));
    const n = tokensOf(c, c.imageSize, c.imageSize);
    this.posEmbed = c.officialUnusedParams ? this.param('posEmbed', init.normal([1, n, c.dim], 0, 1)) : null;
    this.blocks = this.child('blocks', new ModuleList(Array.from({ length: c.depth }, () => new Block(c, rng))));
    this.unpatchify = this.child('unpatchify', new PatchUnembed(c.patchSize, c.dim, c.tailChannels));
    this.tail = this.child('tail', new Tail(c));
  }

  /** x [B, 3, H, W], normalised to [−1, 1] by the caller; H and W multiples of the patch size. */
  forward(x: Tensor): MofmeOutput {
    const p = this.config.patchSize;
    const [, C, H, W] = x.shape as [number, number, number, number];
    if (x.ndim !== 4 || C !== 3) throw new Error(`MoFME: expected an image batch [B, 3, H, W], got [${x.shape.join(', ')}]`);
    if (H % p !== 0 || W % p !== 0) {
      throw new Error(`MoFME: image size ${H}x${W} is not a multiple of the patch size ${p}; pad it (restore() does) or crop it`);
    }
    const f = this.head.forward(x); // [B, Ch, H, W]
    let t = this.patchEmbed.forward(f); // [B, N, D], N = (H/p)(W/p); posEmbed NOT added (official)
    t = dropout(t, this.config.embedDropout, this.training, this.rng);
    const routing: (Routing | null)[] = [];
    for (const block of this.blocks) {
      const out = block.forward(t); // [B, N, D]
      t = out.t;
      routing.push(out.routing);
    }
    const y = this.unpatchify.forward(t, H, W); // [B, N, p²Ct] -> [B, Ct, H, W]
    const out = this.tail.forward(y); // [B, 3, H, W]
    if (this.config.residualOutput) {
      // input in [0, 1] plus a learned correction (tiny/small presets; see config.residualOutput)
      return { image: clamp(x.add(1).mul(0.5).add(out), 0, 1), routing };
    }
    return { image: out.sigmoid(), routing }; // official: sigmoid, no global residual
  }

  /** Own parameters come first in Module's walk; list posEmbed after the patch embedding instead,
   *  the order of parameterShapes (params.ts) and of the official state dicts. */
  override namedParameters(): [string, Tensor][] {
    const all = super.namedParameters();
    const i = all.findIndex(([n]) => n === 'posEmbed');
    if (i < 0) return all;
    const [pos] = all.splice(i, 1);
    let last = -1;
    all.forEach(([n], j) => { if (n.startsWith('patchEmbed.')) last = j; });
    all.splice(last + 1, 0, pos!);
    return all;
  }
}

/**
 * The deepcopy-identical initial weights of the official code (`officialSharedInit`), as copies:
 * the gated unit's value ← gate; for blocks L ≥ 1 the router (moe, mofme) and the shared FFN
 * (mofme) ← block 0's.
 */
function applyOfficialSharedInit(model: MoFME): void {
  noGrad(() => {
    const copy = (dst: Linear, src: Linear): void => {
      dst.weight.assign(keep(src.weight.clone()));
      if (dst.bias && src.bias) dst.bias.assign(keep(src.bias.clone()));
    };
    const first = model.blocks.at(0).ffn;
    for (const [l, block] of model.blocks.map((b, i) => [i, b] as const)) {
      const ffn = block.ffn;
      if (ffn instanceof FmeFfn) copy(ffn.base.value, ffn.base.gate);
      if (l === 0) continue;
      if (ffn instanceof FmeFfn && first instanceof FmeFfn) {
        copy(ffn.router, first.router);
        copy(ffn.shared.fc1, first.shared.fc1);
        copy(ffn.shared.fc2, first.shared.fc2);
      } else if (ffn instanceof MoeFfn && first instanceof MoeFfn) {
        copy(ffn.router, first.router);
      }
    }
  });
}

export interface CreateModelOptions {
  /** the stream for initialisation, dropout and the UaR's MC dropout */
  generator?: Generator;
  /** seed of a fresh generator (ignored when `generator` is given; default 0) */
  seed?: number;
  /** parameter dtype (float64 for gradient checks) */
  dtype?: DType;
}

/** Build the network of `config` (use resolveConfig first) with PyTorch-default initialisation. */
export function createModel(config: MofmeConfig, options: CreateModelOptions = {}): MoFME {
  const rng = options.generator ?? new Generator(options.seed ?? 0);
  const model = withInitDefaults({ generator: rng, ...(options.dtype ? { dtype: options.dtype } : {}) }, () => new MoFME(config, rng));
  if (config.officialSharedInit) applyOfficialSharedInit(model);
  if (config.residualOutput) {
    // zero the last convolution, so the untrained network is exactly the identity and training
    // only learns the correction (the "zero-init the last layer of a residual branch" trick);
    // its weights still get gradients at once, because the features feeding it are not zero
    noGrad(() => {
      model.tail.out.weight.assign(keep(zeros(model.tail.out.weight.shape, { dtype: model.tail.out.weight.dtype })));
      if (model.tail.out.bias) model.tail.out.bias.assign(keep(zeros(model.tail.out.bias.shape, { dtype: model.tail.out.bias.dtype })));
    });
  }
  return model;
}
