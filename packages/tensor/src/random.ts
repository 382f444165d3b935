/**
 * The repository's one seeded pseudo-random generator: weight initialisation, dropout and routing
 * noise here, and in @mofme/data every shuffle, crop, flip and weather synthesiser. A seed fully
 * determines a stream, and `getState()` / `setState()` round-trip it exactly through every method
 * (the Box-Muller spare included), so a training run resumes with the very numbers it would have
 * drawn next (test/random.test.ts checks this over random call sequences).
 *
 * The core is sfc32 (Chris Doty-Humphrey's "small fast counting" generator): four 32-bit words of
 * state, passes PractRand to many terabytes, and needs only 32-bit integer arithmetic, which
 * JavaScript does exactly with `| 0` and `>>> 0`. Seeds are spread over the state with splitmix32 so
 * that nearby seeds (1, 2, 3, ...) give unrelated streams.
 *
 * Hierarchical seeds: `mixSeed(a, b, c, ...)` hashes several integers into one seed, so the stream
 * of "item 17 of epoch 3 under seed 42" is a pure function of those numbers and does not depend on
 * how many numbers other items (or other worker threads) drew before it.
 */

export interface GeneratorState {
  /** the four 32-bit state words of sfc32 */
  s: [number, number, number, number];
  /** a second normal deviate saved by Box-Muller, or null */
  spare: number | null;
}

function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** splitmix32 / murmur3 finaliser: a bijective avalanche hash of one uint32. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hashes a sequence of numbers (fractional parts dropped) into one uint32 seed; order matters. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    // Fold both halves of numbers beyond 2^32 so large seeds still differ.
    const lo = p >>> 0, hi = Math.floor(p / 4294967296) >>> 0;
    h = fmix32((h ^ lo) + 0x7f4a7c15 + Math.imul(h, 31));
    h = fmix32(h ^ hi);
  }
  return h;
}

export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  /** Reset the stream: the same seed always gives the same numbers. */
  manualSeed(seed: number): this {
    if (!Number.isFinite(seed)) throw new Error(`Generator.manualSeed: seed must be a finite number, got ${seed}`);
    const mix = splitmix32(Math.floor(seed) ^ Math.floor(seed / 2 ** 32));
    for (let i = 0; i < 4; i++) this.s[i] = mix();
    this.spare = null;
    for (let i = 0; i < 12; i++) this.nextUint32(); // warm up: leave the seeding transient
    return this;
  }

  /** A uniformly distributed 32-bit unsigned integer (sfc32). */
  nextUint32(): number {
    const s = this.s;
    const t = (((s[0]! + s[1]!) >>> 0) + s[3]!) >>> 0;
    s[3] = (s[3]! + 1) >>> 0;
    s[0] = s[1]! ^ (s[1]! >>> 9);
    s[1] = (s[2]! + (s[2]! << 3)) >>> 0;
    s[2] = ((s[2]! << 21) | (s[2]! >>> 11)) >>> 0;
    s[2] = (s[2]! + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.random();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.random() * n);
  }

  /** An integer in [low, high], both inclusive. */
  integer(low: number, high: number): number {
    return low + Math.floor(this.random() * (high - low + 1));
  }

  /** One element, uniformly. */
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('Generator.pick: empty array');
    return xs[this.int(xs.length)]!;
  }

  /**
   * A standard normal deviate by the Box-Muller transform: two uniforms u1, u2 give two independent
   * normals r cos(theta) and r sin(theta) with r = sqrt(-2 ln u1), theta = 2 pi u2. The second is kept.
   */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u1 = this.random();
    while (u1 === 0) u1 = this.random();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * this.random();
    this.spare = r * Math.sin(theta);
    return mean + std * r * Math.cos(theta);
  }

  /** Fisher-Yates shuffle of 0..n-1. */
  permutation(n: number): number[] {
    const p = [...Array(n).keys()];
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }

  getState(): GeneratorState {
    return { s: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!], spare: this.spare };
  }

  setState(state: GeneratorState): this {
    if (!state || !Array.isArray(state.s) || state.s.length !== 4 || state.s.some((v) => !Number.isInteger(v))
      || !(state.spare === null || typeof state.spare === 'number')) {
      throw new Error(`Generator.setState: expected {s: [4 integers], spare: number | null}, got ${JSON.stringify(state)}`);
    }
    this.s.set(state.s);
    this.spare = state.spare;
    return this;
  }

  /** A generator that continues from `state` (as saved by getState, e.g. in a checkpoint). */
  static fromState(state: GeneratorState): Generator {
    return new Generator(0).setState(state);
  }
}

/** The generator used when none is given: seed it with `manualSeed(n)`. */
export const defaultGenerator = new Generator(0);

export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}
