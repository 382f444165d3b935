/**
 * Learning-rate schedules, as multipliers.
 *
 * A `Schedule` maps time t (0, 1, 2, ... in whatever unit the scheduler counts) to a factor, and the
 * optimiser multiplies each group's learning rate by it (`Optimizer.lrFactor`, applied in the
 * update rules: adam.ts, sgd.ts). A schedule is a shape in time and knows no learning rate, so the
 * rate itself is read in one place, the update rule that uses it, and a group's `lr` stays the rate
 * it was given (what a state dict saves and a resumed run restores). This is PyTorch's LambdaLR
 * with the product moved from the scheduler into the optimiser: the scheduler never writes a rate.
 *
 * An `LRScheduler` owns the clock: it sets the factor for t = 0 when built, and each `step()`
 * advances t by one and sets it again (call optimizer.step() then scheduler.step()).
 *
 * Per step or per epoch: define the schedule in the unit you like and call `step()` once per that
 * unit. To define it in epochs but update the factor smoothly every step, give `stepsPerEpoch`: the
 * scheduler then counts steps and passes t = steps / stepsPerEpoch (fractional epochs).
 */
import type { Optimizer, BaseHyper } from './optimizer';

/** time -> the factor every group's learning rate is multiplied by */
export type Schedule = (t: number) => number;

/** Factor 1, always. */
export function constantSchedule(): Schedule {
  return () => 1;
}

export interface WarmupCosineOptions {
  /** length of the linear warmup (0 for none) */
  warmup: number;
  /** time at which the cosine reaches its floor (and stays there) */
  total: number;
  /** the floor, as a fraction of the base rate (default 0) */
  minFactor?: number;
  /** the warmup starts at this fraction of the base rate (default 0) and rises linearly to 1 */
  startFactor?: number;
}

/**
 * Linear warmup, then half a cosine from 1 down to the floor f:
 *   t < warmup:  s + (1 - s) t / warmup
 *   after:       f + (1 - f) (1 + cos(pi * progress)) / 2,  progress = (t - warmup) / (total - warmup)
 * Warmup keeps the first, noisy updates small while Adam's moment estimates settle; the cosine
 * spends most time at a high rate and anneals smoothly at the end.
 */
export function warmupCosineSchedule(options: WarmupCosineOptions): Schedule {
  const { warmup, total } = options;
  const start = options.startFactor ?? 0;
  const floor = options.minFactor ?? 0;
  if (!(warmup >= 0) || !(total > warmup)) throw new Error(`warmupCosineSchedule: need 0 <= warmup < total, got warmup=${warmup}, total=${total}`);
  if (!(floor >= 0 && floor <= 1)) throw new Error(`warmupCosineSchedule: minFactor must be in [0, 1], got ${floor}`);
  return (t) => {
    if (t < warmup) return start + ((1 - start) * t) / warmup;
    const progress = Math.min(1, (t - warmup) / (total - warmup));
    return floor + ((1 - floor) * (1 + Math.cos(Math.PI * progress))) / 2;
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

  /** Advance the clock by one and set the optimiser's factor. */
  step(): void {
    this.count += 1;
    this.apply();
  }

  private apply(): void {
    this.optimizer.lrFactor = this.schedule(this.time);
  }

  stateDict(): { count: number } {
    return { count: this.count };
  }
  loadStateDict(state: { count: number }): void {
    this.count = state.count;
    this.apply();
  }
}
