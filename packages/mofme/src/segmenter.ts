// An encoder-decoder for dense prediction built from the block API, for the paper's downstream
// segmentation experiment: per pixel, which degradation covers it (rain streak, snowflake,
// raindrop, thick haze, or none). The encoder is the classifier's (ViTEncoder: patches -> tokens ->
// transformer blocks with the chosen FFN); the decoder lays the tokens back onto their patches and
// adds a full-resolution convolutional skip, because a streak one pixel wide is finer than a patch:
//
//   image [B, 3, H, W] ──> ViTEncoder ──> tokens [B, N, D] ──> PatchUnembed ──> [B, C, H, W] ─┐
//        └──> conv 3x3 3 -> C, ReLU (the skip, [B, C, H, W]) ───────────────────────────────── + ─>
//   ReLU -> conv 3x3 C -> C, ReLU -> conv 1x1 C -> K                              logits [B, K, H, W]
//
// It is the restoration network's shape (conv head, patch transformer, un-patchify, conv tail) with
// a class per pixel instead of a colour.

import { type Tensor } from '@mofme/tensor';
import { Conv2d, Module, PatchUnembed, resolveInit } from '@mofme/nn';
import { ViTEncoder, type BackboneOptions, type EncoderOutput } from './classifier';

export interface SegmenterOutput extends Omit<EncoderOutput, 'tokens'> {
  logits: Tensor; // [B, K, H, W]
}

export class ViTSegmenter extends Module {
  readonly skip: Conv2d;
  readonly encoder: ViTEncoder;
  readonly unpatchify: PatchUnembed;
  readonly refine: Conv2d;
  readonly classify: Conv2d;
  constructor(options: BackboneOptions & { classes: number; decoderChannels: number }) {
    super();
    const generator = options.generator ?? resolveInit().generator;
    const C = options.decoderChannels;
    this.skip = this.child('skip', new Conv2d(options.channels, C, 3, { padding: 1, generator }));
    this.encoder = this.child('encoder', new ViTEncoder({ ...options, generator }));
    this.unpatchify = this.child('unpatchify', new PatchUnembed(options.patchSize, options.dim, C, { generator }));
    this.refine = this.child('refine', new Conv2d(C, C, 3, { padding: 1, generator }));
    this.classify = this.child('classify', new Conv2d(C, options.classes, 1, { generator }));
  }
  /** x [B, 3, H, W] -> per-pixel logits [B, K, H, W] */
  forward(x: Tensor): SegmenterOutput {
    const [, , H, W] = x.shape as [number, number, number, number];
    const { tokens, routing, auxLoss } = this.encoder.forward(x); // [B, N, D]
    const y = this.unpatchify.forward(tokens, H, W).add(this.skip.forward(x).relu()).relu(); // [B, C, H, W]
    return { logits: this.classify.forward(this.refine.forward(y).relu()), routing, auxLoss };
  }
}
