// Gradient checks in float64: every layer's backward (through the engine's autodiff) against
// central finite differences, as a function of its input and of all its parameters.
import { test } from 'uvu';
import { Generator } from '@mofme/tensor';
import {
  Conv2d, FeedForward, GELU, GroupNorm, LayerNorm, Linear, MultiHeadSelfAttention, PatchEmbed, PatchUnembed,
  ReLU, ResBlock, Sequential, Sigmoid, withInitDefaults,
} from '../src/index';
import { gradcheckModule, seq, t64 } from './fixtures/helpers';

const build = <T>(seed: number, f: () => T): T => withInitDefaults({ generator: new Generator(seed), dtype: 'float64' }, f);

test('Linear (with and without bias)', () => {
  for (const bias of [true, false]) {
    const m = build(1, () => new Linear(3, 2, { bias }));
    gradcheckModule(m, [t64(seq(2 * 2 * 3, 1), [2, 2, 3])], (x) => m.forward(x));
  }
});

test('Conv2d (padding, stride, dilation, groups)', () => {
  const m = build(2, () => new Conv2d(2, 2, 3, { padding: 1, stride: 2 }));
  gradcheckModule(m, [t64(seq(2 * 4 * 4, 2), [1, 2, 4, 4])], (x) => m.forward(x));
  const g = build(3, () => new Conv2d(4, 2, 2, { groups: 2, dilation: 2, bias: false }));
  gradcheckModule(g, [t64(seq(4 * 4 * 4, 3), [1, 4, 4, 4])], (x) => g.forward(x));
});

test('LayerNorm and GroupNorm', () => {
  const ln = build(4, () => new LayerNorm(4));
  gradcheckModule(ln, [t64(seq(3 * 4, 4), [3, 4])], (x) => ln.forward(x));
  const gn = build(5, () => new GroupNorm(2, 4));
  gradcheckModule(gn, [t64(seq(4 * 2 * 2, 5), [1, 4, 2, 2])], (x) => gn.forward(x));
});

test('activations in a Sequential', () => {
  const m = build(6, () => new Sequential(new Linear(3, 4), new GELU(), new Linear(4, 3), new Sigmoid(), new Linear(3, 2), new ReLU()));
  gradcheckModule(m, [t64(seq(2 * 3, 6).map((v) => v + 0.05), [2, 3])], (x) => m.forward(x));
});

test('MultiHeadSelfAttention (qkv bias, headDim independent of dim)', () => {
  const m = build(7, () => new MultiHeadSelfAttention(4, { heads: 2, headDim: 3, qkvBias: true }));
  gradcheckModule(m, [t64(seq(2 * 3 * 4, 7), [2, 3, 4])], (x) => m.forward(x));
});

test('preNorm MultiHeadSelfAttention and FeedForward (gradients through the LayerNorm too)', () => {
  const attn = build(10, () => new MultiHeadSelfAttention(4, { heads: 2, preNorm: true }));
  gradcheckModule(attn, [t64(seq(2 * 3 * 4, 10), [2, 3, 4])], (x) => attn.forward(x));
  const ff = build(11, () => new FeedForward(3, 4, { preNorm: true }));
  gradcheckModule(ff, [t64(seq(2 * 3, 11), [2, 3])], (x) => ff.forward(x));
});

test('FeedForward and ResBlock', () => {
  const ff = build(8, () => new FeedForward(3, 4));
  gradcheckModule(ff, [t64(seq(2 * 3, 8), [2, 3])], (x) => ff.forward(x));
  const rb = build(9, () => new ResBlock(2));
  gradcheckModule(rb, [t64(seq(2 * 3 * 3, 9), [1, 2, 3, 3])], (x) => rb.forward(x));
});

test('PatchEmbed (with norm) and PatchUnembed', () => {
  const pe = build(10, () => new PatchEmbed(2, 2, 3, { norm: true }));
  gradcheckModule(pe, [t64(seq(2 * 4 * 2, 10), [1, 2, 4, 2])], (x) => pe.forward(x));
  const pu = build(11, () => new PatchUnembed(2, 3, 2));
  gradcheckModule(pu, [t64(seq(2 * 3, 11), [1, 2, 3])], (t) => pu.forward(t, 2, 4));
});

test.run();
