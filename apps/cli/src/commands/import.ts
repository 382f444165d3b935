/**
 * `mofme import FILE -o DIR`: a PyTorch state dict saved as safetensors, made into our model folder
 * (DIR/model.safetensors with the config in its metadata), which `mofme eval`, `restore`, `export`
 * and `train --init` read.
 *
 * FILE may hold
 *   - the official MoFME-Pytorch names (dense ViT, MoE or MoFME; the kind is read off the names,
 *     official.ts), e.g. an official checkpoint converted by scripts/torch/pth_to_safetensors.py;
 *   - or our own names (a file written by the PyTorch twin, scripts/torch/mofme_torch.py), with our
 *     config in the metadata;
 * in both cases with or without the `module.` prefix that DistributedDataParallel puts on every
 * name when the wrapped model's state dict is saved.
 * Files written by `mofme export --format official` carry our config beside the official names.
 * Other official files carry no config: the network sizes are found by trying the presets (paper, small,
 * tiny; or the one given with --preset) until every name and shape matches, and the official
 * network's own choices are set (sigmoid output, the official expert slots of MoFME). A file that
 * fits no preset is refused with the first name or shape that did not fit.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '@mofme/tensor';
import { formatLoadReport, loadSafetensors, type LoadReport } from '@mofme/nn';
import * as mofme from '@mofme/mofme';
import { presetNames, type MofmeConfig, type PresetName } from '@mofme/mofme';
import { writeModelFile } from '../checkpoint';
import { CliError, oneLine } from '../errors';
import { assertFresh, outputDir } from '../io';

export interface ImportOpts { out: string; preset?: PresetName; overwrite?: boolean }

export async function importCommand(file: string, o: ImportOpts): Promise<number> {
  if (existsSync(o.out) && !statSync(o.out).isDirectory()) throw new CliError(`-o ${o.out} is a file; give a folder`);
  const dest = join(o.out, 'model.safetensors');
  assertFresh(dest, o.overwrite);
  let parsed;
  try {
    parsed = await loadSafetensors(file);
  } catch (e) {
    throw new CliError(`${file} is not a readable safetensors file: ${oneLine(e)}`);
  }
  const raw = Object.entries(parsed.tensors);
  if (raw.length === 0) throw new CliError(`${file} holds no tensors`);
  const ddp = raw.every(([k]) => k.startsWith('module.'));
  const tensors: Record<string, Tensor> = {};
  for (const [k, v] of raw) tensors[mofme.stripDdpPrefix(k)] = v;

  let config: Readonly<MofmeConfig>;
  let model: mofme.MoFME;
  let source: string;
  if (parsed.metadata.config) {
    // our names: the config travels in the metadata
    try {
      config = mofme.resolveConfig(JSON.parse(parsed.metadata.config) as MofmeConfig);
    } catch (e) {
      throw new CliError(`${file}: the model config in its metadata is invalid: ${oneLine(e)}`);
    }
    model = mofme.createModel(config, { seed: 0 });
    const clean = (r: LoadReport): boolean => !r.missing.length && !r.unexpected.length && !r.mismatched.length;
    const asOurs = model.loadStateDict(tensors, { strict: false });
    source = `our names, ${config.ffn}`;
    if (!clean(asOurs)) {
      // `mofme export --format official` keeps the config too: official names with our config
      let renamed = null;
      try { renamed = mofme.fromOfficialStateDict(tensors); } catch { /* not official names either */ }
      if (!renamed || !clean(model.loadStateDict(renamed, { strict: false }))) {
        throw new CliError(`${file} does not match the config in its own metadata: ${oneLine(formatLoadReport(asOurs))}`);
      }
      source = `official names, ${config.ffn}, config from the metadata`;
    }
  } else {
    const kind = mofme.detectOfficialKind(Object.keys(tensors));
    let renamed;
    try {
      renamed = mofme.fromOfficialStateDict(tensors);
    } catch (e) {
      throw new CliError(`${file}: not an official MoFME-Pytorch state dict and no config in its metadata: ${oneLine(e)}`);
    }
    const withPos = Object.hasOwn(renamed, 'posEmbed');
    const tried: string[] = [];
    let found: { config: Readonly<MofmeConfig>; model: mofme.MoFME; preset: PresetName } | null = null;
    for (const preset of o.preset ? [o.preset] : presetNames) {
      const c = mofme.resolveConfig(preset, {
        ffn: kind,
        officialExpertSlots: kind === 'mofme',
        officialUnusedParams: withPos,
        residualOutput: false, // the official network ends in a sigmoid
      });
      const m = mofme.createModel(c, { seed: 0 });
      const report = m.loadStateDict(renamed, { strict: false });
      if (!report.missing.length && !report.unexpected.length && !report.mismatched.length) { found = { config: c, model: m, preset }; break; }
      tried.push(`${preset}: ${oneLine(formatLoadReport(report))}`);
    }
    if (!found) throw new CliError(`${file}: an official ${kind} state dict that fits no preset (${tried.join(' | ').slice(0, 400)})`);
    ({ config, model } = found);
    source = `official names, ${kind}, ${found.preset} preset sizes`;
  }
  outputDir(o.out, '-o');
  const step = Number(parsed.metadata.step ?? 0);
  writeModelFile(dest, model, Number.isFinite(step) ? step : 0);
  console.log(`wrote ${dest}: ${raw.length} tensors (${source}${ddp ? ', DDP `module.` prefix removed' : ''}); try: mofme eval --checkpoint ${o.out}`);
  return 0;
}
