/**
 * A kernel profiler: instrument a backend so that every primitive call is timed, then print where the
 * time went (by primitive and op, e.g. "binary:mul" or "matmul").
 *
 *   const backend = profiled(new CpuBackend());
 *   ... run a training step with tensors on `backend` ...
 *   console.log(backend.report());
 *
 * The backend object itself is instrumented (and returned). Only host time is measured: for an asynchronous GPU backend the figures show when work was
 * queued, not when it ran. Wrapping costs a few microseconds per call.
 */
import type { Backend } from './backend/backend';

export interface ProfiledBackend extends Backend {
  /** a table of primitives sorted by total time */
  report(): string;
  /** forget what was measured so far */
  reset(): void;
}

export function profiled(backend: Backend): ProfiledBackend {
  const totals = new Map<string, { ms: number; calls: number }>();
  const timed = new Set(['unary', 'binary', 'where', 'reduce', 'argReduce', 'topkIndices', 'matmul', 'strided', 'pad', 'gather', 'scatterAdd', 'im2col', 'col2im', 'upload', 'download', 'fill', 'cast']);
  const extra = {
    report(): string {
      const all = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
      const sum = all.reduce((s, [, v]) => s + v.ms, 0);
      const lines = all.map(([k, v]) => `${k.padEnd(18)} ${v.ms.toFixed(1).padStart(9)} ms ${((100 * v.ms) / sum).toFixed(1).padStart(5)}% ${String(v.calls).padStart(7)} calls`);
      return [`kernel time on ${backend.name}: ${sum.toFixed(1)} ms`, ...lines].join('\n');
    },
    reset(): void { totals.clear(); },
  };
  // patch the instance's methods in place (not a Proxy): storages point back at their backend
  // object, and every op calls the kernels through that reference
  const target = backend as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of timed) {
    const original = target[name]!.bind(backend);
    target[name] = (...args: unknown[]) => {
      const key = typeof args[0] === 'string' ? `${name}:${args[0]}` : name;
      const t0 = performance.now();
      const out = original(...args);
      const entry = totals.get(key) ?? { ms: 0, calls: 0 };
      entry.ms += performance.now() - t0;
      entry.calls++;
      totals.set(key, entry);
      return out;
    };
  }
  return Object.assign(backend, extra);
}
