/**
 * Linear: y = x W^T + b, PyTorch's nn.Linear, applied to the last axis of x.
 *
 * The weight is stored [out, in] (PyTorch's layout, so official checkpoints load unchanged). The
 * product x W^T is computed by the engine's batched matmul with its "B transposed" flag, so W^T is
 * never materialised; the leading axes of x are folded into the rows: x [..., in] is viewed as
 * [rows, in] and one [rows, in] x [in, out] product does the whole batch.
 */
import { bmm, type Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { defaultBias, kaimingUniform, type InitOptions } from '../init';
import { disposeUnreadByBackward } from '../inference';

export interface LinearOptions extends InitOptions {
  /** add a learned bias (default true) */
  bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Tensor; // [out, in]
  readonly bias: Tensor | null; // [out]

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    // PyTorch's reset_parameters: kaiming_uniform_(a=sqrt(5)) then bias U(+-1/sqrt(fan_in)); same draw order.
    this.weight = this.param('weight', kaimingUniform([outFeatures, inFeatures], options));
    this.bias = this.param('bias', options.bias ?? true ? defaultBias([outFeatures, inFeatures], outFeatures, options) : null);
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new Error(`Linear(${this.inFeatures} -> ${this.outFeatures}): input has ${x.shape[x.ndim - 1]} features (shape [${x.shape.join(', ')}])`);
    }
    const lead = x.shape.slice(0, -1); // [...]
    const rows = lead.reduce((a, b) => a * b, 1);
    // [1, rows, in] x [1, out, in]^T -> [1, rows, out]
    const y = bmm(x.reshape([1, rows, this.inFeatures]), this.weight.reshape([1, this.outFeatures, this.inFeatures]), false, true);
    const out = y.reshape([...lead, this.outFeatures]); // [..., out]
    if (!this.bias) {
      // the reshape holds the product now; without this, the caller's disposing of `out` (e.g.
      // attention's, once it has cut out q, k and v) would leave `y` holding it
      if (out !== y) disposeUnreadByBackward(y);
      return out;
    }
    const biased = out.add(this.bias);
    disposeUnreadByBackward(y, out); // read by neither the matmul's gradient nor the sum's
    return biased;
  }

  override extraRepr(): string {
    return `in=${this.inFeatures}, out=${this.outFeatures}, bias=${this.bias !== null}`;
  }
}

/** The identity: a placeholder where a layer is optional (e.g. no norm). */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}
