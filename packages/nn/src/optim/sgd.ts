/**
 * Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay,
 * exactly as torch.optim.SGD computes it.
 */
import type { Tensor } from '@mofme/tensor';
import { Optimizer, type BaseHyper, type ParamGroup, type ParamState, type ParamsInput } from './optimizer';

export interface SGDHyper extends BaseHyper {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

export class SGD extends Optimizer<SGDHyper> {
  constructor(params: ParamsInput<SGDHyper>, options: Partial<SGDHyper> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, ...options });
    for (const g of this.paramGroups) {
      if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
    }
  }

  protected update(p: Tensor, grad: Tensor, group: ParamGroup<SGDHyper>, state: ParamState): void {
    const { momentum: mu, dampening, nesterov, weightDecay: wd } = group;
    const lr = group.lr * this.lrFactor; // the rate given, times the schedule's factor now
    let d = wd !== 0 ? grad.add(p.mul(wd)) : grad; // L2 penalty wd/2 |p|^2 adds wd * p to the gradient
    if (mu !== 0) {
      const prev = state.tensors.momentum;
      // velocity: b <- mu b + (1 - dampening) d; the first step starts it at d itself
      const buf = this.setState(state, 'momentum', prev ? prev.mul(mu).add(dampening ? d.mul(1 - dampening) : d) : d.clone());
      d = nesterov ? d.add(buf.mul(mu)) : buf; // Nesterov: look ahead along the velocity
    }
    p.assign(p.sub(d.mul(lr))); // p <- p - lr d
  }
}
