/**
 * The one place where an op's result is connected to the autograd graph.
 *
 * An op computes its output with backend kernels, then calls `record(name, inputs, output,
 * backward)`. If gradients are being recorded and any input needs one, the output gets a
 * `GradNode` holding `backward`: a closure that maps the output's gradient to one gradient per
 * input (written with tensor ops, so every backend gets gradients for free). `needs[k]` tells the
 * closure whether input k wants a gradient at all, so expensive ones can be skipped.
 * Gradients may have the output's (broadcast) shape: autograd sums them to each input's shape.
 */
import type { Tensor } from '../tensor';
import { isGradEnabled } from '../autograd';
import { checkFinite, isAnomalyDetectionEnabled } from '../anomaly';
import { isProfiling, noteOp } from '../profile';
import { isTracing, traceRecorded } from '../trace';

export type BackwardFn = (grad: Tensor, output: Tensor, needs: boolean[]) => (Tensor | null)[];

export function record(op: string, inputs: Tensor[], output: Tensor, backward: BackwardFn): Tensor {
  if (isProfiling()) noteOp(op); // MOFME_PROFILE: the kernels run since the last op were this op's
  if (isAnomalyDetectionEnabled()) checkFinite(`op '${op}'`, output, inputs);
  if (isTracing()) traceRecorded(op, inputs, output); // trace.ts: the same facts, for an exporter
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return output;
  const needs = inputs.map((t) => t.requiresGrad);
  output.requiresGrad = true;
  output.node = { op, inputs, backward: (g, out) => backward(g, out, needs) };
  return output;
}
