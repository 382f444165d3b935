/** RNG tests: exact state round trip, range/uniformity, and permutations. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Rng, mixSeed } from '../src/index';

test('state export/restore continues the same sequence', () => {
  fc.assert(fc.property(fc.integer(), fc.nat(50), (seed, skip) => {
    const r = new Rng(seed);
    for (let i = 0; i < skip; i++) r.next();
    const s = Rng.fromState(r.state());
    for (let i = 0; i < 20; i++) assert.is(s.nextU32(), r.nextU32());
  }));
});

test('uniform in [0,1) with the right mean; ints inclusive; normals ~N(0,1)', () => {
  const r = new Rng(1);
  let s = 0, s2 = 0; const N = 20000;
  for (let i = 0; i < N; i++) { const v = r.next(); assert.ok(v >= 0 && v < 1); s += v; }
  assert.ok(Math.abs(s / N - 0.5) < 0.01);
  const seen = new Set<number>(); for (let i = 0; i < 200; i++) seen.add(r.int(3, 5));
  assert.equal([...seen].sort(), [3, 4, 5]);
  s = 0; for (let i = 0; i < N; i++) { const v = r.normal(); s += v; s2 += v * v; }
  assert.ok(Math.abs(s / N) < 0.03 && Math.abs(s2 / N - 1) < 0.05);
});

test('permutations are permutations; seeds mix', () => {
  fc.assert(fc.property(fc.integer(), fc.nat(200), (seed, n) => {
    const p = new Rng(seed).permutation(n);
    assert.equal(Array.from(p).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i));
  }));
  assert.is.not(mixSeed(1, 2), mixSeed(2, 1));
  assert.is.not(mixSeed(0, 0, 1), mixSeed(0, 1, 0));
});

test.run();
