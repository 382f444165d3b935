// End to end: the tiny MoFME overfits one batch (the whole graph trains: head, tokens, FME experts,
// router, tail). A smooth target and a noisy input, like a miniature de-weathering pair.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Generator, mseLoss, randn, tensor, tidy } from '@mofme/tensor';
import { Adam } from '@mofme/nn';
import { createModel, resolveConfig } from '../src/index';

test('tiny MoFME overfits one 32x32 batch: loss falls by 10x', () => {
  const [B, H, W] = [2, 32, 32];
  const target = tensor(
    Float64Array.from({ length: B * 3 * H * W }, (_, i) => {
      const x = i % W, y = Math.floor(i / W) % H, c = Math.floor(i / (H * W)) % 3, b = Math.floor(i / (3 * H * W));
      return 0.5 + 0.35 * Math.sin((x + 2 * b) / 5 + c) * Math.cos(y / 7 - c);
    }),
    { shape: [B, 3, H, W], dtype: 'float32' },
  );
  const noisy = target.add(randn([B, 3, H, W], { generator: new Generator(1), std: 0.1 })).sub(0.5).div(0.5); // [−1, 1]
  // the official sigmoid output: with the residual output the first loss is already the small
  // noise-level error, and a 10x fall would test denoising rather than that every part trains
  const model = createModel(resolveConfig('tiny', { imageSize: 32, residualOutput: false }), { seed: 1 });
  const opt = new Adam(model.parameters(), { lr: 3e-3 });
  const losses: number[] = [];
  // stops as soon as the loss is 10x below the first (about 12 Adam steps); 40 at most
  for (let step = 0; step < 40 && !(losses.length > 0 && losses[losses.length - 1]! < losses[0]! / 10); step++) {
    losses.push(tidy(() => {
      opt.zeroGrad();
      const loss = mseLoss(model.forward(noisy).image, target);
      loss.backward();
      opt.step();
      return loss.item();
    }));
  }
  const first = losses[0]!, last = losses[losses.length - 1]!;
  if (process.env.SHOW) console.log(losses.map((l) => l.toFixed(4)).join(' '));
  assert.ok(last < first / 10, `loss ${first.toFixed(4)} -> ${last.toFixed(4)} (${losses.map((l) => l.toFixed(4)).join(' ')})`);
});

test.run();
