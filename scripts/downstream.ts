/**
 * The paper's downstream experiments (issue 15): does the FME layer generalise beyond restoration?
 * One command trains, from scratch and with the same budget, four variants of the same small
 * transformer, built from the public block API of @mofme/mofme, that differ only in their FFN:
 *
 *   dense          the ViT baseline FFN
 *   MoE            4 full FFN experts, top-2, linear router
 *   MoFME-linear   the FME layer, 4 FiLM experts, top-2, linear router
 *   MoFME-UaR      the FME layer, 4 FiLM experts, top-2, the Uncertainty-aware Router
 *
 * on three tasks, each for three seeds (the seed sets the initial weights and the batch order; the
 * data are fixed):
 *
 *   fmnist   Fashion-MNIST classification (10 classes, real labels; Debian's dataset-fashion-mnist)
 *   weather  which weather is in a photo crop (clean, rain, rain+fog, snow, raindrop, haze), trained
 *            on the built-in training photos and tested on the held-out val + test scenes
 *   seg      per-pixel degradation masks (none, rain streak, snowflake, raindrop, thick haze) on the
 *            same crops, whose labels are exact: the synthesiser's own layers, thresholded
 *
 * and writes docs/downstream.md (tables, a chart, and a paragraph whose sentences are computed from
 * the numbers) with its figures and raw results under docs/downstream/.
 *
 *   pnpm downstream                       # everything, at the page's sizes (SIZES below)
 *   pnpm downstream --task weather        # one task; its results go to docs/downstream/weather.json
 *   pnpm downstream --fmnist-train 10000 --fmnist-epochs 5   # other sizes (every SIZES key is a flag)
 *   pnpm downstream --report-only         # rewrite the page from the saved results, training nothing
 *   pnpm downstream --task fmnist --seeds 3 --docs runs/s3   # one seed in a second process, then
 *   pnpm downstream --merge runs/s3 --report-only             # its runs join the page's results
 *   pnpm downstream --smoke               # tiny sizes, one seed, into runs/downstream-smoke (CI)
 *
 * Times are measured as CPU time of the process (process.cpuUsage: the main thread and the matmul
 * worker threads together), because the machine this runs on is shared: wall time there says more
 * about the neighbours than about the model.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { Generator, crossEntropy, indexSelect, noGrad, tensor, tidy, type Tensor } from '../packages/tensor/src/index';
import { AdamW, LRScheduler, warmupCosineSchedule, withInitDefaults, writeFileAtomicSync, type Module } from '../packages/nn/src/index';
import { RouterStats, ViTClassifier, ViTSegmenter, type BackboneOptions, type Routing } from '../packages/mofme/src/index';
import {
  FASHION_MNIST_CLASSES, builtinPhotos, cropImage, loadFashionMnist, photosDir, readImage, resizeImage, synthesize, type Image, type Weather,
} from '../packages/data/src/index';
import { chartPng, routingSpec } from '../apps/cli/src/charts';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const root = resolve(new URL('..', import.meta.url).pathname);
// Node's own argument parser: an unknown flag is an error that names it, not a silent default
const options = {
  smoke: { type: 'boolean', default: false },
  'report-only': { type: 'boolean', default: false },
  task: { type: 'string', default: 'all' },
  seeds: { type: 'string' },
  docs: { type: 'string' },
  // comma-separated folders given to --docs by other processes (e.g. one per seed, run side by
  // side): their finished runs of the same sizes are added to this folder's results first
  merge: { type: 'string' },
  // the sizes (see SIZES): a flag overrides the default of the page, or of --smoke
  'fmnist-train': { type: 'string' },
  'fmnist-test': { type: 'string' },
  'fmnist-epochs': { type: 'string' },
  'crops-train': { type: 'string' },
  'crops-test': { type: 'string' },
  'weather-epochs': { type: 'string' },
  'seg-epochs': { type: 'string' },
} as const;
let parsed: ReturnType<typeof parseArgs<{ options: typeof options }>>;
try {
  parsed = parseArgs({ options });
} catch (e) {
  console.error(`downstream: ${(e as Error).message} (flags: ${Object.keys(options).map((k) => `--${k}`).join(', ')})`);
  process.exit(2);
}
const args = parsed.values;
const smoke = args.smoke!;
const reportOnly = args['report-only']!;
const TASKS = ['fmnist', 'weather', 'seg'] as const;
type TaskName = (typeof TASKS)[number];
const only = args.task!;
if (only !== 'all' && !TASKS.includes(only as TaskName)) throw new Error(`downstream: --task ${only} is not one of all, ${TASKS.join(', ')}`);
const seeds = (args.seeds ?? (smoke ? '1' : '1,2,3')).split(',').map(Number);
if (seeds.some((s) => !Number.isInteger(s))) throw new Error(`downstream: --seeds ${args.seeds} is not a comma-separated list of integers`);
const docs = resolve(root, args.docs ?? (smoke ? 'runs/downstream-smoke' : 'docs'));
const resultsDir = join(docs, 'downstream');

// The sizes of the page, from a measured probe: CPU time per training image at batch 64 on the
// 2-core machine is about 4 ms for dense, 8.5-9.5 ms for MoFME and 11.7 ms for the MoE on
// Fashion-MNIST (the 40x40 crops cost 1.5-2x that), so 3 seeds x 4 variants of one task cost about
// 100 ms of CPU per training image and epoch. At a load of ~20 a nice-10 process gets about a tenth
// of a core, so these sizes (about 10 CPU minutes per task) take 60-90 minutes with each task in
// its own process. Smoke sizes only check that the pipeline runs. Every key has a flag (--fmnist-train, ...).
const PAGE_SIZES = { fmnistTrain: 2560, fmnistTest: 2000, fmnistEpochs: 2, weatherTrain: 960, weatherTest: 480, weatherEpochs: 3, segEpochs: 3 };
const SMOKE_SIZES = { fmnistTrain: 64, fmnistTest: 32, fmnistEpochs: 1, weatherTrain: 36, weatherTest: 18, weatherEpochs: 1, segEpochs: 1 };
const SIZE_FLAGS = {
  fmnistTrain: 'fmnist-train', fmnistTest: 'fmnist-test', fmnistEpochs: 'fmnist-epochs',
  weatherTrain: 'crops-train', weatherTest: 'crops-test', weatherEpochs: 'weather-epochs', segEpochs: 'seg-epochs',
} as const;
const SIZES = { ...(smoke ? SMOKE_SIZES : PAGE_SIZES) };
for (const [key, flag] of Object.entries(SIZE_FLAGS) as [keyof typeof SIZES, keyof typeof args][]) {
  const given = args[flag] as string | undefined;
  if (given === undefined) continue;
  const n = Number(given);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`downstream: --${flag} ${given} is not a positive integer`);
  SIZES[key] = n;
}
// The backbone of every variant: D = 32, 2 blocks of 4 heads, FFN hidden 4·D, E = 4 experts, top-2.
const BACKBONE = { dim: 32, depth: 2, heads: 4, hidden: 128, experts: 4, topk: 2, dropout: 0 };
const CROP = 40; // weather crops: 40x40 windows of the photos at half size (240x160), patch 5 -> 64 tokens
const PHOTO = { height: 160, width: 240 };
const BATCH = smoke ? 32 : 64;
const LR = 2e-3; // AdamW, 10% linear warm-up then cosine to zero: the usual small-ViT-from-scratch recipe

interface Variant { name: string; ffn: 'dense' | 'moe' | 'mofme'; router: 'linear' | 'uar' }
const VARIANTS: Variant[] = [
  { name: 'dense', ffn: 'dense', router: 'linear' },
  { name: 'MoE', ffn: 'moe', router: 'linear' },
  { name: 'MoFME-linear', ffn: 'mofme', router: 'linear' },
  { name: 'MoFME-UaR', ffn: 'mofme', router: 'uar' },
];

// ---------------------------------------------------------------------------------------------
// 1. Data
// ---------------------------------------------------------------------------------------------

interface TaskData {
  kind: 'classify' | 'segment';
  shape: [number, number, number]; // C, H, W of one input
  patchSize: number;
  classes: string[];
  train: { x: Float32Array; y: Uint8Array; n: number };
  test: { x: Float32Array; y: Uint8Array; n: number; group: Uint8Array }; // group: the label routing is summarised by
  groups: string[];
  epochs: number;
  sizes: string; // for the page
}

function fashionMnist(): TaskData {
  const train = loadFashionMnist('train', { limit: SIZES.fmnistTrain });
  const test = loadFashionMnist('test', { limit: SIZES.fmnistTest });
  return {
    kind: 'classify', shape: [1, 28, 28], patchSize: 4, classes: [...FASHION_MNIST_CLASSES],
    train: { x: train.images, y: train.labels, n: train.count },
    test: { x: test.images, y: test.labels, n: test.count, group: test.labels },
    groups: [...FASHION_MNIST_CLASSES], epochs: SIZES.fmnistEpochs,
    sizes: `first ${train.count} training and first ${test.count} test images, 28x28, patch 4 (49 tokens), ${SIZES.fmnistEpochs} epochs`,
  };
}

const WEATHER_CLASSES = ['clean', 'rain', 'rain_fog', 'snow', 'raindrop', 'haze'] as const;
const SEG_CLASSES = ['none', 'rain streak', 'snowflake', 'raindrop', 'thick haze'];
// A pixel belongs to a degradation where the synthesiser's own layer says it is visibly there:
// streak intensity S, snow translucency z or drop alpha M above 0.1 (a tenth of full opacity), or
// haze transmission t below 0.5 (more than half of the scene light lost to the fog).
const LAYER_THRESHOLD = 0.1;
const THICK_HAZE = 0.5;

interface WeatherSamples { x: Float32Array; label: Uint8Array; mask: Uint8Array; n: number }

/** `n` crops, classes in turn, from the photos of `splits`; seeded, so every run sees the same data. */
async function weatherSamples(splits: string[], n: number, seed: number): Promise<WeatherSamples> {
  const photos = await Promise.all(builtinPhotos().filter((p) => splits.includes(p.split))
    .map(async (p) => resizeImage(await readImage(join(photosDir(), p.file)), PHOTO.height, PHOTO.width)));
  const g = new Generator(seed);
  const px = CROP * CROP;
  const x = new Float32Array(n * 3 * px), label = new Uint8Array(n), mask = new Uint8Array(n * px);
  for (let i = 0; i < n; i++) {
    const c = i % WEATHER_CLASSES.length;
    const photo = photos[g.int(photos.length)]!;
    const y0 = g.int(PHOTO.height - CROP + 1), x0 = g.int(PHOTO.width - CROP + 1);
    const clean = cropImage(photo, y0, x0, CROP, CROP);
    label[i] = c;
    let img: Image = clean;
    if (c > 0) {
      const weather = WEATHER_CLASSES[c] as Weather;
      // synthesise on the crop as if on the whole half-size photo (the frame sets sizes and depth)
      const frame = { y0, x0, fullHeight: PHOTO.height, fullWidth: PHOTO.width };
      const r = synthesize(clean, weather, { frame } as never, g.int(2 ** 31));
      img = r.image;
      const m = mask.subarray(i * px, (i + 1) * px);
      const cls = weather === 'snow' ? 2 : weather === 'raindrop' ? 3 : 1;
      if (r.transmission) for (let k = 0; k < px; k++) if (r.transmission[k]! < THICK_HAZE) m[k] = 4;
      if (r.mask) for (let k = 0; k < px; k++) if (r.mask[k]! > LAYER_THRESHOLD) m[k] = cls; // a streak in front of fog is a streak
      if (weather !== 'haze' && !r.mask) throw new Error(`downstream: synthesize('${weather}') returned no mask layer; the segmentation labels need it`);
    }
    x.set(img.data, i * 3 * px);
  }
  return { x, label, mask, n };
}

async function weatherTasks(): Promise<{ weather: TaskData; seg: TaskData }> {
  const train = await weatherSamples(['train'], SIZES.weatherTrain, 101);
  const test = await weatherSamples(['val', 'test'], SIZES.weatherTest, 202);
  const common = { shape: [3, CROP, CROP] as [number, number, number], patchSize: 5, groups: [...WEATHER_CLASSES] };
  const where = `${CROP}x${CROP} crops of the built-in photos at ${PHOTO.width}x${PHOTO.height}, patch 5 (64 tokens); ` +
    `${train.n} training crops from the 23 training photos, ${test.n} held-out crops from the 8 val + test photos (other scenes), classes in equal numbers`;
  return {
    weather: {
      kind: 'classify', classes: [...WEATHER_CLASSES], ...common, epochs: SIZES.weatherEpochs,
      train: { x: train.x, y: train.label, n: train.n }, test: { x: test.x, y: test.label, n: test.n, group: test.label },
      sizes: `${where}; ${SIZES.weatherEpochs} epochs`,
    },
    seg: {
      kind: 'segment', classes: SEG_CLASSES, ...common, epochs: SIZES.segEpochs,
      train: { x: train.x, y: train.mask, n: train.n }, test: { x: test.x, y: test.mask, n: test.n, group: test.label },
      sizes: `${where}; ${SIZES.segEpochs} epochs; labels: synthesiser layer > ${LAYER_THRESHOLD} (streak, flake, drop), transmission < ${THICK_HAZE} (thick haze)`,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Training and evaluation
// ---------------------------------------------------------------------------------------------

interface RunResult {
  variant: string;
  seed: number;
  /** accuracy (classify) or mIoU (segment), in [0, 1] */
  score: number;
  /** per class: recall (classify) or IoU (segment) */
  perClass: number[];
  params: number;
  /** wall time (contended on a shared machine) and CPU time of the process (all its threads) */
  trainSeconds: number;
  trainCpuSeconds?: number; // absent in results saved before CPU time was recorded
  evalMsPerImage: number;
  evalCpuMsPerImage?: number;
  finalLoss: number;
  /** per block, per group (class / weather), per expert: share of tokens whose top-k includes it */
  routing: number[][][] | null;
  /** the code it ran (REVISION) and when it started */
  revision?: string;
  started?: string;
}

function buildModel(task: TaskData, v: Variant, seed: number): ViTClassifier | ViTSegmenter {
  const [C, H, W] = task.shape;
  const backbone: BackboneOptions = { channels: C, height: H, width: W, patchSize: task.patchSize, ...BACKBONE, ffn: v.ffn, router: v.router };
  const generator = new Generator(seed);
  return withInitDefaults({ generator }, () => task.kind === 'classify'
    ? new ViTClassifier({ ...backbone, classes: task.classes.length, generator })
    : new ViTSegmenter({ ...backbone, classes: task.classes.length, decoderChannels: 8, generator }));
}

/** Inputs [B, C, H, W] in [−1, 1] (the repository's input convention) for the rows `idx`. */
function batchOf(x: Float32Array, shape: [number, number, number], idx: readonly number[]): Tensor {
  const size = shape[0] * shape[1] * shape[2];
  const out = new Float32Array(idx.length * size);
  idx.forEach((r, i) => out.set(x.subarray(r * size, (r + 1) * size), i * size));
  return tensor(out, { shape: [idx.length, ...shape] }).sub(0.5).div(0.5);
}

/** Per-pixel (or per-image) labels of the rows `idx`, as a float tensor of class indices. */
function labelsOf(y: Uint8Array, per: number, idx: readonly number[]): Tensor {
  const out = new Float32Array(idx.length * per);
  idx.forEach((r, i) => { for (let k = 0; k < per; k++) out[i * per + k] = y[r * per + k]!; });
  return tensor(out, { shape: [idx.length * per] });
}

/** Segmentation logits [B, K, H, W] -> rows [B·H·W, K] for the cross-entropy. */
const pixelRows = (logits: Tensor): Tensor => {
  const K = logits.shape[1]!;
  return logits.permute([0, 2, 3, 1]).reshape([-1, K]);
};

/** Class weights ∝ frequency^−½, mean 1 over the training pixels: rare streak pixels still count. */
function classWeights(y: Uint8Array, K: number): Float32Array {
  const count = new Float64Array(K);
  for (const c of y) count[c]! += 1;
  const w = Float32Array.from(count, (n) => (n > 0 ? (n / y.length) ** -0.5 : 0));
  let mean = 0;
  for (let c = 0; c < K; c++) mean += (w[c]! * count[c]!) / y.length;
  return w.map((v) => v / mean);
}

/** The code a run used: HEAD, marked when packages/ had uncommitted changes (the tree is shared). */
const REVISION = ((): string => {
  try {
    const git = (...a: string[]): string => execFileSync('git', a, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--', 'packages') ? ' + uncommitted changes' : '');
  } catch {
    return 'unknown (no git)';
  }
})();

/** CPU seconds this process has used, all threads (the matmul workers included). */
const cpuSeconds = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

function train(task: TaskData, v: Variant, seed: number, log: (s: string) => void): RunResult {
  const started = new Date().toISOString();
  const model = buildModel(task, v, seed);
  const g = new Generator(seed * 7919 + 1);
  const per = task.kind === 'segment' ? task.shape[1] * task.shape[2] : 1;
  const stepsPerEpoch = Math.ceil(task.train.n / BATCH);
  const total = stepsPerEpoch * task.epochs;
  const opt = new AdamW(model.parameters(), { lr: LR, weightDecay: 0.05 });
  const sched = new LRScheduler(opt, warmupCosineSchedule({ warmup: Math.round(total / 10), total }));
  const weights = task.kind === 'segment' ? tensor(classWeights(task.train.y, task.classes.length)) : null;
  const t0 = performance.now(), c0 = cpuSeconds();
  let finalLoss = NaN, step = 0;
  model.train();
  for (let epoch = 0; epoch < task.epochs; epoch++) {
    const order = g.permutation(task.train.n);
    for (let s = 0; s < stepsPerEpoch; s++) {
      const idx = order.slice(s * BATCH, (s + 1) * BATCH);
      finalLoss = tidy(() => {
        const x = batchOf(task.train.x, task.shape, idx);
        const y = labelsOf(task.train.y, per, idx);
        const { logits } = model.forward(x);
        const loss = weights
          ? crossEntropy(pixelRows(logits), y, 'none').mul(indexSelect(weights, 0, y)).mean()
          : crossEntropy(logits, y);
        opt.zeroGrad();
        loss.backward();
        opt.step();
        sched.step();
        return loss.item();
      });
      step++;
      if (step % 20 === 0 || step === total) {
        const cpu = cpuSeconds() - c0, wall = (performance.now() - t0) / 1000;
        log(`epoch ${epoch + 1}/${task.epochs} step ${step}/${total} loss ${finalLoss.toFixed(4)} | ${(1000 * cpu / (step * BATCH)).toFixed(1)} ms CPU / image, ` +
          `${wall.toFixed(0)} s so far, about ${((wall / step) * (total - step)).toFixed(0)} s to go (load ${loadavg()[0]!.toFixed(1)})`);
      }
    }
  }
  const trainSeconds = (performance.now() - t0) / 1000, trainCpuSeconds = cpuSeconds() - c0;

  // evaluation: score, per-class figures and routing per class, in eval mode without gradients
  model.eval();
  const K = task.classes.length;
  const confusion = Array.from({ length: K }, () => new Float64Array(K)); // [true][predicted]
  const stats = new RouterStats();
  const t1 = performance.now(), c1 = cpuSeconds();
  for (let s = 0; s < task.test.n; s += 100) {
    const idx = Array.from({ length: Math.min(100, task.test.n - s) }, (_, i) => s + i);
    noGrad(() => tidy(() => {
      const { logits, routing } = model.forward(batchOf(task.test.x, task.shape, idx));
      const pred = (task.kind === 'segment' ? pixelRows(logits) : logits).argmax(1).data();
      const truth = labelsOf(task.test.y, per, idx).data();
      for (let i = 0; i < pred.length; i++) confusion[truth[i]!]![pred[i]!]! += 1;
      if (routing.some((r) => r)) stats.update(routing as (Routing | null)[], idx.map((r) => task.groups[task.test.group[r]!]!));
    }));
  }
  const evalMsPerImage = (performance.now() - t1) / task.test.n, evalCpuMsPerImage = (1000 * (cpuSeconds() - c1)) / task.test.n;
  const row = (c: number): number => confusion[c]!.reduce((a, b) => a + b, 0);
  const col = (c: number): number => confusion.reduce((a, r) => a + r[c]!, 0);
  let score: number, perClass: number[];
  if (task.kind === 'classify') {
    perClass = task.classes.map((_, c) => confusion[c]![c]! / Math.max(1, row(c)));
    score = perClass.reduce((a, _, c) => a + confusion[c]![c]!, 0) / task.test.n;
  } else {
    perClass = task.classes.map((_, c) => confusion[c]![c]! / Math.max(1, row(c) + col(c) - confusion[c]![c]!));
    const present = task.classes.map((_, c) => row(c) > 0);
    score = perClass.filter((_, c) => present[c]).reduce((a, b) => a + b, 0) / present.filter(Boolean).length;
  }
  const summary = stats.summary();
  const routing = summary.length === 0 ? null : Array.from({ length: BACKBONE.depth }, (_, l) =>
    task.groups.map((grp) => summary.find((r) => r.layer === l && r.task === grp)?.topkShare ?? []));
  return { variant: v.name, seed, score, perClass, params: (model as Module).numParameters(), trainSeconds, trainCpuSeconds, evalMsPerImage, evalCpuMsPerImage, finalLoss, routing, revision: REVISION, started };
}

interface TaskResult { task: TaskName; sizes: string; classes: string[]; groups: string[]; kind: TaskData['kind']; runs: RunResult[]; load: number[]; cpus: string; finished: string }

/** Train every variant and seed of a task. The results file is rewritten after each run, and a run
 *  already in it (same sizes) is not trained again, so an interrupted task resumes where it stopped. */
async function runTask(name: TaskName, data: TaskData): Promise<TaskResult> {
  const file = join(resultsDir, `${name}.json`);
  const previous = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as TaskResult) : null;
  const reuse = previous && previous.sizes === data.sizes ? previous : null;
  const result: TaskResult = {
    task: name, sizes: data.sizes, classes: data.classes, groups: data.groups, kind: data.kind, runs: reuse?.runs ?? [], load: reuse?.load ?? [],
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}`, finished: '',
  };
  mkdirSync(resultsDir, { recursive: true });
  for (const seed of seeds) {
    for (const v of VARIANTS) {
      const tag = `[${name} ${v.name} seed ${seed}]`;
      if (result.runs.some((r) => r.variant === v.name && r.seed === seed)) {
        console.log(`${tag} already in ${file}`);
        continue;
      }
      const r = train(data, v, seed, (s) => console.log(`${tag} ${s}`));
      result.load.push(loadavg()[0]!);
      console.log(`${tag} ${data.kind === 'classify' ? 'accuracy' : 'mIoU'} ${(100 * r.score).toFixed(2)}%, ${r.trainSeconds.toFixed(1)} s (${r.trainCpuSeconds!.toFixed(1)} s CPU), load ${loadavg()[0]!.toFixed(2)}`);
      result.runs.push(r);
      result.finished = new Date().toISOString();
      writeFileAtomicSync(file, utf8(JSON.stringify(result, null, 1)));
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// 3. The page
// ---------------------------------------------------------------------------------------------

const TITLES: Record<TaskName, string> = { fmnist: 'Fashion-MNIST classification', weather: 'Weather recognition on held-out scenes', seg: 'Degradation segmentation' };
const pct = (v: number, d = 1): string => (100 * v).toFixed(d);

function meanSd(xs: number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd };
}

interface VariantSummary {
  name: string; score: { mean: number; sd: number }; params: number; perClass: number[]; n: number;
  /** means over seeds: wall seconds, CPU seconds (training), CPU ms per test image (evaluation) */
  trainSeconds: number; trainCpuSeconds: number; evalCpuMs: number;
}

function summarise(r: TaskResult): VariantSummary[] {
  return VARIANTS.map((v) => r.runs.filter((x) => x.variant === v.name)).filter((rs) => rs.length > 0).map((rs) => ({
    name: rs[0]!.variant,
    score: meanSd(rs.map((x) => x.score)),
    params: rs[0]!.params,
    trainSeconds: meanSd(rs.map((x) => x.trainSeconds)).mean,
    trainCpuSeconds: meanSd(rs.map((x) => x.trainCpuSeconds ?? x.trainSeconds)).mean,
    evalCpuMs: meanSd(rs.map((x) => x.evalCpuMsPerImage ?? x.evalMsPerImage)).mean,
    perClass: rs[0]!.perClass.map((_, c) => meanSd(rs.map((x) => x.perClass[c]!)).mean),
    n: rs.length,
  }));
}

/** Sentences computed from the numbers: who is best, whether the gaps exceed the seed spread. */
function findings(r: TaskResult, s: VariantSummary[]): string[] {
  const metric = r.kind === 'classify' ? 'accuracy' : 'mIoU';
  const by = (n: string) => s.find((x) => x.name === n);
  const out: string[] = [];
  const best = [...s].sort((a, b) => b.score.mean - a.score.mean)[0]!;
  const worst = [...s].sort((a, b) => a.score.mean - b.score.mean)[0]!;
  const gap = best.score.mean - worst.score.mean;
  const spread = Math.max(...s.map((x) => x.score.sd));
  out.push(`${TITLES[r.task]}: ${best.name} has the highest mean ${metric} (${pct(best.score.mean)}%) and ${worst.name} the lowest (${pct(worst.score.mean)}%); ` +
    (Math.min(...s.map((x) => x.n)) < 2 ? `at least one variant has a single seed, so there is no spread to judge the gap of ${pct(gap)} points by.` : gap <= 2 * spread
      ? `the gap of ${pct(gap)} points is within twice the largest seed standard deviation (${pct(spread)} points), so these runs do not separate the variants.`
      : `the gap of ${pct(gap)} points is more than twice the largest seed standard deviation (${pct(spread)} points).`));
  if (r.kind === 'classify') out.push(`Chance is ${pct(1 / r.classes.length)}%.`);
  const separated = Math.min(...s.map((x) => x.n)) >= 2 && gap > 2 * spread;
  const mofmeBest = best.name.startsWith('MoFME');
  out.push(separated && mofmeBest
    ? `A MoFME variant is best by more than the seed noise: consistent with the paper's downstream claim.`
    : separated
      ? `The best variant is not a MoFME one, and the gap exceeds the seed noise: at this scale the runs do not support the paper's downstream claim.`
      : `These runs neither support nor refute the paper's downstream claim at this scale.`);
  const moe = by('MoE'), lin = by('MoFME-linear'), uar = by('MoFME-UaR'), dense = by('dense');
  if (moe && lin && dense) {
    const saved = 1 - lin.params / moe.params;
    const d = lin.score.mean - moe.score.mean;
    out.push(`MoFME-linear has ${pct(saved, 0)}% fewer parameters than the MoE (${lin.params.toLocaleString('en-US')} vs ${moe.params.toLocaleString('en-US')}; dense: ${dense.params.toLocaleString('en-US')}) ` +
      `and ${d >= 0 ? 'a higher' : 'a lower'} mean ${metric} by ${pct(Math.abs(d))} points` +
      `${Math.abs(d) <= lin.score.sd + moe.score.sd ? ', less than the sum of their seed standard deviations' : ''}; ` +
      `it trained in ${(lin.trainCpuSeconds / moe.trainCpuSeconds).toFixed(2)}x the MoE's CPU time and ${(lin.trainCpuSeconds / dense.trainCpuSeconds).toFixed(2)}x the dense model's.`);
  }
  const mixtures = r.runs.filter((x) => x.seed === r.runs[0]!.seed && x.routing);
  if (mixtures.length > 0) {
    const info = mixtures.map((x) => ({ name: x.variant, best: Math.max(...x.routing!.map((layer) => routingInformation(layer.filter((row) => row.length > 0)))) }));
    const top = [...info].sort((a, b) => b.best - a.best)[0]!;
    out.push(`The expert choice says most about the ${r.kind === 'classify' ? 'class' : 'weather'} in ${top.name} (I(class; expert) = ${top.best.toFixed(3)} of log2 E in its most class-dependent block; ` +
      `${info.filter((x) => x !== top).map((x) => `${x.name} ${x.best.toFixed(3)}`).join(', ')})` +
      `${top.best < 0.05 ? ': at these sizes no router has learnt to send different classes to different experts' : ''}.`);
  }
  if (uar && lin) {
    const d = uar.score.mean - lin.score.mean;
    out.push(`The UaR scores ${pct(Math.abs(d))} points ${d >= 0 ? 'above' : 'below'} the linear router at ${(uar.trainCpuSeconds / lin.trainCpuSeconds).toFixed(2)}x its training CPU time ` +
      `and ${(uar.evalCpuMs / lin.evalCpuMs).toFixed(2)}x its evaluation CPU time (its 5 Monte-Carlo router passes also run at evaluation).`);
  }
  if (r.kind === 'segment') {
    // a run whose every IoU but the background's is 0 has learnt the majority class only
    const collapsed = s.map((v) => ({ name: v.name, n: r.runs.filter((x) => x.variant === v.name && x.perClass.slice(1).every((iou) => iou === 0)).length }));
    const total = collapsed.reduce((a, c) => a + c.n, 0);
    out.push(total === 0 ? `Every run marks some degraded pixels.` :
      `${total} of the ${r.runs.length} runs predict '${r.classes[0]}' on every pixel (all other IoUs 0), which scores ${pct(Math.max(...r.runs.filter((x) => x.perClass.slice(1).every((iou) => iou === 0)).map((x) => x.score)))}% mIoU here: ` +
      `${collapsed.map((c) => `${c.name} ${c.n}`).join(', ')}; these collapses, not finer masks, make most of the seed spread.`);
  }
  if (r.task === 'fmnist') {
    const volume = trainingVolume(r);
    out.push(`For context only (other models, other budgets): the dataset's paper reports 89.7% for its best scikit-learn baseline (an RBF SVM) trained on all 60,000 images, ` +
      `and small CNNs trained for tens of epochs reach 91–94%; the best variant here reaches ${pct(best.score.mean)}%` +
      `${volume ? ` after seeing ${volume.images.toLocaleString('en-US')} of the 60,000 training images ${volume.epochs === 1 ? 'once' : `${volume.epochs} times`} (${Math.ceil(volume.images / BATCH) * volume.epochs} optimizer steps)` : ''}, ` +
      `so the gap to those figures measures the training budget, not the architecture.`);
  }
  return out;
}

/** Training images and epochs of a task, read back from its sizes sentence (written by this script). */
function trainingVolume(r: TaskResult): { images: number; epochs: number } | null {
  const images = /first (\d+) training|(\d+) training crops/.exec(r.sizes), epochs = /(\d+) epochs/.exec(r.sizes);
  if (!images || !epochs) return null;
  return { images: Number(images[1] ?? images[2]), epochs: Number(epochs[1]) };
}

/** How much the expert choice tells about the class: mutual information I(class; expert) in bits,
 *  from the per-class top-k shares (classes weighted equally), over its maximum log2(E). */
function routingInformation(shares: number[][]): number {
  const E = shares[0]?.length ?? 0;
  if (E < 2) return 0;
  const rows = shares.map((r) => { const t = r.reduce((a, b) => a + b, 0); return r.map((v) => v / t); });
  const marginal = Array.from({ length: E }, (_, e) => rows.reduce((a, r) => a + r[e]!, 0) / rows.length);
  let mi = 0;
  for (const r of rows) for (let e = 0; e < E; e++) if (r[e]! > 0) mi += (r[e]! / rows.length) * Math.log2(r[e]! / marginal[e]!);
  return mi / Math.log2(E);
}

async function writePage(results: TaskResult[]): Promise<void> {
  mkdirSync(resultsDir, { recursive: true });
  const md: string[] = [];
  md.push('# Downstream tasks: the FME layer outside restoration', '');
  md.push('The paper closes with "experiments on the downstream segmentation and classification tasks further demonstrate the generalizability of MoFME". ' +
    'This page repeats that claim at a size a CPU can train: four variants of one small transformer, built from the block API of `@mofme/mofme` ' +
    '(`TransformerBlock` with `DenseFfn`, `MoeFfn` or `FmeFfn`), trained from scratch with the same budget, three seeds each.', '');
  md.push(`Regenerate with \`npx --yes pnpm@12.4.2 downstream\` (scripts/downstream.ts); \`--task fmnist|weather|seg\` runs one task, \`--seeds\` some seeds, \`--fmnist-train\` and the other size flags change the sizes, \`--report-only\` rewrites this page from docs/downstream/*.json.`, '');
  md.push('## Setup', '');
  md.push(`- Backbone of every variant: D = ${BACKBONE.dim}, ${BACKBONE.depth} pre-norm blocks, ${BACKBONE.heads} heads, FFN hidden ${BACKBONE.hidden}, no dropout. ` +
    `Mixtures: E = ${BACKBONE.experts}, top-${BACKBONE.topk}; MoE experts are full FFNs, FME experts FiLM modulations before one shared FFN; the UaR uses the package defaults (M = 5 MC-dropout passes, also at evaluation). No load-balancing loss (the paper uses none).`);
  md.push(`- Training: AdamW (lr ${LR}, weight decay 0.05), batch ${BATCH}, 10% warm-up then cosine; inputs scaled to [−1, 1]. Classification: cross-entropy on mean-pooled tokens. Segmentation: pixel cross-entropy weighted by class frequency^−½, a decoder that lays the tokens back onto their patches plus a full-resolution conv skip (ViTSegmenter).`);
  for (const r of results) md.push(`- ${TITLES[r.task]}: ${r.sizes}.`);
  const allLoads = results.flatMap((r) => r.load);
  const slowdowns = results.flatMap((r) => r.runs.filter((x) => x.trainCpuSeconds).map((x) => x.trainSeconds / x.trainCpuSeconds!));
  md.push(`- Machine: ${results[0]?.cpus ?? '?'}, shared with other jobs and a long training run that has priority; each task ran in its own process at \`nice -n 10\` (a task's seeds may be split over processes and joined with \`--merge\`). ` +
    `The 1-minute load average at the end of each run was ${Math.min(...allLoads).toFixed(1)}–${Math.max(...allLoads).toFixed(1)} on 2 cores` +
    (slowdowns.length > 0 ? ` and a run's wall time was ${Math.min(...slowdowns).toFixed(1)}–${Math.max(...slowdowns).toFixed(1)} times its CPU time` : '') +
    `, so wall times say more about the neighbours than about the models: ` +
    'the tables give CPU time of the process (`process.cpuUsage`, main thread and matmul workers together), which the load changes far less (caches and hyper-threads still shared), and the wall time beside it.', '');

  md.push('## Results', '');
  md.push('![score per variant and task](downstream/scores.png)', '');
  const chartRows: { task: string; variant: string; score: number; low: number; high: number }[] = [];
  for (const r of results) {
    const s = summarise(r);
    const metric = r.kind === 'classify' ? 'accuracy (%)' : 'mIoU (%)';
    md.push(`### ${TITLES[r.task]}`, '');
    const volume = trainingVolume(r);
    md.push(`| variant | ${metric}, mean ± sd | seeds | parameters | train CPU (s) | ${volume ? 'train CPU (ms / image) | ' : ''}train wall (s) | eval CPU (ms / image) |`,
      `|---|---|---|---|---|${volume ? '---|' : ''}---|---|`);
    for (const v of s) {
      const perImage = volume ? `${((1000 * v.trainCpuSeconds) / (volume.images * volume.epochs)).toFixed(1)} | ` : '';
      md.push(`| ${v.name} | ${pct(v.score.mean, 2)} ± ${pct(v.score.sd, 2)} | ${v.n} | ${v.params.toLocaleString('en-US')} | ${v.trainCpuSeconds.toFixed(0)} | ${perImage}${v.trainSeconds.toFixed(0)} | ${v.evalCpuMs.toFixed(2)} |`);
      chartRows.push({ task: TITLES[r.task], variant: v.name, score: 100 * v.score.mean, low: 100 * (v.score.mean - v.score.sd), high: 100 * (v.score.mean + v.score.sd) });
    }
    md.push('');
    md.push(`Per class (${r.kind === 'classify' ? 'recall' : 'IoU'}, %, mean over seeds):`, '');
    md.push(`| variant | ${r.classes.join(' | ')} |`, `|---|${r.classes.map(() => '---').join('|')}|`);
    for (const v of s) md.push(`| ${v.name} | ${v.perClass.map((x) => pct(x)).join(' | ')} |`);
    md.push('');
    // routing per class, first seed, last block
    const routed = r.runs.filter((x) => x.seed === seeds[0] && x.routing);
    if (routed.length > 0) {
      md.push(`Routing per ${r.kind === 'classify' ? 'class' : 'weather'} (last block, seed ${seeds[0]}): the share of tokens whose top-${BACKBONE.topk} includes each expert (%; a row sums to ${BACKBONE.topk * 100}). ` +
        'The table after it gives, per block, I(class; expert) / log2 E: 0 when every class is routed alike, 1 when the chosen expert determines the class.', '');
      md.push(`| variant | ${r.groups.length > 0 ? 'class' : ''} | ${Array.from({ length: BACKBONE.experts }, (_, e) => `e${e}`).join(' | ')} |`, `|---|---|${Array.from({ length: BACKBONE.experts }, () => '---').join('|')}|`);
      for (const run of routed) {
        const last = run.routing![run.routing!.length - 1]!;
        r.groups.forEach((grp, gi) => md.push(`| ${gi === 0 ? run.variant : ''} | ${grp} | ${(last[gi] ?? []).map((v) => pct(v, 0)).join(' | ')} |`));
      }
      md.push('');
      md.push('| variant | ' + Array.from({ length: BACKBONE.depth }, (_, l) => `block ${l}`).join(' | ') + ' |', `|---|${Array.from({ length: BACKBONE.depth }, () => '---').join('|')}|`);
      for (const run of routed) md.push(`| ${run.variant} | ${run.routing!.map((layer) => routingInformation(layer.filter((x) => x.length > 0)).toFixed(3)).join(' | ')} |`);
      md.push('');
      // the same shares as a picture: one heat map per variant, last block, share of tokens = top-k share / k
      const cells = routed.flatMap((run) => r.groups.flatMap((grp, gi) => (run.routing![run.routing!.length - 1]![gi] ?? [])
        .map((v, e) => ({ layer: run.variant, task: grp, expert: `e${e}`, share: v / BACKBONE.topk }))));
      await chartPng(routingSpec(cells), join(resultsDir, `routing-${r.task}.png`));
      md.push(`![routing per ${r.kind === 'classify' ? 'class' : 'weather'}, ${TITLES[r.task]}](downstream/routing-${r.task}.png)`, '');
    }
    md.push('**What the numbers say.** ' + findings(r, s).join(' '), '');
  }
  md.push('## Honest limits', '');
  const missing = results.reduce((n, r) => n + seeds.length * VARIANTS.length - r.runs.length, 0);
  if (missing > 0) {
    md.push(`- ${missing} of the ${results.length * seeds.length * VARIANTS.length} planned runs (${seeds.length} seeds x ${VARIANTS.length} variants x ${results.length} tasks) did not finish in the time this page was made in (the machine's load was far above its 2 cores); the tables say how many seeds each row has. ` +
      '`npx --yes pnpm@12.4.2 downstream` resumes: it keeps the saved runs and trains only the missing ones.');
  }
  const cpuMinutes = results.flatMap((r) => r.runs).reduce((a, x) => a + (x.trainCpuSeconds ?? x.trainSeconds), 0) / 60;
  md.push(`- These are short runs of a 2-block, 32-wide transformer on subsets: all ${results.reduce((n, r) => n + r.runs.length, 0)} runs together trained for ${cpuMinutes.toFixed(0)} CPU minutes, ` +
    'the sizes that fit in about an hour of a 2-core machine shared at a load of about 20; the gaps between variants are of the size of seed noise unless the sentences above say otherwise.');
  // several processes over a changing shared tree may have run different engine code: say which
  const revisionOf = (x: RunResult): string => x.revision ?? 'not recorded';
  if (new Set(results.flatMap((r) => r.runs.map(revisionOf))).size > 1) {
    const perTask = results.map((r) => {
      const seedsBy = new Map<string, Set<number>>();
      for (const x of r.runs) seedsBy.set(revisionOf(x), (seedsBy.get(revisionOf(x)) ?? new Set()).add(x.seed));
      return `${TITLES[r.task]}: ${[...seedsBy].map(([rev, ss]) => `seed${ss.size > 1 ? 's' : ''} ${[...ss].sort().join(', ')} on ${rev}`).join('; ')}`;
    });
    md.push(`- Not every run used the same engine code (the working tree is shared and other work landed while they ran): ${perTask.join('. ')}. ` +
      'Model, data and seeds are the same and every engine version is checked against the same reference loops, so they agree up to float rounding; ' +
      'over a training run such differences can still grow like a change of seed, and a variant\'s CPU time averages over the versions.');
  }
  md.push('- The weather crops come from 23 training photos (9 scenes) and 8 held-out photos (4 scenes); the weathers are synthetic (the same synthesisers as the restoration data), so the task measures recognition of these renderings, not of real weather.');
  md.push('- Parameter counts are those of the built models (`numParameters()`); MoE and MoFME run sparse expert execution (each expert only on its tokens).', '');
  writeFileAtomicSync(join(docs, 'downstream.md'), utf8(md.join('\n')));
  await chartPng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Downstream tasks: mean ± sd over the seeds run (accuracy; mIoU for segmentation)`,
    data: { values: chartRows }, background: 'white',
    facet: { column: { field: 'task', type: 'nominal', title: null, sort: TASKS.map((t) => TITLES[t]) } },
    spec: {
      width: 170, height: 220,
      layer: [
        { mark: 'bar', encoding: { x: { field: 'variant', type: 'nominal', axis: null, sort: VARIANTS.map((v) => v.name) }, y: { field: 'score', type: 'quantitative', title: '%', scale: { zero: false } }, color: { field: 'variant', type: 'nominal', sort: VARIANTS.map((v) => v.name), title: 'variant' } } },
        { mark: 'rule', encoding: { x: { field: 'variant', type: 'nominal', sort: VARIANTS.map((v) => v.name) }, y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  } as never, join(resultsDir, 'scores.png'));
  console.log(`wrote ${join(docs, 'downstream.md')} and ${join(resultsDir, 'scores.png')}`);
}

// ---------------------------------------------------------------------------------------------
// 4. Main
// ---------------------------------------------------------------------------------------------

/** Add the finished runs of `from`/downstream/<task>.json (same sizes) to this folder's results. */
function mergeResults(from: string): void {
  for (const task of TASKS) {
    const source = join(resolve(root, from), 'downstream', `${task}.json`), target = join(resultsDir, `${task}.json`);
    if (!existsSync(source)) continue;
    const extra = JSON.parse(readFileSync(source, 'utf8')) as TaskResult;
    const mine = existsSync(target) ? (JSON.parse(readFileSync(target, 'utf8')) as TaskResult) : null;
    if (mine && mine.sizes !== extra.sizes) throw new Error(`downstream: --merge ${source} has other sizes than ${target} ("${extra.sizes}" vs "${mine.sizes}")`);
    const merged = mine ?? { ...extra, runs: [], load: [] };
    const added = extra.runs.filter((r) => !merged.runs.some((m) => m.variant === r.variant && m.seed === r.seed));
    merged.runs.push(...added);
    merged.load.push(...extra.load);
    merged.finished = [merged.finished, extra.finished].sort().at(-1)!;
    mkdirSync(resultsDir, { recursive: true });
    writeFileAtomicSync(target, utf8(JSON.stringify(merged, null, 1)));
    console.log(`merged ${added.length} runs of ${source} into ${target}`);
  }
}

for (const from of args.merge ? args.merge.split(',') : []) mergeResults(from);
const wanted: TaskName[] = only === 'all' ? [...TASKS] : [only as TaskName];
if (!reportOnly) {
  if (wanted.includes('fmnist')) await runTask('fmnist', fashionMnist());
  if (wanted.includes('weather') || wanted.includes('seg')) {
    const { weather, seg } = await weatherTasks();
    if (wanted.includes('weather')) await runTask('weather', weather);
    if (wanted.includes('seg')) await runTask('seg', seg);
  }
}
const saved = TASKS.map((t) => join(resultsDir, `${t}.json`)).filter((f) => existsSync(f)).map((f) => JSON.parse(readFileSync(f, 'utf8')) as TaskResult);
if (saved.length === 0) throw new Error(`downstream: no results in ${resultsDir}; run without --report-only first`);
await writePage(saved);
