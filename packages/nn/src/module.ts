/**
 * Module: the base class of every layer and model, PyTorch's `nn.Module` in TypeScript.
 *
 * A module owns three kinds of named things:
 * - parameters: tensors the optimiser trains (`requiresGrad` is set on them),
 * - buffers: tensors that are state but are not trained (running statistics, fixed tables),
 * - children: other modules.
 * Walking children recursively gives every parameter a dotted name, the same names PyTorch puts
 * in its state dicts (`blocks.0.attn.qkv.weight`), which is what checkpoints are keyed by.
 *
 * Registration is explicit, because TypeScript cannot see which properties are "layers" at run
 * time without guessing, and because the registration order is the order of `parameters()`
 * (which the optimiser's state dict depends on). A layer reads:
 *
 *   class Mlp extends Module {
 *     readonly fc1: Linear;
 *     readonly fc2: Linear;
 *     constructor() {
 *       super();
 *       this.fc1 = this.child('fc1', new Linear(2, 16));   // children first or params first:
 *       this.fc2 = this.child('fc2', new Linear(16, 1));   // the order you register is the order kept
 *     }
 *     forward(x: Tensor): Tensor { return this.fc2.forward(this.fc1.forward(x).relu()); }
 *   }
 *
 * `this.param(name, tensor)` / `this.buffer(name, tensor)` / `this.child(name, module)` return
 * what they register, so the property and the registry hold the same object. Loading a state dict
 * updates parameters in place (`Tensor.assign`), so those properties stay valid. `to(backend)` and
 * `cast(dtype)` have to make new tensors; they also re-point any own property that held the old one.
 *
 * There is no `__call__`: call `module.forward(x)`. Forward signatures differ between layers
 * (attention takes tokens, PatchUnembed also takes the image size), so `forward` is not declared
 * here; `UnaryModule` names the common case of one tensor in, one tensor out.
 */
import { noGrad, type Backend, type DType, Tensor } from '@mofme/tensor';

/** A module whose forward maps one tensor to one tensor (what Sequential chains). */
export interface UnaryModule extends Module {
  forward(x: Tensor): Tensor;
}

/** A flat map from dotted names to tensors: what checkpoints store. Insertion-ordered. */
export type StateDict = Record<string, Tensor>;

/** What `loadStateDict` found: keys the module has but the dict lacks, the reverse, and shape clashes. */
export interface LoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: number[]; got: number[] }[];
  /** keys whose values were copied into the module */
  loaded: string[];
}

export interface LoadOptions {
  /** throw (and load nothing) when anything is missing, unexpected or mis-shaped; default true */
  strict?: boolean;
}

const fmtShape = (s: readonly number[]): string => `[${s.join(', ')}]`;

export abstract class Module {
  /** true after train() (the default), false after eval(): Dropout and friends read it */
  training = true;
  private readonly _params = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, { tensor: Tensor; persistent: boolean }>();
  private readonly _children = new Map<string, Module>();

  // ---- registration ----

  /**
   * Register `value` as a trainable parameter called `name` and return it. The tensor is marked
   * `requiresGrad` and labelled with its name (error messages and anomaly reports show it).
   * `null` registers an absent optional parameter (a Linear without bias): it appears nowhere.
   */
  protected param<T extends Tensor | null>(name: string, value: T): T {
    this.checkName(name);
    if (value !== null) {
      if (!value.isLeaf) throw new Error(`${this.constructor.name}.param('${name}'): a parameter must be a leaf tensor; pass t.detach()`);
      value.requiresGrad = true;
      value.name = name;
    }
    this._params.set(name, value);
    return value;
  }

  /**
   * Register non-trained state. Persistent buffers are saved in the state dict; non-persistent
   * ones (caches that can be recomputed) are not.
   */
  protected buffer(name: string, value: Tensor, options: { persistent?: boolean } = {}): Tensor {
    this.checkName(name);
    value.name = name;
    this._buffers.set(name, { tensor: value, persistent: options.persistent ?? true });
    return value;
  }

  /** Register a child module; its parameters become `name.<their name>`. */
  protected child<M extends Module>(name: string, module: M): M {
    this.checkName(name);
    if (!(module instanceof Module)) throw new Error(`${this.constructor.name}.child('${name}'): not a Module`);
    this._children.set(name, module);
    // Re-label the child's tensors with their path from here. Modules are built bottom-up, so each
    // registration adds one more prefix and the root ends up with full dotted names.
    for (const [n, p] of module.namedParameters()) p.name = `${name}.${n}`;
    for (const [n, b] of module.namedBuffers({ includeNonPersistent: true })) b.name = `${name}.${n}`;
    return module;
  }

  private checkName(name: string): void {
    if (name === '' || name.includes('.')) throw new Error(`${this.constructor.name}: invalid name '${name}' (non-empty, no dots)`);
    if (this._params.has(name) || this._buffers.has(name) || this._children.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    }
  }

  // ---- walking the tree ----

  /** Direct children, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this._children];
  }
  children(): Module[] {
    return [...this._children.values()];
  }

  /** This module and every descendant, with dotted paths ('' for this one), depth first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, m] of this._children) out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /**
   * Every parameter with its dotted name: own parameters first, then each child's in order.
   * A tensor registered twice (weight tying) is listed once, under its first name.
   */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [path, m] of this.namedModules()) {
      for (const [name, p] of m._params) {
        if (p === null || seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${name}` : name, p]);
      }
    }
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(options: { includeNonPersistent?: boolean } = {}): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [name, b] of m._buffers) {
        if (!b.persistent && !options.includeNonPersistent) continue;
        out.push([path ? `${path}.${name}` : name, b.tensor]);
      }
    }
    return out;
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** The total number of scalars in the parameters (what papers report as "params"). */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    return this.parameters().reduce((n, p) => n + (options.trainableOnly && !p.requiresGrad ? 0 : p.size), 0);
  }

  // ---- training state ----

  /** Forget accumulated gradients (sets `.grad` to null, like PyTorch's set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Switch this module and all descendants to training mode (dropout active). Returns this. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }
  /** Switch to evaluation mode (dropout is the identity). Returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Freeze or unfreeze every parameter (frozen ones get no gradient). Returns this. */
  requiresGrad_(flag = true): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  // ---- state dicts ----

  /**
   * Parameters and persistent buffers by dotted name. The tensors are detached snapshots that
   * share storage with the module: later optimiser steps (which swap in new storage) do not change
   * them, and they carry no graph.
   */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [name, p] of this.namedParameters()) out[name] = p.detach();
    for (const [name, b] of this.namedBuffers()) out[name] = b.detach();
    return out;
  }

  /**
   * Copy values from `dict` into this module's parameters and buffers, in place. Values are
   * converted to each parameter's dtype and backend. With `strict` (the default) any missing,
   * unexpected or mis-shaped key is an error listing all of them, and nothing is loaded; without it
   * the matching keys are loaded and the report says what was skipped.
   */
  loadStateDict(dict: StateDict | Map<string, Tensor>, options: LoadOptions = {}): LoadReport {
    const strict = options.strict ?? true;
    const source = dict instanceof Map ? dict : new Map(Object.entries(dict));
    const own = new Map([...this.namedParameters(), ...this.namedBuffers()]);
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [], loaded: [] };
    const toLoad: [string, Tensor, Tensor][] = [];
    for (const [key, target] of own) {
      const value = source.get(key);
      if (value === undefined) report.missing.push(key);
      else if (value.shape.join() !== target.shape.join()) report.mismatched.push({ key, expected: [...target.shape], got: [...value.shape] });
      else toLoad.push([key, target, value]);
    }
    for (const key of source.keys()) if (!own.has(key)) report.unexpected.push(key);
    if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
      throw new Error(`loadStateDict (strict) for ${this.constructor.name}: nothing was loaded.\n${formatLoadReport(report)}`);
    }
    noGrad(() => {
      for (const [key, target, value] of toLoad) {
        const converted = value.backend === target.backend && value.dtype === target.dtype ? value : value.to(target.backend, target.dtype);
        target.assign(converted);
        report.loaded.push(key);
      }
    });
    return report;
  }

  // ---- moving and casting ----

  /** Move every parameter and buffer to `backend` (and optionally `dtype`). Gradients are dropped. Returns this. */
  to(backend: Backend, dtype?: DType): this {
    this.mapTensors((t) => t.to(backend, dtype ?? t.dtype));
    return this;
  }
  /** Convert every parameter and buffer to `dtype` (float64 for gradient checks). Returns this. */
  cast(dtype: DType): this {
    this.mapTensors((t) => t.cast(dtype));
    return this;
  }

  /** Replace each tensor by f(tensor) throughout the tree, re-pointing properties that held the old one. */
  private mapTensors(f: (t: Tensor) => Tensor): void {
    noGrad(() => {
      const replacement = new Map<Tensor, Tensor>();
      for (const t of [...this.parameters(), ...this.namedBuffers({ includeNonPersistent: true }).map(([, b]) => b)]) {
        const q = f(t).detach();
        q.requiresGrad = t.requiresGrad;
        q.name = t.name;
        replacement.set(t, q);
      }
      this.swapTensors(replacement);
    });
  }

  /**
   * Swap tensors throughout the tree: wherever a parameter, buffer or own property holds a key of
   * `replacement`, put its value instead. Used by to/cast and by `functionalCall`.
   */
  swapTensors(replacement: Map<Tensor, Tensor>): void {
    for (const m of this.modules()) {
      for (const [name, p] of m._params) if (p !== null && replacement.has(p)) m._params.set(name, replacement.get(p)!);
      for (const [name, b] of m._buffers) if (replacement.has(b.tensor)) m._buffers.set(name, { ...b, tensor: replacement.get(b.tensor)! });
      const self = m as unknown as Record<string, unknown>;
      for (const key of Object.keys(self)) {
        const v = self[key];
        if (v instanceof Tensor && replacement.has(v)) self[key] = replacement.get(v);
      }
    }
  }

  // ---- printing ----

  /** One line of layer settings shown after the class name, e.g. `in=2, out=16, bias=true`. */
  extraRepr(): string {
    return '';
  }

  /**
   * A tree in the style of PyTorch's print(model), with each module's own parameter shapes and
   * the parameter count of every subtree:
   *
   *   Mlp (65 params)
   *     (fc1): Linear(in=2, out=16, bias=true)  weight [16, 2], bias [16]  (48 params)
   *     (fc2): Linear(in=16, out=1, bias=true)  weight [1, 16], bias [1]  (17 params)
   */
  toString(): string {
    const lines: string[] = [];
    const visit = (m: Module, label: string, depth: number): void => {
      const own = [...m._params].filter(([, p]) => p !== null).map(([n, p]) => `${n} ${fmtShape(p!.shape)}`);
      const bufs = [...m._buffers].map(([n, b]) => `${n} ${fmtShape(b.tensor.shape)} (buffer)`);
      const tensors = [...own, ...bufs].join(', ');
      const count = m.numParameters();
      lines.push(`${'  '.repeat(depth)}${label}${m.constructor.name}(${m.extraRepr()})${tensors ? `  ${tensors}` : ''}${count ? `  (${count.toLocaleString('en-US')} params)` : ''}`);
      for (const [name, c] of m._children) visit(c, `(${name}): `, depth + 1);
    };
    visit(this, '', 0);
    return lines.join('\n');
  }
}

/** A human-readable summary of a LoadReport (used in strict-mode errors). */
export function formatLoadReport(report: LoadReport): string {
  const lines: string[] = [];
  if (report.missing.length) lines.push(`missing keys (${report.missing.length}): ${report.missing.join(', ')}`);
  if (report.unexpected.length) lines.push(`unexpected keys (${report.unexpected.length}): ${report.unexpected.join(', ')}`);
  for (const m of report.mismatched) lines.push(`shape mismatch for ${m.key}: the module has ${fmtShape(m.expected)}, the state dict ${fmtShape(m.got)}`);
  return lines.join('\n') || 'all keys matched';
}

/**
 * Run `fn` with some of the module's parameters/buffers temporarily replaced by the given tensors
 * (by dotted name), then restore them: PyTorch's torch.func.functional_call. Gradients then flow to
 * the given tensors, which is how gradient checks treat a layer as a function of its weights.
 */
export function functionalCall<T>(module: Module, tensors: StateDict, fn: () => T): T {
  const own = new Map([...module.namedParameters(), ...module.namedBuffers({ includeNonPersistent: true })]);
  const forward = new Map<Tensor, Tensor>();
  for (const [name, t] of Object.entries(tensors)) {
    const current = own.get(name);
    if (!current) throw new Error(`functionalCall: ${module.constructor.name} has no parameter or buffer '${name}'`);
    forward.set(current, t);
  }
  module.swapTensors(forward);
  try {
    return fn();
  } finally {
    module.swapTensors(new Map([...forward].map(([a, b]) => [b, a])));
  }
}
