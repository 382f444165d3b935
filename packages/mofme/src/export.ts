// Export of a MoFME network to other runtimes: ONNX (a traced eval-mode forward) and the official
// MoFME-Pytorch parameter names.
//
// ONNX. The forward is traced (@mofme/tensor's trace.ts: the ops of one run, as a graph) and
// written by @mofme/nn's ONNX writer, opset 17, with the weights as initialisers. What a trace can
// and cannot carry decides the details:
//   - Routing stays in the graph: the top-k selection is a TopK + one-hot mask (router.ts builds the
//     mask with tensor ops), so every image is routed by its own scores.
//   - Experts run densely (every expert on every token, times its mostly-zero weight): the sparse
//     path picks token rows on the host, which a graph cannot replay; both give the same output
//     (blocks.ts), so the exporter traces a copy built with `execution: 'dense'`.
//   - The Uncertainty-aware Router in eval draws M Monte-Carlo dropout masks from the model's
//     seeded stream on every call. A graph cannot draw; the masks drawn at export time are stored in
//     the file, so the ONNX model computes exactly the forward our model would run next (from the
//     same generator state) and repeats it for every image. Export leaves the model's stream as it
//     was.
//   - Sizes are fixed: the patchify reshapes bake H, W and the batch into the graph, so a file runs
//     at the size it was exported for (`height`, `width`, `batch`; default the config's imageSize,
//     one image). Restore larger photos tile by tile at that size.
// To catch any other decision taken on the host from tensor values, the forward is traced twice,
// on two different random images, and the two programs must agree constant for constant.
//
// Official format: our parameters under the official state-dict names (official.ts), for the
// official PyTorch code. It refuses models the official network cannot compute: the residual
// output of the tiny/small presets, and MoFME models without the official expert slots.

import { Generator, compareTraces, getDefaultBackend, noGrad, trace, uniform, withBackend, withoutFusedKernels, type TracedGraph } from '@mofme/tensor';
import { tracedGraphToOnnx, ONNX_OPSET } from '@mofme/nn';
import type { MofmeConfig } from './config';
import { createModel, type MoFME } from './model';

export interface OnnxSizeOptions {
  /** input image height (a multiple of the patch size). Default: config.imageSize */
  height?: number;
  /** input image width (a multiple of the patch size). Default: config.imageSize */
  width?: number;
  /** images per call. Default 1 */
  batch?: number;
}

/** What the exported graph reads and returns, stored in the file's metadata and printed by the CLI. */
export const ONNX_IO_NOTE = "input 'image' [B, 3, H, W] float32 in [-1, 1] (x·2 − 1 of an RGB image in [0, 1]); output 'restored' [B, 3, H, W] in [0, 1]";

/** A copy of `model` that traces as a graph: same weights and generator state, dense expert
 *  execution, eval mode, on a view of its backend without fused kernels (trace.ts says why). */
function traceableCopy(model: MoFME): MoFME {
  const first = model.parameters()[0];
  const copy = createModel({ ...model.config, execution: 'dense' }, first ? { dtype: first.dtype } : {});
  copy.loadStateDict(model.stateDict());
  copy.rng.setState(model.rng.getState());
  return copy.to(withoutFusedKernels(first?.backend ?? getDefaultBackend())).eval();
}

/** Trace the eval-mode forward of `model` at one size (checked: see the header). */
export function traceMofme(model: MoFME, options: OnnxSizeOptions = {}): TracedGraph {
  const c = model.config;
  const H = options.height ?? c.imageSize, W = options.width ?? c.imageSize, B = options.batch ?? 1;
  for (const [what, v] of [['height', H], ['width', W]] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % c.patchSize !== 0) throw new Error(`ONNX export: ${what} ${v} must be a positive multiple of the patch size ${c.patchSize}`);
  }
  if (!Number.isInteger(B) || B < 1) throw new Error(`ONNX export: batch ${B} must be a positive integer`);
  const copy = traceableCopy(model);
  const start = copy.rng.getState(); // every trace draws the UaR's MC masks from the same state
  const dtype = copy.parameters()[0]?.dtype ?? 'float32';
  const once = (seed: number): TracedGraph => {
    const backend = copy.parameters()[0]!.backend;
    const x = uniform([B, 3, H, W], -1, 1, { dtype, backend, generator: new Generator(seed) });
    copy.rng.setState(start);
    return withBackend(backend, () => noGrad(() => trace(() => copy.forward(x).image, [x])));
  };
  const graph = once(1);
  const difference = compareTraces(graph, once(2));
  if (difference) throw new Error(`ONNX export: the forward decides something on the host from the image's values, which a graph cannot replay: ${difference}`);
  return graph;
}

/** The eval-mode forward of `model` as an ONNX file (bytes), opset ONNX_OPSET, weights as initialisers. */
export function exportOnnx(model: MoFME, options: OnnxSizeOptions = {}): Uint8Array {
  const graph = traceMofme(model, options);
  const [, , H, W] = graph.values.get(graph.inputs[0]!)!.shape;
  return tracedGraphToOnnx(graph, {
    inputNames: ['image'],
    outputNames: ['restored'],
    graphName: `mofme_${model.config.ffn}`,
    producer: 'mofme.ts',
    metadata: { config: JSON.stringify(model.config), io: ONNX_IO_NOTE, size: `${W}x${H}`, opset: String(ONNX_OPSET) },
  });
}

/** Why the official network cannot compute this config, or null if it can. */
export function officialExportProblem(c: Readonly<MofmeConfig>): string | null {
  if (c.residualOutput) return 'this model adds its output to the input (residualOutput: the tiny/small presets); the official network ends in a sigmoid, so the official code would compute a different image';
  if (c.ffn === 'mofme' && !c.officialExpertSlots) return 'this MoFME model routes column c to FiLM expert c; the official code weights GELU(h) with column 0 (officialExpertSlots), so its weights mean something else there';
  return null;
}
