/**
 * The profiler: where the time of a run goes, per op and per kernel, forward and backward apart.
 *
 * Turn it on for any command with the environment variable `MOFME_PROFILE=1` (the default backend
 * is then instrumented when first used, and the tables are printed to stderr when the process
 * exits), or from code with `enableProfiling(backend)` and `profileReport()`.
 *
 * How the figures are gathered:
 * - Kernels: every primitive method of the backend object (`matmul`, `binary`, `conv2d`, ...) is
 *   wrapped in place with a timer. A call is filed under its kernel name, with the op argument
 *   when it has one ("binary:mul", "unary:exp"), and under the current phase.
 * - Phase: autograd's backward walk calls `beginBackward()` / `endBackward()` around it, so a
 *   kernel run while gradients are propagated is "backward" and every other one is "forward"
 *   (this includes evaluation and optimizer updates: there is no third phase).
 * - Ops: an op runs its kernels and then records its result (`ops/record.ts`), which calls
 *   `noteOp(name)`; the forward kernel time collected since the previous op is charged to that
 *   op. In the backward walk, autograd names the node being differentiated (`setBackwardOp`), and
 *   the kernels its backward closure runs are charged to that op; the gradient sums and
 *   reductions autograd does itself are charged to "(gradient accumulation)".
 * - Work: GFLOP/s counts multiply-adds as 2 flops for matmul and convolution, one flop per output
 *   element for elementwise kernels and one per input element for reductions; movement kernels
 *   (strided, pad, im2col, ...) count none. "MB moved" is the bytes of every input storage plus the
 *   output: what a kernel must at least read and write, not what the caches saw.
 * Only host time is measured: for an asynchronous GPU backend the figures show when work was
 * queued, not when it ran. The timer costs about a microsecond per kernel call.
 * Clock: wall time by default; `MOFME_PROFILE=cpu` (or `enableProfiling(backend, 'cpu')`) times
 * each call with the process's CPU time instead (`process.cpuUsage`, every thread of the process,
 * microsecond resolution, a few microseconds per call). On a machine shared with other work the
 * wall clock counts the time the others held the core; CPU time does not, so with
 * MOFME_THREADS=1 it is the figure that says what a kernel costs.
 */
import { FUSED_KERNELS, wrapKernels, type Backend, type MatmulSpec, type Storage } from './backend/backend';

type Phase = 'forward' | 'backward';

interface Row { calls: number; ms: number; flops: number; bytes: number }

const emptyRow = (): Row => ({ calls: 0, ms: 0, flops: 0, bytes: 0 });

let active = false;
let phase: Phase = 'forward';
let backwardOp = '(gradient accumulation)';
const kernelRows = new Map<string, Row>();
const opRows = new Map<string, Row>();
/** forward kernel work since the last op was noted, charged to the next one */
let pending = emptyRow();
const instrumented = new WeakSet<Backend>();

/** True while kernel calls are being measured (checked by the hooks in record.ts and autograd.ts). */
export function isProfiling(): boolean {
  return active;
}

/** Whether the environment asks for profiling (MOFME_PROFILE set to anything but '', 0 or false). */
export function profilingRequested(): boolean {
  const v = profileSetting();
  return v !== undefined && v !== '' && v !== '0' && v !== 'false';
}

function profileSetting(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.MOFME_PROFILE?.trim().toLowerCase();
}

/** What a kernel call is timed with: 'wall' (performance.now) or 'cpu' (the process's CPU time). */
export type ProfileClock = 'wall' | 'cpu';
let clock: ProfileClock = 'wall';

/** milliseconds on the chosen clock (CPU time only where `process.cpuUsage` exists) */
function now(): number {
  if (clock === 'cpu') {
    const usage = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process?.cpuUsage?.();
    if (usage) return (usage.user + usage.system) / 1000;
  }
  return performance.now();
}

const add = (table: Map<string, Row>, key: string, r: Row, calls = r.calls): void => {
  const row = table.get(key) ?? emptyRow();
  row.calls += calls;
  row.ms += r.ms;
  row.flops += r.flops;
  row.bytes += r.bytes;
  table.set(key, row);
};

/** An op recorded its result: the forward kernels since the previous op were its own. */
export function noteOp(op: string): void {
  if (phase !== 'forward') return;
  add(opRows, `${op}\u0000forward`, pending, 1);
  pending = emptyRow();
}

/** autograd: the backward walk starts (kernel time is now "backward") */
export function beginBackward(): void {
  if (pending.calls > 0) add(opRows, '(before backward, no op)\u0000forward', pending, 0);
  pending = emptyRow();
  phase = 'backward';
  backwardOp = '(gradient accumulation)';
}
/** autograd: the node whose backward closure runs now (null: autograd's own bookkeeping) */
export function setBackwardOp(op: string | null): void {
  backwardOp = op ?? '(gradient accumulation)';
  if (op !== null) add(opRows, `${op}\u0000backward`, emptyRow(), 1);
}
export function endBackward(): void {
  phase = 'forward';
}

const isStorage = (v: unknown): v is Storage =>
  typeof v === 'object' && v !== null && 'backend' in v && 'size' in v && 'dtype' in v;

/** Flops of one kernel call, from its arguments (see the header for what counts). */
function flopsOf(kernel: string, args: unknown[], out: unknown): number {
  if (kernel === 'matmul') {
    const s = args[2] as MatmulSpec;
    return 2 * s.batch * s.m * s.n * s.k;
  }
  if (kernel.startsWith('conv2d')) {
    const s = args[args.length - 1] as { batch: number; outChannels: number; channels: number; groups: number; kh: number; kw: number; outH: number; outW: number };
    return (2 * s.batch * s.outChannels * s.outH * s.outW * s.channels * s.kh * s.kw) / s.groups;
  }
  if (kernel === 'unary' || kernel === 'binary' || kernel === 'where') return isStorage(out) ? out.size : 0;
  if (kernel === 'reduce' || kernel === 'argReduce') return isStorage(args[1]) ? args[1].size : 0;
  if ((FUSED_KERNELS as readonly string[]).includes(kernel)) return isStorage(args[0]) ? args[0].size : 0;
  return 0;
}

function bytesOf(args: unknown[], out: unknown): number {
  let elements = 0, bytes = 0;
  // fused kernels may return several storages in an object ({ out, stats }, { dx, dweight, dbias }, ...)
  const outputs = isStorage(out) ? [out] : typeof out === 'object' && out !== null ? Object.values(out) : [];
  for (const a of [...args, ...outputs]) {
    if (!isStorage(a)) continue;
    elements += a.size;
    bytes += a.size * (a.dtype === 'float64' ? 8 : 4);
  }
  return elements === 0 ? 0 : bytes;
}

/**
 * Instrument `backend` in place (its methods, not a Proxy: storages point back at their backend
 * object and every op calls kernels through that reference) and start measuring.
 * Calling it again on the same backend does nothing.
 */
export function enableProfiling(backend: Backend, timeWith: ProfileClock = 'wall'): void {
  active = true;
  clock = timeWith;
  if (instrumented.has(backend)) return;
  instrumented.add(backend);
  // every kernel method (BACKEND_KERNELS; the optional ones only where the backend has them)
  wrapKernels(backend, (name, original) => (...args: unknown[]) => {
    if (!active) return original.apply(backend, args);
    const t0 = now();
    const out = original.apply(backend, args);
    const ms = now() - t0;
    const key = typeof args[0] === 'string' ? `${name}:${args[0]}` : name;
    const r: Row = { calls: 1, ms, flops: flopsOf(name, args, out), bytes: bytesOf(args, out) };
    add(kernelRows, `${key}\u0000${phase}`, r);
    if (phase === 'forward') addPending(r);
    else add(opRows, `${backwardOp}\u0000backward`, r, 0);
    return out;
  });
}

function addPending(r: Row): void {
  pending.calls += r.calls;
  pending.ms += r.ms;
  pending.flops += r.flops;
  pending.bytes += r.bytes;
}

/** Forget everything measured so far (keeps measuring). */
export function resetProfile(): void {
  kernelRows.clear();
  opRows.clear();
  pending = emptyRow();
}

/** Stop measuring (the wrappers stay, at the cost of one boolean test per kernel call). */
export function disableProfiling(): void {
  active = false;
}

function table(title: string, rows: Map<string, Row>, limit: number): string[] {
  const all = [...rows.entries()].map(([k, r]) => ({ name: k.split('\u0000')[0]!, phase: k.split('\u0000')[1]!, ...r })).sort((a, b) => b.ms - a.ms);
  const total = all.reduce((s, r) => s + r.ms, 0);
  const byPhase = (p: string) => all.filter((r) => r.phase === p).reduce((s, r) => s + r.ms, 0);
  const lines = [
    `${title}: ${total.toFixed(1)} ms ${clock === 'cpu' ? 'CPU time' : 'wall time'} (forward ${byPhase('forward').toFixed(1)} ms, backward ${byPhase('backward').toFixed(1)} ms)`,
    `  ${'name'.padEnd(30)} ${'phase'.padEnd(8)} ${'calls'.padStart(7)} ${'ms'.padStart(10)} ${'share'.padStart(6)} ${'GFLOP/s'.padStart(8)} ${'MB moved'.padStart(10)} ${'GB/s'.padStart(6)}`,
  ];
  for (const r of all.slice(0, limit)) {
    const gflops = r.flops > 0 && r.ms > 0 ? (r.flops / r.ms / 1e6).toFixed(2) : '';
    const gbs = r.bytes > 0 && r.ms > 0 ? (r.bytes / r.ms / 1e6).toFixed(2) : '';
    lines.push(`  ${r.name.slice(0, 30).padEnd(30)} ${r.phase.padEnd(8)} ${String(r.calls).padStart(7)} ${r.ms.toFixed(1).padStart(10)} ${(total > 0 ? (100 * r.ms) / total : 0).toFixed(1).padStart(5)}% ${gflops.padStart(8)} ${(r.bytes / 1e6).toFixed(1).padStart(10)} ${gbs.padStart(6)}`);
  }
  if (all.length > limit) lines.push(`  ... ${all.length - limit} more rows, ${all.slice(limit).reduce((s, r) => s + r.ms, 0).toFixed(1)} ms together`);
  return lines;
}

/** The two tables (per op, per kernel), largest time first. */
export function profileReport(limit = 40): string {
  const ops = new Map(opRows);
  if (pending.calls > 0) add(ops, '(after the last op, no op)\u0000forward', pending, 0);
  return [...table('time per op', ops, limit), '', ...table('time per kernel', kernelRows, limit)].join('\n');
}

let exitHookInstalled = false;

/**
 * If MOFME_PROFILE asks for it: instrument `backend` and print the report to stderr at process
 * exit. Called by the default-backend accessors (device.ts), so every command gets it.
 */
export function profileFromEnvironment(backend: Backend): void {
  if (!profilingRequested()) return;
  enableProfiling(backend, profileSetting() === 'cpu' ? 'cpu' : 'wall');
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const proc = (globalThis as { process?: { on?: (event: string, fn: () => void) => void; stderr?: { write: (s: string) => void } } }).process;
  proc?.on?.('exit', () => proc.stderr?.write(`\nMOFME_PROFILE (${backend.describe()})\n${profileReport()}\n`));
}
