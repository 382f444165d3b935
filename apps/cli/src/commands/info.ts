/**
 * `mofme info [CHECKPOINT]`: the network of a model file, or of a preset with the network flags
 * (options.ts), with its parameter count and multiply-accumulates at an image size.
 */
import { countFlops, countParameters, type MofmeConfig } from '@mofme/mofme';
import { loadModelFile } from '../checkpoint';
import { CliError } from '../errors';
import { MODEL_KEYS, networkConfigOf, parseSize, type Flags } from '../options';

export interface InfoOpts extends Flags { size: string; json?: boolean }

export async function infoCommand(checkpoint: string | undefined, o: InfoOpts): Promise<number> {
  let config: Readonly<MofmeConfig>, source: string, step: number | null = null;
  if (checkpoint) {
    if (o.preset) throw new CliError('give either a CHECKPOINT or --preset, not both');
    const m = await loadModelFile(checkpoint);
    ({ config, step } = m);
    source = m.file;
  } else {
    config = networkConfigOf(Object.fromEntries(MODEL_KEYS.map((k) => [k, o[k]]))); // the preset's own image size: info has no --crop
    source = `preset ${o.preset ?? 'tiny'}`;
  }
  const { width, height } = parseSize(o.size, '--size');
  if (height % config.patchSize || width % config.patchSize) throw new CliError(`--size ${o.size}: both sides must be multiples of the patch size ${config.patchSize}`);
  const params = countParameters(config);
  const flops = countFlops(config, height, width);
  if (o.json) {
    console.log(JSON.stringify({ source, step, config, parameters: params.total, macs: { size: { width, height }, total: flops.total, sparse: flops.sparse, dense: flops.dense, parts: flops.parts } }, null, 2));
    return 0;
  }
  console.log(`${source}${step !== null ? ` (step ${step})` : ''}`);
  console.log(`  network      ${config.ffn}, ${config.ffn === 'dense' ? '' : `E=${config.experts} top-${config.topk}, ${config.router} router, `}D=${config.dim}, depth ${config.depth}, patch ${config.patchSize}, ${config.heads}x${config.headDim} heads`);
  console.log(`  parameters   ${params.total.toLocaleString('en-US')}`);
  console.log(`  MACs @ ${width}x${height}  ${(flops.total / 1e9).toFixed(3)} G (${config.execution}; dense execution ${(flops.dense / 1e9).toFixed(3)} G)`);
  return 0;
}
