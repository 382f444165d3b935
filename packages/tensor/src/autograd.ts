/**
 * Reverse-mode automatic differentiation.
 *
 * Every op that receives an input needing gradients records a `GradNode` on its output (see
 * `ops/record.ts`). `backward()` then:
 * 1. orders the graph topologically (every tensor after all tensors computed from it),
 * 2. seeds d(root)/d(root) = 1 (or the given upstream gradient),
 * 3. visits nodes from the root back to the leaves, asking each node's backward closure for its
 *    inputs' gradients (the chain rule: local derivative times the gradient arriving from above),
 * 4. sums the gradients a tensor receives from every use (fan-out), and
 * 5. reduces each gradient to its input's shape when the op broadcast that input: an input
 *    expanded along an axis contributed to every position there, so its gradient is the sum over
 *    that axis. This happens here, once, so no op has to "unbroadcast" for itself.
 * Memory, as in PyTorch: each gradient is disposed as soon as every op that reads it has run, and
 * each node's backward runs in its own `tidy`, so its temporaries (a ReLU's step mask, a bias
 * gradient's partial sums) are freed when it returns; the gradients in flight, not all of them,
 * are then what a backward pass holds (the caller's seed gradient and leaves' `.grad` are kept).
 * Tensors a forward made inside `releaseAfterBackward` (memory.ts) and did not return are disposed
 * as soon as their own step has run: every op that read them came later and has had its backward.
 * Leaves with `requiresGrad` accumulate into `.grad` across calls, as in PyTorch. The graph is
 * freed afterwards unless `retainGraph` is set; a second backward through it is a clear error.
 * Gradients are computed with gradient recording switched off, so they build no graph themselves.
 */
import type { Tensor } from './tensor';
import { sameShape, shapeToString } from './shape';
import { isReleasedAfterBackward, keep, tidy } from './memory';
// ops are imported module by module (not through ops/index) so that the Tensor <-> ops import
// cycle resolves under CommonJS loaders too, where a re-exporting index is seen half-built
import * as creation from './ops/creation';
import * as elementwise from './ops/elementwise';
import * as movement from './ops/movement';
import * as reduction from './ops/reduce';
import { checkFinite, isAnomalyDetectionEnabled } from './anomaly';
import { beginBackward, endBackward, isProfiling, setBackwardOp } from './profile';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run `fn` without recording gradients (inference, parameter updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

export interface BackwardOptions {
  /** keep the graph so backward can run through it again */
  retainGraph?: boolean;
}

/** Tensors reachable from `root` through grad nodes, ordered so that each comes after its inputs. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // iterative depth-first search (deep graphs would overflow the call stack)
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) { order.push(t); continue; }
    if (visited.has(t)) continue;
    visited.add(t);
    stack.push([t, true]);
    for (const input of t.node?.inputs ?? []) if (input.requiresGrad && !visited.has(input)) stack.push([input, false]);
  }
  return order;
}

/** Sum `grad` over the axes along which `shape` was broadcast to produce it. */
export function sumToShape(grad: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(grad.shape, shape)) return grad;
  const lead = grad.ndim - shape.length;
  const axes: number[] = [];
  for (let d = 0; d < grad.ndim; d++) {
    if (d < lead || (shape[d - lead] === 1 && grad.shape[d] !== 1)) axes.push(d);
  }
  return reduction.sum(grad, axes, true).reshape([...shape]);
}

export function backward(root: Tensor, grad?: Tensor, options: BackwardOptions = {}): void {
  if (!root.requiresGrad) {
    throw new Error('backward: this tensor does not require grad: none of the tensors it was computed from had requiresGrad set (or it was computed under noGrad)');
  }
  if (root.node && root.node.backward === null) {
    throw new Error(`backward: the graph behind this '${root.node.op}' result was already freed by an earlier backward(); pass {retainGraph: true} to the first call to backpropagate through it twice`);
  }
  if (grad === undefined) {
    if (root.size !== 1) throw new Error(`backward: called on a tensor of shape ${shapeToString(root.shape)}; pass the upstream gradient for non-scalar outputs`);
    grad = creation.onesLike(root);
  } else if (!sameShape(grad.shape, root.shape)) {
    throw new Error(`backward: upstream gradient of shape ${shapeToString(grad.shape)} does not match the tensor's shape ${shapeToString(root.shape)}`);
  }
  const order = topologicalOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, grad]]);
  // an op may hand the same gradient tensor to several inputs (add returns [g, g]); a leaf must
  // own its .grad, or updating one parameter's gradient in place would change another's
  const handedOut = new Set<Tensor>();
  // how many entries of `grads` hold each gradient tensor (an op may hand one tensor to several
  // inputs); one no entry holds any more is disposed, unless it is the seed or a leaf's .grad
  const holders = new Map<Tensor, number>([[grad, 1]]);
  const hold = (x: Tensor): void => { holders.set(x, (holders.get(x) ?? 0) + 1); };
  const release = (x: Tensor): void => {
    const n = (holders.get(x) ?? 0) - 1;
    if (n > 0) { holders.set(x, n); return; }
    holders.delete(x);
    if (x !== grad && !handedOut.has(x)) x.dispose();
  };
  const profiling = isProfiling(); // MOFME_PROFILE: kernels run from here on are "backward"
  if (profiling) beginBackward();
  try { noGrad(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      const g = grads.get(t);
      if (g === undefined) continue;
      grads.delete(t);
      const node = t.node;
      if (node === null) {
        // a leaf: accumulate into .grad
        t.grad = keep(t.grad ? elementwise.add(t.grad, g) : handedOut.has(g) ? movement.clone(g) : g);
        handedOut.add(t.grad);
        release(g);
        continue;
      }
      if (node.backward === null) throw new Error(`backward: the graph through '${node.op}' was already freed by an earlier backward(); pass {retainGraph: true} to the first call`);
      if (profiling) setBackwardOp(node.op);
      const backwardOfNode = node.backward;
      const inputGrads = tidy(() => backwardOfNode(g, t));
      if (profiling) setBackwardOp(null);
      const spent: Tensor[] = []; // gradients made here that no entry of `grads` may end up holding
      node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (gi === null || gi === undefined) return;
        spent.push(gi);
        if (!input.requiresGrad) return;
        const reduced = sumToShape(gi, input.shape);
        if (isAnomalyDetectionEnabled()) checkFinite(`the backward of '${node.op}' (gradient for input ${k})`, reduced);
        const previous = grads.get(input);
        const sum = previous ? elementwise.add(previous, reduced) : reduced;
        grads.set(input, sum);
        hold(sum);
        if (previous) { release(previous); spent.push(reduced); }
      });
      release(g);
      for (const x of spent) if (!holders.has(x) && x !== grad && !handedOut.has(x)) x.dispose();
      // every reader of t has had its backward now: a forward's internal tensor can go
      if (!options.retainGraph && t !== root && isReleasedAfterBackward(t)) t.dispose();
    }
  }); } finally { if (profiling) endBackward(); }
  if (!options.retainGraph) {
    for (const t of order) {
      if (t.node) {
        t.node.backward = null;
        t.node.inputs = [];
      }
    }
  }
}
