// The MoFME restoration network (AAAI 2024, arXiv 2312.16610, Fig. 3), with its two baselines.
//
// Read top to bottom it is Fig. 3(a): a full-resolution conv head with ResBlocks, a patch embedding
// + LayerNorm, N pre-norm transformer blocks, a Linear "un-patchify", a conv tail with ResBlocks and
// a sigmoid. Only the FFN of each block changes between the three models (config.ffn): the dense
// ViT FFN, the conventional MoE, or the paper's FME layer (Fig. 3(b)). The blocks, the three FFN
// layers and both routers are the public block API in blocks.ts; this file only composes them
// from a `MofmeConfig`, which it hands on whole: the FFN's own fields (experts, top-k, router, ...)
// are read where they take effect, by blocks.ts's `ffnOptionsOf`. Compatibility with the official
// checkpoints (names, the deepcopy-shared initial weights) lives beside it in official.ts.
//
// Shapes in the comments are symbolic; the paper preset at 240x240 has Ch = 32, D = 384, N = 900,
// I = 512, F = 1536, Ct = 128. Layouts are PyTorch's, so official checkpoints load without transposes.

import { Generator, clamp, dropout, isGradEnabled, keep, noGrad, releaseAfterBackward, zeros, type DType, type Tensor } from '@mofme/tensor';
import { Conv2d, ModuleList, Module, PatchEmbed, PatchUnembed, ResBlock, chainDisposingUnderNoGrad, disposeTemporariesUnderNoGrad, init, withInitDefaults } from '@mofme/nn';
import { tokensOf, type MofmeConfig } from './config';
import { TransformerBlock, createFfn, ffnOptionsOf } from './blocks';
import { applyOfficialSharedInit } from './official';
import type { Routing } from './router';

/** One forward pass's result: the image and, per block, how its tokens were routed (null: dense FFN). */
export interface MofmeOutput {
  image: Tensor; // [B, 3, H, W] in [0, 1]
  routing: (Routing | null)[];
}

/**
 * The network's input convention, owned here and nowhere else: an image in [0, 1] enters as
 * (x − 0.5) / 0.5 in [−1, 1], the official loader's Normalize(mean 0.5, std 0.5). Training,
 * evaluation, tiled restoration and the residual output all go through these two functions.
 */
export function toModelInput(image: Tensor): Tensor {
  return image.sub(0.5).div(0.5);
}

/** The inverse of `toModelInput`: [−1, 1] back to [0, 1]. */
export function fromModelInput(x: Tensor): Tensor {
  return x.add(1).mul(0.5);
}

/** The transformer block of a config: pre-norm attention (heads x headDim) and the config's FFN. */
export function blockOf(c: MofmeConfig, generator: Generator): TransformerBlock {
  const attention = { dim: c.dim, heads: c.heads, headDim: c.headDim, dropout: c.dropout, eps: c.layerNormEps, generator };
  return new TransformerBlock(attention, createFfn(c.ffn, ffnOptionsOf(c, generator)));
}

/** Conv 3->Ch, then ResBlocks at full resolution. */
class Head extends Module {
  readonly conv: Conv2d;
  readonly res: ModuleList<ResBlock>;
  constructor(c: MofmeConfig) {
    super();
    this.conv = this.child('conv', new Conv2d(3, c.headChannels, 3, { padding: 1 }));
    this.res = this.child('res', new ModuleList(Array.from({ length: c.headResBlocks }, () => new ResBlock(c.headChannels))));
  }
  forward(x: Tensor): Tensor {
    // [B, Ch, H, W] throughout; under noGrad each step's input is freed once it has run
    return chainDisposingUnderNoGrad(x, [(t) => this.conv.forward(t), ...[...this.res].map((r) => (t: Tensor) => r.forward(t))]);
  }
}

/** ResBlocks at Ct, conv Ct->Ct/2, ResBlocks at Ct/2, conv Ct/2->3 (the official scale-1 upsampler is the identity). */
class Tail extends Module {
  readonly res1: ModuleList<ResBlock>;
  readonly reduce: Conv2d;
  readonly res2: ModuleList<ResBlock>;
  readonly out: Conv2d;
  constructor(c: MofmeConfig) {
    super();
    const ct = c.tailChannels, ct2 = ct / 2;
    this.res1 = this.child('res1', new ModuleList(Array.from({ length: c.tailResBlocks }, () => new ResBlock(ct))));
    this.reduce = this.child('reduce', new Conv2d(ct, ct2, 3, { padding: 1 }));
    this.res2 = this.child('res2', new ModuleList(Array.from({ length: c.tailResBlocks }, () => new ResBlock(ct2))));
    this.out = this.child('out', new Conv2d(ct2, 3, 3, { padding: 1 }));
  }
  forward(y: Tensor): Tensor {
    return chainDisposingUnderNoGrad(y, [
      ...[...this.res1].map((r) => (t: Tensor) => r.forward(t)), // [B, Ct, H, W]
      (t) => this.reduce.forward(t), // [B, Ct/2, H, W]
      ...[...this.res2].map((r) => (t: Tensor) => r.forward(t)),
      (t) => this.out.forward(t), // [B, 3, H, W]
    ]);
  }
}

// ---------------------------------------------------------------------------------------------
// The network (Fig. 3(a))
// ---------------------------------------------------------------------------------------------

export class MoFME extends Module {
  readonly head: Head;
  readonly patchEmbed: PatchEmbed; // conv k = stride = p as reshape + matmul, then LayerNorm
  readonly posEmbed: Tensor | null; // official dead tensor: allocated, never added
  readonly blocks: ModuleList<TransformerBlock>;
  readonly unpatchify: PatchUnembed; // Linear D -> p²·Ct per token, laid back onto its patch
  readonly tail: Tail;

  constructor(readonly config: MofmeConfig, readonly rng: Generator) {
    super();
    const c = config;
    this.head = this.child('head', new Head(c));
    this.patchEmbed = this.child('patchEmbed', new PatchEmbed(c.patchSize, c.headChannels, c.dim, { norm: true, eps: c.layerNormEps }));
    const n = tokensOf(c, c.imageSize, c.imageSize);
    this.posEmbed = c.officialUnusedParams ? this.param('posEmbed', init.normal([1, n, c.dim], 0, 1)) : null;
    this.blocks = this.child('blocks', new ModuleList(Array.from({ length: c.depth }, () => blockOf(c, rng))));
    this.unpatchify = this.child('unpatchify', new PatchUnembed(c.patchSize, c.dim, c.tailChannels));
    this.tail = this.child('tail', new Tail(c));
  }

  /** x [B, 3, H, W] in [−1, 1] (`toModelInput` of an image in [0, 1]); H and W multiples of the patch size. */
  forward(x: Tensor): MofmeOutput {
    const p = this.config.patchSize;
    const [, C, H, W] = x.shape as [number, number, number, number];
    if (x.ndim !== 4 || C !== 3) throw new Error(`MoFME: expected an image batch [B, 3, H, W], got [${x.shape.join(', ')}]`);
    if (H % p !== 0 || W % p !== 0) {
      throw new Error(`MoFME: image size ${H}x${W} is not a multiple of the patch size ${p}; pad it (restore() does) or crop it`);
    }
    const pass = (): MofmeOutput => {
      // Under noGrad (evaluation, restore) each stage's input is freed as soon as the next stage has
      // made its output (chainDisposingUnderNoGrad), and each layer frees its own temporaries when it
      // returns (so does this whole pass, keeping only the image and the routing weights): a forward
      // then holds about one stage's tensors at a time instead of all of them
      const routing: (Routing | null)[] = [];
      const out = chainDisposingUnderNoGrad(x, [
        (t) => this.head.forward(t), // [B, Ch, H, W]
        (t) => this.patchEmbed.forward(t), // [B, N, D], N = (H/p)(W/p); posEmbed NOT added (official)
        (t) => dropout(t, this.config.embedDropout, this.training, this.rng),
        ...[...this.blocks].map((block) => (t: Tensor) => {
          const step = block.forward(t); // [B, N, D]
          routing.push(step.routing);
          return step.t;
        }),
        (t) => this.unpatchify.forward(t, H, W), // [B, N, p²Ct] -> [B, Ct, H, W]
        (t) => this.tail.forward(t), // [B, 3, H, W]
      ]);
      if (this.config.residualOutput) {
        // input in [0, 1] plus a learned correction (tiny/small presets; see config.residualOutput)
        return { image: clamp(fromModelInput(x).add(out), 0, 1), routing };
      }
      return { image: out.sigmoid(), routing }; // official: sigmoid, no global residual
    };
    // under noGrad: everything but the image and the routing weights is freed on return; with
    // gradients on, the backward pass frees each intermediate once it is past it (memory.ts)
    return isGradEnabled() ? releaseAfterBackward(pass) : disposeTemporariesUnderNoGrad(pass);
  }

  /** Own parameters come first in Module's walk; list posEmbed after the patch embedding instead,
   *  the order of the official state dicts. */
  override namedParameters(): [string, Tensor][] {
    const all = super.namedParameters();
    const i = all.findIndex(([n]) => n === 'posEmbed');
    if (i < 0) return all;
    const [pos] = all.splice(i, 1);
    let last = -1;
    all.forEach(([n], j) => { if (n.startsWith('patchEmbed.')) last = j; });
    all.splice(last + 1, 0, pos!);
    return all;
  }
}

export interface CreateModelOptions {
  /** the stream for initialisation, dropout and the UaR's MC dropout */
  generator?: Generator;
  /** seed of a fresh generator (ignored when `generator` is given; default 0) */
  seed?: number;
  /** parameter dtype (float64 for gradient checks) */
  dtype?: DType;
}

/** Build the network of `config` (use resolveConfig first) with PyTorch-default initialisation. */
export function createModel(config: MofmeConfig, options: CreateModelOptions = {}): MoFME {
  const rng = options.generator ?? new Generator(options.seed ?? 0);
  const model = withInitDefaults({ generator: rng, ...(options.dtype ? { dtype: options.dtype } : {}) }, () => new MoFME(config, rng));
  if (config.officialSharedInit) applyOfficialSharedInit(model);
  if (config.residualOutput) {
    // zero the last convolution, so the untrained network is exactly the identity and training
    // only learns the correction (the "zero-init the last layer of a residual branch" trick);
    // its weights still get gradients at once, because the features feeding it are not zero
    noGrad(() => {
      model.tail.out.weight.assign(keep(zeros(model.tail.out.weight.shape, { dtype: model.tail.out.weight.dtype })));
      if (model.tail.out.bias) model.tail.out.bias.assign(keep(zeros(model.tail.out.bias.shape, { dtype: model.tail.out.bias.dtype })));
    });
  }
  return model;
}
