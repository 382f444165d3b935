/**
 * The page's inference, with no DOM and no Node: load the bundled weights from bytes, restore one
 * image with the library's tiled inference (@mofme/mofme restore.ts, unchanged), and record on the
 * way what the page shows: the time of each tile, and for every transformer block which expert each
 * image patch was routed to. The Web Worker (worker.ts) runs it on the backend it got; the browser
 * test and scripts/samples.ts run the very same functions in Node on the CPU backend, so the page's
 * pixels are checked against this code's Node output, not against a copy of it.
 *
 * How the per-window records are taken without changing the library: restorePlanes() calls
 * model.forward once per window, row by row over tileStarts() of the (padded) image, and calls
 * onTile after each. We wrap that one model instance's forward, so each call yields its window's
 * size (the input's shape) and routing (host-side expert indices, no GPU read-back); the window's
 * position comes from the same tileStarts(). A window's time runs from the previous window's
 * onTile (or the start) to its own, so it includes reading the output back, which is when a GPU
 * actually finishes the queued work.
 */
import { withBackend, type Backend, type Tensor } from '@mofme/tensor';
import { parseSafetensors } from '@mofme/nn';
import { createModel, resolveConfig, restorePlanes, RouterStats, tileStarts, type MoFME, type MofmeConfig, type MofmeOutput, type RoutingSummary } from '@mofme/mofme';

/** Window side and step, in pixels. The bundled model was trained on 64-pixel crops; 160-pixel
 *  windows give it more context than that, a quarter overlap hides the seams, and a 240x160 sample
 *  needs just 2 windows: on a software WebGL renderer (SwiftShader) each takes seconds to tens of
 *  seconds, so fewer, larger windows keep the page (and its test) short. Photos of 1 megapixel need
 *  about 50. */
export const DEFAULT_TILE = 160;
export const DEFAULT_STRIDE = 120;

export interface Weights {
  config: Readonly<MofmeConfig>;
  tensors: Record<string, Tensor>;
  /** training steps, from the file's metadata, when it says */
  step: number | null;
}

/** Parse a mofme-ts model file (safetensors with the config in its metadata), as the CLI's loadModelFile does. */
export function parseWeights(bytes: Uint8Array, source = 'model.safetensors'): Weights {
  const parsed = parseSafetensors(bytes, { source });
  const raw = parsed.metadata.config;
  if (!raw) throw new Error(`${source}: no model config in its metadata (not written by mofme train?)`);
  const config = resolveConfig(JSON.parse(raw) as MofmeConfig);
  const step = parsed.metadata.step !== undefined ? Number(parsed.metadata.step) : null;
  return { config, tensors: parsed.tensors as Record<string, Tensor>, step };
}

/**
 * A fresh network on `backend` with the weights loaded. Always seed 0: the Uncertainty-aware Router
 * draws Monte-Carlo dropout masks from the model's generator even in eval mode, so two restores
 * agree (page vs Node) only if both start from a freshly seeded model and run the same windows.
 * On backends that compile a kernel per shape (gpu.js) the model itself runs its experts densely
 * (mixExperts in @mofme/mofme's blocks.ts): same outputs, fixed shapes.
 */
export function buildModel(weights: Weights, backend: Backend): MoFME {
  return withBackend(backend, () => {
    const model = createModel(weights.config, { seed: 0 });
    model.loadStateDict(weights.tensors);
    model.eval();
    return model;
  });
}

/** Free the model's tensors (on a GPU they are textures, which no garbage collector frees). */
export function disposeModel(model: MoFME): void {
  for (const t of [...model.parameters(), ...model.buffers()]) t.dispose();
}

/** An image as the data package stores it: float RGB planes data[c*H*W + y*W + x] in [0, 1]. */
export interface PlanarImage {
  data: Float32Array;
  height: number;
  width: number;
}

export interface TileRecord {
  /** window's top-left corner in the (padded) image, pixels */
  y: number;
  x: number;
  height: number;
  width: number;
  ms: number;
}

/** Per transformer block, the expert each image patch was routed to (most votes over the windows covering it). */
export interface RoutingMap {
  /** patch grid: rows x cols cells of patch x patch pixels */
  rows: number;
  cols: number;
  patch: number;
  experts: number;
  /** per block, rows*cols expert indices (255: a patch no window routed, e.g. a dense FFN block) */
  blocks: Uint8Array[];
}

export interface RestoreResult {
  image: PlanarImage;
  tiles: TileRecord[];
  totalMs: number;
  routing: RoutingMap;
  /** RouterStats summary of this image (per block: top-k share per expert, entropy) */
  summary: RoutingSummary[];
}

export interface RestoreRequest {
  tile?: number;
  stride?: number;
  /** label for the routing statistics, e.g. the sample's weather */
  label?: string;
  /** after each window: windows done, windows in all, that window's record */
  onTile?: (done: number, total: number, tile: TileRecord) => void;
}

/** How many windows restorePlanes() will run for an H x W image. */
export function countTiles(height: number, width: number, patch: number, tile = DEFAULT_TILE, stride = DEFAULT_STRIDE): number {
  const roundUp = (v: number): number => Math.ceil(v / patch) * patch;
  const th = Math.min(tile, roundUp(height)), tw = Math.min(tile, roundUp(width));
  return tileStarts(Math.max(height, th), th, stride).length * tileStarts(Math.max(width, tw), tw, stride).length;
}

/** Restore one image on `backend` with a model built there; see the module comment. */
export function restoreImage(model: MoFME, backend: Backend, image: PlanarImage, request: RestoreRequest = {}): RestoreResult {
  const { height: H, width: W } = image;
  const tile = request.tile ?? DEFAULT_TILE, stride = request.stride ?? DEFAULT_STRIDE;
  const p = model.config.patchSize, E = model.config.experts, depth = model.config.depth;
  const rows = Math.ceil(H / p), cols = Math.ceil(W / p);
  const votes = Array.from({ length: depth }, () => new Uint16Array(rows * cols * E));
  const stats = new RouterStats();
  const tiles: TileRecord[] = [];
  let positions: [number, number][] | null = null;
  let current: Omit<TileRecord, 'ms'> | null = null;

  const original = model.forward;
  model.forward = function recordingForward(x: Tensor): MofmeOutput {
    const [, , th, tw] = x.shape as [number, number, number, number];
    positions ??= tileStarts(Math.max(H, th), th, stride).flatMap((y) => tileStarts(Math.max(W, tw), tw, stride).map((x0): [number, number] => [y, x0]));
    const [y0, x0] = positions[tiles.length] ?? [0, 0];
    current = { y: y0, x: x0, height: th, width: tw };
    const out = original.call(model, x);
    const tokenCols = tw / p;
    out.routing.forEach((r, block) => {
      if (!r) return;
      // indices [1, N, k], best first: the first is the expert this token leans on most
      for (let n = 0; n < r.indices.length / r.k; n++) {
        const cy = y0 + Math.floor(n / tokenCols) * p + p / 2, cx = x0 + (n % tokenCols) * p + p / 2; // token centre
        if (cy >= H || cx >= W) continue; // a token over reflect padding
        votes[block]![(Math.floor(cy / p) * cols + Math.floor(cx / p)) * E + r.indices[n * r.k]!]! += 1;
      }
    });
    stats.update(out.routing, [request.label ?? 'image']);
    return out;
  };

  const t0 = performance.now();
  let last = t0;
  let data: Float32Array;
  try {
    // range 'unit': pixels in [0, 1] go in, each window is mapped to the model's [-1, 1] on its
    // own, and the output comes back clamped to [0, 1] (the library's path for photos)
    data = withBackend(backend, () => restorePlanes(model, { data: image.data, channels: 3, height: H, width: W }, {
      tile, stride, range: 'unit',
      onTile: (done, total) => {
        const now = performance.now();
        const record = { ...current!, ms: now - last };
        last = now;
        tiles.push(record);
        request.onTile?.(done, total, record);
      },
    }));
  } finally {
    model.forward = original;
  }
  const blocks = votes.map((v) => {
    const top = new Uint8Array(rows * cols).fill(255);
    for (let c = 0; c < rows * cols; c++) {
      let best = -1, bestVotes = 0;
      for (let e = 0; e < E; e++) if (v[c * E + e]! > bestVotes) { bestVotes = v[c * E + e]!; best = e; }
      if (best >= 0) top[c] = best;
    }
    return top;
  });
  return {
    image: { data, height: H, width: W },
    tiles,
    totalMs: performance.now() - t0,
    routing: { rows, cols, patch: p, experts: E, blocks },
    summary: stats.summary(),
  };
}
