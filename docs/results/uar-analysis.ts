/**
 * The evidence behind docs/uar.md: why the Uncertainty-aware Router routes near-uniformly.
 *
 * For each trained model given on the command line, the router inputs of every block are captured
 * on 64×64 windows of the built-in test split, and the UaR (packages/mofme/src/router.ts, the code
 * under investigation) is run on them with the trained router's weights under several options:
 *
 * - repeatability: the same tokens routed twice with two MC-dropout seeds; the share of the k
 *   chosen experts that both draws choose (chance for random k-subsets: k/E);
 * - agreement with the clean router: the share of the UaR's k experts that are also among the k
 *   largest clean logits (chance k/E), and the top-1 agreement (chance 1/E);
 * - the z-score of the numerator: z = (r − μ)·√M / σ per expert. If r − μ were a signal, |z| would
 *   grow with M; if it is the Monte-Carlo error of the mean μ, z is ~N(0, 1) whatever M is;
 * - the distribution of the whitened weights ř (sign 'keep'): share negative, share of selections
 *   holding a negative weight, and a histogram against the linear router's softmax weights (PNG).
 *
 *   node --conditions=source --import tsx docs/results/uar-analysis.ts runs/uar-probe/uar runs/uar-probe/linear apps/cli/pretrained
 *
 * Writes docs/results/uar-analysis.json and docs/results/uar-weights.png and prints a markdown table.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { affine, defaultUar, linearRoute, measureCalibration, uarRoute, type FfnLayer, type ModelCalibration, type UarConfig } from '../../packages/mofme/src/index';
import { Generator, noGrad, tensor, type Tensor } from '../../packages/tensor/src/index';
import { builtinDataset, getPair } from '../../packages/data/src/index';
// The CLI's own modules, on purpose: this script reads run folders `mofme train` wrote (loadModelFile
// resolves ckpt-NNNNNN/ and best/ and answers with the CLI's errors) and draws the report's charts.
import { loadModelFile } from '../../apps/cli/src/checkpoint';
import { chartPng } from '../../apps/cli/src/charts';

const root = resolve(new URL('../..', import.meta.url).pathname);
const modelPaths = process.argv.slice(2);
if (!modelPaths.length) throw new Error('usage: uar-analysis.ts <model folder or file>...');
const WINDOW = 64;
const WINDOWS_PER_IMAGE = 1;

// ---- the input: two 64x64 windows (centre row, left and right thirds) of every test image ----
const ds = builtinDataset('test');
const windows: Float32Array[] = [], targets: Float32Array[] = [];
for (let i = 0; i < ds.length; i++) {
  const { input, target } = await getPair(ds, i);
  const y0 = Math.floor((input.height - WINDOW) / 2);
  for (let w = 0; w < WINDOWS_PER_IMAGE; w++) {
    const x0 = Math.floor(((w + 1) * (input.width - WINDOW)) / (WINDOWS_PER_IMAGE + 1));
    const out = new Float32Array(3 * WINDOW * WINDOW), clean = new Float32Array(3 * WINDOW * WINDOW);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < WINDOW; y++)
        for (let x = 0; x < WINDOW; x++) {
          const at = (c * input.height + y0 + y) * input.width + x0 + x;
          out[(c * WINDOW + y) * WINDOW + x] = input.data[at]! * 2 - 1;
          clean[(c * WINDOW + y) * WINDOW + x] = target.data[at]!;
        }
    windows.push(out), targets.push(clean);
  }
}
const batch = new Float32Array(windows.length * 3 * WINDOW * WINDOW);
windows.forEach((w, i) => batch.set(w, i * w.length));
const x = tensor(batch, { shape: [windows.length, 3, WINDOW, WINDOW] });
const targetBatch = new Float32Array(batch.length);
targets.forEach((w, i) => targetBatch.set(w, i * w.length));
const target = tensor(targetBatch, { shape: [windows.length, 3, WINDOW, WINDOW] });
/** per model: the router calibration (packages/mofme/src/calibration.ts) on the same windows */
const calibrations: { model: string; report: ModelCalibration }[] = [];

/** chosen-set overlap |A ∩ B| / k, averaged over tokens */
function overlap(a: Int32Array, b: Int32Array, k: number): number {
  let s = 0;
  for (let t = 0; t < a.length / k; t++) {
    const A = a.subarray(t * k, t * k + k), B = b.subarray(t * k, t * k + k);
    for (const e of A) if (B.includes(e)) s++;
  }
  return s / a.length;
}
const top1 = (idx: Int32Array, k: number): Int32Array => Int32Array.from({ length: idx.length / k }, (_, t) => idx[t * k]!);

interface Row { model: string; router: string; block: number; option: string; M: number; repeat: number; agreeClean: number; top1Clean: number; zRms: number; negShare: number; negSelected: number; snrRepeat: number; snrAgreeClean: number }
const rows: Row[] = [];
const started = performance.now();
const histogram: { model: string; kind: string; value: number }[] = [];

for (const path of modelPaths) {
  const { model, config } = await loadModelFile(resolve(root, path));
  model.eval();
  const name = `${path} (${config.ffn} E=${config.experts} k=${config.topk}, trained with ${config.router})`;
  // capture each block's router input (the un-normalised residual stream the FFN receives)
  const inputs: Tensor[] = [];
  for (const block of model.blocks) {
    const ffn = (block as unknown as { ffn: FfnLayer & { router?: { weight: Tensor; bias: Tensor | null } } }).ffn;
    const apply = ffn.apply.bind(ffn);
    ffn.apply = (t: Tensor) => (inputs.push(t), apply(t));
  }
  noGrad(() => model.forward(x));
  for (const block of model.blocks) delete (block as unknown as { ffn: Record<string, unknown> }).ffn.apply; // back to the class method
  calibrations.push({ model: name, report: measureCalibration(model, x, target) });
  console.error(`${path}: calibration measured (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  const k = config.topk, E = config.experts;
  [...model.blocks].forEach((block, b) => {
    const ffn = (block as unknown as { ffn: { router: { weight: Tensor; bias: Tensor | null } } }).ffn;
    const t = inputs[b]!, W = ffn.router.weight, bias = ffn.router.bias;
    noGrad(() => {
      const logits = affine(t, W, bias);
      const clean = linearRoute(logits, k, 'maskThenSoftmax');
      for (const v of clean.weights.data()) if (v !== 0) histogram.push({ model: name, kind: 'linear router: softmax weight', value: v });
      const probs = [...logits.softmax(-1).data()];
      const variants: [string, Partial<UarConfig>][] = [
        ['keep, input', {}], ['relu, input', { sign: 'relu' }], ['abs, input', { sign: 'abs' }], ['keep, logits', { dropoutPlace: 'logits' }],
      ];
      for (const [option, o] of variants) {
        for (const M of [5, 50]) {
          if (M !== 5 && option !== 'keep, input') continue;
          const u: UarConfig = { ...defaultUar, ...(config.router === 'uar' ? config.uar : {}), ...o, samples: M };
          const a = uarRoute(t, W, bias, k, u, new Generator(11)), c = uarRoute(t, W, bias, k, u, new Generator(12));
          // the numerator's z-score from the same M samples (recomputed here from the definition)
          const draw = (g: Generator) => Array.from({ length: M }, () => (u.dropoutPlace === 'input' ? affine(t.mul(bernoulliKeep(t, u.dropout, g)), W, bias) : affine(t, W, null).mul(bernoulliKeep(logits, u.dropout, g)).add(bias ?? 0)).softmax(-1).data());
          const samples = draw(new Generator(11));
          // the alternative that keeps the paper's intent (down-weight uncertain experts) without the
          // zero-mean numerator: rank experts by the MC mean over its standard deviation, μ/σ
          const snrTopk = (set: ArrayLike<number>[]): Int32Array => {
            const idx = new Int32Array((probs.length / E) * k);
            for (let tk = 0; tk < probs.length / E; tk++) {
              const score = Array.from({ length: E }, (_, e) => {
                let m = 0, v = 0;
                for (const q of set) m += q[tk * E + e]!;
                m /= set.length;
                for (const q of set) v += (q[tk * E + e]! - m) ** 2;
                return m / Math.sqrt(v / (set.length - 1) + u.eps);
              });
              [...score.keys()].sort((a2, b2) => score[b2]! - score[a2]! || a2 - b2).slice(0, k).forEach((e, j) => (idx[tk * k + j] = e));
            }
            return idx;
          };
          const snrA = option === 'keep, input' ? snrTopk(samples) : null, snrB = option === 'keep, input' ? snrTopk(draw(new Generator(13))) : null;
          let z2 = 0;
          for (let i = 0; i < probs.length; i++) {
            let m = 0;
            for (const s of samples) m += s[i]!;
            m /= M;
            let v = 0;
            for (const s of samples) v += (s[i]! - m) ** 2;
            v /= M - 1;
            z2 += v > 1e-20 ? ((probs[i]! - m) ** 2 * M) / v : 0;
          }
          const w = [...a.weights.data()];
          let neg = 0, negSel = 0;
          for (let tk = 0; tk < w.length / E; tk++) {
            const row = w.slice(tk * E, tk * E + E);
            if (row.some((q) => q < 0)) negSel++;
          }
          if (option === 'keep, input' && M === 5) {
            // the full whitened vector before top-k: all E entries (k = E keeps everything)
            const full = [...uarRoute(t, W, bias, E, u, new Generator(11)).weights.data()];
            neg = full.filter((q) => q < 0).length / full.length;
            for (const q of w) if (q !== 0) histogram.push({ model: name, kind: 'UaR (M=5, keep): calibrated weight', value: q });
          }
          console.error(`${path} block ${b}: ${option}, M=${M} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
          rows.push({
            model: name, router: config.router, block: b, option, M,
            repeat: overlap(a.indices, c.indices, k), agreeClean: overlap(a.indices, clean.indices, k),
            top1Clean: overlap(top1(a.indices, k), top1(clean.indices, k), 1),
            zRms: Math.sqrt(z2 / probs.length), negShare: neg, negSelected: negSel / (w.length / E),
            snrRepeat: snrA && snrB ? overlap(snrA, snrB, k) : NaN, snrAgreeClean: snrA ? overlap(snrA, clean.indices, k) : NaN,
          });
        }
      }
    });
  });
}

/** the inverted-dropout multiplier (keep ~ Bernoulli(1 − p)) / (1 − p), drawn from `g` */
function bernoulliKeep(like: Tensor, p: number, g: Generator): Tensor {
  const n = like.shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from({ length: n }, () => (g.random() < 1 - p ? 1 / (1 - p) : 0)), { shape: [...like.shape] });
}

writeFileSync(join(root, 'docs/results/uar-analysis.json'), JSON.stringify({ windows: windows.length, window: WINDOW, rows, calibrations }, null, 1) + '\n');
console.log(`${windows.length} windows of ${WINDOW}x${WINDOW} from the built-in test split\n`);
console.log('| model | block | UaR option | M | same k experts in two MC draws | in the clean top-k | top-1 = clean top-1 | rms z of r − μ | ř entries < 0 | selections with a negative weight | μ/σ ranking: same k in two draws | μ/σ: in the clean top-k |');
console.log('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.model} | ${r.block} | ${r.option} | ${r.M} | ${r.repeat.toFixed(3)} | ${r.agreeClean.toFixed(3)} | ${r.top1Clean.toFixed(3)} | ${r.zRms.toFixed(2)} | ${r.option === 'keep, input' && r.M === 5 ? r.negShare.toFixed(3) : ''} | ${r.negSelected.toFixed(3)} | ${Number.isNaN(r.snrRepeat) ? '' : r.snrRepeat.toFixed(3)} | ${Number.isNaN(r.snrAgreeClean) ? '' : r.snrAgreeClean.toFixed(3)} |`);
}
console.log('\n| model | routing in use | top-1 = best expert (chance 0.25) | mean confidence | ECE | loss increase when swapped (×10⁻⁴ MSE) | tokens hurt by the swap |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const { model: m, report } of calibrations) {
  const p = report.pooled;
  console.log(`| ${m} | ${m.includes('with uar') ? 'UaR' : 'linear'} | ${p.accuracy.toFixed(3)} | ${p.meanConfidence.toFixed(3)} | ${p.ece.toFixed(3)} | ${(p.swapIncrease * 1e4).toFixed(2)} | ${p.swapHurts.toFixed(3)} |`);
}
await chartPng({
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title: 'Kept routing weights: linear softmax vs UaR (M = 5, sign keep)',
  data: { values: histogram }, width: 260, height: 160,
  mark: 'bar',
  encoding: {
    column: { field: 'kind', type: 'nominal', title: null },
    row: { field: 'model', type: 'nominal', title: null, header: { labelAngle: 0, labelAlign: 'left', labelLimit: 260 } },
    x: { field: 'value', type: 'quantitative', bin: { maxbins: 40, extent: [-1, 1] }, title: 'weight' },
    y: { aggregate: 'count', type: 'quantitative', title: 'kept weights' },
  },
} as never, join(root, 'docs/results/uar-weights.png'));
console.log('\nwrote docs/results/uar-analysis.json, docs/results/uar-weights.png');
