/**
 * Parameter-free layers as modules, so they can sit in a Sequential and show up in toString():
 * activations (GELU, ReLU, Sigmoid, Tanh) and Dropout.
 */
import { dropout, type Generator, type Tensor } from '@mofme/tensor';
import { Module } from '../module';
import { resolveInit } from '../init';

/** GELU x * Phi(x); 'none' is the exact erf form (PyTorch's default and the official model's), 'tanh' the approximation. */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }
  override extraRepr(): string {
    return this.approximate === 'none' ? '' : `approximate='${this.approximate}'`;
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}

/**
 * Inverted dropout: in training, each element is zeroed with probability p and the survivors are
 * scaled by 1/(1-p) so that the expected activation is unchanged; in eval mode it is the identity.
 * Masks are drawn from `generator` (default: the generator of the enclosing `withInitDefaults`
 * scope at construction, else the engine's default), so a seeded run is reproducible.
 */
export class Dropout extends Module {
  readonly p: number;
  readonly generator: Generator;
  constructor(p = 0.5, options: { generator?: Generator } = {}) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
    this.p = p;
    this.generator = resolveInit(options).generator;
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training, this.generator);
  }
  override extraRepr(): string {
    return `p=${this.p}`;
  }
}
