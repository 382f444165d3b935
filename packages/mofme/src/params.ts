// The parameter inventory of a MoFME configuration: every tensor the model owns, by its readable
// dotted name (PyTorch state-dict style) and shape, in module order. It is the contract between
// this package's parts: `src/model.ts` must register exactly these names and shapes (a test can
// compare `model.namedParameters()` with this list), `official-names.ts` maps them to the official
// checkpoint keys, and `countParameters` (count.ts) must agree with the sum of their sizes.
//
// Layout conventions, shared with PyTorch so that official checkpoints load without transposes:
// Linear weights are [out, in]; conv weights are [outC, inC, kh, kw]; the fused qkv weight is
// [3·heads·headDim, D] with q, k, v stacked in that order and the head index slower than headDim.

import type { MofmeConfig } from './config';
import { attnInnerOf, mlpHiddenOf, tokensOf } from './config';

export interface ParamSpec {
  /** Dotted name, e.g. `blocks.0.ffn.experts.film.3.gamma.weight`. */
  readonly name: string;
  readonly shape: readonly number[];
}

/** Every parameter of the model built from `config`, in registration order. */
export function parameterShapes(c: MofmeConfig): ParamSpec[] {
  const out: ParamSpec[] = [];
  const add = (name: string, ...shape: number[]) => out.push({ name, shape });
  const linear = (name: string, inF: number, outF: number, bias = true) => {
    add(`${name}.weight`, outF, inF);
    if (bias) add(`${name}.bias`, outF);
  };
  const conv = (name: string, inC: number, outC: number, k: number) => {
    add(`${name}.weight`, outC, inC, k, k);
    add(`${name}.bias`, outC);
  };
  const norm = (name: string, d: number) => {
    add(`${name}.weight`, d);
    add(`${name}.bias`, d);
  };
  const resBlock = (name: string, ch: number) => {
    conv(`${name}.conv1`, ch, ch, 3); // conv -> ReLU -> conv, + input
    conv(`${name}.conv2`, ch, ch, 3);
  };

  const d = c.dim;
  const hidden = mlpHiddenOf(c);
  const inner = attnInnerOf(c);
  const ch = c.headChannels;
  const ct = c.tailChannels;
  const p = c.patchSize;

  conv('head.conv', 3, ch, 3);
  for (let i = 0; i < c.headResBlocks; i++) resBlock(`head.res.${i}`, ch);
  conv('patchEmbed.proj', ch, d, p);
  norm('patchEmbed.norm', d);
  if (c.officialUnusedParams) add('posEmbed', 1, tokensOf(c, c.imageSize, c.imageSize), d);

  for (let l = 0; l < c.depth; l++) {
    const b = `blocks.${l}`;
    norm(`${b}.attn.norm`, d);
    linear(`${b}.attn.qkv`, d, 3 * inner, false);
    linear(`${b}.attn.out`, inner, d);
    const f = `${b}.ffn`;
    if (c.ffn === 'dense') {
      norm(`${f}.norm`, d);
      linear(`${f}.fc1`, d, hidden);
      linear(`${f}.fc2`, hidden, d);
    } else if (c.ffn === 'moe') {
      linear(`${f}.router`, d, c.experts);
      for (let e = 0; e < c.experts; e++) {
        norm(`${f}.experts.${e}.norm`, d);
        linear(`${f}.experts.${e}.fc1`, d, hidden);
        linear(`${f}.experts.${e}.fc2`, hidden, d);
      }
    } else {
      linear(`${f}.router`, d, c.experts);
      norm(`${f}.norm`, d);
      linear(`${f}.base.gate`, d, d); // GELU branch of the gated unit
      linear(`${f}.base.value`, d, d); // linear branch
      for (let e = 0; e < c.experts; e++) {
        linear(`${f}.experts.film.${e}.gamma`, d, d);
        linear(`${f}.experts.film.${e}.beta`, d, d);
        if (c.officialUnusedParams) norm(`${f}.experts.film.${e}.norm`, d);
      }
      linear(`${f}.shared.fc1`, d, hidden);
      linear(`${f}.shared.fc2`, hidden, d);
    }
  }

  linear('unpatchify', d, p * p * ct);
  for (let i = 0; i < c.tailResBlocks; i++) resBlock(`tail.res1.${i}`, ct);
  conv('tail.reduce', ct, ct / 2, 3);
  for (let i = 0; i < c.tailResBlocks; i++) resBlock(`tail.res2.${i}`, ct / 2);
  conv('tail.out', ct / 2, 3, 3);
  return out;
}

/** Number of values in a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
