// Router statistics: which experts each layer uses, per task (rain / snow / haze ...).
//
// The paper's analysis (t-SNE of routings, per-weather expert preferences) needs, per block and per
// task label, how much weight each expert receives on average, how often it is among a token's top k,
// and how spread the routing is. `RouterStats` accumulates these on the host from the `routing` that
// every forward pass returns, so it costs nothing when unused and never touches the autograd graph.
//
// Entropy uses p = |w| / Σ|w| per token, so it is also defined for the UaR's signed, unit-norm
// weights; it is 0 for a token routed to one expert and log k for k equal weights.

import type { Routing } from './router';

export interface RoutingSummary {
  layer: number;
  task: string;
  /** tokens seen */
  tokens: number;
  /** per expert: mean routing weight over tokens (signed for the UaR) */
  meanWeight: number[];
  /** per expert: fraction of tokens whose top k contains it (sums to k over experts) */
  topkShare: number[];
  /** mean over tokens of −Σ p log p, p = |w| / Σ|w| (nats) */
  entropy: number;
}

interface Acc { tokens: number; weight: Float64Array; chosen: Float64Array; entropy: number }

export class RouterStats {
  private readonly acc = new Map<string, Acc & { layer: number; task: string }>();

  /** Add one forward pass: `routing` from MoFME.forward, `tasks[b]` the label of image b (default 'all'). */
  update(routing: readonly (Routing | null)[], tasks?: readonly (string | number)[]): void {
    routing.forEach((r, layer) => {
      if (!r) return;
      const [B, N, E] = r.weights.shape as [number, number, number];
      const w = r.weights.data();
      for (let b = 0; b < B; b++) {
        const task = String(tasks?.[b] ?? 'all');
        const key = `${layer}\u0000${task}`;
        let a = this.acc.get(key);
        if (!a) {
          a = { layer, task, tokens: 0, weight: new Float64Array(E), chosen: new Float64Array(E), entropy: 0 };
          this.acc.set(key, a);
        }
        for (let n = 0; n < N; n++) {
          const row = (b * N + n) * E;
          let total = 0;
          for (let e = 0; e < E; e++) {
            a.weight[e]! += w[row + e]!;
            total += Math.abs(w[row + e]!);
          }
          let h = 0;
          if (total > 0) {
            for (let e = 0; e < E; e++) {
              const p = Math.abs(w[row + e]!) / total;
              if (p > 0) h -= p * Math.log(p);
            }
          }
          a.entropy += h;
          for (let j = 0; j < r.k; j++) a.chosen[r.indices[(b * N + n) * r.k + j]!]! += 1;
          a.tokens++;
        }
      }
    });
  }

  /** One row per (layer, task), ordered by layer then task. */
  summary(): RoutingSummary[] {
    return [...this.acc.values()]
      .sort((x, y) => x.layer - y.layer || x.task.localeCompare(y.task))
      .map((a) => ({
        layer: a.layer,
        task: a.task,
        tokens: a.tokens,
        meanWeight: [...a.weight].map((v) => v / a.tokens),
        topkShare: [...a.chosen].map((v) => v / a.tokens),
        entropy: a.entropy / a.tokens,
      }));
  }

  reset(): void {
    this.acc.clear();
  }
}
