// Our network against its PyTorch twin (scripts/torch/mofme_torch.py), an independent second
// implementation written from the same config: build a model here with random weights (every
// parameter drawn afresh, so no layer is the identity or zero as after createModel), save it as
// `mofme train` does, run both eval forwards on the same input, and require agreement within 1e-4.
//
// Compared: dense, moe and mofme FFNs with the linear router (both top-k modes, dense and sparse
// expert execution, the official slot/dead-parameter switches, the sigmoid and residual outputs),
// and the UaR configured with `whenEval: 'linear'`. The UaR's own eval path is left out on
// purpose: its Monte-Carlo dropout masks come from our Generator on one side and from torch's on
// the other, so the two outputs agree only in distribution, and a test with a tolerance loose
// enough for that would not catch a wrong formula. The calibration itself is tested on
// hand-computed values in router.test.ts.
//
// Needs Debian's PyTorch for /usr/bin/python3 (apt-get install python3-torch); without it the
// file prints why and runs nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator, noGrad, randn, type Tensor } from '@mofme/tensor';
import { loadSafetensorsSync, saveSafetensorsSync } from '@mofme/nn';
import { createModel, resolveConfig, type ConfigOverrides, type PresetName } from '../src/index';

const PYTHON = '/usr/bin/python3';
const TWIN = new URL('../../../scripts/torch/mofme_torch.py', import.meta.url).pathname;
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

const dir = mkdtempSync(join(tmpdir(), 'mofme-twin-'));

/** max |a - b| */
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** Both forwards of one configuration on one [B, 3, H, W] input: ours and the twin's image data. */
function bothForwards(name: string, preset: PresetName, overrides: ConfigOverrides, shape: [number, number, number, number], seed: number) {
  const config = resolveConfig(preset, overrides);
  const model = createModel(config, { seed });
  // Fresh weights for every parameter: N(0, 1/fan_in) for matrices and kernels (activations keep
  // their scale through the network), 1 + 0.2 N(0, 1) for LayerNorm gains, 0.2 N(0, 1) for the rest.
  const g = new Generator(seed + 1000);
  const state: Record<string, Tensor> = {};
  for (const [key, p] of Object.entries(model.stateDict())) {
    const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
    const z = randn(p.shape, { generator: g });
    state[key] = p.ndim > 1 ? z.mul(1 / Math.sqrt(fanIn)) : key.includes('norm.weight') ? z.mul(0.2).add(1) : z.mul(0.2);
  }
  model.loadStateDict(state);
  model.eval();
  const x = randn(shape, { generator: new Generator(seed + 2000) }).clamp(-1, 1);
  const modelFile = join(dir, `${name}.safetensors`), inFile = join(dir, `${name}-x.safetensors`), outFile = join(dir, `${name}-y.safetensors`);
  saveSafetensorsSync(modelFile, model.stateDict(), { format: 'mofme-ts/1', config: JSON.stringify(config), step: '0' });
  saveSafetensorsSync(inFile, { x });
  const ours = noGrad(() => model.forward(x).image.data());
  const run = spawnSync(PYTHON, [TWIN, 'forward', modelFile, inFile, outFile], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' } });
  assert.is(run.status, 0, `twin forward failed: ${run.stderr}`);
  const theirs = loadSafetensorsSync(outFile).tensors.image!;
  assert.equal(theirs.shape, shape);
  return { ours, theirs: theirs.data(), input: x.data() };
}

const cases: { name: string; preset: PresetName; o: ConfigOverrides; shape: [number, number, number, number] }[] = [
  { name: 'dense', preset: 'tiny', o: { ffn: 'dense' }, shape: [2, 3, 32, 48] },
  { name: 'moe (sparse execution, mask-then-softmax)', preset: 'tiny', o: { ffn: 'moe' }, shape: [2, 3, 32, 48] },
  { name: 'moe (dense execution, softmax-then-zero, sigmoid output)', preset: 'tiny', o: { ffn: 'moe', execution: 'dense', topkMode: 'softmaxThenZero', residualOutput: false }, shape: [1, 3, 40, 32] },
  { name: 'mofme (sparse execution)', preset: 'tiny', o: { ffn: 'mofme' }, shape: [2, 3, 32, 48] },
  { name: 'mofme (official slots and dead parameters, dense execution, E=3 top-1)', preset: 'tiny', o: { ffn: 'mofme', officialExpertSlots: true, officialUnusedParams: true, execution: 'dense', experts: 3, topk: 1 }, shape: [1, 3, 64, 64] },
  { name: 'mofme, UaR router evaluated with its linear path (whenEval linear)', preset: 'tiny', o: { ffn: 'mofme', router: 'uar', uar: { whenEval: 'linear' } }, shape: [1, 3, 32, 32] },
  { name: 'small preset (patch 4, 2 head ResBlocks)', preset: 'small', o: {}, shape: [1, 3, 32, 32] },
];

if (!hasTorch) {
  console.log(`torch-twin: skipped, ${PYTHON} cannot import torch (apt-get install python3-torch to run these tests)`);
} else {
  cases.forEach((c, i) => {
    test(`PyTorch twin agrees with ours within 1e-4: ${c.name}`, () => {
      const { ours, theirs, input } = bothForwards(`case${i}`, c.preset, c.o, c.shape, 10 + i);
      const diff = maxDiff(ours, theirs);
      assert.ok(diff < 1e-4, `max |ours - twin| = ${diff}`);
      // the comparison means something only if the network did something to its input
      const unchanged = resolveConfig(c.preset, c.o).residualOutput ? input.map((v) => Math.min(1, Math.max(0, (v + 1) / 2))) : input.map(() => 0.5);
      assert.ok(maxDiff(ours, unchanged) > 0.05, 'the random network left its input (nearly) unchanged');
    });
  });

  test('twin refuses a file without our config, naming it', () => {
    const file = join(dir, 'no-config.safetensors');
    saveSafetensorsSync(file, { w: randn([2, 2]) });
    const run = spawnSync(PYTHON, [TWIN, 'forward', file, file, join(dir, 'unused.safetensors')], { encoding: 'utf8' });
    assert.is.not(run.status, 0);
    assert.match(run.stderr, /no-config\.safetensors: no model config/);
  });
}

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
