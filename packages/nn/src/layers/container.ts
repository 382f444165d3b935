/**
 * Containers: ModuleList (an indexed list of modules whose forward the owner writes) and
 * Sequential, a ModuleList of one-in-one-out modules whose forward chains them. Children are named
 * '0', '1', ..., so parameters get PyTorch's names (`layers.0.weight`).
 */
import type { Tensor } from '@mofme/tensor';
import { Module, type UnaryModule } from '../module';

export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }

  push(module: M): this {
    this.items.push(this.child(String(this.items.length), module));
    return this;
  }
  at(index: number): M {
    const m = this.items[index < 0 ? index + this.items.length : index];
    if (!m) throw new Error(`${this.constructor.name}: index ${index} out of range (length ${this.items.length})`);
    return m;
  }
  get length(): number {
    return this.items.length;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
  map<T>(f: (m: M, i: number) => T): T[] {
    return this.items.map(f);
  }
}

/** A ModuleList of one-in-one-out modules whose forward feeds x through them in order. */
export class Sequential extends ModuleList<UnaryModule> {
  constructor(...modules: UnaryModule[]) {
    super(modules);
  }

  /** Feed x through every module in order. */
  forward(x: Tensor): Tensor {
    return [...this].reduce((h, m) => m.forward(h), x);
  }
}
