/**
 * Freeing a layer's temporaries as soon as it returns, when no gradient is being recorded.
 *
 * A forward pass makes many intermediate tensors (a ResBlock's two convolutions and its ReLU, an
 * attention's score matrices) that nothing needs once the layer has returned its output. With
 * gradients on, the graph's backward closures keep some of them for the backward pass, so only
 * the caller can decide when they may go (a `tidy` around the whole training step). Under
 * `noGrad` nothing keeps them, but on the CPU a typed array is only freed when the garbage
 * collector gets round to it, and a `tidy` around the whole forward (what evaluation and the
 * bench do) holds every one of them until the end: the peak memory of a forward was then the sum
 * of all its intermediates instead of the largest layer's.
 *
 * `disposeTemporariesUnderNoGrad(fn)` runs `fn` inside its own `tidy` when gradient recording is
 * off, so each layer's temporaries are disposed (back to the backend's buffer pool, where the
 * next layer of the same shape takes them) the moment it returns; with recording on it just runs
 * `fn`. The layers of this package and the MoFME blocks wrap their forward in it. Results are
 * the same tensors either way: only when the intermediates are released changes.
 */
import { isGradEnabled, tidy, type Tensor } from '@mofme/tensor';

export function disposeTemporariesUnderNoGrad<T>(fn: () => T): T {
  return isGradEnabled() ? fn() : tidy(fn);
}

/**
 * `x` through `steps` in order. Under noGrad each intermediate result is disposed as soon as the
 * next step has made its own (never `x`, which belongs to the caller, and never a result a step
 * passed through unchanged), so a chain of layers holds two of its activations at a time, not
 * all of them; with recording on, the graph may need them, and they are left alone.
 */
export function chainDisposingUnderNoGrad(x: Tensor, steps: readonly ((t: Tensor) => Tensor)[]): Tensor {
  const disposing = !isGradEnabled();
  let t = x;
  for (const step of steps) {
    const next = step(t);
    if (disposing && t !== x && next !== t) t.dispose();
    t = next;
  }
  return t;
}

/**
 * Dispose tensors that no backward pass will read, now instead of when the caller's scope (a
 * training step's `tidy`) ends; the caller must not read them again. Sound only where the math
 * says so, for a tensor made by an op whose gradient does not read its result (a matmul or a
 * convolution: their gradients read their operands; a sum, a permutation, a slice) and consumed
 * only by ops whose gradients read none of their inputs (a sum, a reshape, a permutation, a
 * slice). The layers use it on the products they add a bias or a residual to, or lay out anew.
 * Under noGrad it frees just as early.
 */
export function disposeUnreadByBackward(...tensors: Tensor[]): void {
  for (const t of tensors) t.dispose();
}
