/**
 * Seeded pseudo-random numbers for everything random in this package: shuffles, crop positions,
 * flips, and every weather synthesiser. We never call Math.random(), so a seed fully determines a
 * data stream — the property that makes training runs resumable and tests reproducible.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's "small fast chaotic" generator from PractRand):
 * 128 bits of state in four uint32 words, passes BigCrush/PractRand, and needs only 32-bit integer
 * ops, which JavaScript does natively via `| 0` and `>>> 0`. Its state is four numbers, so it can be
 * exported (`state()`) and restored (`Rng.fromState`) exactly — e.g. stored in a checkpoint.
 *
 * Seeds are derived hierarchically with `mixSeed(a, b, c, ...)` (a splitmix32-style hash), so the
 * RNG of "item 17 of epoch 3 under seed 42" is a pure function of those numbers and does not depend
 * on how many numbers other items (or other worker threads) consumed before it.
 */

/** splitmix32 finaliser: a bijective avalanche hash of one uint32. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hashes a sequence of integers (any JS numbers; fractional parts are dropped) into one uint32 seed. */
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

/** Hashes a string (e.g. a file name) to a uint32, for seeds derived from names. */
export function hashString(s: string): number {
  let h = 0x811c9dc5; // FNV-1a, then an avalanche finaliser
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h >>> 0);
}

export type RngState = [number, number, number, number];

export class Rng {
  private a: number; private b: number; private c: number; private d: number;
  private spare: number | null = null; // second normal deviate of the Box–Muller pair

  constructor(seed: number) {
    // Expand one seed into four words with distinct hashes, then discard 12 outputs (the author's
    // recommendation) so that similar seeds diverge immediately.
    this.a = mixSeed(seed, 1); this.b = mixSeed(seed, 2); this.c = mixSeed(seed, 3); this.d = 1;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  static fromState(s: RngState): Rng {
    const r = new Rng(0);
    [r.a, r.b, r.c, r.d] = s.map((x) => x >>> 0) as RngState;
    return r;
  }

  /** The exact generator state; `Rng.fromState(r.state())` continues the same sequence. */
  state(): RngState { return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0]; }

  /** One uint32 (sfc32 step: a 32-bit counter d guarantees a period of at least 2^32). */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number { return this.nextU32() / 4294967296; }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number { return lo + (hi - lo) * this.next(); }

  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }

  /** Standard normal N(0, 1) via Box–Muller (the pair's second value is cached). */
  normal(): number {
    if (this.spare !== null) { const s = this.spare; this.spare = null; return s; }
    const u = 1 - this.next(), v = this.next(); // u in (0,1] so log(u) is finite
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Picks one element uniformly. */
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('Rng.pick: empty array');
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  /** Fisher–Yates permutation of 0..n-1 (every permutation equally likely). */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = p[i]!; p[i] = p[j]!; p[j] = t;
    }
    return p;
  }
}
