// The model, not its caller, chooses how experts run on a backend: on one that compiles a kernel
// per tensor shape (gpu.js) a 'sparse' mixture runs densely, with fixed shapes and the same sum.
// A CPU backend that only claims `compilesPerShape` stands in for gpu.js here.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpuBackend, Generator, randn, tensor, withBackend, type Tensor } from '@mofme/tensor';
import { createModel, mixExperts, resolveConfig, type Routing } from '../src/index';

class PerShapeCpu extends CpuBackend {
  readonly compilesPerShape = true;
}

/** Two tokens, E = 3 slots, top-1: token 0 -> slot 2, token 1 -> slot 0. */
function routingOn(backend: CpuBackend): Routing {
  const weights = tensor(Float32Array.from([0, 0, 0.7, 0.4, 0, 0]), { shape: [1, 2, 3], backend });
  return { weights, indices: Int32Array.from([2, 0]), k: 1 };
}

function rowsSeen(backend: CpuBackend): { rows: number[]; out: number[] } {
  const x = tensor(Float32Array.from([1, 2, 3, 4]), { shape: [1, 2, 2], backend });
  const rows: number[] = [];
  const slot = (c: number, z: Tensor) => { rows.push(z.shape.length === 3 ? z.shape[1]! : z.shape[0]!); return z.mul(c + 1); };
  const out = Array.from(mixExperts(x, routingOn(backend), slot, true).data());
  return { rows, out };
}

test('sparse mixture: each slot sees only its own tokens on the CPU, every token on a per-shape backend; same sum', () => {
  const cpu = rowsSeen(new CpuBackend());
  assert.equal(cpu.rows, [1, 1], 'the CPU gathers one token for slot 0 and one for slot 2, and skips slot 1');
  const perShape = rowsSeen(new PerShapeCpu());
  assert.equal(perShape.rows, [2, 2, 2], 'all three slots on both tokens');
  // token 0: 0.7 · 3 · [1, 2]; token 1: 0.4 · 1 · [3, 4] (hand-computed)
  const want = [2.1, 4.2, 1.2, 1.6];
  for (const [i, v] of want.entries()) {
    assert.ok(Math.abs(cpu.out[i]! - v) < 1e-6, `cpu ${i}`);
    assert.ok(Math.abs(perShape.out[i]! - v) < 1e-6, `per-shape ${i}`);
  }
});

test('the whole model on a per-shape backend: a sparse config gives the CPU\'s output', () => {
  const config = resolveConfig('tiny', { imageSize: 16, execution: 'sparse' });
  const x = randn([1, 3, 16, 16], { generator: new Generator(5) });
  const a = createModel(config, { seed: 2 }).eval().forward(x).image.data();
  const backend = new PerShapeCpu();
  const b = withBackend(backend, () => createModel(config, { seed: 2 }).eval().forward(x.to(backend)).image.data());
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  assert.ok(diff < 1e-5, `max |diff| ${diff}`);
});

test.run();
