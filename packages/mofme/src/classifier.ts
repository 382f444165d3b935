// A small Vision Transformer built from the block API (blocks.ts), for the paper's downstream
// classification experiment: the same FFN choice (dense, MoE, FME with the linear router or the
// UaR) that the restoration network makes, in a network whose output is a class.
//
//   image [B, C, H, W] -> PatchEmbed (p x p, + LayerNorm) -> + learned position embedding
//   -> depth x TransformerBlock (pre-norm attention + the chosen FFN)        tokens [B, N, D]
//   -> mean over tokens -> LayerNorm -> Linear D -> classes                   logits [B, K]
//
// Mean pooling instead of a class token: one less thing to learn, and as accurate for small ViTs
// (Beyer et al. 2022, "Better plain ViT baselines"). `ViTEncoder` (the first two lines) is shared
// with the segmenter (segmenter.ts).

import { type Generator, type Tensor } from '@mofme/tensor';
import { LayerNorm, Linear, Module, ModuleList, PatchEmbed, init, resolveInit } from '@mofme/nn';
import { TransformerBlock, createFfn, type FmeOptions } from './blocks';
import type { FfnKind, RouterKind, UarConfig } from './config';
import type { Routing } from './router';

/** The transformer part of a downstream model: which FFN, how wide, how deep. */
export interface BackboneOptions {
  /** input channels (1 for Fashion-MNIST, 3 for photos) */
  channels: number;
  /** input side(s); H and W must be multiples of patchSize */
  height: number;
  width: number;
  patchSize: number;
  /** token width D */
  dim: number;
  depth: number;
  heads: number;
  /** FFN hidden width F (4·D by ViT convention) */
  hidden: number;
  ffn: FfnKind;
  /** experts E and kept experts k (moe, mofme) */
  experts: number;
  topk: number;
  router: RouterKind;
  uar?: Partial<UarConfig>;
  /** dropout inside attention output and FFNs. Default 0: the runs are short and under-fitted */
  dropout?: number;
  /** ask every mixture layer for its load-balancing loss (default false) */
  loadBalance?: boolean;
  generator?: Generator;
}

/** What an encoder pass returns. */
export interface EncoderOutput {
  tokens: Tensor; // [B, N, D]
  routing: (Routing | null)[]; // per block
  /** Σ over blocks of the load-balancing losses (null when not asked for or dense) */
  auxLoss: Tensor | null;
}

/** Patch embedding, position embedding and `depth` transformer blocks with the chosen FFN. */
export class ViTEncoder extends Module {
  readonly patchEmbed: PatchEmbed;
  readonly posEmbed: Tensor; // [1, N, D]
  readonly blocks: ModuleList<TransformerBlock>;
  constructor(readonly options: BackboneOptions) {
    super();
    const o = options, p = o.patchSize;
    if (o.height % p !== 0 || o.width % p !== 0) throw new Error(`ViTEncoder: ${o.height}x${o.width} is not a multiple of the patch size ${p}`);
    const generator = o.generator ?? resolveInit().generator;
    const tokens = (o.height / p) * (o.width / p);
    this.patchEmbed = this.child('patchEmbed', new PatchEmbed(p, o.channels, o.dim, { norm: true, generator }));
    // std 0.02: the ViT / timm initialisation of position embeddings (small against LN'd tokens)
    this.posEmbed = this.param('posEmbed', init.normal([1, tokens, o.dim], 0, 0.02, { generator }));
    const ffn: FmeOptions = {
      dim: o.dim, hidden: o.hidden, dropout: o.dropout ?? 0, generator, experts: o.experts, topk: o.topk, router: o.router,
      ...(o.uar ? { uar: o.uar } : {}), loadBalance: o.loadBalance ?? false,
    };
    this.blocks = this.child('blocks', new ModuleList(Array.from({ length: o.depth }, () =>
      new TransformerBlock({ dim: o.dim, heads: o.heads, dropout: o.dropout ?? 0, generator }, createFfn(o.ffn, ffn)))));
  }
  /** x [B, C, H, W] (the size given at construction) -> tokens [B, N, D] */
  forward(x: Tensor): EncoderOutput {
    const o = this.options;
    if (x.ndim !== 4 || x.shape[1] !== o.channels || x.shape[2] !== o.height || x.shape[3] !== o.width) {
      throw new Error(`ViTEncoder: expected [B, ${o.channels}, ${o.height}, ${o.width}], got [${x.shape.join(', ')}]`);
    }
    let t = this.patchEmbed.forward(x).add(this.posEmbed); // [B, N, D]
    const routing: (Routing | null)[] = [];
    let auxLoss: Tensor | null = null;
    for (const block of this.blocks) {
      const out = block.forward(t);
      t = out.t;
      routing.push(out.routing);
      if (out.auxLoss) auxLoss = auxLoss ? auxLoss.add(out.auxLoss) : out.auxLoss;
    }
    return { tokens: t, routing, auxLoss };
  }
}

export interface ClassifierOutput extends Omit<EncoderOutput, 'tokens'> {
  logits: Tensor; // [B, K]
}

/** ViT classifier: encoder, mean pooling, LayerNorm, linear head. */
export class ViTClassifier extends Module {
  readonly encoder: ViTEncoder;
  readonly norm: LayerNorm;
  readonly head: Linear;
  constructor(options: BackboneOptions & { classes: number }) {
    super();
    const generator = options.generator ?? resolveInit().generator;
    this.encoder = this.child('encoder', new ViTEncoder({ ...options, generator }));
    this.norm = this.child('norm', new LayerNorm(options.dim));
    this.head = this.child('head', new Linear(options.dim, options.classes, { generator }));
  }
  /** x [B, C, H, W] -> logits [B, K] */
  forward(x: Tensor): ClassifierOutput {
    const { tokens, routing, auxLoss } = this.encoder.forward(x);
    const pooled = this.norm.forward(tokens.mean(1)); // [B, D]
    return { logits: this.head.forward(pooled), routing, auxLoss };
  }
}
