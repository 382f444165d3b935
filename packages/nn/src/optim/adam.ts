/**
 * Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), as torch.optim computes them.
 *
 * Adam keeps two exponential moving averages per parameter: m of the gradient (its direction) and
 * v of the squared gradient (its scale), and steps by m / sqrt(v): a per-coordinate step of about
 * lr whatever the gradient's magnitude. Both averages start at 0, so early on they underestimate;
 * dividing by (1 - beta^t) corrects this bias.
 *
 * Weight decay: Adam adds wd * p to the gradient (an L2 penalty, which then gets rescaled by
 * 1/sqrt(v) like everything else); AdamW instead shrinks the weights directly, p <- p (1 - lr wd),
 * "decoupled" from the adaptive scaling, which regularises large and small-gradient weights alike.
 */
import { Tensor } from '@mofme/tensor';
import { Optimizer, type BaseHyper, type ParamGroup, type ParamState, type ParamsInput } from './optimizer';

export interface AdamHyper extends BaseHyper {
  betas: [number, number];
  eps: number;
  /** keep the running maximum of v and divide by it (Reddi et al. 2018): the step size never grows */
  amsgrad: boolean;
}

export class Adam extends Optimizer<AdamHyper> {
  /** true for AdamW: decay the weights directly instead of adding wd * p to the gradient */
  protected readonly decoupled: boolean = false;

  constructor(params: ParamsInput<AdamHyper>, options: Partial<AdamHyper> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, ...options });
  }

  protected update(p: Tensor, grad: Tensor, group: ParamGroup<AdamHyper>, state: ParamState): void {
    const { eps, weightDecay: wd, amsgrad } = group;
    const lr = group.lr * this.lrFactor; // the rate given, times the schedule's factor now
    const [b1, b2] = group.betas;
    const t = state.step; // 1 on the first step
    const fused = p.backend.adamStep;
    if (fused && !amsgrad && grad.dtype === p.dtype) {
      // the whole update below in one pass over memory (Backend.adamStep), where the backend has it
      const m0 = state.tensors.expAvg, v0 = state.tensors.expAvgSq;
      const r = fused.call(p.backend, p.storage, grad.storage, m0?.storage ?? null, v0?.storage ?? null, { lr, beta1: b1, beta2: b2, eps, weightDecay: wd, decoupled: this.decoupled, t });
      this.setState(state, 'expAvg', new Tensor(r.m, p.shape));
      this.setState(state, 'expAvgSq', new Tensor(r.v, p.shape));
      p.assign(new Tensor(r.param, p.shape));
      return;
    }
    let g = grad;
    let param = p as Tensor;
    if (wd !== 0) {
      if (this.decoupled) param = param.mul(1 - lr * wd); // AdamW: p <- p (1 - lr wd)
      else g = g.add(param.mul(wd)); // Adam: L2 penalty through the gradient
    }
    const m0 = state.tensors.expAvg, v0 = state.tensors.expAvgSq;
    const m = this.setState(state, 'expAvg', m0 ? m0.mul(b1).add(g.mul(1 - b1)) : g.mul(1 - b1)); // m <- b1 m + (1 - b1) g
    const v = this.setState(state, 'expAvgSq', v0 ? v0.mul(b2).add(g.mul(g).mul(1 - b2)) : g.mul(g).mul(1 - b2)); // v <- b2 v + (1 - b2) g^2
    const bc1 = 1 - b1 ** t; // bias corrections: E[m_t] = (1 - b1^t) E[g]
    const bc2 = 1 - b2 ** t;
    let vUsed = v;
    if (amsgrad) {
      const vmax0 = state.tensors.maxExpAvgSq;
      vUsed = this.setState(state, 'maxExpAvgSq', vmax0 ? vmax0.maximum(v) : v.clone()); // running max of v
    }
    const denom = vUsed.sqrt().div(Math.sqrt(bc2)).add(eps); // sqrt(v / bc2) + eps
    p.assign(param.sub(m.div(denom).mul(lr / bc1))); // p <- p - lr (m / bc1) / denom
  }
}

/** Adam with decoupled weight decay (default 0.01, as torch.optim.AdamW). */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;

  constructor(params: ParamsInput<AdamHyper>, options: Partial<AdamHyper> = {}) {
    super(params, { weightDecay: 0.01, ...options });
  }
}
