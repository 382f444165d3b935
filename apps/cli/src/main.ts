/**
 * The `mofme` command: parses the command line (commander) and dispatches to the commands.
 *
 *   mofme train      train a model (checkpoints, resume, validation, progress)
 *   mofme eval       PSNR/SSIM per task against the identity baseline, as the official code computes them
 *   mofme restore    restore photos of any size (tiled); the bundled pretrained model by default
 *   mofme info       parameters and FLOPs of a checkpoint or a preset
 *   mofme metrics    PSNR/SSIM between two images or two folders
 *   mofme data       check a dataset folder, synthesise weather on photos, or assemble the photo corpus
 *   mofme report     a Markdown report of a run (curves, per-task table, routing, pictures)
 *   mofme demo       all of the above on the built-in data in a few minutes
 *
 * Errors. A bad flag or value is reported by commander as one line naming the flag (and the valid
 * choices); every error a command throws is printed as `mofme: error: <one line>` with a non-zero
 * exit code and no stack trace, unless MOFME_DEBUG=1. A failed command removes the output folders
 * it created while they are still empty (io.ts). Output piped into a reader that stops early
 * (`mofme info --json | head -1`) ends the program quietly: EPIPE is not an error of ours.
 *
 * Conventions. Every command that writes a folder takes `-o, --out <dir>`. Integer flags have an
 * upper bound (a typo such as `--steps 99999999999999999999` is refused, not run for 45 million hours).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { CliError, oneLine } from './errors';
import { registerExport } from './export';
import { registerImport } from './import';
import { removeCreatedEmptyDirs } from './io';
import { BACKENDS, LAYOUTS, MODEL_KINDS, PRESETS as presetNames, RESUMABLE, ROUTERS, SCHEDULES, TRAIN_DEFAULTS, WEATHERS, flagOf, type TrainConfig } from './options';

// The commands are imported when they run: loading the tensor engine, sharp and vega takes seconds,
// and `mofme --help` or a bad flag should answer at once.
const commands = () => import('./commands');

// ---- value parsers: a bad value names the flag (commander adds it) and what was expected ----
/** Integers in [min, max]; INT_MAX (1e9) bounds counts no run can reach, far below 2^53 where integers stop being exact. */
const INT_MAX = 1_000_000_000;
const intIn = (min: number, max = INT_MAX) => (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(min > 0 ? 'expected a positive integer.' : 'expected an integer >= 0.');
  if (n > max) throw new InvalidArgumentError(`expected at most ${max.toLocaleString('en-US')}.`);
  return n;
};
const positiveInt = intIn(1);
const nonNegInt = intIn(0);
/** image sides (crops, tiles): 16384 px is beyond any photo a CPU restores in reasonable time, and keeps side² in range */
const pixels = intIn(1, 16_384);
const positiveNumber = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.');
  return n;
};
const nonNegNumber = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0.');
  return n;
};

const program = new Command('mofme')
  .description('MoFME.ts: all-weather image restoration (AAAI 2024) in TypeScript: train, evaluate, restore.')
  .version('0.1.0')
  .showSuggestionAfterError(true)
  .configureOutput({ outputError: (str, write) => write(`mofme: ${str.trim()}\n`) })
  .addHelpText('after', '\nStart with:  mofme demo     (trains, evaluates and writes a report on the built-in data)\nDocs:        apps/cli/README.md');

/** Options shared by the commands that build a network from flags (train, info). */
function modelOptions(cmd: Command, withPresetDefault: boolean): Command {
  return cmd
    .addOption(new Option('--model <kind>', 'feed-forward of every block').choices(MODEL_KINDS).default(withPresetDefault ? TRAIN_DEFAULTS.model : undefined))
    .addOption(new Option('--preset <name>', 'network size preset').choices(presetNames).default(withPresetDefault ? TRAIN_DEFAULTS.preset : undefined))
    .addOption(new Option('--experts <n>', 'number of experts E (default: the preset\'s, 4)').argParser(positiveInt))
    .addOption(new Option('--topk <n>', 'experts per token k (default: the preset\'s, 2)').argParser(positiveInt))
    .addOption(new Option('--router <kind>', 'router: linear (official code) or uar (the paper\'s Uncertainty-aware Router)').choices(ROUTERS))
    .addOption(new Option('--width <n>', 'token width D (default: the preset\'s)').argParser(positiveInt))
    .addOption(new Option('--depth <n>', 'transformer blocks (default: the preset\'s)').argParser(positiveInt));
}

// ---- train ----
const trainCmd = modelOptions(program.command('train').description('train a model; checkpoints, validation and metrics.jsonl go to --out'), true)
  .option('--config <file>', 'JSON file of training options (keys as the flags in camelCase); flags override it')
  .addOption(new Option('--data <path>', '"builtin" (synthetic weather on the bundled photos) or a dataset folder / list file').default(TRAIN_DEFAULTS.data))
  .addOption(new Option('--layout <name>', 'dataset layout (default: detected)').choices(LAYOUTS))
  .option('--init <path>', 'start from these weights (model file, checkpoint or run folder; same network) instead of a random init')
  .addOption(new Option('--val <path>', 'validation data: "builtin", a path, or "none" (default: builtin val split with --data builtin)'))
  .addOption(new Option('--crop <n>', 'square training crop, a multiple of the patch size').argParser(pixels).default(TRAIN_DEFAULTS.crop))
  .addOption(new Option('--batch-size <n>', 'images per step').argParser(positiveInt).default(TRAIN_DEFAULTS.batchSize))
  .addOption(new Option('--steps <n>', 'optimiser steps').argParser(positiveInt).default(TRAIN_DEFAULTS.steps))
  .addOption(new Option('--epochs <n>', 'passes over the training data (instead of --steps)').argParser(positiveInt))
  .addOption(new Option('--lr <x>', 'peak learning rate (AdamW)').argParser(positiveNumber).default(TRAIN_DEFAULTS.lr))
  .addOption(new Option('--weight-decay <x>', 'AdamW decoupled weight decay').argParser(nonNegNumber).default(TRAIN_DEFAULTS.weightDecay))
  .addOption(new Option('--schedule <kind>', 'learning-rate schedule after the warm-up').choices(SCHEDULES).default(TRAIN_DEFAULTS.schedule))
  .addOption(new Option('--warmup <n>', 'linear warm-up steps').argParser(nonNegInt).default(TRAIN_DEFAULTS.warmup))
  .addOption(new Option('--min-lr <x>', 'learning rate at the end of the cosine').argParser(positiveNumber).default(TRAIN_DEFAULTS.minLr))
  .addOption(new Option('--seed <n>', 'seed of the weights, the data order and augmentations').argParser(nonNegInt).default(TRAIN_DEFAULTS.seed))
  .addOption(new Option('--backend <name>', 'tensor backend').choices(BACKENDS).default(TRAIN_DEFAULTS.backend))
  .addOption(new Option('--workers <n>', 'data loader threads (0: main thread; default min(2, cores-1))').argParser(nonNegInt))
  .addOption(new Option('-o, --out <dir>', 'run folder').default(TRAIN_DEFAULTS.out))
  .addOption(new Option('--ckpt-every <n>', 'checkpoint every N steps (and at the end)').argParser(positiveInt).default(TRAIN_DEFAULTS.ckptEvery))
  .addOption(new Option('--keep-last <n>', 'checkpoints kept (plus best/)').argParser(positiveInt).default(TRAIN_DEFAULTS.keepLast))
  .addOption(new Option('--val-every <n>', 'validate every N steps (0: at each checkpoint)').argParser(nonNegInt).default(TRAIN_DEFAULTS.valEvery))
  .addOption(new Option('--val-crop <n>', 'validate on a center crop of N pixels per image (0: whole images, tiled)').argParser(intIn(0, 16_384)).default(TRAIN_DEFAULTS.valCrop))
  .addOption(new Option('--val-limit <n>', 'validate on at most N images (0: all)').argParser(nonNegInt).default(TRAIN_DEFAULTS.valLimit))
  .addOption(new Option('--log-every <n>', 'plain log line every N steps (when not on a terminal)').argParser(positiveInt).default(TRAIN_DEFAULTS.logEvery))
  .option('--resume <dir>', `continue a run (its folder or one checkpoint folder) exactly where it stopped, with its saved config; only ${RESUMABLE.map(flagOf).join(', ')} may be given with it`)
  .addHelpText('after', '\nExamples:\n  mofme train --steps 300 --out runs/tiny\n  mofme train --model moe --experts 4 --topk 2 --data data/allweather --crop 128 --epochs 20\n  mofme train --resume runs/tiny')
  .action(async (opts: Record<string, unknown>, cmd: Command) => {
    const explicit = (key: string) => cmd.getOptionValueSource(key) === 'cli';
    const keys = Object.keys(TRAIN_DEFAULTS).concat(['experts', 'topk', 'router', 'width', 'depth', 'layout', 'val', 'epochs', 'workers', 'init']);
    const flags: Partial<TrainConfig> = {};
    for (const k of keys) if (explicit(k)) (flags as Record<string, unknown>)[k] = opts[k];
    if (opts.resume) {
      const fixed = Object.keys(flags).filter((k) => !(RESUMABLE as readonly string[]).includes(k));
      if (fixed.length || opts.config) throw new CliError(`--resume continues with the run's saved configuration; drop ${[...fixed.map(flagOf), ...(opts.config ? ['--config'] : [])].join(', ')} (only ${RESUMABLE.map(flagOf).join(', ')} may change)`);
    }
    const { mergeConfig, readConfigFile } = await import('./config');
    const { train } = await import('./train');
    const file = opts.config ? readConfigFile(String(opts.config)) : {};
    const cfg = mergeConfig(file, flags);
    const r = await train(cfg, opts.resume ? { resume: String(opts.resume), changes: flags } : {});
    process.exitCode = r.exitCode;
  });
void trainCmd;

// ---- eval ----
program.command('eval')
  .description('PSNR/SSIM per task and on average (official protocol), next to the identity baseline')
  .option('--checkpoint <path>', 'model file, checkpoint folder or run folder (default: the bundled pretrained model)')
  .addOption(new Option('--data <path>', '"builtin" or a dataset folder / list file').default('builtin'))
  .addOption(new Option('--split <name>', 'built-in split (checkpoints are chosen on val; report test)').choices(['val', 'test']).default('test'))
  .addOption(new Option('--layout <name>', 'dataset layout (default: detected)').choices(LAYOUTS))
  .addOption(new Option('--tile <n>', 'inference window').argParser(pixels).default(240))
  .addOption(new Option('--stride <n>', 'step between windows').argParser(pixels).default(120))
  .option('--resize <WxH>', 'resize pairs first (default: 720x480 for datasets on disk as the official code, none for builtin; "none" to disable)')
  .addOption(new Option('--limit <n>', 'at most N images, spread over the dataset (0: all)').argParser(nonNegInt).default(0))
  .option('--json', 'print JSON instead of a table')
  .option('--csv <file>', 'write per-image scores')
  .option('--gallery <file.png>', 'write the worst and best 3 images (input | restored | ground truth)')
  .option('--overwrite', 'replace existing --csv/--gallery files')
  .addOption(new Option('--backend <name>', 'tensor backend').choices(BACKENDS).default('cpu'))
  .addHelpText('after', '\nExamples:\n  mofme eval                                   # the pretrained model on the built-in test split\n  mofme eval --checkpoint runs/tiny --split val --csv val.csv --gallery val.png\n  mofme eval --checkpoint runs/tiny/best --data data/allweather/test_snow --json')
  .action(async (o) => { process.exitCode = await (await commands()).evalCommand(o); });

// ---- restore ----
program.command('restore')
  .description('restore photos of any size with tiled inference')
  .argument('<images...>', 'image files (PNG, JPEG, BMP, WebP, TIFF)')
  .requiredOption('-o, --out <dir>', 'output folder (PNG files named after the inputs)')
  .option('--checkpoint <path>', 'model file, checkpoint folder or run folder (default: the bundled pretrained model)')
  .addOption(new Option('--tile <n>', 'inference window').argParser(pixels).default(240))
  // photos default to @mofme/mofme's DEFAULT_STRIDE (180: the same PSNR as the official 120 on the
  // test split with 2.1x fewer windows, packages/mofme/README.md); eval and report keep the official 120
  .addOption(new Option('--stride <n>', 'step between windows (default: 180, raised-cosine blended)').argParser(pixels))
  .option('--overwrite', 'replace existing output files')
  .addOption(new Option('--backend <name>', 'tensor backend').choices(BACKENDS).default('cpu'))
  .addHelpText('after', '\nExample:\n  mofme restore photo1.jpg photo2.png -o restored/')
  .action(async (files: string[], o) => { process.exitCode = await (await commands()).restoreCommand(files, o); });

// ---- info ----
modelOptions(program.command('info'), false)
  .description('configuration, parameters and FLOPs of a checkpoint, or of a preset with overrides')
  .argument('[checkpoint]', 'model file, checkpoint folder or run folder')
  .option('--size <WxH>', 'image size for the FLOP count', '240x240')
  .option('--json', 'print JSON')
  .addHelpText('after', '\nExamples:\n  mofme info runs/tiny/best\n  mofme info --preset paper --model moe --experts 16 --topk 4 --json')
  .action(async (ckpt: string | undefined, o) => { process.exitCode = await (await commands()).infoCommand(ckpt, o); });

// ---- metrics ----
program.command('metrics')
  .description('PSNR and SSIM between two images, or two folders of same-named images (as eval computes them)')
  .argument('<a>', 'image or folder')
  .argument('<b>', 'image or folder')
  .option('--json', 'print JSON')
  .action(async (a: string, b: string, o) => { process.exitCode = await (await commands()).metricsCommand(a, b, o); });

// ---- data ----
const data = program.command('data').description('dataset tools');
data.command('check')
  .description('count pairs per task and list every problem (exit 1 if there is one)')
  .argument('<path>', 'dataset folder or list file')
  .addOption(new Option('--layout <name>', 'dataset layout (default: detected)').choices(LAYOUTS))
  .option('--json', 'print JSON')
  .action(async (path: string, o) => { process.exitCode = await (await commands()).dataCheckCommand(path, o); });
data.command('synth')
  .description('synthesise weather on photos: input/ + gt/ pairs, or a contact sheet')
  .requiredOption('-o, --out <dir>', 'output folder')
  .option('--photos <path>', 'an image or a folder of photos (default: the built-in test photos)')
  .option('--weathers <list>', `comma-separated, from ${WEATHERS.join(', ')}`, WEATHERS.join(','))
  .addOption(new Option('--per <n>', 'variants per photo and weather').argParser(intIn(1, 10_000)).default(1))
  .addOption(new Option('--seed <n>', 'seed').argParser(nonNegInt).default(0))
  .option('--sheet', 'write one contact sheet (clean | weathers...) instead of pairs')
  .option('--overwrite', 'replace existing files')
  .action(async (o) => { process.exitCode = await (await commands()).dataSynthCommand(o); });

data.command('corpus')
  .description('assemble clean real photos (Debian packages + built-in) at full resolution, with a manifest of licences')
  .requiredOption('-o, --out <dir>', 'corpus folder (full/, train/, manifest.json, manifest.csv)')
  .option('--debs <dir>', 'folder of already downloaded .deb files, used before apt-get download')
  .option('--no-download', 'do not run apt-get download (use --debs only)')
  .option('--no-builtin', 'leave out the built-in photos')
  .action(async (o) => { process.exitCode = await (await import('./corpus')).corpusCommand(o); });

// ---- report ----
program.command('report')
  .description('write report.md with curves, the per-task table, routing statistics and pictures for a run')
  .argument('<run>', 'run folder (of mofme train)')
  .option('--checkpoint <path>', 'checkpoint to evaluate (default: the run\'s best/, else its last)')
  .option('-o, --out <dir>', 'folder for report.md and its pictures (default: the run folder)')
  .addOption(new Option('--split <name>', 'built-in split for the table').choices(['val', 'test']).default('val'))
  .addOption(new Option('--limit <n>', 'at most N images (0: all)').argParser(nonNegInt).default(0))
  .addOption(new Option('--tile <n>', 'inference window').argParser(pixels).default(240))
  .addOption(new Option('--stride <n>', 'step between windows').argParser(pixels).default(120))
  .action(async (run: string, o) => { process.exitCode = await (await import('./report')).reportCommand(run, o); });

// ---- demo ----
program.command('demo')
  .description('train on the built-in data for a few minutes, evaluate against the identity baseline, restore sample photos, write a report')
  .addOption(new Option('--steps <n>', 'training steps').argParser(positiveInt).default(200))
  .option('-o, --out <dir>', 'output folder (default: runs/demo-<date>)')
  .addOption(new Option('--backend <name>', 'tensor backend').choices(BACKENDS).default('cpu'))
  .action(async (o) => { process.exitCode = await (await import('./demo')).demoCommand(o); });

registerExport(program); // mofme export: ONNX, official names, safetensors (export.ts)
registerImport(program); // mofme import: PyTorch/DDP safetensors into a model folder (import.ts)

// ---- top-level error handler: one line, no stack (MOFME_DEBUG=1 shows it) ----
function fail(e: unknown): void {
  if (process.env.MOFME_DEBUG) console.error(e);
  removeCreatedEmptyDirs();
  console.error(`mofme: error: ${oneLine(e)}`);
  process.exit(e instanceof CliError ? e.exitCode : 1);
}
process.on('unhandledRejection', fail);
// A reader that stops early (`| head`) closes the pipe: stop quietly, as cat and grep do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    fail(e);
  });
}
program.parseAsync(process.argv).catch(fail);
