// The whole network on the gpu.js backend: a few training steps of the tiny MoFME (UaR router,
// FiLM experts, attention, convolutions, AdamW) on each GPU path that opens here give the CPU's
// losses, and a tidy step leaves the device's live-buffer count where it was. Skipped, with the
// reason, where no GPU path opens (the tensor package's GPU suite says why in detail).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpuBackend, Generator, rand, smoothL1Loss, tidy, withBackend, type Backend } from '@mofme/tensor';
import { createGpuBackend, type GpuBackend } from '@mofme/tensor/gpu';
import { AdamW } from '@mofme/nn';
import { createModel, resolveConfig } from '../src/index';

/** Losses of `steps` AdamW steps of the tiny MoFME on 32x32 images, and live buffers after each. */
function train(backend: Backend, steps: number): { losses: number[]; live: number[] } {
  return withBackend(backend, () => {
    // dense expert execution: same outputs as sparse, with shapes that do not change every step
    const model = createModel(resolveConfig('tiny', { imageSize: 32, execution: 'dense' }), { seed: 3 });
    const opt = new AdamW(model.parameters(), { lr: 2e-3 });
    const g = new Generator(5);
    const x = rand([2, 3, 32, 32], { generator: g }), y = rand([2, 3, 32, 32], { generator: g });
    const losses: number[] = [], live: number[] = [];
    for (let s = 0; s < steps; s++) {
      losses.push(tidy(() => {
        const loss = smoothL1Loss(model.forward(x.mul(2).sub(1)).image, y);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        return loss.item();
      }));
      live.push(backend.memory().buffers);
    }
    return { losses, live };
  });
}

const cpu = train(new CpuBackend({}), 3);
let opened = 0;
for (const mode of ['webgpu', 'headlessgl'] as const) {
  let gpu: GpuBackend;
  try {
    gpu = createGpuBackend({ mode });
  } catch (e) {
    console.log(`tiny MoFME on ${mode} skipped: ${(e as Error).message.split('\n')[1]?.trim() ?? (e as Error).message}`);
    continue;
  }
  opened++;
  test(`tiny MoFME trains on gpu.js ${mode} with the CPU's losses, and a tidy step leaks nothing`, () => {
    const g = train(gpu, 3);
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(g.losses[i]! - cpu.losses[i]!) <= 1e-4 * (1 + cpu.losses[i]!), `step ${i}: ${mode} ${g.losses[i]} vs cpu ${cpu.losses[i]}`);
    }
    // after the first step (which creates AdamW's moment buffers) every step ends with the same live buffers
    assert.ok(g.live[1] === g.live[2], `live buffers after each step: ${g.live}`);
  });
}

test('the CPU reference run itself learns (so the comparison above is not of two flat lines)', () => {
  assert.ok(cpu.losses[2]! < cpu.losses[0]!, `losses ${cpu.losses}`);
  if (opened === 0) console.log('(no GPU path opened: only the CPU run was checked)');
});

test.run();
