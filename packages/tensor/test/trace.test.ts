// Tracing (trace.ts): what a trace records (ops in run order, their arguments, constants with their
// values and names), that non-differentiable ops (comparisons, detach, top-k indices) are in the
// graph too, and that compareTraces catches a function that decides something on the host from
// tensor values. A tiny interpreter replays a traced graph with our own ops on a new input: the
// graph must compute what the function computes, which is what an exporter relies on.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Tensor, add, clamp, compareTraces, concat, detach, div, gather, matmul, max, mul, noGrad, pad, permute, relu, reshape,
  slice, softmax, sub, sum, tensor, topk, trace, exp, compare, isTracing, type TracedGraph,
  getDefaultBackend, setDefaultBackend, withoutFusedKernels, FUSED_KERNELS, layerNorm, gelu,
} from '../src/index';

// the tests read graphs of primitives: run them where fused kernels (one op for a whole softmax,
// layerNorm or GELU) are hidden, as an exporter does
const fullBackend = getDefaultBackend();
setDefaultBackend(withoutFusedKernels(fullBackend));
test.after(() => setDefaultBackend(fullBackend));

const x0 = (): Tensor => tensor([[1, -2, 3], [4, 5, -6]]);

test('a trace lists the ops in run order with their arguments, inputs and constants', () => {
  const w = tensor([[1, 0], [0, 1], [1, 1]]);
  w.name = 'fc.weight';
  const x = x0();
  const g = trace(() => sum(relu(matmul(x, w)), 1, true), [x]);
  assert.equal(g.nodes.map((n) => n.op), ['reshape', 'reshape', 'matmul', 'reshape', 'relu', 'sum']);
  assert.equal(g.nodes.find((n) => n.op === 'matmul')!.attrs, { transA: false, transB: false });
  assert.equal(g.nodes.at(-1)!.attrs, { axes: [1], keepdim: true });
  assert.equal(g.inputs, [0]);
  assert.equal(g.outputs, [g.nodes.at(-1)!.output]);
  const named = [...g.constants.values()].find((c) => c.name === 'fc.weight')!;
  assert.equal(Array.from(named.data), [1, 0, 0, 1, 1, 1]);
  assert.equal(g.values.get(g.outputs[0]!)!.shape, [2, 1]);
  assert.is(isTracing(), false);
});

test('comparisons, detach and top-k indices are traced although autograd does not record them', () => {
  const x = x0();
  const g1 = trace(() => clamp(x, 0, 4), [x]);
  assert.equal(g1.nodes.map((n) => n.op), ['compare', 'where', 'compare', 'where']);
  assert.equal(g1.nodes[0]!.attrs, { op: 'lt' });
  const g2 = trace(() => softmax(x, -1), [x]);
  assert.ok(g2.nodes.some((n) => n.op === 'detach'));
  const g3 = trace(() => topk(x, 2, -1).indices, [x]);
  assert.equal(g3.nodes.map((n) => n.op), ['topk', 'gather']); // topk also gathers its values
  assert.equal(g3.nodes[0]!.attrs, { k: 2 });
});

test('withoutFusedKernels: the fused kernels are gone, the ops trace as their compositions, results agree', () => {
  const view = getDefaultBackend();
  for (const k of FUSED_KERNELS) assert.is((view as unknown as Record<string, unknown>)[k], undefined, k);
  const x = x0();
  const ops = trace(() => gelu(layerNorm(softmax(x, -1), 1, null, null, 1e-3)), [x]).nodes.map((n) => n.op);
  for (const fused of ['softmax', 'layerNorm', 'gelu']) assert.not.ok(ops.includes(fused), fused);
  assert.ok(ops.includes('erf') && ops.includes('sqrt') && ops.includes('exp'));
  const onFull = tensor([[1, -2, 3], [4, 5, -6]], { backend: fullBackend });
  const want = gelu(layerNorm(softmax(onFull, -1), 1, null, null, 1e-3)).data();
  const got = gelu(layerNorm(softmax(x, -1), 1, null, null, 1e-3)).data();
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-5);
});

test('a tensor-valued argument (gather index) becomes an input of its node', () => {
  const x = x0();
  const g = trace(() => gather(x, 1, topk(x, 1, -1).indices), [x]);
  const gatherNode = g.nodes.find((n) => n.op === 'gather')!;
  assert.equal(gatherNode.attrs, { axis: 1 });
  assert.is(gatherNode.inputs.length, 2);
  assert.is(gatherNode.inputs[1], g.nodes.find((n) => n.op === 'topk')!.output);
});

test('constants are copied when first seen: the graph outlives the tensors it read', () => {
  const x = x0();
  const g = trace(() => mul(x, 2.5), [x]);
  const literal = [...g.constants.values()][0]!;
  assert.equal(Array.from(literal.data), [2.5]);
});

test('compareTraces: the same program twice is null; a host decision from values is named', () => {
  const pure = (x: Tensor): Tensor => sub(x, detach(max(x, -1, true)));
  const a = tensor([[1, 2, 3]]), b = tensor([[3, 1, 2]]);
  assert.is(compareTraces(trace(() => pure(a), [a]), trace(() => pure(b), [b])), null);
  // the mask is built on the host from the values: a graph would replay the first image's mask
  const hostMask = (x: Tensor): Tensor => {
    const v = x.data();
    const m = Float64Array.from(v, (e) => (e === Math.max(...v) ? 1 : 0));
    return mul(x, tensor(m, { shape: [...x.shape], dtype: x.dtype }));
  };
  const why = compareTraces(trace(() => hostMask(a), [a]), trace(() => hostMask(b), [b]));
  assert.match(why!, /op 0 \('mul'\) read a constant of shape \[1, 3\] that depends on the input values/);
});

test('trace refuses outputs it did not see computed, and nesting', () => {
  const x = x0();
  assert.throws(() => trace(() => tensor([1]), [x]), /output 0 was not computed by a traced op/);
  assert.throws(() => trace(() => trace(() => relu(x), [x]).nodes.length ? relu(x) : x, [x]), /traces do not nest/);
  assert.is(isTracing(), false);
});

// ---- replay: a traced graph, run with our own ops, computes what the function computed ----

function replay(g: TracedGraph, inputs: Tensor[]): Tensor {
  const v = new Map<number, Tensor>();
  g.inputs.forEach((id, i) => v.set(id, inputs[i]!));
  for (const [id, c] of g.constants) v.set(id, tensor(c.data, { shape: [...c.shape], dtype: c.dtype }));
  const at = (id: number): Tensor => v.get(id)!;
  for (const n of g.nodes) {
    const a = n.attrs as Record<string, any>;
    const [p, q, r] = n.inputs.map(at);
    const shape = [...g.values.get(n.output)!.shape];
    const y = {
      add: () => add(p!, q!), sub: () => sub(p!, q!), mul: () => mul(p!, q!), div: () => div(p!, q!), exp: () => exp(p!), relu: () => relu(p!),
      reshape: () => reshape(p!, shape), permute: () => permute(p!, a.perm), detach: () => p!, sum: () => sum(p!, a.axes, a.keepdim),
      max: () => max(p!, a.axes, a.keepdim), compare: () => compare(a.op, p!, q!), slice: () => slice(p!, a.starts.map((s: number, d: number) => [s, s + shape[d]!])),
      pad: () => pad(p!, a.pads, a.value), concat: () => concat(n.inputs.map(at), a.axis), expand: () => p!.expand(shape), where: () => p!.mul(q!).add(p!.neg().add(1).mul(r!)),
    }[n.op as 'add'];
    if (!y) throw new Error(`replay: no rule for ${n.op}`);
    v.set(n.output, y());
  }
  return at(g.outputs[0]!);
}

test('replaying a traced graph with our ops on a new input gives the function\'s result', () => {
  const f = (x: Tensor): Tensor => {
    const s = softmax(permute(x, [1, 0]), -1); // [3, 2]
    const p = pad(slice(s, [[1, 3], null]), [[0, 1], [1, 0]], 0.5); // [3, 3]
    return concat([p, clamp(x.reshape([3, 2]), -1, 2)], 1); // [3, 5]
  };
  const traced = x0();
  const g = noGrad(() => trace(() => f(traced), [traced]));
  const fresh = tensor([[0.5, -1.5, 2], [7, -3, 1]]);
  const got = replay(g, [fresh]).data(), want = f(fresh).data();
  assert.equal(Array.from(got).map((e) => +e.toFixed(6)), Array.from(want).map((e) => +e.toFixed(6)));
});

test.run();
