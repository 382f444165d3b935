// Each layer's forward against an independent plain-JS computation on small inputs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, tensor } from '@mofme/tensor';
import { assertAllClose } from '@mofme/tensor/testing';
import {
  Conv2d, Dropout, FeedForward, GELU, GroupNorm, LayerNorm, Linear, ModuleList, MultiHeadSelfAttention,
  PatchEmbed, PatchUnembed, ReLU, ResBlock, Sequential, Sigmoid, Tanh, withInitDefaults,
} from '../src/index';
import { flat, refConv2d, refGelu, refLinear, refNormalize, seq, t64 } from './fixtures/helpers';

const close = (a: number[], e: number[], label: string, atol = 1e-10): void => assertAllClose(a, e, { atol, rtol: 1e-9, label });
const f64 = { dtype: 'float64' as const };

test('Linear: y = x W^T + b on a 3-d input, with and without bias', () => {
  for (const bias of [true, false]) {
    const lin = new Linear(4, 3, { ...f64, bias, generator: new Generator(1) });
    const x = seq(2 * 5 * 4, 2);
    const y = lin.forward(t64(x, [2, 5, 4]));
    assert.equal(y.shape, [2, 5, 3]);
    close(flat(y), refLinear(x, flat(lin.weight), lin.bias ? flat(lin.bias) : null, 10, 4, 3), `Linear bias=${bias}`);
  }
  assert.throws(() => new Linear(4, 3).forward(tensor([[1, 2, 3]])), /3 features/);
});

test('Conv2d: stride, padding, dilation and groups against direct loops', () => {
  const cases = [
    { C: 2, O: 3, k: 3, stride: 1, padding: 1, dilation: 1, groups: 1, bias: true },
    { C: 4, O: 2, k: 2, stride: 2, padding: 0, dilation: 1, groups: 2, bias: false },
    { C: 3, O: 3, k: 3, stride: 1, padding: 2, dilation: 2, groups: 3, bias: true },
    { C: 2, O: 4, k: 1, stride: 1, padding: 0, dilation: 1, groups: 1, bias: true },
  ];
  for (const c of cases) {
    const conv = new Conv2d(c.C, c.O, c.k, { ...f64, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups, bias: c.bias, generator: new Generator(3) });
    const xs = [2, c.C, 5, 6];
    const x = seq(2 * c.C * 30, 4);
    const y = conv.forward(t64(x, xs));
    const ref = refConv2d(x, xs, flat(conv.weight), [...conv.weight.shape], conv.bias ? flat(conv.bias) : null, c);
    assert.equal([...y.shape], ref.shape, JSON.stringify(c));
    close(flat(y), ref.y, `Conv2d ${JSON.stringify(c)}`);
  }
});

test('LayerNorm: normalises the trailing axes, then scale and shift', () => {
  const ln = new LayerNorm(4, { ...f64, eps: 1e-5 });
  ln.weight!.assign(t64([1, 2, 3, 4], [4]));
  ln.bias!.assign(t64([0.5, -0.5, 0, 1], [4]));
  const x = seq(3 * 4, 5).map((v) => 3 * v + 1);
  const norm = refNormalize(x, 4, 1e-5);
  close(flat(ln.forward(t64(x, [3, 4]))), norm.map((v, i) => v * [1, 2, 3, 4][i % 4]! + [0.5, -0.5, 0, 1][i % 4]!), 'LayerNorm');
  const ln2 = new LayerNorm([2, 3], { ...f64, elementwiseAffine: false });
  assert.is(ln2.numParameters(), 0);
  const x2 = seq(2 * 6, 6);
  close(flat(ln2.forward(t64(x2, [2, 2, 3]))), refNormalize(x2, 6, 1e-5), 'LayerNorm 2-d, no affine');
});

test('GroupNorm: each (image, group) over its channels and pixels, per-channel affine', () => {
  const gn = new GroupNorm(2, 4, f64);
  gn.weight!.assign(t64([1, -1, 2, 0.5], [4]));
  gn.bias!.assign(t64([0, 1, 2, 3], [4]));
  const x = seq(2 * 4 * 3 * 2, 7);
  const y = flat(gn.forward(t64(x, [2, 4, 3, 2])));
  const norm = refNormalize(x, 2 * 6, 1e-5); // a group = 2 channels x 6 pixels, contiguous in NCHW
  close(y, norm.map((v, i) => { const c = Math.floor(i / 6) % 4; return v * [1, -1, 2, 0.5][c]! + c; }), 'GroupNorm');
});

test('activations: GELU (exact erf form), ReLU, Sigmoid, Tanh', () => {
  const x = [-4, -2.5, -1, -0.3, 0, 0.2, 1, 2, 3.5, 5];
  const X = t64(x, [10]);
  close(flat(new GELU().forward(X)), x.map(refGelu), 'GELU', 1e-12);
  close(flat(new ReLU().forward(X)), x.map((v) => Math.max(v, 0)), 'ReLU');
  close(flat(new Sigmoid().forward(X)), x.map((v) => 1 / (1 + Math.exp(-v))), 'Sigmoid');
  close(flat(new Tanh().forward(X)), x.map(Math.tanh), 'Tanh');
  const approx = flat(new GELU('tanh').forward(X));
  close(approx, x.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))), 'GELU tanh');
});

test('Dropout: identity in eval; in training zeros about p and scales survivors by 1/(1-p); seeded', () => {
  const d = new Dropout(0.25, { generator: new Generator(9) });
  const x = tensor(new Float64Array(4000).fill(2), { dtype: 'float64' });
  const y = flat(d.forward(x));
  const zeros = y.filter((v) => v === 0).length;
  assert.ok(Math.abs(zeros / 4000 - 0.25) < 0.03, `dropped ${zeros}`);
  assert.ok(y.every((v) => v === 0 || Math.abs(v - 2 / 0.75) < 1e-12));
  const again = flat(new Dropout(0.25, { generator: new Generator(9) }).forward(x));
  assert.equal(again, y);
  d.eval();
  assert.equal(flat(d.forward(x)), flat(x));
  assert.throws(() => new Dropout(1), /p must be in/);
});

test('MultiHeadSelfAttention: heads and head width independent of the model width', () => {
  const D = 5, H = 2, dh = 3, B = 2, N = 4, I = H * dh;
  const attn = new MultiHeadSelfAttention(D, { ...f64, heads: H, headDim: dh, qkvBias: true, generator: new Generator(11) });
  assert.equal(attn.qkv.weight.shape, [3 * I, D]);
  assert.equal(attn.out.weight.shape, [D, I]);
  const x = seq(B * N * D, 12);
  const y = attn.forward(t64(x, [B, N, D]));
  // reference: per batch and head, softmax(q k^T / sqrt(dh)) v, heads concatenated head-major
  const qkv = refLinear(x, flat(attn.qkv.weight), flat(attn.qkv.bias!), B * N, D, 3 * I); // [B*N, 3I]
  const merged: number[] = new Array(B * N * I).fill(0);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const at = (n: number, which: number, d: number): number => qkv[(b * N + n) * 3 * I + which * I + h * dh + d]!;
    for (let i = 0; i < N; i++) {
      const logits = Array.from({ length: N }, (_, j) => { let s = 0; for (let d = 0; d < dh; d++) s += at(i, 0, d) * at(j, 1, d); return s / Math.sqrt(dh); });
      const m = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - m));
      const z = e.reduce((a, v) => a + v, 0);
      for (let d = 0; d < dh; d++) merged[(b * N + i) * I + h * dh + d] = e.reduce((a, w, j) => a + (w / z) * at(j, 2, d), 0);
    }
  }
  close(flat(y), refLinear(merged, flat(attn.out.weight), flat(attn.out.bias!), B * N, I, D), 'attention');
  assert.throws(() => new MultiHeadSelfAttention(5, { heads: 2 }), /not divisible/);
});

test('FeedForward: Linear-GELU-Dropout-Linear-Dropout (dropout inactive in eval)', () => {
  const ff = new FeedForward(3, 5, { ...f64, dropout: 0.5, generator: new Generator(13) }).eval();
  const x = seq(2 * 3, 14);
  const h = refLinear(x, flat(ff.fc1.weight), flat(ff.fc1.bias!), 2, 3, 5).map(refGelu);
  close(flat(ff.forward(t64(x, [2, 3]))), refLinear(h, flat(ff.fc2.weight), flat(ff.fc2.bias!), 2, 5, 3), 'FeedForward', 1e-9);
  assert.equal(ff.namedParameters().map(([n]) => n), ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
});

test('preNorm: FeedForward and attention of LN(x) (affine LN with non-trivial weights), norm listed first', () => {
  const x = seq(2 * 3 * 4, 21);
  const scale = [0.5, -1, 2, 1.5], shift = [0.1, 0.2, -0.3, 0];
  const ln = refNormalize(x, 4, 1e-5).map((v, i) => v * scale[i % 4]! + shift[i % 4]!); // the reference LN(x)
  const ff = new FeedForward(4, 5, { ...f64, preNorm: true, generator: new Generator(22) });
  const attn = new MultiHeadSelfAttention(4, { ...f64, heads: 2, preNorm: true, generator: new Generator(23) });
  for (const m of [ff, attn]) {
    m.norm!.weight!.assign(t64(scale, [4]));
    m.norm!.bias!.assign(t64(shift, [4]));
    assert.equal(m.namedParameters()[0]![0], 'norm.weight');
  }
  const plainFf = new FeedForward(4, 5, f64);
  plainFf.loadStateDict(Object.fromEntries(Object.entries(ff.stateDict()).filter(([k]) => !k.startsWith('norm.'))));
  close(flat(ff.forward(t64(x, [2, 3, 4]))), flat(plainFf.forward(t64(ln, [2, 3, 4]))), 'preNorm FeedForward');
  const plainAttn = new MultiHeadSelfAttention(4, { ...f64, heads: 2 });
  plainAttn.loadStateDict(Object.fromEntries(Object.entries(attn.stateDict()).filter(([k]) => !k.startsWith('norm.'))));
  close(flat(attn.forward(t64(x, [2, 3, 4]))), flat(plainAttn.forward(t64(ln, [2, 3, 4]))), 'preNorm attention');
});

test('ResBlock: x + conv2(relu(conv1(x))), same shape', () => {
  const rb = new ResBlock(2, { ...f64, generator: new Generator(15) });
  const xs = [1, 2, 4, 3];
  const x = seq(24, 16);
  const opts = { padding: 1 };
  const h = refConv2d(x, xs, flat(rb.conv1.weight), [2, 2, 3, 3], flat(rb.conv1.bias!), opts).y.map((v) => Math.max(v, 0));
  const r = refConv2d(h, xs, flat(rb.conv2.weight), [2, 2, 3, 3], flat(rb.conv2.bias!), opts).y;
  close(flat(rb.forward(t64(x, xs))), r.map((v, i) => v + x[i]!), 'ResBlock');
});

test('PatchEmbed equals a stride-p convolution read out token by token; any p dividing the image', () => {
  for (const [p, H, W] of [[2, 4, 6], [3, 6, 3], [1, 2, 2]] as const) {
    const pe = new PatchEmbed(p, 3, 4, { ...f64, generator: new Generator(17) });
    const xs = [2, 3, H, W];
    const x = seq(2 * 3 * H * W, 18);
    const t = pe.forward(t64(x, xs));
    const h = H / p, w = W / p;
    assert.equal(t.shape, [2, h * w, 4]);
    const conv = refConv2d(x, xs, flat(pe.proj.weight), [4, 3, p, p], flat(pe.proj.bias!), { stride: p }).y; // [B, D, h, w]
    const expected: number[] = [];
    for (let b = 0; b < 2; b++) for (let n = 0; n < h * w; n++) for (let d = 0; d < 4; d++) expected.push(conv[(b * 4 + d) * h * w + n]!);
    close(flat(t), expected, `PatchEmbed p=${p}`);
  }
  const withNorm = new PatchEmbed(2, 1, 4, { norm: true });
  assert.equal(withNorm.namedParameters().map(([n]) => n), ['proj.weight', 'proj.bias', 'norm.weight', 'norm.bias']);
  assert.throws(() => withNorm.forward(tensor(new Float32Array(9), { shape: [1, 1, 3, 3] })), /divisible/);
});

test('PatchUnembed: feature (p1, p2, c) of token (row, col) lands on pixel (row p + p1, col p + p2), channel c', () => {
  const p = 2, D = 3, C = 2, H = 4, W = 6, h = 2, w = 3, B = 1;
  const pu = new PatchUnembed(p, D, C, { ...f64, generator: new Generator(19) });
  const tokens = seq(B * h * w * D, 20);
  const y = flat(pu.forward(t64(tokens, [B, h * w, D]), H, W));
  const feats = refLinear(tokens, flat(pu.weight), flat(pu.bias!), h * w, D, p * p * C);
  const expected = new Array(C * H * W).fill(0);
  for (let row = 0; row < h; row++) for (let col = 0; col < w; col++) for (let p1 = 0; p1 < p; p1++) for (let p2 = 0; p2 < p; p2++) for (let c = 0; c < C; c++) {
    expected[(c * H + row * p + p1) * W + col * p + p2] = feats[(row * w + col) * p * p * C + (p1 * p + p2) * C + c];
  }
  close(y, expected, 'PatchUnembed');
  assert.throws(() => pu.forward(t64(tokens, [B, h * w, D]), 4, 4), /do not tile/);
});

test('Sequential chains modules and names children 0, 1, ...; ModuleList indexes them', () => {
  const seqm = withInitDefaults({ generator: new Generator(21), dtype: 'float64' }, () => new Sequential(new Linear(2, 3), new ReLU(), new Linear(3, 1)));
  assert.equal(seqm.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '2.weight', '2.bias']);
  const x = seq(4 * 2, 22);
  const l0 = seqm.at(0) as Linear, l2 = seqm.at(-1) as Linear;
  const h = refLinear(x, flat(l0.weight), flat(l0.bias!), 4, 2, 3).map((v) => Math.max(0, v));
  close(flat(seqm.forward(t64(x, [4, 2]))), refLinear(h, flat(l2.weight), flat(l2.bias!), 4, 3, 1), 'Sequential');
  assert.is(seqm.length, 3);
  const list = new ModuleList([new Linear(2, 2), new Linear(2, 2)]);
  assert.is(list.length, 2);
  assert.equal(list.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '1.weight', '1.bias']);
  assert.is([...list].length, 2);
  assert.throws(() => list.at(5), /out of range/);
});

test.run();
