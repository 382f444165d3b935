// The public block API (src/blocks.ts): shapes and routing of the three FFN layers and the
// transformer block, gradient checks on small float64 layers over random seeds (fast-check), the
// load-balancing loss against hand-computed values, the restoration network's blocks equal to
// standalone blocks given the same weights, and the package README's example, run from the README.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Generator, noGrad, randn, tensor, zeros, type Tensor } from '@mofme/tensor';
import { assertGradcheck, numRuns } from '@mofme/tensor/testing';
import { functionalCall, withInitDefaults } from '@mofme/nn';
import {
  DenseFfn, FmeFfn, MoeFfn, TransformerBlock, createModel, mlpHiddenOf, resolveConfig, type FfnLayer, type FmeOptions,
} from '../src/index';

const g64 = (shape: number[], seed: number): Tensor => randn(shape, { dtype: 'float64', generator: new Generator(seed) });
const small: FmeOptions = { dim: 4, hidden: 6, experts: 3, topk: 2 };
const kinds = {
  dense: (o: FmeOptions) => new DenseFfn(o),
  moe: (o: FmeOptions) => new MoeFfn(o),
  fme: (o: FmeOptions) => new FmeFfn(o),
} as const;

test('every FFN layer maps [B, N, D] to [B, N, D] and reports its routing; the block keeps the shape', () => {
  for (const [name, make] of Object.entries(kinds)) {
    for (const router of ['linear', 'uar'] as const) {
      const layer = withInitDefaults({ generator: new Generator(1) }, () => make({ ...small, router }));
      const t = randn([2, 5, 4], { generator: new Generator(2) });
      const { y, routing, auxLoss } = layer.apply(t);
      assert.equal(y.shape, [2, 5, 4], name);
      assert.is(auxLoss, null, 'no auxiliary loss unless asked for');
      if (name === 'dense') {
        assert.is(routing, null);
        continue;
      }
      assert.equal(routing!.weights.shape, [2, 5, 3]);
      assert.is(routing!.indices.length, 2 * 5 * 2); // k = 2 experts per token
      const w = routing!.weights.data();
      for (let r = 0; r < 10; r++) {
        const nonzero = [0, 1, 2].filter((e) => w[r * 3 + e] !== 0).length;
        assert.ok(nonzero <= 2, `${name}/${router}: token ${r} uses ${nonzero} experts, top-k is 2`);
      }
      const block = new TransformerBlock({ dim: 4, heads: 2 }, layer);
      assert.equal(block.forward(t).t.shape, [2, 5, 4]);
    }
  }
});

test('bad tokens and bad options get one-line errors naming the value', () => {
  const fme = withInitDefaults({ generator: new Generator(1) }, () => new FmeFfn(small));
  assert.throws(() => fme.apply(randn([2, 5, 7])), /FmeFfn\(dim=4\): expected tokens \[B, N, 4\], got \[2, 5, 7\]/);
  assert.throws(() => new MoeFfn({ ...small, topk: 4 }), /MoeFfn: topk must be an integer in 1\.\.experts \(3\), got 4/);
  assert.throws(() => new DenseFfn({ dim: 4, hidden: 0 }), /DenseFfn: hidden must be a positive integer, got 0/);
});

/** Gradient check of one layer's branch w.r.t. its input and every parameter, float64, UaR masks fixed per evaluation. */
function gradcheckLayer(make: (o: FmeOptions) => FfnLayer, o: FmeOptions, seed: number, useAux = false): void {
  const rng = new Generator(seed);
  const layer = withInitDefaults({ dtype: 'float64', generator: rng }, () => make({ ...o, generator: rng }));
  // every kind of tensor once: the router, the first expert, norms and shared parts (the other
  // experts are the same code); central differences on all of them would take minutes
  const named = layer.namedParameters().filter(([n]) => !/experts\.(film\.)?[1-9]/.test(n) && (n.endsWith('weight') || n === 'router.bias'));
  const names = named.map(([n]) => n);
  const fn = (x: Tensor, ...ws: Tensor[]): Tensor => {
    rng.manualSeed(seed + 1); // the same MC-dropout masks on every evaluation
    return functionalCall(layer, Object.fromEntries(names.map((n, i) => [n, ws[i]!])), () => {
      const out = layer.apply(x);
      return useAux ? out.auxLoss! : out.y;
    });
  };
  assertGradcheck(fn, [g64([1, 4, o.dim], seed + 2), ...named.map(([, p]) => p)]);
}

test('gradcheck (fast-check over seeds): dense, MoE and FME layers, linear router and UaR', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 10_000 }), (seed) => {
    gradcheckLayer(kinds.dense, small, seed);
    gradcheckLayer(kinds.moe, { ...small, execution: 'sparse' }, seed);
    gradcheckLayer(kinds.fme, { ...small, execution: 'dense' }, seed);
    gradcheckLayer(kinds.fme, { ...small, router: 'uar', uar: { dropout: 0.3 } }, seed);
  }), { numRuns: numRuns(2) });
});

test('gradcheck (fast-check over seeds): the load-balancing loss and the whole transformer block', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 10_000 }), (seed) => {
    gradcheckLayer(kinds.fme, { ...small, loadBalance: true }, seed, true);
    const rng = new Generator(seed);
    const block = withInitDefaults({ dtype: 'float64', generator: rng }, () => new TransformerBlock({ dim: 4, heads: 2 }, new MoeFfn({ ...small, generator: rng })));
    const named = block.namedParameters().filter(([n]) => /attn\.(norm|qkv)|router|experts\.0\.fc1/.test(n));
    const fn = (x: Tensor, ...ws: Tensor[]): Tensor =>
      functionalCall(block, Object.fromEntries(named.map(([n], i) => [n, ws[i]!])), () => block.forward(x).t);
    assertGradcheck(fn, [g64([1, 4, 4], seed + 3), ...named.map(([, p]) => p)]);
  }), { numRuns: numRuns(2) });
});

test('load-balancing loss: exactly 1 for a uniform router, about E when every token goes to one expert', () => {
  const E = 4;
  const fme = withInitDefaults({ generator: new Generator(3), dtype: 'float64' }, () => new FmeFfn({ dim: 8, hidden: 16, experts: E, topk: 1, loadBalance: true }));
  noGrad(() => {
    fme.router.weight.assign(zeros([E, 8], { dtype: 'float64' }));
    fme.router.bias!.assign(zeros([E], { dtype: 'float64' }));
  });
  // all logits equal: P_e = 1/E for every e, so E · Σ f_e / E = Σ f_e = 1 whatever the tie-break chose
  const t = g64([2, 6, 8], 4);
  assert.ok(Math.abs(fme.apply(t).auxLoss!.item() - 1) < 1e-12);
  const b = new Float64Array(E).fill(-30);
  b[2] = 30; // expert 2 wins every token by a margin of 60 logits
  noGrad(() => fme.router.bias!.assign(tensor(b, { dtype: 'float64' })));
  const aux = fme.apply(t).auxLoss!.item(); // f_2 = 1, P_2 = 1 − O(e^−60): aux = E · 1 · P_2
  assert.ok(Math.abs(aux - E) < 1e-9, `aux ${aux}`);
});

test('the restoration network blocks equal standalone blocks with the same weights', () => {
  for (const ffn of ['dense', 'moe', 'mofme'] as const) {
    const c = resolveConfig('tiny', { ffn });
    const model = createModel(c, { seed: 5 }).eval();
    const inModel = model.blocks.at(1);
    const options = { dim: c.dim, hidden: mlpHiddenOf(c), experts: c.experts, topk: c.topk, dropout: c.dropout };
    const layer = ffn === 'dense' ? new DenseFfn(options) : ffn === 'moe' ? new MoeFfn(options) : new FmeFfn(options);
    const standalone = new TransformerBlock({ dim: c.dim, heads: c.heads, headDim: c.headDim, dropout: c.dropout }, layer).eval();
    assert.equal(standalone.namedParameters().map(([n, p]) => `${n} ${p.shape}`), inModel.namedParameters().map(([n, p]) => `${n} ${p.shape}`));
    standalone.loadStateDict(inModel.stateDict());
    const t = randn([2, 6, c.dim], { generator: new Generator(6) });
    const a = noGrad(() => inModel.forward(t));
    const b = noGrad(() => standalone.forward(t));
    assert.equal([...b.t.data()], [...a.t.data()], `${ffn}: outputs differ`);
    if (a.routing) assert.equal([...b.routing!.indices], [...a.routing.indices]);
  }
});

test("the package README's block example runs as written", async () => {
  const pkg = fileURLToPath(new URL('..', import.meta.url));
  const readme = readFileSync(join(pkg, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Block API'));
  const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, 'README.md has a ```ts block under "## Block API"');
  assert.ok(code!.trim().split('\n').length <= 10, 'the example is at most 10 lines');
  // the same code, with the package names pointing at the sources (the temp file is outside the workspace)
  const src = (name: string): string => pathToFileURL(join(pkg, '..', name, 'src', 'index.ts')).href;
  const runnable = code!.replace(/from '@mofme\/(\w+)'/g, (_m, name: string) => `from '${src(name)}'`);
  const dir = mkdtempSync(join(tmpdir(), 'mofme-readme-'));
  const logged: unknown[][] = [];
  const log = console.log;
  try {
    writeFileSync(join(dir, 'example.ts'), runnable);
    console.log = (...args: unknown[]) => void logged.push(args);
    await import(pathToFileURL(join(dir, 'example.ts')).href);
  } finally {
    console.log = log;
    rmSync(dir, { recursive: true, force: true });
  }
  assert.is(logged.length, 1);
  const [shape, routingShape, aux] = logged[0]! as [number[], number[], number];
  assert.equal(shape, [2, 16, 32]);
  assert.equal(routingShape, [2, 16, 4]);
  assert.ok(Number.isFinite(aux) && aux > 0 && aux <= 4, `aux ${aux}`);
});

test.run();
