/**
 * Conv2d: 2-d convolution over NCHW images, PyTorch's nn.Conv2d.
 *
 * The weight is [out, in/groups, kh, kw]. The engine computes the convolution as im2col (every
 * receptive field copied into a column) followed by one matrix product; see the engine's
 * ops/linalg.ts. Output size per axis: floor((size + 2 pad - dilation (k - 1) - 1) / stride) + 1.
 * With `groups` g, the channels split into g independent convolutions (g = in = out is a
 * depthwise convolution).
 */
import { conv2d, type Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { defaultBias, kaimingUniform, type InitOptions } from '../init';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions extends InitOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  /** add a learned bias per output channel (default true) */
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  readonly weight: Tensor; // [out, in/groups, kh, kw]
  readonly bias: Tensor | null; // [out]

  constructor(inChannels: number, outChannels: number, kernelSize: Pair, options: Conv2dOptions = {}) {
    super();
    this.groups = options.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new Error(`Conv2d: in (${inChannels}) and out (${outChannels}) channels must both be divisible by groups (${this.groups})`);
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize);
    this.stride = pair(options.stride ?? 1);
    this.padding = pair(options.padding ?? 0);
    this.dilation = pair(options.dilation ?? 1);
    const shape = [outChannels, inChannels / this.groups, ...this.kernelSize];
    // PyTorch's default: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), fan_in = in/groups * kh * kw
    this.weight = this.param('weight', kaimingUniform(shape, options));
    this.bias = this.param('bias', options.bias ?? true ? defaultBias(shape, outChannels, options) : null);
  }

  /** x [B, in, H, W] -> [B, out, H', W'] */
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  override extraRepr(): string {
    const extra = [
      this.stride.some((s) => s !== 1) ? `stride=${this.stride.join('x')}` : '',
      this.padding.some((s) => s !== 0) ? `padding=${this.padding.join('x')}` : '',
      this.dilation.some((s) => s !== 1) ? `dilation=${this.dilation.join('x')}` : '',
      this.groups !== 1 ? `groups=${this.groups}` : '',
      this.bias ? '' : 'bias=false',
    ].filter(Boolean);
    return [`${this.inChannels}, ${this.outChannels}, kernel=${this.kernelSize.join('x')}`, ...extra].join(', ');
  }
}
