// Compatibility with the official MoFME-Pytorch code, in one file beside the model: the state-dict
// names, loading and exporting official checkpoints (issue 6, point 9), and the deepcopy-identical
// initial weights of the official code. The model itself (model.ts) knows nothing of the official
// names; the official switches of the config (officialExpertSlots, officialUnusedParams,
// officialSharedInit) say in config.ts what each reproduces.
//
// Names. The official names come from nested nn.Sequential/ModuleList indices
// (`Img_Encoder.vision_transformer.transformer.layers.0.3.4.expert.1.bias`); ours say what a tensor
// is (`blocks.0.ffn.experts.film.1.beta.bias`). Both directions are driven by one rule table, so
// they cannot drift apart. Tensor layouts are identical on both sides (Linear [out, in], conv
// [out, in, kh, kw], fused qkv q|k|v with heads slower), so a checkpoint converts by renaming
// alone. Official module index 3+e of `layers.L.3` *is* FiLM expert e, so the names map straight
// across; the official off-by-one is in the forward pass (router column e weights module e+2) and
// is the `officialExpertSlots` switch of the FME layer, not here. Some official names depend on the
// model kind (the positional embedding is `pos_embedding` in the dense ViT and `img_pos_embedding`
// in the MoE models), and some of ours do too (`blocks.L.ffn.norm` is the dense FFN's pre-norm or
// MoFME's LN_f), so the name functions take the FFN kind.
//
// Loading: use a config with `officialUnusedParams: true` (the official dead tensors exist in the
// files), the `paper` widths, `tailResBlocks: 1`, and for MoFME `officialExpertSlots: true`; then
// our eval forward is the official one.

import { keep, noGrad, type Tensor } from '@mofme/tensor';
import type { Linear, LoadReport, StateDict } from '@mofme/nn';
import type { FfnKind } from './config';
import { FmeFfn, MoeFfn } from './blocks';
import type { MoFME } from './model';

const V = 'Img_Encoder.vision_transformer.';
const T = `${V}transformer.layers.{l}.`;

interface Rule {
  readonly official: string;
  readonly ours: string;
  readonly kinds: readonly FfnKind[];
}

const ALL: readonly FfnKind[] = ['dense', 'moe', 'mofme'];
const MIXTURES: readonly FfnKind[] = ['moe', 'mofme'];

// Templates: `{p}` is `weight` or `bias`; `{l}`, `{i}`, `{e}` are non-negative integers; `{e+3}`
// means "the integer e plus 3" on the side where it appears.
const rules: readonly Rule[] = [
  { official: 'patch_embed_to_img_feature.0.{p}', ours: 'unpatchify.{p}', kinds: ALL },
  { official: `${V}pos_embedding`, ours: 'posEmbed', kinds: ['dense'] },
  { official: `${V}img_pos_embedding`, ours: 'posEmbed', kinds: MIXTURES },
  { official: `${V}to_patch_embedding.proj.{p}`, ours: 'patchEmbed.proj.{p}', kinds: ALL },
  { official: `${V}to_patch_embedding.norm.{p}`, ours: 'patchEmbed.norm.{p}', kinds: ALL },
  // Attention: layers.L.0 is PreNorm(Attention).
  { official: `${T}0.norm.{p}`, ours: 'blocks.{l}.attn.norm.{p}', kinds: ALL },
  { official: `${T}0.fn.to_qkv.weight`, ours: 'blocks.{l}.attn.qkv.weight', kinds: ALL },
  { official: `${T}0.fn.to_out.0.{p}`, ours: 'blocks.{l}.attn.out.{p}', kinds: ALL },
  // Dense FFN: layers.L.1 is PreNorm(FeedForward); net = [Linear, GELU, Dropout, Linear, Dropout].
  { official: `${T}1.norm.{p}`, ours: 'blocks.{l}.ffn.norm.{p}', kinds: ['dense'] },
  { official: `${T}1.fn.net.0.{p}`, ours: 'blocks.{l}.ffn.fc1.{p}', kinds: ['dense'] },
  { official: `${T}1.fn.net.3.{p}`, ours: 'blocks.{l}.ffn.fc2.{p}', kinds: ['dense'] },
  // Both mixtures: layers.L.1 = Sequential(router Linear, top-k, softmax).
  { official: `${T}1.0.{p}`, ours: 'blocks.{l}.ffn.router.{p}', kinds: MIXTURES },
  // MoE: layers.L.2 = ModuleList of PreNorm(FeedForward) experts.
  { official: `${T}2.{e}.norm.{p}`, ours: 'blocks.{l}.ffn.experts.{e}.norm.{p}', kinds: ['moe'] },
  { official: `${T}2.{e}.fn.net.0.{p}`, ours: 'blocks.{l}.ffn.experts.{e}.fc1.{p}', kinds: ['moe'] },
  { official: `${T}2.{e}.fn.net.3.{p}`, ours: 'blocks.{l}.ffn.experts.{e}.fc2.{p}', kinds: ['moe'] },
  // MoFME: layers.L.2 = the adaptor (shared FFN, no norm); layers.L.3 = [LN, basenet, GELU, FiLM…].
  { official: `${T}2.0.{p}`, ours: 'blocks.{l}.ffn.shared.fc1.{p}', kinds: ['mofme'] },
  { official: `${T}2.3.{p}`, ours: 'blocks.{l}.ffn.shared.fc2.{p}', kinds: ['mofme'] },
  { official: `${T}3.0.{p}`, ours: 'blocks.{l}.ffn.norm.{p}', kinds: ['mofme'] },
  { official: `${T}3.1.0.0.{p}`, ours: 'blocks.{l}.ffn.base.gate.{p}', kinds: ['mofme'] },
  { official: `${T}3.1.1.0.{p}`, ours: 'blocks.{l}.ffn.base.value.{p}', kinds: ['mofme'] },
  { official: `${T}3.{e+3}.expert.0.{p}`, ours: 'blocks.{l}.ffn.experts.film.{e}.gamma.{p}', kinds: ['mofme'] },
  { official: `${T}3.{e+3}.expert.1.{p}`, ours: 'blocks.{l}.ffn.experts.film.{e}.beta.{p}', kinds: ['mofme'] },
  { official: `${T}3.{e+3}.norm.{p}`, ours: 'blocks.{l}.ffn.experts.film.{e}.norm.{p}', kinds: ['mofme'] },
  // Head: [conv, ResBlock…]; a ResBlock's body = [conv, ReLU, conv].
  { official: 'head.0.{p}', ours: 'head.conv.{p}', kinds: ALL },
  { official: 'head.{i+1}.body.0.{p}', ours: 'head.res.{i}.conv1.{p}', kinds: ALL },
  { official: 'head.{i+1}.body.2.{p}', ours: 'head.res.{i}.conv2.{p}', kinds: ALL },
  // Tail: [Upsampler(scale 1) = no tensors, ResBlock(C), conv C->C/2, ResBlock(C/2), conv C/2->3].
  { official: 'tail.1.body.0.{p}', ours: 'tail.res1.0.conv1.{p}', kinds: ALL },
  { official: 'tail.1.body.2.{p}', ours: 'tail.res1.0.conv2.{p}', kinds: ALL },
  { official: 'tail.2.{p}', ours: 'tail.reduce.{p}', kinds: ALL },
  { official: 'tail.3.body.0.{p}', ours: 'tail.res2.0.conv1.{p}', kinds: ALL },
  { official: 'tail.3.body.2.{p}', ours: 'tail.res2.0.conv2.{p}', kinds: ALL },
  { official: 'tail.4.{p}', ours: 'tail.out.{p}', kinds: ALL },
];

// A compiled template: a regex capturing each placeholder, and the placeholder's variable + offset.
interface Compiled {
  readonly re: RegExp;
  readonly slots: readonly { name: string; offset: number }[];
  readonly template: string;
}

function compile(template: string): Compiled {
  const slots: { name: string; offset: number }[] = [];
  const escaped = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
  const source = escaped.replace(/\{(\w)(?:\\\+(\d+))?\}/g, (_m, name: string, off?: string) => {
    slots.push({ name, offset: off ? Number(off) : 0 });
    return name === 'p' ? '(weight|bias)' : '(\\d+)';
  });
  return { re: new RegExp(`^${source}$`), slots, template };
}

function translate(name: string, from: Compiled, to: Compiled): string | undefined {
  const m = from.re.exec(name);
  if (!m) return undefined;
  const vars: Record<string, string> = {};
  for (let s = 0; s < from.slots.length; s++) {
    const { name: v, offset } = from.slots[s]!;
    const text = m[s + 1]!;
    if (v === 'p') {
      vars[v] = text;
      continue;
    }
    const value = Number(text) - offset; // official `{e+3}` = 5 -> e = 2
    if (value < 0) return undefined;
    vars[v] = String(value);
  }
  return to.template.replace(/\{(\w)(?:\+(\d+))?\}/g, (_m, v: string, off?: string) =>
    v === 'p' ? vars[v]! : String(Number(vars[v]) + (off ? Number(off) : 0)),
  );
}

const compiled = rules.map((r) => ({ kinds: r.kinds, official: compile(r.official), ours: compile(r.ours) }));

/** Strip the `module.` prefix that DistributedDataParallel adds to official checkpoint keys. */
export function stripDdpPrefix(name: string): string {
  return name.startsWith('module.') ? name.slice('module.'.length) : name;
}

/** Our name for an official state-dict key of a model of the given kind (a `module.` prefix is
 *  accepted). Throws on a key that does not belong to that kind of model. */
export function officialToOurs(name: string, ffn: FfnKind): string {
  const key = stripDdpPrefix(name);
  for (const r of compiled) {
    if (!r.kinds.includes(ffn)) continue;
    const ours = translate(key, r.official, r.ours);
    if (ours !== undefined) return ours;
  }
  throw new Error(`officialToOurs: no ${ffn} parameter is named '${name}' in the official model`);
}

/** The official state-dict key (without `module.`) for one of our parameter names. */
export function oursToOfficial(name: string, ffn: FfnKind): string {
  for (const r of compiled) {
    if (!r.kinds.includes(ffn)) continue;
    const official = translate(name, r.ours, r.official);
    if (official !== undefined) return official;
  }
  throw new Error(`oursToOfficial: '${name}' has no official counterpart in a ${ffn} model`);
}

/** Which official model a set of state-dict keys comes from: MoFME has `layers.L.3.*` (the FiLM
 *  list), the MoE has per-expert norms under `layers.L.2.e.norm`, the dense ViT neither. */
export function detectOfficialKind(keys: Iterable<string>): FfnKind {
  let kind: FfnKind = 'dense';
  for (const raw of keys) {
    const key = stripDdpPrefix(raw);
    if (/\.transformer\.layers\.\d+\.3\./.test(key)) return 'mofme';
    if (/\.transformer\.layers\.\d+\.2\.\d+\.norm\./.test(key)) kind = 'moe';
  }
  return kind;
}

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

/**
 * The deepcopy-identical initial weights of the official code (`officialSharedInit`), as copies:
 * the gated unit's value ← gate; for blocks L ≥ 1 the router (moe, mofme) and the shared FFN
 * (mofme) ← block 0's.
 */
export function applyOfficialSharedInit(model: MoFME): void {
  noGrad(() => {
    const copy = (dst: Linear, src: Linear): void => {
      dst.weight.assign(keep(src.weight.clone()));
      if (dst.bias && src.bias) dst.bias.assign(keep(src.bias.clone()));
    };
    const first = model.blocks.at(0).ffn;
    model.blocks.map((block, l) => {
      const ffn = block.ffn;
      if (ffn instanceof FmeFfn) copy(ffn.base.value, ffn.base.gate);
      if (l === 0) return;
      if (ffn instanceof FmeFfn && first instanceof FmeFfn) {
        copy(ffn.router, first.router);
        copy(ffn.shared.fc1, first.shared.fc1);
        copy(ffn.shared.fc2, first.shared.fc2);
      } else if (ffn instanceof MoeFfn && first instanceof MoeFfn) {
        copy(ffn.router, first.router);
      }
    });
  });
}
