/**
 * Gradient clipping, to survive the occasional huge gradient (a bad batch, an attention spike).
 *
 * By global norm: treat all gradients as one long vector g; if |g| > maxNorm, scale every gradient
 * by maxNorm / |g|. The direction is kept, only the length is capped. Returns |g| before clipping,
 * a useful training health signal to log.
 * By value: clamp every gradient entry to [-clip, clip] (changes the direction; cruder).
 */
import { concat, keep, noGrad, type Tensor } from '@mofme/tensor';

export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, options: { normType?: number | 'inf' } = {}): number {
  const normType = options.normType ?? 2;
  const withGrad = [...params].filter((p) => p.grad !== null);
  if (withGrad.length === 0) return 0;
  return noGrad(() => {
    const first = withGrad[0]!.grad!;
    // one partial per parameter, gathered on one backend/dtype, so the host reads a single number
    const partial = (g: Tensor): Tensor => {
      const t = normType === 'inf' ? g.abs().max() : g.abs().pow(normType).sum(); // max |g| or sum |g|^p
      return (t.backend === first.backend && t.dtype === first.dtype ? t : t.to(first.backend, first.dtype)).reshape([1]);
    };
    const parts = concat(withGrad.map((p) => partial(p.grad!)));
    const total = normType === 'inf' ? parts.max().item() : parts.sum().item() ** (1 / normType);
    const coef = maxNorm / (total + 1e-6); // the 1e-6 keeps a zero gradient from dividing by zero (PyTorch's choice)
    if (coef < 1) replaceGrads(withGrad, (g) => g.mul(coef));
    return total;
  });
}

export function clipGradValue(params: Iterable<Tensor>, clip: number): void {
  noGrad(() => {
    replaceGrads([...params].filter((p) => p.grad !== null), (g) => g.clamp(-clip, clip));
  });
}

/**
 * Give each parameter a new gradient f(grad). Not `grad.assign(...)`: autograd may hand the very
 * same gradient tensor to two leaves (the backward of a + b returns g for both), and an in-place
 * change would then hit the other parameter too (or twice).
 */
function replaceGrads(params: Tensor[], f: (g: Tensor) => Tensor): void {
  const old = new Set<Tensor>();
  const fresh = new Map<Tensor, Tensor>(); // old grad -> its transformed value, computed once per tensor
  for (const p of params) {
    const g = p.grad!;
    old.add(g);
    if (!fresh.has(g)) fresh.set(g, keep(f(g)));
    p.grad = fresh.get(g)!;
  }
  for (const g of old) g.dispose();
}
