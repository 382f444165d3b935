/**
 * The one seeded generator (src/random.ts): its state must round-trip exactly through every method.
 * Property: after any sequence of calls, saving the state (through JSON, as a checkpoint stores it)
 * and restoring it into a new generator gives the same next 100 draws, whatever methods they use.
 * The Box-Muller spare is the case that once failed (an odd number of normal() calls before the
 * save), so it also has a test of its own. Plus distribution sanity checks and seed mixing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Generator, mixSeed, type GeneratorState } from '../src/index';

/** Every method that consumes randomness, as a named call returning a comparable value. */
const CALLS: Record<string, (g: Generator) => unknown> = {
  nextUint32: (g) => g.nextUint32(),
  random: (g) => g.random(),
  uniform: (g) => g.uniform(-3, 5),
  int: (g) => g.int(17),
  integer: (g) => g.integer(-4, 9),
  normal: (g) => g.normal(),
  normalScaled: (g) => g.normal(2, 0.5),
  pick: (g) => g.pick(['a', 'b', 'c', 'd']),
  permutation: (g) => g.permutation(7),
};
const names = Object.keys(CALLS);
const callSeq = (maxLength: number) => fc.array(fc.constantFrom(...names), { maxLength });

test('state round trip: save after any call sequence, restore, and the next 100 draws are equal', () => {
  fc.assert(fc.property(fc.integer(), callSeq(60), callSeq(100).filter((s) => s.length > 0), (seed, before, after) => {
    const g = new Generator(seed);
    for (const c of before) CALLS[c]!(g);
    const saved = JSON.parse(JSON.stringify(g.getState())) as GeneratorState;
    const restored = Generator.fromState(saved);
    const other = new Generator(0).setState(saved); // setState on an existing generator too
    const padded = Array.from({ length: 100 }, (_, i) => after[i % after.length]!);
    for (const c of padded) {
      const want = CALLS[c]!(g);
      assert.equal(CALLS[c]!(restored), want, `${c} after ${before.join(',')}`);
      assert.equal(CALLS[c]!(other), want);
    }
  }), { numRuns: 200 });
});

test('the Box-Muller spare is part of the state: restore after an odd number of normal() calls', () => {
  const g = new Generator(11);
  g.normal();
  const r = Generator.fromState(g.getState());
  assert.ok(g.getState().spare !== null, 'one normal() leaves its pair\'s second value cached');
  for (let i = 0; i < 5; i++) assert.is(r.normal(), g.normal());
});

test('a bad state is refused with a message naming what was expected', () => {
  assert.throws(() => new Generator().setState({ s: [1, 2, 3], spare: null } as unknown as GeneratorState), /4 integers/);
  assert.throws(() => new Generator().setState({ s: [1, 2, 3, 4], spare: 'x' } as unknown as GeneratorState), /spare: number \| null/);
});

test('ranges and moments: uniform in [0,1), inclusive integers, N(0,1) normals, permutations', () => {
  const g = new Generator(1), N = 20000;
  let s = 0, s2 = 0;
  for (let i = 0; i < N; i++) { const v = g.random(); assert.ok(v >= 0 && v < 1); s += v; }
  assert.ok(Math.abs(s / N - 0.5) < 0.01);
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) seen.add(g.integer(3, 5));
  assert.equal([...seen].sort(), [3, 4, 5]);
  s = 0;
  for (let i = 0; i < N; i++) { const v = g.normal(); s += v; s2 += v * v; }
  assert.ok(Math.abs(s / N) < 0.03 && Math.abs(s2 / N - 1) < 0.05);
  fc.assert(fc.property(fc.integer(), fc.nat(200), (seed, n) => {
    assert.equal(new Generator(seed).permutation(n).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  }));
  assert.throws(() => g.pick([]), /empty array/);
});

test('mixSeed: order matters, every part matters, and parts beyond 2^32 are not truncated', () => {
  assert.is.not(mixSeed(1, 2), mixSeed(2, 1));
  assert.is.not(mixSeed(0, 0, 1), mixSeed(0, 1, 0));
  assert.is.not(mixSeed(1), mixSeed(1 + 2 ** 32));
  const seeds = new Set(Array.from({ length: 1000 }, (_, i) => mixSeed(42, i)));
  assert.is(seeds.size, 1000);
});

test.run();
