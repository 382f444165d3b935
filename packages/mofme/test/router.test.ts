// The routers (src/router.ts): the linear router's two top-k modes, and the Uncertainty-aware Router
// checked against values computed by hand (the calibration formula of mofme-paper.md §3.4), against a
// plain-JavaScript reference for the options, and for its wiring (MC dropout injected as fixed masks).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, randn, stack, tensor, type Tensor } from '@mofme/tensor';
import { defaultUar, linearRoute, uarCalibrate, uarRoute, type UarConfig } from '../src/index';

const f64 = (v: number[], shape: number[]): Tensor => tensor(Float64Array.from(v), { shape, dtype: 'float64' });
const rows = (t: Tensor, E: number): number[][] => {
  const d = [...t.data()];
  return Array.from({ length: d.length / E }, (_, i) => d.slice(i * E, (i + 1) * E));
};
const close = (a: number[], b: number[], tol = 1e-9, what = ''): void => {
  assert.is(a.length, b.length, what);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= tol, `${what}[${i}]: ${v} vs ${b[i]}`));
};
const uar = (o: Partial<UarConfig> = {}): UarConfig => ({ ...defaultUar, eps: 1e-12, ...o });

test('linear router, maskThenSoftmax: exactly k non-zeros, on the k largest logits, summing to 1', () => {
  const z = randn([2, 5, 6], { dtype: 'float64', generator: new Generator(1) });
  const r = linearRoute(z, 2, 'maskThenSoftmax');
  const zs = rows(z, 6), ws = rows(r.weights, 6);
  ws.forEach((w, i) => {
    const nz = w.map((v, e) => (v !== 0 ? e : -1)).filter((e) => e >= 0);
    assert.is(nz.length, 2);
    const top = [...zs[i]!.keys()].sort((a, b) => zs[i]![b]! - zs[i]![a]!).slice(0, 2).sort();
    assert.equal(nz, top);
    assert.equal([...r.indices.slice(i * 2, i * 2 + 2)].sort(), top);
    assert.ok(Math.abs(w.reduce((s, v) => s + v, 0) - 1) < 1e-12);
    // the ratio of the two kept weights is e^(z_a - z_b), as in a softmax over the kept logits
    assert.ok(Math.abs(w[top[0]!]! / w[top[1]!]! - Math.exp(zs[i]![top[0]!]! - zs[i]![top[1]!]!)) < 1e-9);
  });
});

test('linear router, softmaxThenZero: the full softmax at the kept experts, no renormalisation', () => {
  const z = f64([1, 2, 3, 0], [1, 1, 4]);
  const w = [...linearRoute(z, 2, 'softmaxThenZero').weights.data()];
  const e = [1, 2, 3, 0].map(Math.exp), s = e.reduce((a, b) => a + b, 0);
  close(w, [0, e[1]! / s, e[2]! / s, 0], 1e-12);
  assert.ok(w.reduce((a, b) => a + b, 0) < 1);
});

// Hand-computed example (E = 3, M = 3):
//   r_1 = [.7 .2 .1], r_2 = [.5 .3 .2], r_3 = [.3 .4 .3]   ->  μ = [.5 .3 .2]
//   Σ_m (r_m − μ)² = [.08 .02 .02], /(M−1) -> σ² = [.04 .01 .01]
//   clean r = [.6 .25 .15] -> (r − μ)/σ² = [2.5 −5 −5], ‖·‖ = 7.5 -> ř = [1/3 −2/3 −2/3]
const samples = (): Tensor[] => [[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.3, 0.4, 0.3]].map((r) => f64(r, [1, 1, 3]));
const cleanLogits = (): Tensor => f64([0.6, 0.25, 0.15].map(Math.log), [1, 1, 3]);

test('UaR calibration on hand-computed values: all k, the top 2, and the sign options', () => {
  close([...uarCalibrate(samples(), cleanLogits(), 3, uar()).weights.data()], [1 / 3, -2 / 3, -2 / 3], 1e-9, 'k=3');
  // top-2 of [1/3, −2/3, −2/3] keeps experts 0 and 1 (tie: lower index), renormalised: [1, −2, 0]/√5
  const r2 = uarCalibrate(samples(), cleanLogits(), 2, uar());
  close([...r2.weights.data()], [1 / Math.sqrt(5), -2 / Math.sqrt(5), 0], 1e-9, 'k=2');
  assert.equal([...r2.indices], [0, 1]);
  // 'relu': [1/3, 0, 0] -> [1, 0, 0];  'abs': [1/3, 2/3, 2/3] -> top-2 {1, 2} -> [0, 1, 1]/√2
  close([...uarCalibrate(samples(), cleanLogits(), 2, uar({ sign: 'relu' })).weights.data()], [1, 0, 0], 1e-9, 'relu');
  close([...uarCalibrate(samples(), cleanLogits(), 2, uar({ sign: 'abs' })).weights.data()], [0, Math.SQRT1_2, Math.SQRT1_2], 1e-9, 'abs');
  // the biased variance rescales Σ⁻¹(r − μ) uniformly, which the normalisation removes
  close([...uarCalibrate(samples(), cleanLogits(), 3, uar({ unbiased: false })).weights.data()], [1 / 3, -2 / 3, -2 / 3], 1e-9, 'biased');
  // 'beforeCalibration': the clean logits pick {0, 1}; [2.5, −5, 0] / ‖·‖ = [1, −2, 0]/√5
  close([...uarCalibrate(samples(), cleanLogits(), 2, uar({ topk: 'beforeCalibration' })).weights.data()], [1 / Math.sqrt(5), -2 / Math.sqrt(5), 0], 1e-9, 'before');
  // with ε = 1e-5 (the default) the values move by about ε/σ² only
  close([...uarCalibrate(samples(), cleanLogits(), 3, uar({ eps: 1e-5 })).weights.data()], [1 / 3, -2 / 3, -2 / 3], 2e-3, 'eps');
});

/** Plain-JavaScript UaR for one token: the reference for the options on random values. */
function reference(rs: number[][], clean: number[], k: number, u: UarConfig): number[] {
  const M = rs.length, E = clean.length;
  const mu = Array.from({ length: E }, (_, e) => rs.reduce((s, r) => s + r[e]!, 0) / M);
  const v = Array.from({ length: E }, (_, e) => rs.reduce((s, r) => s + (r[e]! - mu[e]!) ** 2, 0) / (u.unbiased ? M - 1 : M) + u.eps);
  const mx = Math.max(...clean), ex = clean.map((z) => Math.exp(z - mx)), se = ex.reduce((a, b) => a + b, 0);
  const p = ex.map((x) => x / se);
  const order = (s: number[]) => [...s.keys()].sort((a, b) => s[b]! - s[a]! || a - b).slice(0, k);
  const pre = u.topk === 'beforeCalibration' ? order(clean) : null;
  const unit = (d: number[]) => { const n = Math.max(Math.hypot(...d), u.eps); return d.map((x) => x / n); };
  const restrict = (d: number[]) => (pre ? d.map((x, e) => (pre.includes(e) ? x : 0)) : d);
  let c: number[];
  if (u.numerator === 'clean') c = unit(restrict(p.map((x, e) => (x - mu[e]!) / v[e]!)));
  else {
    const us = rs.map((r) => unit(restrict(r.map((x, e) => (x - mu[e]!) / v[e]!))));
    c = Array.from({ length: E }, (_, e) => us.reduce((s, q) => s + q[e]!, 0) / M);
  }
  const s = c.map((x) => (u.sign === 'keep' ? x : u.sign === 'relu' ? Math.max(0, x) : Math.abs(x)));
  const sel = pre ?? order(s);
  return unit(s.map((x, e) => (sel.includes(e) ? x : 0)));
}

test('UaR calibration equals a plain-JS reference for every option combination', () => {
  const g = new Generator(3);
  const E = 5, M = 4, T = 6;
  for (const numerator of ['clean', 'sampleAverage'] as const) {
    for (const topk of ['afterCalibration', 'beforeCalibration'] as const) {
      for (const sign of ['keep', 'relu', 'abs'] as const) {
        const u = uar({ numerator, topk, sign, eps: 1e-5 });
        const logits = Array.from({ length: M }, () => Array.from({ length: T * E }, () => g.normal()));
        const sm = logits.map((l) => f64(l, [1, T, E]).softmax(-1));
        const clean = Array.from({ length: T * E }, () => g.normal());
        const got = rows(uarCalibrate(sm, f64(clean, [1, T, E]), 2, u).weights, E);
        const smRows = sm.map((s) => rows(s, E));
        for (let t = 0; t < T; t++) {
          const want = reference(smRows.map((r) => r[t]!), clean.slice(t * E, (t + 1) * E), 2, u);
          close(got[t]!, want, 1e-9, `${numerator}/${topk}/${sign} token ${t}`);
          if (sign === 'keep') assert.ok(Math.abs(Math.hypot(...got[t]!) - 1) < 1e-9, 'unit norm');
        }
      }
    }
  }
});

test('UaR wiring: M passes with the injected dropout masks, at the input or on the logits', () => {
  const g = new Generator(5);
  const [B, N, D, E, M] = [1, 3, 4, 3, 3];
  const t = randn([B, N, D], { dtype: 'float64', generator: g });
  const W = randn([E, D], { dtype: 'float64', generator: g });
  const b = randn([E], { dtype: 'float64', generator: g });
  const masks = Array.from({ length: M }, (_, m) => f64(Array.from({ length: B * N * D }, (_, i) => ((i + m) % 3 === 0 ? 0 : 1.25)), [B, N, D]));
  const maskE = Array.from({ length: M }, (_, m) => f64(Array.from({ length: B * N * E }, (_, i) => ((i + 2 * m) % 4 === 0 ? 0 : 1.25)), [B, N, E]));
  const u = uar({ samples: M });
  const clean = t.matmul(W.transpose()).add(b);
  // input: r_m = softmax((t ⊙ mask_m) Wᵀ + b)
  const got = uarRoute(t, W, b, 2, u, g, (x, m) => x.mul(masks[m]!)).weights;
  const want = uarCalibrate(masks.map((mk) => t.mul(mk).matmul(W.transpose()).add(b).softmax(-1)), clean, 2, u).weights;
  close([...got.data()], [...want.data()], 1e-12, 'input');
  // logits: r_m = softmax((t Wᵀ) ⊙ mask_m + b)
  const gotL = uarRoute(t, W, b, 2, uar({ samples: M, dropoutPlace: 'logits' }), g, (x, m) => x.mul(maskE[m]!)).weights;
  const wantL = uarCalibrate(maskE.map((mk) => t.matmul(W.transpose()).mul(mk).add(b).softmax(-1)), clean, 2, u).weights;
  close([...gotL.data()], [...wantL.data()], 1e-12, 'logits');
  void stack;
});

// The whole UaR path (M dropout passes at the input, mean, unbiased variance, whitening, unit norm,
// top-2) against numbers computed independently with PyTorch 1.13 (float64) by this script:
//   t = [[[.5, -1, 2], [1.5, .25, -.75]]]; W = [[.4, -.2, .1], [-.3, .5, .2], [.1, .1, -.4]]; b = [.05, -.1, 0]
//   masks = [1,0,1,1,1,0], [0,1,1,1,0,1], [1,1,0,0,1,1] (x 1.25, reshaped to [1, 2, 3])
//   r = stack(softmax((t*m) @ W.T + b, -1)); mu = r.mean(0); var = r.var(0, unbiased=True) + 1e-12
//   d = (softmax(t @ W.T + b, -1) - mu) / var; c = d / d.norm(dim=-1, keepdim=True)
//   top-2 of c kept, renormalised to unit norm
test('UaR end to end equals an independent PyTorch computation (injected dropout masks)', () => {
  const t = f64([0.5, -1, 2, 1.5, 0.25, -0.75], [1, 2, 3]);
  const W = f64([0.4, -0.2, 0.1, -0.3, 0.5, 0.2, 0.1, 0.1, -0.4], [3, 3]);
  const b = f64([0.05, -0.1, 0], [3]);
  const masks = [[1, 0, 1, 1, 1, 0], [0, 1, 1, 1, 0, 1], [1, 1, 0, 0, 1, 1]].map((m) => f64(m.map((v) => v * 1.25), [1, 2, 3]));
  const g = new Generator(0);
  const all = uarRoute(t, W, b, 3, uar({ samples: 3 }), g, (x, m) => x.mul(masks[m]!));
  close([...all.weights.data()], [0.9932721003416214, -0.06083410106699247, -0.09853804762788192, 0.0894232682699194, -0.7301836512743745, 0.6773738365950878], 1e-9, 'all E');
  const two = uarRoute(t, W, b, 2, uar({ samples: 3 }), g, (x, m) => x.mul(masks[m]!));
  close([...two.weights.data()], [0.9981297140682537, -0.061131611250041726, 0, 0.13087910187267196, 0, 0.9913983360350181], 1e-9, 'top-2');
  assert.equal([...two.indices.slice(0, 2)].sort(), [0, 1]);
  assert.equal([...two.indices.slice(2, 4)].sort(), [0, 2]);
});

test('UaR with real MC dropout: unit norm, k non-zeros, reproducible from the seed', () => {
  const g = new Generator(9);
  const t = randn([2, 7, 8], { dtype: 'float64', generator: g });
  const W = randn([6, 8], { dtype: 'float64', generator: g });
  const run = (seed: number) => uarRoute(t, W, null, 3, uar({ eps: 1e-5 }), new Generator(seed));
  const a = run(1), b = run(1), c = run(2);
  assert.equal([...a.weights.data()], [...b.weights.data()]);
  assert.not.equal([...a.weights.data()], [...c.weights.data()]);
  for (const w of rows(a.weights, 6)) {
    assert.ok(Math.abs(Math.hypot(...w) - 1) < 1e-9);
    assert.is(w.filter((v) => v !== 0).length, 3);
  }
});

test.run();
