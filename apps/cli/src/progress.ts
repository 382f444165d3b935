/**
 * Progress output. On a terminal: a live bar (cli-progress) with loss, lr, images/s, peak memory and ETA, and
 * log lines printed above it. Anywhere else (a pipe, a CI log, a test): plain lines, one every
 * `logEvery` steps, which stay readable in a file.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';

export interface StepInfo {
  step: number;
  loss: number;
  lr: number;
  imagesPerSec: number;
  /** the process's peak resident memory so far, MiB (`peakResidentMiB`) */
  peakMiB: number;
}

/**
 * Peak resident memory of this process so far, in MiB: the high-water mark the kernel keeps
 * (getrusage ru_maxrss, KiB on Linux), so it includes the WebAssembly memory, the engine's buffer
 * pool and the loader's worker threads, and it never goes down.
 */
export function peakResidentMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export class Progress {
  private multi: MultiBar | null = null;
  private bar: SingleBar | null = null;
  private t0 = performance.now();
  private startStep = 0;
  private total = 0;

  constructor(
    private readonly logEvery: number,
    private readonly tty = Boolean(process.stderr.isTTY) && !process.env.CI,
    private readonly quiet = false,
  ) {}

  start(total: number, startStep: number): void {
    this.total = total;
    this.startStep = startStep;
    this.t0 = performance.now();
    if (!this.tty || this.quiet) return;
    this.multi = new MultiBar({
      format: ' step {value}/{total} {bar} {percentage}% | loss {loss} | lr {lr} | {ips} img/s | peak {peak} MiB | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
      stream: process.stderr,
    }, Presets.shades_classic);
    this.bar = this.multi.create(total, startStep, { loss: '-', lr: '-', ips: '-', peak: '-' });
  }

  update(s: StepInfo): void {
    if (this.bar) {
      this.bar.update(s.step, { loss: s.loss.toFixed(4), lr: s.lr.toExponential(2), ips: s.imagesPerSec.toFixed(1), peak: s.peakMiB.toFixed(0) });
      return;
    }
    if (this.quiet || (s.step % this.logEvery !== 0 && s.step !== this.total)) return;
    const done = s.step - this.startStep;
    const secs = (performance.now() - this.t0) / 1000;
    const eta = done > 0 ? ((this.total - s.step) * secs) / done : 0;
    console.log(`step ${s.step}/${this.total}  loss ${s.loss.toFixed(5)}  lr ${s.lr.toExponential(2)}  ${s.imagesPerSec.toFixed(1)} img/s  peak ${s.peakMiB.toFixed(0)} MiB  ETA ${formatDuration(eta)}`);
  }

  /** A message line that does not break the bar. */
  log(line: string): void {
    if (this.quiet) return;
    if (this.multi) this.multi.log(line + '\n');
    else console.log(line);
  }

  stop(): void {
    this.multi?.stop();
    this.multi = null;
    this.bar = null;
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
