/**
 * Multi-head self-attention over a sequence of tokens x [B, N, D] (the ViT / timm `Attention`).
 *
 * For each head h, with dh the head width:
 *   q_h, k_h, v_h = x Wq_h, x Wk_h, x Wv_h                      each [B, N, dh]
 *   A_h = softmax(q_h k_h^T / sqrt(dh))                          [B, N, N], rows sum to 1
 *   o_h = A_h v_h                                                [B, N, dh]
 * and the output is concat_h(o_h) Wout + b                       [B, N, D].
 * The 1/sqrt(dh) keeps the logits' variance near 1 when q and k have unit-variance entries, so the
 * softmax does not saturate.
 *
 * The three projections are one fused Linear `qkv` (D -> 3 I, I = heads * headDim, no bias by
 * default) whose output features are ordered q | k | v, and inside each, head-major
 * (feature = head * dh + d), the layout of the official checkpoints. I need not equal D: heads and
 * head width are independent of the model width (the MoFME preset has D = 384, I = 8 * 64 = 512).
 * Scores and outputs use the engine's batched matmul over B * heads, with k transposed by a flag
 * rather than by a copy.
 *
 * `preNorm: true` puts a LayerNorm `norm` in front (attention of LN(x), the pre-norm transformer
 * block's residual branch): the one attention the MoFME network and the downstream models use.
 */
import { bmm, dropout, softmax, type Generator, type Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { Linear } from './linear';
import { LayerNorm } from './norm';
import { resolveInit, type InitOptions } from '../init';

export interface AttentionOptions extends InitOptions {
  /** number of heads (default 8) */
  heads?: number;
  /** width of each head (default dim / heads) */
  headDim?: number;
  /** bias on the fused qkv projection (default false, as in the official model) */
  qkvBias?: boolean;
  /** dropout on the attention weights (default 0) */
  attnDropout?: number;
  /** dropout on the output projection (default 0) */
  projDropout?: number;
  /** override the 1/sqrt(headDim) logit scale */
  scale?: number;
  /** a LayerNorm `norm` on the input (default false; the official model's PreNorm(Attention)) */
  preNorm?: boolean;
  /** that LayerNorm's epsilon (default 1e-5, PyTorch's) */
  eps?: number;
}

export class MultiHeadSelfAttention extends Module {
  readonly dim: number;
  readonly heads: number;
  readonly headDim: number;
  readonly scale: number;
  readonly attnDropout: number;
  readonly projDropout: number;
  readonly norm: LayerNorm | null; // registered first: state dicts list it before qkv
  readonly qkv: Linear; // D -> 3 * heads * headDim
  readonly out: Linear; // heads * headDim -> D
  private readonly generator: Generator;

  constructor(dim: number, options: AttentionOptions = {}) {
    super();
    this.dim = dim;
    this.heads = options.heads ?? 8;
    this.headDim = options.headDim ?? dim / this.heads;
    if (!Number.isInteger(this.headDim) || this.headDim <= 0) throw new Error(`MultiHeadSelfAttention: dim ${dim} is not divisible by ${this.heads} heads; pass headDim`);
    this.scale = options.scale ?? this.headDim ** -0.5;
    this.attnDropout = options.attnDropout ?? 0;
    this.projDropout = options.projDropout ?? 0;
    this.generator = resolveInit(options).generator;
    const inner = this.heads * this.headDim;
    this.norm = options.preNorm ? this.child('norm', new LayerNorm(dim, { ...options, eps: options.eps ?? 1e-5 })) : null;
    this.qkv = this.child('qkv', new Linear(dim, 3 * inner, { ...options, bias: options.qkvBias ?? false }));
    this.out = this.child('out', new Linear(inner, dim, options));
  }

  /** x [B, N, D] -> [B, N, D] (with preNorm: attention of LN(x); the caller adds x) */
  forward(x: Tensor): Tensor {
    if (x.ndim !== 3 || x.shape[2] !== this.dim) throw new Error(`MultiHeadSelfAttention(dim=${this.dim}): expected [B, N, ${this.dim}], got [${x.shape.join(', ')}]`);
    const [B, N] = x.shape as [number, number];
    const H = this.heads, dh = this.headDim;
    const qkv = this.qkv.forward(this.norm ? this.norm.forward(x) : x); // [B, N, 3I]
    // features (which, head, d) -> [3, B, H, N, dh]: one permute for all three
    const [q, k, v] = qkv.reshape([B, N, 3, H, dh]).permute([2, 0, 3, 1, 4]).split(1, 0).map((t) => t.reshape([B * H, N, dh]));
    const scores = bmm(q!, k!, false, true); // [B*H, N, N] = q k^T
    // each row a distribution over the N keys: softmax(scores / sqrt(dh)), the scale applied in
    // the softmax's own pass (the composition mul then softmax where a backend has no row kernel)
    let attn = softmax(scores, -1, this.scale);
    attn = dropout(attn, this.attnDropout, this.training, this.generator);
    const o = bmm(attn, v!); // [B*H, N, dh]
    const merged = o.reshape([B, H, N, dh]).permute([0, 2, 1, 3]).reshape([B, N, H * dh]); // [B, N, I], head-major
    return dropout(this.out.forward(merged), this.projDropout, this.training, this.generator); // [B, N, D]
  }

  override extraRepr(): string {
    return `dim=${this.dim}, heads=${this.heads}, headDim=${this.headDim}${this.norm ? ', preNorm' : ''}`;
  }
}
