/**
 * The messages between the page (main.ts) and its Web Worker (worker.ts). The worker owns the
 * weights, the backend and the model, so the page stays responsive while an image is restored;
 * the page owns the DOM. Image planes travel as transferred buffers (no copy).
 */
import type { RoutingSummary } from '@mofme/mofme';
import type { PlanarImage, RoutingMap, TileRecord } from './engine';

/** The backends the worker tries, best first (backends.ts opens them). */
export type BackendKind = 'webgl2' | 'wasm' | 'cpu';
export const BACKEND_ORDER: readonly BackendKind[] = ['webgl2', 'wasm', 'cpu'];

/** Test hook: make the GPU backend fail to compile its kernels, to exercise the fallback. */
export type Simulation = 'gpu-kernel-failure';

export interface RestoreMessage {
  type: 'restore';
  image: PlanarImage;
  /** e.g. the sample's weather; 'image' for a user's photo */
  label: string;
  tile: number;
  stride: number;
  /** the backend to start from (later ones are the fallbacks) */
  prefer: BackendKind;
  simulate?: Simulation;
}

export type WorkerReply =
  | { type: 'status'; text: string }
  | { type: 'backend'; kind: BackendKind; label: string; software: boolean; threads: number }
  /** a backend that was tried and dropped, and why */
  | { type: 'fallback'; from: BackendKind; to: BackendKind | null; reason: string }
  | { type: 'progress'; done: number; total: number; tile: TileRecord }
  | {
    type: 'done';
    image: PlanarImage;
    tiles: TileRecord[];
    totalMs: number;
    routing: RoutingMap;
    summary: RoutingSummary[];
    backend: string;
    /** training steps of the weights, from their metadata */
    step: number | null;
  }
  | { type: 'error'; message: string };
