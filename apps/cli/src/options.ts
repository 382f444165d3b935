/**
 * The option vocabulary of the command line, with no heavy imports: main.ts builds `--help` and
 * validates choices from this file alone, so `mofme --help` and flag errors answer instantly (the
 * tensor engine, sharp and vega load only when a command runs). test/options.test.ts checks that
 * the lists copied here (presets, layouts, weathers) equal the packages' own.
 */
export const MODEL_KINDS = ['mofme', 'moe', 'dense'] as const;
export const ROUTERS = ['linear', 'uar'] as const;
export const SCHEDULES = ['cosine', 'constant'] as const;
export const BACKENDS = ['cpu', 'gpu'] as const;
/** = presetNames of @mofme/mofme */
export const PRESETS = ['paper', 'small', 'tiny'] as const;
/** = LAYOUTS of @mofme/data */
export const LAYOUTS = ['list', 'mofme', 'snow100k', 'raindrop', 'outdoor-rain', 'csd', 'paired'] as const;
/** = WEATHERS of @mofme/data */
export const WEATHERS = ['rain', 'rain_fog', 'snow', 'raindrop', 'haze'] as const;

export type PresetName = (typeof PRESETS)[number];

/**
 * What `--resume` may change: nothing that decides the numbers a step computes. Logging cadence,
 * checkpoint cadence and count, loader threads (crops and weather are a function of seed, epoch and
 * sample index, not of the thread that draws them), and more steps (the cosine schedule then
 * stretches to the new end from the step where the run resumes). Validation is not in the list: the
 * UaR router draws from the model's generator in eval mode too.
 */
export const RESUMABLE = ['steps', 'logEvery', 'ckptEvery', 'keepLast', 'workers'] as const;

/** kebab-case flag of a config key: batchSize -> --batch-size */
export function flagOf(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

/** Everything a training run is: saved as config.json in the run folder. Keys match the flags. */
export interface TrainConfig {

  /** network: a preset of @mofme/mofme plus the overrides below (undefined = the preset's value) */
  model: (typeof MODEL_KINDS)[number];
  preset: PresetName;
  experts?: number;
  topk?: number;
  router?: (typeof ROUTERS)[number];
  /** token width D */
  width?: number;
  /** transformer blocks */
  depth?: number;
  /** data: 'builtin' (synthetic weather on the committed photos), a corpus folder, or a dataset path / list file */
  data: string;
  /** start from these weights (a model file, checkpoint or run folder) instead of a random init: fine-tuning */
  init?: string;
  layout?: string;
  /** validation data: 'builtin' (the built-in val split), a path, or 'none' (default: builtin with builtin data) */
  val?: string;
  /** square training crop, a multiple of the patch size */
  crop: number;
  batchSize: number;
  /** training length: steps, or epochs (converted to steps) */
  steps?: number;
  epochs?: number;
  /** AdamW peak learning rate and decoupled weight decay (0.01: PyTorch's default, the official value) */
  lr: number;
  weightDecay: number;
  schedule: (typeof SCHEDULES)[number];
  /** linear warm-up steps */
  warmup: number;
  /** lr at the end of the cosine (official: 1e-6) */
  minLr: number;
  seed: number;
  backend: (typeof BACKENDS)[number];
  /** loader threads (0 = main thread) */
  workers?: number;
  out: string;
  ckptEvery: number;
  keepLast: number;
  /** validate every N steps (0 = only at checkpoints) */
  valEvery: number;
  /** validation: center crop of this side per image (0 = whole images with tiled inference) */
  valCrop: number;
  /** validation: at most this many images (0 = all) */
  valLimit: number;
  logEvery: number;
}

/** The typed defaults (the first of the three layers: defaults, --config file, flags). */
export const TRAIN_DEFAULTS: TrainConfig = {
  model: 'mofme',
  preset: 'tiny',
  data: 'builtin',
  crop: 64,
  batchSize: 8,
  steps: 500,
  lr: 1e-3,
  weightDecay: 0.01,
  schedule: 'cosine',
  warmup: 20,
  minLr: 1e-6,
  seed: 0,
  backend: 'cpu',
  out: 'runs/train',
  ckptEvery: 100,
  keepLast: 3,
  valEvery: 0,
  // Validation sized to the run, not to the dataset: 16 center crops of 128x128 (one 128 window
  // each) cost about as much as 4 steps of batch 8 at 64x64 on the CPU, where 20 whole 480x320
  // images with 240/120 tiles cost minutes. 16 crops spread over the split keep every weather in it.
  valCrop: 128,
  valLimit: 16,
  logEvery: 10,
};

