/**
 * From images to tokens and back, as in ViT.
 *
 * PatchEmbed cuts an image [B, C, H, W] into non-overlapping p x p patches and maps each to a
 * D-dimensional token. That is a convolution with kernel = stride = p, but as the windows do not
 * overlap it is cheaper as a rearrangement plus one matrix product:
 *   [B, C, H, W] -> [B, C, h, p, w, p] -> permute -> [B, h, w, C, p, p] -> [B, N, C p p]
 *   tokens = patches W^T + b,   W = conv weight [D, C, p, p] viewed as [D, C p p]
 * (h = H/p, w = W/p, N = h w tokens, row-major.) The weight keeps the conv layout and init, so it
 * loads from a PyTorch Conv2d patch embedding unchanged.
 *
 * PatchUnembed is the inverse map: a Linear D -> p p C per token, whose features (p1, p2, c) are
 * laid out back onto the p x p pixels of that token's patch:
 *   [B, N, D] -> [B, N, p p C] -> [B, h, w, p, p, C] -> permute -> [B, C, h, p, w, p] -> [B, C, H, W]
 * Any patch size that divides the image works; the image size is an argument of forward.
 */
import { bmm, type Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { Conv2d } from './conv';
import { LayerNorm } from './norm';
import { defaultBias, kaimingUniform, type InitOptions } from '../init';
import { disposeTemporariesUnderNoGrad, disposeUnreadByBackward } from '../inference';

export interface PatchEmbedOptions extends InitOptions {
  /** follow the projection with a LayerNorm over D (default false) */
  norm?: boolean;
  /** LayerNorm epsilon (default 1e-5) */
  eps?: number;
}

/** [B, C, H, W] -> [B, N, C p p], the patches as rows (feature order c, i, j: c slowest). */
export function patchify(x: Tensor, p: number): Tensor {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  if (x.ndim !== 4 || H % p !== 0 || W % p !== 0) throw new Error(`patchify: expected [B, C, H, W] with H and W divisible by ${p}, got [${x.shape.join(', ')}]`);
  const h = H / p, w = W / p;
  return x
    .reshape([B, C, h, p, w, p])
    .permute([0, 2, 4, 1, 3, 5]) // [B, h, w, C, p, p]
    .reshape([B, h * w, C * p * p]);
}

export class PatchEmbed extends Module {
  readonly patchSize: number;
  readonly inChannels: number;
  readonly embedDim: number;
  readonly proj: Conv2d; // weight [D, C, p, p]
  readonly norm: LayerNorm | null;

  constructor(patchSize: number, inChannels: number, embedDim: number, options: PatchEmbedOptions = {}) {
    super();
    this.patchSize = patchSize;
    this.inChannels = inChannels;
    this.embedDim = embedDim;
    this.proj = this.child('proj', new Conv2d(inChannels, embedDim, patchSize, { ...options, stride: patchSize }));
    this.norm = options.norm ? this.child('norm', new LayerNorm(embedDim, { ...options, eps: options.eps ?? 1e-5 })) : null;
  }

  /** x [B, C, H, W] -> tokens [B, N, D], N = (H/p)(W/p), row-major */
  forward(x: Tensor): Tensor {
    const p = this.patchSize, C = this.inChannels, D = this.embedDim;
    if (x.shape[1] !== C) throw new Error(`PatchEmbed: expected ${C} channels, got [${x.shape.join(', ')}]`);
    return disposeTemporariesUnderNoGrad(() => {
      const patches = patchify(x, p); // [B, N, C p p]
      const [B, N] = patches.shape as [number, number];
      // [1, B N, C p p] x [1, D, C p p]^T -> [1, B N, D]
      let t = bmm(patches.reshape([1, B * N, C * p * p]), this.proj.weight.reshape([1, D, C * p * p]), false, true).reshape([B, N, D]);
      if (this.proj.bias) t = t.add(this.proj.bias);
      return this.norm ? this.norm.forward(t) : t;
    });
  }

  override extraRepr(): string {
    return `patch=${this.patchSize}, in=${this.inChannels}, dim=${this.embedDim}`;
  }
}

export class PatchUnembed extends Module {
  readonly patchSize: number;
  readonly embedDim: number;
  readonly outChannels: number;
  readonly weight: Tensor; // [p p C, D], a Linear's layout
  readonly bias: Tensor | null; // [p p C]

  constructor(patchSize: number, embedDim: number, outChannels: number, options: InitOptions & { bias?: boolean } = {}) {
    super();
    this.patchSize = patchSize;
    this.embedDim = embedDim;
    this.outChannels = outChannels;
    const out = patchSize * patchSize * outChannels;
    this.weight = this.param('weight', kaimingUniform([out, embedDim], options)); // nn.Linear's default
    this.bias = this.param('bias', options.bias ?? true ? defaultBias([out, embedDim], out, options) : null);
  }

  /** tokens [B, N, D] of an image of size height x width -> [B, C, height, width] */
  forward(t: Tensor, height: number, width: number): Tensor {
    const p = this.patchSize, C = this.outChannels, D = this.embedDim;
    const h = height / p, w = width / p;
    const [B, N] = t.shape as [number, number];
    if (t.ndim !== 3 || t.shape[2] !== D || !Number.isInteger(h) || !Number.isInteger(w) || N !== h * w) {
      throw new Error(`PatchUnembed: tokens [${t.shape.join(', ')}] do not tile a ${height}x${width} image with ${p}x${p} patches of dim ${D}`);
    }
    return disposeTemporariesUnderNoGrad(() => {
      const product = bmm(t.reshape([1, B * N, D]), this.weight.reshape([1, p * p * C, D]), false, true);
      const tokens = product.reshape([B, N, p * p * C]);
      const y = this.bias ? tokens.add(this.bias) : tokens;
      const patches = y.reshape([B, h, w, p, p, C]);
      const laidOut = patches.permute([0, 5, 1, 3, 2, 4]); // [B, C, h, p, w, p]
      // the matmul's gradient does not read its product, nor the bias sum's or the permutation's
      // their input: the token-major copies (each tensor and its reshapes) go now, before the
      // tail's activations pile up
      disposeUnreadByBackward(product, tokens, y, patches);
      return laidOut.reshape([B, C, height, width]);
    });
  }

  override extraRepr(): string {
    return `patch=${this.patchSize}, dim=${this.embedDim}, out=${this.outChannels}`;
  }
}
