/**
 * The demo's verdict: the side-by-side table (input | bundled | fine-tuned per weather) and the list
 * of weathers not yet restored above their input, on hand-made evaluation results whose expected
 * output is written out here, not computed by the code under test.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { comparisonTable, weathersNotAboveInput } from '../src/commands/demo';
import type { EvalResult } from '../src/evaluate';

const score = (psnr: number, ssim: number, identityPsnr: number, identitySsim: number) => ({ n: 1, psnr, ssim, identityPsnr, identitySsim });
const result = (tasks: Record<string, ReturnType<typeof score>>, average: ReturnType<typeof score>): EvalResult =>
  ({ tasks, average, images: [], routing: undefined, seconds: 0 } as unknown as EvalResult);

test('weathersNotAboveInput: a weather counts only when both PSNR and SSIM beat the input', () => {
  const r = result({ rain: score(25, 0.8, 24, 0.79), snow: score(20, 0.6, 21, 0.5), haze: score(18, 0.7, 15, 0.72), raindrop: score(30, 0.95, 29, 0.93) }, score(0, 0, 0, 0));
  assert.equal(weathersNotAboveInput(r), ['snow', 'haze']);
});

test('comparisonTable: one row per weather plus the average, gains signed', () => {
  const bundled = result({ rain: score(23.44, 0.7651, 24.99, 0.7727) }, score(23.44, 0.7651, 24.99, 0.7727));
  const tuned = result({ rain: score(26.1, 0.801, 24.99, 0.7727) }, score(26.1, 0.801, 24.99, 0.7727));
  const lines = comparisonTable(bundled, tuned).split('\n');
  assert.is(lines.length, 3);
  assert.equal(lines[1]!.trim().split(/\s{2,}/), ['rain', '24.99', '23.44 (-1.55)', '26.10 (+1.11)', '0.7727', '0.7651', '0.8010']);
  assert.match(lines[2]!, /^average/);
});

test.run();
