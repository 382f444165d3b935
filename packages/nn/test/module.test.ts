// Module: registration and dotted names, buffers, train/eval, state dicts and their load report,
// toString, moving and casting, functionalCall.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpuBackend, Generator, tensor, zeros, type Tensor } from '@mofme/tensor';
import {
  FeedForward, LayerNorm, Linear, Module, ModuleList, MultiHeadSelfAttention, Dropout, functionalCall, withInitDefaults,
} from '../src/index';

class Block extends Module {
  readonly norm: LayerNorm;
  readonly attn: MultiHeadSelfAttention;
  readonly ffn: FeedForward;
  constructor(dim: number) {
    super();
    this.norm = this.child('norm', new LayerNorm(dim));
    this.attn = this.child('attn', new MultiHeadSelfAttention(dim, { heads: 2, headDim: 2, attnDropout: 0.1 }));
    this.ffn = this.child('ffn', new FeedForward(dim, 2 * dim, { dropout: 0.1 }));
  }
  forward(x: Tensor): Tensor {
    return this.ffn.forward(x.add(this.attn.forward(this.norm.forward(x))));
  }
}

class Tiny extends Module {
  readonly scale: Tensor;
  readonly table: Tensor;
  readonly blocks: ModuleList<Block>;
  constructor(dim = 4, depth = 2) {
    super();
    this.scale = this.param('scale', tensor([1]));
    this.table = this.buffer('table', zeros([3]));
    this.buffer('cache', zeros([2]), { persistent: false });
    this.blocks = this.child('blocks', new ModuleList(Array.from({ length: depth }, () => new Block(dim))));
  }
  forward(x: Tensor): Tensor {
    let h = x.mul(this.scale);
    for (const b of this.blocks) h = b.forward(h);
    return h;
  }
}

const make = (seed = 1): Tiny => withInitDefaults({ generator: new Generator(seed) }, () => new Tiny());

test('dotted names as in PyTorch state dicts, and tensors labelled with them', () => {
  const m = make();
  const names = m.namedParameters().map(([n]) => n);
  assert.equal(names.slice(0, 7), ['scale', 'blocks.0.norm.weight', 'blocks.0.norm.bias', 'blocks.0.attn.qkv.weight', 'blocks.0.attn.out.weight', 'blocks.0.attn.out.bias', 'blocks.0.ffn.fc1.weight']);
  assert.ok(names.includes('blocks.1.ffn.fc2.bias'));
  for (const [n, p] of m.namedParameters()) {
    assert.is(p.name, n);
    assert.ok(p.requiresGrad);
  }
  assert.equal(m.namedBuffers().map(([n]) => n), ['table']);
  assert.equal(m.namedBuffers({ includeNonPersistent: true }).map(([n]) => n), ['table', 'cache']);
  assert.is(m.buffers()[0]!.requiresGrad, false);
  // 1 + per block: LN 8, qkv 4*12=48, out 4*4+4=20, fc1 4*8+8=40, fc2 8*4+4=36 -> 152
  assert.is(m.numParameters(), 1 + 2 * 152);
  assert.is(m.parameters().length, names.length);
});

test('registration errors: duplicate names, dots', () => {
  class Bad extends Module {
    constructor(which: number) {
      super();
      this.param('w', tensor([1]));
      if (which === 0) this.param('w', tensor([2]));
      if (which === 1) this.child('a.b', new Linear(1, 1));
    }
  }
  assert.throws(() => new Bad(0), /already registered/);
  assert.throws(() => new Bad(1), /invalid name/);
});

test('train() / eval() propagate to every descendant', () => {
  const m = make();
  assert.ok(m.modules().every((x) => x.training));
  m.eval();
  assert.ok(m.modules().every((x) => !x.training));
  assert.is(m.blocks.at(1).ffn.drop.training, false);
  m.train();
  assert.ok(m.modules().every((x) => x.training));
  assert.ok(m.modules().some((x) => x instanceof Dropout));
});

test('zeroGrad clears gradients; the same seed builds the same model', () => {
  const m = make(5);
  const x = tensor(Array.from({ length: 2 * 3 * 4 }, (_, i) => Math.sin(i)), { shape: [2, 3, 4] });
  m.eval().forward(x).sum().backward();
  assert.ok(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
  const a = make(5), b = make(5), c = make(6);
  assert.equal(Array.from(a.blocks.at(0).attn.qkv.weight.data()), Array.from(b.blocks.at(0).attn.qkv.weight.data()));
  assert.not.equal(Array.from(a.blocks.at(0).attn.qkv.weight.data()), Array.from(c.blocks.at(0).attn.qkv.weight.data()));
});

test('stateDict / loadStateDict round trip, snapshots unaffected by later updates', () => {
  const a = make(1), b = make(2);
  const sd = a.stateDict();
  assert.equal(Object.keys(sd), [...a.namedParameters().map(([n]) => n), 'table']);
  const report = b.loadStateDict(sd);
  assert.equal(report.missing, []);
  assert.equal(report.unexpected, []);
  assert.is(report.loaded.length, Object.keys(sd).length);
  for (const [n, p] of b.namedParameters()) assert.equal(Array.from(p.data()), Array.from(sd[n]!.data()), n);
  // b's properties still point at its (updated) parameters
  assert.equal(Array.from(b.blocks.at(0).attn.qkv.weight.data()), Array.from(sd['blocks.0.attn.qkv.weight']!.data()));
  const before = Array.from(sd.scale!.data());
  a.scale.assign(tensor([7]));
  assert.equal(Array.from(sd.scale!.data()), before);
});

test('strict loading reports every missing, unexpected and mis-shaped key and loads nothing', () => {
  const m = make(1);
  const sd = make(2).stateDict();
  delete sd['blocks.1.ffn.fc2.bias'];
  sd['blocks.9.extra'] = tensor([1]);
  sd.scale = tensor([1, 2]);
  const original = Array.from(m.blocks.at(0).norm.weight!.data());
  try {
    m.loadStateDict(sd);
    assert.unreachable('should throw');
  } catch (e) {
    const msg = (e as Error).message;
    assert.match(msg, /missing keys \(1\): blocks\.1\.ffn\.fc2\.bias/);
    assert.match(msg, /unexpected keys \(1\): blocks\.9\.extra/);
    assert.match(msg, /shape mismatch for scale: the module has \[1\], the state dict \[2\]/);
  }
  assert.equal(Array.from(m.blocks.at(0).norm.weight!.data()), original);
  const report = m.loadStateDict(sd, { strict: false });
  assert.equal(report.missing, ['blocks.1.ffn.fc2.bias']);
  assert.equal(report.unexpected, ['blocks.9.extra']);
  assert.equal(report.mismatched, [{ key: 'scale', expected: [1], got: [2] }]);
  assert.ok(report.loaded.includes('blocks.0.attn.qkv.weight'));
});

test('loading converts dtype; cast() and to() re-point properties', () => {
  const m = make(1);
  const sd64 = Object.fromEntries(Object.entries(make(2).stateDict()).map(([k, v]) => [k, v.cast('float64')]));
  m.loadStateDict(sd64);
  assert.is(m.scale.dtype, 'float32');
  m.cast('float64');
  assert.is(m.scale.dtype, 'float64');
  assert.is(m.blocks.at(0).attn.qkv.weight.dtype, 'float64');
  assert.is(m.table.dtype, 'float64');
  assert.ok(m.parameters().every((p) => p.dtype === 'float64' && p.requiresGrad));
  assert.is(m.blocks.at(1).ffn.fc1.weight, m.parameters().find((p) => p.name === 'blocks.1.ffn.fc1.weight'));
  m.to(m.scale.backend, 'float32');
  assert.is(m.blocks.at(1).ffn.fc1.weight.dtype, 'float32');
  const other = new CpuBackend();
  const before = Array.from(m.eval().forward(tensor(new Float32Array(24).fill(0.5), { shape: [2, 3, 4] })).data());
  m.to(other);
  assert.ok([...m.parameters(), ...m.buffers()].every((t) => t.backend === other));
  assert.is(m.blocks.at(0).attn.qkv.weight.backend, other);
  const after = Array.from(m.forward(tensor(new Float32Array(24).fill(0.5), { shape: [2, 3, 4], backend: other })).data());
  assert.equal(after, before);
});

test('toString shows the tree with shapes and counts', () => {
  const s = make().toString();
  const lines = s.split('\n');
  assert.match(lines[0]!, /^Tiny\(\)  scale \[1\], table \[3\] \(buffer\), cache \[2\] \(buffer\)  \(305 params\)$/);
  assert.ok(lines.some((l) => /^ {8}\(qkv\): Linear\(in=4, out=12, bias=false\)  weight \[12, 4\]  \(48 params\)$/.test(l)), s);
  assert.ok(lines.some((l) => /^ {4}\(1\): Block\(\)  \(152 params\)$/.test(l)), s);
});

test('functionalCall runs with substituted weights and restores the originals', () => {
  const lin = new Linear(2, 1);
  const w = tensor([[2, 3]]), b = tensor([1]);
  const y = functionalCall(lin, { weight: w, bias: b }, () => lin.forward(tensor([[1, 1]])));
  assert.equal(Array.from(y.data()), [6]);
  assert.is.not(lin.weight, w);
  assert.throws(() => functionalCall(lin, { nope: w }, () => 0), /no parameter or buffer 'nope'/);
});

test.run();
