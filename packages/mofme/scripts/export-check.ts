// The export half of the official checkpoint exchange, checked against PyTorch: build each mini
// model here (same config as test/official.test.ts), export it under the official names with
// `toOfficialStateDict`, add an input and our eval output, and let make-official-fixture.py
// --check load it strictly into the PyTorch model and compare. Needs /usr/bin/python3 with torch.
//   node --conditions=source --import tsx scripts/export-check.ts
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator, noGrad, rand } from '@mofme/tensor';
import { saveSafetensorsSync } from '@mofme/nn';
import { createModel, resolveConfig, toOfficialStateDict } from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'mofme-export-'));
for (const ffn of ['dense', 'moe', 'mofme'] as const) {
  const c = resolveConfig('tiny', {
    ffn, imageSize: 16, patchSize: 4, dim: 32, heads: 2, headDim: 8, mlpRatio: 4, headChannels: 8, headResBlocks: 2,
    tailChannels: 16, tailResBlocks: 1, depth: 2, experts: 4, topk: 2, dropout: 0.1, officialUnusedParams: true,
    ...(ffn === 'mofme' ? { officialExpertSlots: true } : {}),
  });
  const model = createModel(c, { seed: 7 }).eval();
  const input = rand([2, 3, 16, 16], { generator: new Generator(8) }).mul(2).sub(1);
  const output = noGrad(() => model.forward(input).image);
  const path = join(dir, `${ffn}.safetensors`);
  saveSafetensorsSync(path, { ...toOfficialStateDict(model), __input__: input, __output__: output });
  process.stdout.write(execFileSync('/usr/bin/python3', [new URL('./make-official-fixture.py', import.meta.url).pathname, '--check', path, ffn], { encoding: 'utf8' }));
}
