/**
 * Tracing: record the ops of one forward pass as a graph, the engine's counterpart to autograd.
 *
 * Autograd (autograd.ts) remembers, per output tensor, the op that made it and a closure that sends
 * gradients back. Tracing remembers the same facts for a different reader: a list of nodes
 * `{op, inputs, output, attrs}` in the order the ops ran, which an exporter (the ONNX writer in
 * @mofme/nn) turns into another runtime's program. Both are fed by the same hook: every
 * differentiable op ends in `record()` (ops/record.ts), which calls `traceRecorded` while a trace
 * is running. Ops whose result is not differentiable (comparisons, `detach`, top-k indices) call
 * `traceOp` themselves, and ops with arguments that the shapes do not tell (a permutation, reduced
 * axes, slice starts, matmul transposes, convolution geometry) first hand them to `traceAttrs`.
 *
 * Like PyTorch's `torch.jit.trace`, a trace is one concrete run: a decision taken in JavaScript
 * from tensor values (reading `.data()` and branching, building an index array on the host) is
 * frozen into the graph as a constant. `compareTraces` finds such decisions by tracing twice with
 * different inputs: the same program must come out, constant for constant. Shapes are frozen too,
 * so a traced graph runs at the input sizes it was traced with.
 *
 *   const graph = trace(() => model.forward(x).image, [x]);
 *   graph.nodes  // [{op: 'conv2d', inputs: [0, 1, 2], output: 3, attrs: {spec: ...}}, ...]
 *
 * Every tensor the forward reads that no traced op produced (parameters, literal scalars, masks)
 * is a constant of the graph; its values are copied when first seen, so the graph stays valid after
 * a `tidy` scope frees the originals.
 *
 * Fused kernels (a backend's optional one-pass softmax, layerNorm, GELU) record one op whose
 * arguments (eps, the approximation) stay inside the kernel call. An exporter wants the definition
 * instead: run the traced function on `withoutFusedKernels(backend)`, where the ops fall back to
 * their compositions of primitives (which the conformance suite holds equal to the fused kernels).
 */
import { FUSED_KERNELS, type Backend, type DType, type TypedArray } from './backend/backend';
import type { Tensor } from './tensor';

/** One recorded op: `output = op(inputs...; attrs)`, inputs and output as value ids. */
export interface TracedNode {
  op: string;
  inputs: number[];
  output: number;
  /** the op's non-tensor arguments (tensor-valued ones were appended to `inputs`, in key order) */
  attrs: Record<string, unknown>;
}

/** A value the graph reads but did not compute: a parameter, a buffer or a literal. */
export interface TracedConstant {
  data: TypedArray;
  shape: readonly number[];
  dtype: DType;
  /** the tensor's name (parameters carry their dotted names), if it had one */
  name: string | undefined;
}

export interface TracedGraph {
  /** value ids of the declared inputs, in order */
  inputs: number[];
  /** value ids of the outputs, in order */
  outputs: number[];
  /** the ops in the order they ran (every node's inputs are defined before it) */
  nodes: TracedNode[];
  constants: Map<number, TracedConstant>;
  /** shape and dtype of every value */
  values: Map<number, { shape: readonly number[]; dtype: DType }>;
}

interface Recording {
  ids: Map<Tensor, number>;
  graph: TracedGraph;
  pending: { op: string; attrs: Record<string, unknown> } | null;
}

let active: Recording | null = null;

/** True while `trace` runs (ops check it before doing any tracing work). */
export function isTracing(): boolean {
  return active !== null;
}

function idOf(rec: Recording, t: Tensor): number {
  const known = rec.ids.get(t);
  if (known !== undefined) return known;
  // first sight of a tensor no traced op made: a constant; copy its values now
  const id = rec.ids.size;
  rec.ids.set(t, id);
  rec.graph.values.set(id, { shape: t.shape, dtype: t.dtype });
  rec.graph.constants.set(id, { data: t.data(), shape: t.shape, dtype: t.dtype, name: t.name });
  return id;
}

/** Hand the next recorded `op` its non-tensor arguments (a no-op unless tracing). */
export function traceAttrs(op: string, attrs: Record<string, unknown>): void {
  if (active) active.pending = { op, attrs };
}

/** Record `output = op(inputs)`; returns `output`, so a non-differentiable op can wrap its result. */
export function traceOp(op: string, inputs: readonly Tensor[], output: Tensor, attrs: Record<string, unknown> = {}): Tensor {
  const rec = active;
  if (!rec) return output;
  const pending = rec.pending;
  rec.pending = null;
  const all = { ...(pending && pending.op === op ? pending.attrs : {}), ...attrs };
  const tensorInputs = [...inputs];
  const plain: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(all)) {
    if (value !== null && typeof value === 'object' && 'storage' in value && 'shape' in value) tensorInputs.push(value as Tensor);
    else plain[key] = value;
  }
  const inputIds = tensorInputs.map((t) => idOf(rec, t));
  // an op may hand back one of its inputs unchanged (a same-dtype cast): nothing to record
  if (rec.ids.has(output)) return output;
  const id = rec.ids.size;
  rec.ids.set(output, id);
  rec.graph.values.set(id, { shape: output.shape, dtype: output.dtype });
  rec.graph.nodes.push({ op, inputs: inputIds, output: id, attrs: plain });
  return output;
}

/** The hook in `record()`: every differentiable op passes through here. */
export function traceRecorded(op: string, inputs: readonly Tensor[], output: Tensor): void {
  traceOp(op, inputs, output);
}

/**
 * Run `fn` once and return the graph of the ops it ran from `inputs` to its result(s).
 * Run it under `noGrad` if no gradients are needed; tracing itself does not care.
 */
export function trace(fn: () => Tensor | readonly Tensor[], inputs: readonly Tensor[]): TracedGraph {
  if (active) throw new Error('trace: already tracing (traces do not nest)');
  const graph: TracedGraph = { inputs: [], outputs: [], nodes: [], constants: new Map(), values: new Map() };
  const rec: Recording = { ids: new Map(), graph, pending: null };
  inputs.forEach((t, i) => {
    if (rec.ids.has(t)) throw new Error(`trace: input ${i} is passed twice`);
    rec.ids.set(t, i);
    graph.values.set(i, { shape: t.shape, dtype: t.dtype });
    graph.inputs.push(i);
  });
  active = rec;
  let result: Tensor | readonly Tensor[];
  try {
    result = fn();
  } finally {
    active = null;
  }
  for (const [k, t] of (Array.isArray(result) ? result : [result]).entries()) {
    const id = rec.ids.get(t as Tensor);
    if (id === undefined) throw new Error(`trace: output ${k} was not computed by a traced op (a tensor made outside the traced function?)`);
    if (graph.constants.has(id)) throw new Error(`trace: output ${k} does not depend on the inputs (it is a constant of the graph)`);
    graph.outputs.push(id);
  }
  return graph;
}

/**
 * Where two traces of the same function differ, in one sentence, or null if they are the same
 * program. Traced with different input values, a difference means the function decided something
 * on the host from those values (e.g. an index list built from `.data()`), which a graph cannot
 * replay: the constant fed to that node was computed, not read from a parameter.
 */
export function compareTraces(a: TracedGraph, b: TracedGraph): string | null {
  if (a.nodes.length !== b.nodes.length) return `the two runs executed ${a.nodes.length} and ${b.nodes.length} ops`;
  for (let i = 0; i < a.nodes.length; i++) {
    const na = a.nodes[i]!, nb = b.nodes[i]!;
    const where = `op ${i} ('${na.op}')`;
    if (na.op !== nb.op || na.inputs.join() !== nb.inputs.join()) return `${where} differs between the two runs ('${na.op}' vs '${nb.op}')`;
    if (JSON.stringify(na.attrs) !== JSON.stringify(nb.attrs)) return `${where} got different arguments in the two runs`;
    for (const v of na.inputs) {
      const ca = a.constants.get(v), cb = b.constants.get(v);
      if (!ca || !cb) continue;
      if (ca.shape.join() !== cb.shape.join() || ca.data.some((x, j) => !Object.is(x, cb.data[j]))) {
        return `${where} read a constant${ca.name ? ` '${ca.name}'` : ''} of shape [${ca.shape.join(', ')}] that depends on the input values`;
      }
    }
  }
  return null;
}

/** The optional fused kernels of a backend that `withoutFusedKernels` hides (listed once, in backend.ts). */
export { FUSED_KERNELS };

/**
 * The same backend, seen without its fused kernels: the ops then run as compositions of primitives,
 * so a trace records only primitives. Storage made through the view belongs to the view: move a
 * model there with `module.to(view)` and make its inputs there.
 */
export function withoutFusedKernels(backend: Backend): Backend {
  const view = Object.create(backend) as Backend;
  for (const k of FUSED_KERNELS) Object.defineProperty(view, k, { value: undefined });
  return view;
}
