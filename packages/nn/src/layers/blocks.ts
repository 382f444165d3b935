/**
 * Two small composite blocks used throughout the model:
 * - FeedForward: the transformer MLP, Linear -> GELU -> Dropout -> Linear -> Dropout, applied per
 *   token (it mixes features, never tokens), with an optional LayerNorm in front (`preNorm`, the
 *   pre-norm block's FFN branch). It is the one MLP of the repository: the dense FFN, each expert
 *   of the conventional MoE and the FME layer's shared FFN are all this class.
 * - ResBlock: the EDSR residual block of the image head and tail, x + conv(relu(conv(x))). The
 *   skip makes the block start near the identity, which keeps deep conv stacks trainable.
 */
import type { Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { Linear } from './linear';
import { Conv2d } from './conv';
import { LayerNorm } from './norm';
import { Dropout, GELU } from './activation';
import type { InitOptions } from '../init';
import { disposeTemporariesUnderNoGrad, disposeUnreadByBackward } from '../inference';

export interface FeedForwardOptions extends InitOptions {
  /** dropout probability after the activation and after the second Linear (default 0) */
  dropout?: number;
  /** output width (default: dim) */
  outDim?: number;
  /** biases on both Linears (default true) */
  bias?: boolean;
  /** a LayerNorm `norm` on the input (default false) */
  preNorm?: boolean;
  /** that LayerNorm's epsilon (default 1e-5, PyTorch's) */
  eps?: number;
}

export class FeedForward extends Module {
  readonly norm: LayerNorm | null; // registered first: state dicts list it before fc1
  readonly fc1: Linear; // D -> hidden
  readonly act: GELU;
  readonly drop: Dropout;
  readonly fc2: Linear; // hidden -> outDim

  constructor(dim: number, hiddenDim: number, options: FeedForwardOptions = {}) {
    super();
    const bias = options.bias ?? true;
    this.norm = options.preNorm ? this.child('norm', new LayerNorm(dim, { ...options, bias: true, eps: options.eps ?? 1e-5 })) : null;
    this.fc1 = this.child('fc1', new Linear(dim, hiddenDim, { ...options, bias }));
    this.act = this.child('act', new GELU());
    this.drop = this.child('drop', new Dropout(options.dropout ?? 0, options));
    this.fc2 = this.child('fc2', new Linear(hiddenDim, options.outDim ?? dim, { ...options, bias }));
  }

  /** x [..., D] -> [..., outDim] */
  forward(x: Tensor): Tensor {
    return disposeTemporariesUnderNoGrad(() => {
      const u = this.norm ? this.norm.forward(x) : x;
      const h = this.drop.forward(this.act.forward(this.fc1.forward(u))); // [..., hidden]
      return this.drop.forward(this.fc2.forward(h));
    });
  }
}

export interface ResBlockOptions extends InitOptions {
  /** odd kernel size, padded to keep H and W (default 3) */
  kernelSize?: number;
  bias?: boolean;
  /** multiply the residual branch by this before adding (EDSR's res_scale, default 1) */
  resScale?: number;
}

export class ResBlock extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly resScale: number;

  constructor(channels: number, options: ResBlockOptions = {}) {
    super();
    const k = options.kernelSize ?? 3;
    if (k % 2 !== 1) throw new Error(`ResBlock: kernelSize must be odd to keep the image size, got ${k}`);
    const convOptions = { ...options, padding: (k - 1) / 2, bias: options.bias ?? true };
    this.conv1 = this.child('conv1', new Conv2d(channels, channels, k, convOptions));
    this.conv2 = this.child('conv2', new Conv2d(channels, channels, k, convOptions));
    this.resScale = options.resScale ?? 1;
  }

  /** x [B, C, H, W] -> x + conv2(relu(conv1(x))), same shape */
  forward(x: Tensor): Tensor {
    return disposeTemporariesUnderNoGrad(() => {
      const first = this.conv1.forward(x);
      const activated = first.relu();
      // ReLU's gradient is read from its output (tensor's relu), and a convolution's gradient reads
      // its input, not its output: conv1's output can go as soon as the ReLU has run
      disposeUnreadByBackward(first);
      const branch = this.conv2.forward(activated);
      const scaled = this.resScale === 1 ? branch : branch.mul(this.resScale);
      const out = x.add(scaled);
      // the sum's gradient (and the scaling by a constant's, for the branch) reads neither term
      disposeUnreadByBackward(branch, scaled);
      return out;
    });
  }
}
