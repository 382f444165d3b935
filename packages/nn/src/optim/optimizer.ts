/**
 * The Optimizer base class: parameter groups, per-parameter state, and the step loop.
 *
 * An optimiser holds `paramGroups`: lists of parameters that share hyperparameters (a common use:
 * no weight decay on biases and norms). Each group carries its own copy of every hyperparameter,
 * as it was given: a schedule never rewrites them. It sets `lrFactor` instead, which the update
 * rules multiply every group's learning rate by (schedule.ts says why).
 *
 * `step()` visits every parameter that has a gradient and calls the subclass's `update`, under
 * `noGrad` (the update must not become part of any graph) and `tidy` (temporaries are freed).
 * Parameters are replaced in place with `param.assign(newValue)`; state tensors (moments,
 * momentum buffers) outlive the step, so they are stored through `setState`, which `keep`s the new
 * tensor and disposes the old one. Every update is written with tensor ops, so it runs on any
 * backend (a GPU backend never downloads the weights).
 *
 * The state is keyed by parameter position (group by group, in order), as in PyTorch, so
 * `stateDict()` / `loadStateDict()` carry it to a freshly built model with the same layout, and a
 * resumed run continues exactly. `flattenOptimizerState` turns it into tensors plus a JSON string,
 * ready for a safetensors file.
 */
import { keep, noGrad, tidy, type Tensor } from '@mofme/tensor';

/** Hyperparameters every optimiser has. Values must be JSON-serialisable. */
export interface BaseHyper {
  lr: number;
  weightDecay: number;
}

export type ParamGroup<H extends BaseHyper> = H & {
  params: Tensor[];
};

/** Either a flat list of parameters, or groups each overriding some hyperparameters. */
export type ParamsInput<H extends BaseHyper> = Iterable<Tensor> | ({ params: Iterable<Tensor> } & Partial<H>)[];

/** Per-parameter state: a step count and named tensors (moments, buffers). */
export interface ParamState {
  step: number;
  tensors: Record<string, Tensor>;
}

export interface OptimizerStateDict {
  /** state by parameter index (position over all groups, in order) */
  state: Record<string, ParamState>;
  /** each group's hyperparameters and the indices of its parameters */
  paramGroups: (Record<string, unknown> & { params: number[] })[];
}

export abstract class Optimizer<H extends BaseHyper = BaseHyper> {
  readonly paramGroups: ParamGroup<H>[];
  /** the schedule's multiplier of every group's learning rate (an LRScheduler sets it; 1 without one) */
  lrFactor = 1;
  protected readonly state = new Map<Tensor, ParamState>();

  constructor(params: ParamsInput<H>, defaults: H) {
    const list = [...(params as Iterable<unknown>)];
    const isGroups = list.length > 0 && typeof list[0] === 'object' && list[0] !== null && 'params' in (list[0] as object) && !('shape' in (list[0] as object));
    const groups = (isGroups ? list : [{ params: list }]) as ({ params: Iterable<Tensor> } & Partial<H>)[];
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g) => {
      const ps = [...g.params];
      for (const p of ps) {
        if (seen.has(p)) throw new Error(`${this.constructor.name}: parameter ${p.name ?? ''} appears in more than one group`);
        seen.add(p);
      }
      return { ...defaults, ...g, params: ps } as ParamGroup<H>;
    });
  }

  /** Every parameter, in state-dict order. */
  params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** Forget gradients (set to null), like PyTorch's zero_grad(set_to_none=True). */
  zeroGrad(): void {
    for (const p of this.params()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Apply one update to every parameter that has a gradient. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const group of this.paramGroups) {
          for (const p of group.params) {
            if (p.grad === null) continue;
            let s = this.state.get(p);
            if (!s) this.state.set(p, (s = { step: 0, tensors: {} }));
            s.step += 1;
            this.update(p, p.grad, group, s);
          }
        }
      }),
    );
  }

  /** The update rule for one parameter; `state.step` is already incremented (1 on the first step). */
  protected abstract update(param: Tensor, grad: Tensor, group: ParamGroup<H>, state: ParamState): void;

  /** Store a state tensor that must survive the step's tidy scope, freeing the previous one. */
  protected setState(state: ParamState, key: string, value: Tensor): Tensor {
    const old = state.tensors[key];
    state.tensors[key] = keep(value);
    if (old && old !== value) old.dispose();
    return value;
  }

  stateDict(): OptimizerStateDict {
    const index = new Map(this.params().map((p, i) => [p, i]));
    const state: Record<string, ParamState> = {};
    for (const [p, s] of this.state) {
      const tensors: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(s.tensors)) tensors[k] = t.detach();
      state[String(index.get(p))] = { step: s.step, tensors };
    }
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...hyper } = g;
      return { ...structuredClone(hyper), params: params.map((p) => index.get(p)!) } as Record<string, unknown> & { params: number[] };
    });
    return { state, paramGroups };
  }

  /**
   * Restore hyperparameters and state saved by `stateDict()` from an optimiser over parameters of
   * the same shapes in the same order. State tensors are converted to each parameter's dtype and
   * backend.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const params = this.params();
    if (dict.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`${this.constructor.name}.loadStateDict: the saved state has ${dict.paramGroups.length} parameter groups, this optimiser ${this.paramGroups.length}`);
    }
    dict.paramGroups.forEach((saved, gi) => {
      if (saved.params.length !== this.paramGroups[gi]!.params.length) {
        throw new Error(`${this.constructor.name}.loadStateDict: group ${gi} has ${saved.params.length} parameters saved, ${this.paramGroups[gi]!.params.length} here`);
      }
    });
    const incoming = new Map<Tensor, ParamState>();
    for (const [key, s] of Object.entries(dict.state)) {
      const p = params[Number(key)];
      if (!p) throw new Error(`${this.constructor.name}.loadStateDict: state for parameter ${key}, but there are only ${params.length}`);
      const tensors: Record<string, Tensor> = {};
      for (const [k, t] of Object.entries(s.tensors)) {
        if (t.shape.join() !== p.shape.join()) throw new Error(`${this.constructor.name}.loadStateDict: state '${k}' of parameter ${key} (${p.name ?? ''}) has shape [${t.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`);
        tensors[k] = keep(noGrad(() => (t.backend === p.backend && t.dtype === p.dtype ? t.detach() : t.to(p.backend, p.dtype).detach())));
      }
      incoming.set(p, { step: s.step, tensors });
    }
    for (const s of this.state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.state.clear();
    for (const [p, s] of incoming) this.state.set(p, s);
    dict.paramGroups.forEach((saved, gi) => {
      const { params: _indices, ...hyper } = saved;
      Object.assign(this.paramGroups[gi]!, structuredClone(hyper));
    });
  }
}

/**
 * An optimiser state dict as flat tensors (`state.<index>.<name>`) plus JSON metadata (steps and
 * groups), the shape a safetensors file wants: `saveSafetensors(path, f.tensors, { optimizer: f.metadata })`.
 */
export function flattenOptimizerState(dict: OptimizerStateDict): { tensors: Record<string, Tensor>; metadata: string } {
  const tensors: Record<string, Tensor> = {};
  const steps: Record<string, number> = {};
  for (const [index, s] of Object.entries(dict.state)) {
    steps[index] = s.step;
    for (const [k, t] of Object.entries(s.tensors)) tensors[`state.${index}.${k}`] = t;
  }
  return { tensors, metadata: JSON.stringify({ steps, paramGroups: dict.paramGroups }) };
}

/** The inverse of flattenOptimizerState. */
export function unflattenOptimizerState(tensors: Record<string, Tensor>, metadata: string): OptimizerStateDict {
  const meta = JSON.parse(metadata) as { steps: Record<string, number>; paramGroups: OptimizerStateDict['paramGroups'] };
  const state: Record<string, ParamState> = {};
  for (const [index, step] of Object.entries(meta.steps)) state[index] = { step, tensors: {} };
  for (const [key, t] of Object.entries(tensors)) {
    const m = /^state\.(\d+)\.(.+)$/.exec(key);
    if (!m) continue;
    const entry = state[m[1]!];
    if (!entry) throw new Error(`unflattenOptimizerState: tensor '${key}' has no step count in the metadata`);
    entry.tensors[m[2]!] = t;
  }
  return { state, paramGroups: meta.paramGroups };
}
