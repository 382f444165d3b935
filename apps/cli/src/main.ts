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
 *   mofme export     a model for other runtimes: ONNX, the official PyTorch names, our safetensors
 *   mofme import     a PyTorch state dict (official names or ours, DDP prefix) into a model folder
 *
 * Errors. A bad flag or value is reported by commander as one line naming the flag (and the valid
 * choices); every error a command throws is printed as `mofme: error: <one line>` with a non-zero
 * exit code and no stack trace, unless MOFME_DEBUG=1. A failed command removes the output folders
 * it created while they are still empty (io.ts). Output piped into a reader that stops early
 * (`mofme info --json | head -1`) ends the program quietly: EPIPE is not an error of ours.
 *
 * Conventions. Every command that writes a folder takes `-o, --out <dir>`. Integer flags have an
 * upper bound (a typo such as `--steps 99999999999999999999` is refused, not run for 45 million hours).
 *
 * This file is the whole command line: every command and flag is defined here, the training and
 * network flags from the one table of options.ts. What a command does is its module in commands/
 * (one per command), imported when it runs: loading the tensor engine, sharp and vega takes
 * seconds, and `mofme --help` or a bad flag should answer at once.
 */
import { Command, Option } from 'commander';
import { presetNames } from '@mofme/mofme/config';
import { CliError, oneLine } from './errors';
import { removeCreatedEmptyDirs } from './io';
import { EXPORT_FORMATS, MODEL_KEYS, OPTION_KEYS, RESUMABLE, WEATHERS, addOptions, flagOf, intArg, optionOf, sideArg } from './options';

const SPLITS = ['val', 'test'] as const;

const program = new Command('mofme')
  .description('MoFME.ts: all-weather image restoration (AAAI 2024) in TypeScript: train, evaluate, restore.')
  .version('0.1.0')
  .showSuggestionAfterError(true)
  .configureOutput({ outputError: (str, write) => write(`mofme: ${str.trim()}\n`) })
  .addHelpText('after', '\nStart with:  mofme demo     (trains, evaluates and writes a report on the built-in data)\nDocs:        apps/cli/README.md');

// ---- train ----
addOptions(program.command('train').description('train a model; checkpoints, validation and metrics.jsonl go to --out'), OPTION_KEYS)
  .option('--config <file>', 'JSON file of training options (keys as the flags in camelCase); flags override it')
  .option('--resume <dir>', `continue a run (its folder or one checkpoint folder) exactly where it stopped, with its saved config; only ${RESUMABLE.map(flagOf).join(', ')} may be given with it`)
  .addHelpText('after', '\nExamples:\n  mofme train --steps 300 --out runs/tiny\n  mofme train --model moe --experts 4 --topk 2 --data data/allweather --crop 128 --epochs 20\n  mofme train --resume runs/tiny')
  .action(async (_o, cmd: Command) => { process.exitCode = await (await import('./commands/train')).trainCommand(cmd); });

// ---- eval ----
program.command('eval')
  .description('PSNR/SSIM per task and on average (official protocol), next to the identity baseline')
  .option('--checkpoint <path>', 'model file, checkpoint folder or run folder (default: the bundled pretrained model)')
  .addOption(new Option('--data <path>', '"builtin" or a dataset folder / list file').default('builtin'))
  .addOption(new Option('--split <name>', 'built-in split (checkpoints are chosen on val; report test)').choices(SPLITS).default('test'))
  .addOption(optionOf('layout'))
  .addOption(new Option('--tile <n>', 'inference window').argParser(sideArg).default(192))
  // the restore default (@mofme/mofme DEFAULT_STRIDE, see restore below); --stride 120 is the official protocol
  .addOption(new Option('--stride <n>', 'step between windows (default: 144, raised-cosine blended; tile 240 stride 120: the official protocol\'s windows)').argParser(sideArg))
  .option('--resize <WxH>', 'resize pairs first (default: 720x480 for datasets on disk as the official code, none for builtin; "none" to disable)')
  .addOption(new Option('--limit <n>', 'at most N images, spread over the dataset (0: all)').argParser(intArg(0)).default(0))
  .option('--json', 'print JSON instead of a table')
  .option('--csv <file>', 'write per-image scores')
  .option('--gallery <file.png>', 'write the worst and best 3 images (input | restored | ground truth)')
  .option('--overwrite', 'replace existing --csv/--gallery files')
  .addOption(optionOf('backend'))
  .addHelpText('after', '\nExamples:\n  mofme eval                                   # the pretrained model on the built-in test split\n  mofme eval --checkpoint runs/tiny --split val --csv val.csv --gallery val.png\n  mofme eval --checkpoint runs/tiny/best --data data/allweather/test_snow --json')
  .action(async (o) => { process.exitCode = await (await import('./commands/eval')).evalCommand(o); });

// ---- restore ----
program.command('restore')
  .description('restore photos of any size with tiled inference')
  .argument('<images...>', 'image files (PNG, JPEG, BMP, WebP, TIFF)')
  .requiredOption('-o, --out <dir>', 'output folder (PNG files named after the inputs)')
  .option('--checkpoint <path>', 'model file, checkpoint folder or run folder (default: the bundled pretrained model)')
  .addOption(new Option('--tile <n>', 'inference window').argParser(sideArg).default(192))
  // photos and eval default to @mofme/mofme's DEFAULT_STRIDE (chosen from the tiling table in
  // packages/mofme/README.md, "Whole-photo inference"); report keeps the official 120
  .addOption(new Option('--stride <n>', 'step between windows (default: 144, raised-cosine blended)').argParser(sideArg))
  .option('--overwrite', 'replace existing output files')
  .addOption(optionOf('backend'))
  .addHelpText('after', '\nExample:\n  mofme restore photo1.jpg photo2.png -o restored/')
  .action(async (files: string[], o) => { process.exitCode = await (await import('./commands/restore')).restoreCommand(files, o); });

// ---- info ----
addOptions(program.command('info'), MODEL_KEYS, false)
  .description('configuration, parameters and FLOPs of a checkpoint, or of a preset with overrides')
  .argument('[checkpoint]', 'model file, checkpoint folder or run folder')
  .option('--size <WxH>', 'image size for the FLOP count', '240x240')
  .option('--json', 'print JSON')
  .addHelpText('after', '\nExamples:\n  mofme info runs/tiny/best\n  mofme info --preset paper --model moe --experts 16 --topk 4 --json')
  .action(async (ckpt: string | undefined, o) => { process.exitCode = await (await import('./commands/info')).infoCommand(ckpt, o); });

// ---- metrics ----
program.command('metrics')
  .description('PSNR and SSIM between two images, or two folders of same-named images (as eval computes them)')
  .argument('<a>', 'image or folder')
  .argument('<b>', 'image or folder')
  .option('--json', 'print JSON')
  .action(async (a: string, b: string, o) => { process.exitCode = await (await import('./commands/metrics')).metricsCommand(a, b, o); });

// ---- data ----
const data = program.command('data').description('dataset tools');
data.command('check')
  .description('count pairs per task and list every problem (exit 1 if there is one)')
  .argument('<path>', 'dataset folder or list file')
  .addOption(optionOf('layout'))
  .option('--json', 'print JSON')
  .action(async (path: string, o) => { process.exitCode = await (await import('./commands/data')).dataCheckCommand(path, o); });
data.command('synth')
  .description('synthesise weather on photos: input/ + gt/ pairs, or a contact sheet')
  .requiredOption('-o, --out <dir>', 'output folder')
  .option('--photos <path>', 'an image or a folder of photos (default: the built-in test photos)')
  .option('--weathers <list>', `comma-separated, from ${WEATHERS.join(', ')}`, WEATHERS.join(','))
  .addOption(new Option('--per <n>', 'variants per photo and weather').argParser(intArg(1, 10_000)).default(1))
  .addOption(new Option('--seed <n>', 'seed').argParser(intArg(0)).default(0))
  .option('--sheet', 'write one contact sheet (clean | weathers...) instead of pairs')
  .option('--overwrite', 'replace existing files')
  .action(async (o) => { process.exitCode = await (await import('./commands/data')).dataSynthCommand(o); });

data.command('corpus')
  .description('assemble clean real photos (Debian packages + built-in) at full resolution, with a manifest of licences')
  .requiredOption('-o, --out <dir>', 'corpus folder (full/, train/, manifest.json, manifest.csv)')
  .option('--debs <dir>', 'folder of already downloaded .deb files, used before apt-get download')
  .option('--no-download', 'do not run apt-get download (use --debs only)')
  .option('--no-builtin', 'leave out the built-in photos')
  .action(async (o) => { process.exitCode = await (await import('./commands/data')).corpusCommand(o); });

// ---- report ----
program.command('report')
  .description('write report.md with curves, the per-task table, routing statistics and pictures for a run')
  .argument('<run>', 'run folder (of mofme train)')
  .option('--checkpoint <path>', 'checkpoint to evaluate (default: the run\'s best/, else its last)')
  .option('-o, --out <dir>', 'folder for report.md and its pictures (default: the run folder)')
  .addOption(new Option('--split <name>', 'built-in split for the table').choices(SPLITS).default('val'))
  .addOption(new Option('--limit <n>', 'at most N images (0: all)').argParser(intArg(0)).default(0))
  .addOption(new Option('--tile <n>', 'inference window').argParser(sideArg).default(240))
  .addOption(new Option('--stride <n>', 'step between windows').argParser(sideArg).default(120))
  .action(async (run: string, o) => { process.exitCode = await (await import('./commands/report')).reportCommand(run, o); });

// ---- demo ----
program.command('demo')
  .description('train on the built-in data for a few minutes, evaluate against the identity baseline, restore sample photos, write a report')
  .addOption(new Option('--steps <n>', 'training steps').argParser(intArg(1)).default(200))
  .option('-o, --out <dir>', 'output folder (default: runs/demo-<date>)')
  .addOption(optionOf('backend'))
  .action(async (o) => { process.exitCode = await (await import('./commands/demo')).demoCommand(o); });

// ---- export ----
program.command('export')
  .description('write a model for other runtimes: ONNX, the official PyTorch names, or our safetensors')
  .argument('<checkpoint>', 'model file, checkpoint folder or run folder (apps/cli/pretrained for the bundled model)')
  .addOption(new Option('--format <kind>', 'onnx: eval forward as an ONNX graph; official: MoFME-Pytorch state-dict names; safetensors: our model file').choices(EXPORT_FORMATS).makeOptionMandatory())
  .requiredOption('-o, --out <file>', 'output file (written atomically)')
  .option('--size <WxH>', 'ONNX only: the image size the graph takes (multiples of the patch size; default the config\'s imageSize)')
  .option('--overwrite', 'replace an existing output file')
  .addHelpText('after', '\nExamples:\n  mofme export apps/cli/pretrained --format onnx -o mofme.onnx --size 64x64\n  mofme export runs/paper/best --format official -o official.safetensors')
  .action(async (ckpt: string, o) => { process.exitCode = await (await import('./commands/export')).exportCommand(ckpt, o); });

// ---- import ----
program.command('import')
  .description('read a PyTorch state dict (safetensors; official MoFME-Pytorch names or ours, DDP `module.` prefix handled) into a model folder')
  .argument('<file>', 'safetensors file (convert .pth with scripts/torch/pth_to_safetensors.py)')
  .requiredOption('-o, --out <dir>', 'model folder to write (DIR/model.safetensors)')
  .addOption(new Option('--preset <name>', 'official files: the network sizes (default: the preset whose shapes match)').choices(presetNames))
  .option('--overwrite', 'replace an existing DIR/model.safetensors')
  .addHelpText('after', '\nExample:\n  python3 scripts/torch/pth_to_safetensors.py official.pth official.safetensors\n  mofme import official.safetensors -o runs/official && mofme eval --checkpoint runs/official')
  .action(async (file: string, o) => { process.exitCode = await (await import('./commands/import')).importCommand(file, o); });

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
