/**
 * Learning-rate schedules.
 *
 * A `Schedule` maps time t (0, 1, 2, ... in whatever unit the scheduler counts) and a group's base
 * lr to the lr to use. An `LRScheduler` owns the clock: it sets every group's lr for t = 0 when
 * built, and each `step()` advances t by one and sets the lr again (PyTorch's LambdaLR protocol:
 * call optimizer.step() then scheduler.step()).
 *
 * Per step or per epoch: define the schedule in the unit you like and call `step()` once per that
 * unit. To define it in epochs but update the lr smoothly every step, give `stepsPerEpoch`: the
 * scheduler then counts steps and passes t = steps / stepsPerEpoch (fractional epochs).
 */
import type { Optimizer, BaseHyper } from './optimizer';

export type Schedule = (t: number, baseLr: number) => number;

/** The base lr, always. */
export function constantSchedule(): Schedule {
  return (_t, base) => base;
}

export interface WarmupCosineOptions {
  /** length of the linear warmup (0 for none) */
  warmup: number;
  /** time at which the cosine reaches its floor (and stays there) */
  total: number;
  /** the floor as an absolute lr ... */
  minLr?: number;
  /** ... or as a fraction of the base lr (default 0) */
  minFactor?: number;
  /** the warmup starts at this fraction of the base lr (default 0) and rises linearly to 1 */
  startFactor?: number;
}

/**
 * Linear warmup, then half a cosine from the base lr down to the floor:
 *   t < warmup:  base * (s + (1 - s) t / warmup)
 *   after:       floor + (base - floor) (1 + cos(pi * progress)) / 2,  progress = (t - warmup) / (total - warmup)
 * Warmup keeps the first, noisy updates small while Adam's moment estimates settle; the cosine
 * spends most time at high lr and anneals smoothly at the end.
 */
export function warmupCosineSchedule(options: WarmupCosineOptions): Schedule {
  const { warmup, total } = options;
  const start = options.startFactor ?? 0;
  if (!(warmup >= 0) || !(total > warmup)) throw new Error(`warmupCosineSchedule: need 0 <= warmup < total, got warmup=${warmup}, total=${total}`);
  return (t, base) => {
    if (t < warmup) return base * (start + ((1 - start) * t) / warmup);
    const floor = options.minLr ?? base * (options.minFactor ?? 0);
    const progress = Math.min(1, (t - warmup) / (total - warmup));
    return floor + ((base - floor) * (1 + Math.cos(Math.PI * progress))) / 2;
  };
}

export class LRScheduler {
  /** number of step() calls so far */
  count = 0;

  constructor(
    readonly optimizer: Optimizer<BaseHyper>,
    readonly schedule: Schedule,
    readonly options: { stepsPerEpoch?: number } = {},
  ) {
    this.apply();
  }

  /** The schedule's time: calls, or fractional epochs with stepsPerEpoch. */
  get time(): number {
    return this.count / (this.options.stepsPerEpoch ?? 1);
  }

  /** Advance the clock by one and set each group's lr. */
  step(): void {
    this.count += 1;
    this.apply();
  }

  /** The lr of each group right now. */
  lastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  private apply(): void {
    for (const g of this.optimizer.paramGroups) g.lr = this.schedule(this.time, g.initialLr);
  }

  stateDict(): { count: number } {
    return { count: this.count };
  }
  loadStateDict(state: { count: number }): void {
    this.count = state.count;
    this.apply();
  }
}
