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
 * Memory: the score and weight matrices are the attention's largest tensors, 2 · B · heads · N²
 * values (at N = 3600 tokens and 4 heads, 415 MB in float32). Under `noGrad` the heads are run in
 * groups whose score matrix fits in `maxScoreBytes` (each group's matrices are freed before the
 * next is computed; each head's products and softmax rows are those of the whole batch, summed
 * in the same order, so the output is the same to the bit on the CPU backends), and the
 * layer's other temporaries are freed when it returns (inference.ts). With gradients on, all
 * heads go at once: the backward pass needs every head's weights anyway.
 *
 * `preNorm: true` puts a LayerNorm `norm` in front (attention of LN(x), the pre-norm transformer
 * block's residual branch): the one attention the MoFME network and the downstream models use.
 */
import { bmm, concat, dropout, isGradEnabled, softmax, tidy, type Generator, type Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { Linear } from './linear';
import { LayerNorm } from './norm';
import { resolveInit, type InitOptions } from '../init';
import { disposeTemporariesUnderNoGrad, disposeUnreadByBackward } from '../inference';

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
  /** under noGrad, the most bytes of scores computed at once (default `DEFAULT_MAX_SCORE_BYTES`) */
  maxScoreBytes?: number;
}

/**
 * 64 MiB of scores at a time under noGrad: one head of the small preset's 3600 tokens (52 MB) per
 * group, while the paper preset's 8 heads of 900 tokens (26 MB in all) still go as one product.
 */
const DEFAULT_MAX_SCORE_BYTES = 64 * 2 ** 20;

export class MultiHeadSelfAttention extends Module {
  readonly dim: number;
  readonly heads: number;
  readonly headDim: number;
  readonly scale: number;
  readonly attnDropout: number;
  readonly projDropout: number;
  /** under noGrad, heads are grouped so that one group's scores [g, N, N] take at most this many bytes (at least one head) */
  maxScoreBytes: number;
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
    this.maxScoreBytes = options.maxScoreBytes ?? DEFAULT_MAX_SCORE_BYTES;
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
    return disposeTemporariesUnderNoGrad(() => {
      const qkv = this.qkv.forward(this.norm ? this.norm.forward(x) : x); // [B, N, 3I]
      // features (which, head, d) -> [3, B, H, N, dh]: one permute for all three
      const features = qkv.reshape([B, N, 3, H, dh]);
      const byKind = features.permute([2, 0, 3, 1, 4]);
      const [q, k, v] = byKind.split(1, 0).map((t) => t.reshape([B * H, N, dh]));
      // the projection's and the permutation's gradients read neither result, nor the slices'
      // their input: only q, k and v stay for the backward pass (disposeUnreadByBackward)
      disposeUnreadByBackward(qkv, features, byKind);
      const o = this.attendInGroups(q!, k!, v!); // [B*H, N, dh]
      const perHead = o.reshape([B, H, N, dh]);
      const tokenMajor = perHead.permute([0, 2, 1, 3]);
      disposeUnreadByBackward(o, perHead);
      const merged = tokenMajor.reshape([B, N, H * dh]); // [B, N, I], head-major
      return dropout(this.out.forward(merged), this.projDropout, this.training, this.generator); // [B, N, D]
    });
  }

  /** softmax(q kᵀ · scale) v for q, k, v [G, N, dh] (G = batch x heads) -> [G, N, dh] */
  private attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const scores = bmm(q, k, false, true); // [G, N, N] = q k^T
    // each row a distribution over the N keys: softmax(scores / sqrt(dh)), the scale applied in
    // the softmax's own pass (the composition mul then softmax where a backend has no row kernel)
    let attn = softmax(scores, -1, this.scale);
    // the scores are needed by nothing else: the fused softmax's backward reads its output only,
    // and q kᵀ's backward reads q and k. Free them now (with gradients on, a whole training step's
    // tidy would otherwise hold them to the end; where a backend has no softmax kernel, the
    // composition's backward may read them, so only without gradients)
    const fusedSoftmax = q.backend.softmax !== undefined && q.backend.softmaxBackward !== undefined;
    if (fusedSoftmax || !isGradEnabled()) scores.dispose();
    attn = dropout(attn, this.attnDropout, this.training, this.generator);
    return bmm(attn, v); // [G, N, dh]
  }

  /**
   * `attend` over the B·H heads, under noGrad in groups of heads whose scores fit in
   * `maxScoreBytes`, each group's [g, N, N] matrices freed before the next; the groups' outputs are
   * joined along the head axis. Every head is its own matmul and softmax rows, and the CPU
   * kernels sum each output in the same order whatever the batch, so the output does not depend
   * on the grouping (test/memory.test.ts). With gradients on, or with dropout on the weights (its random
   * draws are made for all heads at once), one group.
   */
  private attendInGroups(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const [G, N] = q.shape as [number, number];
    const headBytes = N * N * (q.dtype === 'float64' ? 8 : 4);
    const dropping = this.training && this.attnDropout > 0;
    const group = isGradEnabled() || dropping ? G : Math.max(1, Math.floor(this.maxScoreBytes / headBytes));
    if (group >= G) return this.attend(q, k, v);
    const parts: Tensor[] = [];
    for (let h = 0; h < G; h += group) {
      const n = Math.min(group, G - h);
      parts.push(tidy(() => this.attend(q.narrow(0, h, n), k.narrow(0, h, n), v.narrow(0, h, n))));
    }
    return concat(parts, 0);
  }

  override extraRepr(): string {
    return `dim=${this.dim}, heads=${this.heads}, headDim=${this.headDim}${this.norm ? ', preNorm' : ''}`;
  }
}
