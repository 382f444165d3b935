// Checkpoint exchange with the official PyTorch code (issue 6, point 9): load a state dict saved
// by the official models (official key names, e.g. `Img_Encoder.vision_transformer.transformer.
// layers.0.3.1.0.0.weight`, possibly with DDP's `module.` prefix) into our model, and export ours
// under the official names. The name mapping lives in one place, official-names.ts; shapes and
// layouts are identical (PyTorch's), so values are copied without transposes.
//
// Use a config with `officialUnusedParams: true` (the official dead tensors exist in the files), the
// `paper` widths, `tailResBlocks: 1`, and for MoFME `officialExpertSlots: true` (the official forward
// pass weights a GELU with router column 0); then our eval forward is the official one.

import type { Tensor } from '@mofme/tensor';
import type { LoadReport, StateDict } from '@mofme/nn';
import type { MoFME } from './model';
import { detectOfficialKind, officialToOurs, oursToOfficial } from './official-names';

/** Rename an official state dict to our names (the kind — dense / moe / mofme — is detected from the keys). */
export function fromOfficialStateDict(official: Record<string, Tensor>): StateDict {
  const kind = detectOfficialKind(Object.keys(official));
  const out: StateDict = {};
  for (const [key, value] of Object.entries(official)) out[officialToOurs(key, kind)] = value;
  return out;
}

/** Load an official state dict into `model` (strict: every key must match in name and shape). */
export function loadOfficialStateDict(model: MoFME, official: Record<string, Tensor>): LoadReport {
  const kind = detectOfficialKind(Object.keys(official));
  if (kind !== model.config.ffn) {
    throw new Error(`loadOfficialStateDict: the checkpoint is an official '${kind}' model, the config builds '${model.config.ffn}'`);
  }
  if (kind === 'mofme' && !model.config.officialExpertSlots) {
    throw new Error('loadOfficialStateDict: official MoFME checkpoints need officialExpertSlots: true (router column 0 weights GELU(h) there)');
  }
  return model.loadStateDict(fromOfficialStateDict(official));
}

/** Our parameters under the official names (what the official `load_state_dict` expects). */
export function toOfficialStateDict(model: MoFME): StateDict {
  const out: StateDict = {};
  for (const [name, value] of Object.entries(model.stateDict())) out[oursToOfficial(name, model.config.ffn)] = value;
  return out;
}
