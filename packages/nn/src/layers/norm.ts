/**
 * Normalisation layers: LayerNorm (per token, over its features) and GroupNorm (per image, over
 * groups of channels and all pixels).
 *
 * Both compute (x - mean) / sqrt(var + eps) with the biased variance (divide by N, as PyTorch),
 * then an optional learned per-feature scale (init 1) and shift (init 0), so that at
 * initialisation the layer is a pure normaliser.
 */
import { layerNorm, type Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { ones, zeros, type InitOptions } from '../init';

export interface LayerNormOptions extends InitOptions {
  eps?: number;
  /** learn a scale and shift per normalised element (default true) */
  elementwiseAffine?: boolean;
  /** with elementwiseAffine, also learn the shift (default true) */
  bias?: boolean;
}

export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly weight: Tensor | null; // normalizedShape
  readonly bias: Tensor | null; // normalizedShape

  constructor(normalizedShape: number | number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.weight = this.param('weight', affine ? ones(this.normalizedShape, options) : null);
    this.bias = this.param('bias', affine && (options.bias ?? true) ? zeros(this.normalizedShape, options) : null);
  }

  /** x [..., *normalizedShape] -> same shape, each trailing block normalised */
  forward(x: Tensor): Tensor {
    const n = this.normalizedShape.length;
    if (x.shape.slice(-n).join() !== this.normalizedShape.join()) {
      throw new Error(`LayerNorm([${this.normalizedShape.join(', ')}]): input shape [${x.shape.join(', ')}] does not end with it`);
    }
    return layerNorm(x, n, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `[${this.normalizedShape.join(', ')}], eps=${this.eps}, affine=${this.weight !== null}`;
  }
}

export interface GroupNormOptions extends InitOptions {
  eps?: number;
  /** learn a scale and shift per channel (default true) */
  affine?: boolean;
}

/**
 * GroupNorm: channels split into `numGroups` groups; each (image, group) is normalised over its
 * channels and all spatial positions. Independent of batch size (unlike BatchNorm). One group is
 * LayerNorm over (C, H, W); C groups is InstanceNorm.
 */
export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  readonly weight: Tensor | null; // [C]
  readonly bias: Tensor | null; // [C]

  constructor(numGroups: number, numChannels: number, options: GroupNormOptions = {}) {
    super();
    if (numChannels % numGroups !== 0) throw new Error(`GroupNorm: ${numChannels} channels do not split into ${numGroups} groups`);
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = options.eps ?? 1e-5;
    const affine = options.affine ?? true;
    this.weight = this.param('weight', affine ? ones([numChannels], options) : null);
    this.bias = this.param('bias', affine ? zeros([numChannels], options) : null);
  }

  /** x [B, C, *spatial] -> same shape */
  forward(x: Tensor): Tensor {
    const [B, C] = x.shape as [number, number];
    if (x.ndim < 2 || C !== this.numChannels) throw new Error(`GroupNorm(${this.numGroups}, ${this.numChannels}): expected [B, ${this.numChannels}, ...], got [${x.shape.join(', ')}]`);
    const grouped = x.reshape([B, this.numGroups, -1]); // [B, G, C/G * prod(spatial)]
    const mu = grouped.mean(2, true); // [B, G, 1]
    const centred = grouped.sub(mu);
    const variance = centred.mul(centred).mean(2, true); // biased, as PyTorch
    let y = centred.div(variance.add(this.eps).sqrt()).reshape([...x.shape]); // [B, C, *spatial]
    const perChannel = [1, C, ...x.shape.slice(2).map(() => 1)]; // [1, C, 1, 1, ...]
    if (this.weight) y = y.mul(this.weight.reshape(perChannel));
    if (this.bias) y = y.add(this.bias.reshape(perChannel));
    return y;
  }

  override extraRepr(): string {
    return `${this.numGroups}, ${this.numChannels}, eps=${this.eps}, affine=${this.weight !== null}`;
  }
}
