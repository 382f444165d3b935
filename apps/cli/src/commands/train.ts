/**
 * `mofme train`: the training loop, meant to be read top to bottom (in the spirit of nanoGPT's
 * train.py). Pieces: the run folder and config; data; model, optimiser and schedule; resuming;
 * the loop (forward, SmoothL1 loss, backward, AdamW step, schedule step, log, validate, checkpoint);
 * a clean stop on SIGINT/SIGTERM; a loud stop on a NaN/Inf loss or weights.
 *
 * Signals. Ctrl-C (SIGINT) or SIGTERM (a container stop) ends the run after the step in progress:
 * no validation, a checkpoint of that step, exit code 130. The loop yields to the event loop after
 * every step (a step is synchronous compute, and a batch from the main-thread loader never waits
 * for I/O, so without the yield the handler would only run at the next checkpoint's file write).
 * Checkpoints are written synchronously, so a second signal cannot cut one in half: it is handled
 * after the write, and quits at once keeping the newest complete checkpoint.
 *
 * Non-finite numbers. A NaN/Inf loss or NaN/Inf weights after an update stop the run with one line
 * naming the step, without saving (the last good checkpoint stays the newest). A validation score
 * that is not finite is logged but never makes a checkpoint `best/`.
 *
 * Loss (--loss): SmoothL1 (β = 1, mean), what the official code calls "content l1" (mofme-paper.md
 * §5.1), or psnrLoss, minus the mean PSNR of the images (the bundled model's recipe: docs/recipe.md).
 * The official loss adds 0.04 × a VGG16 perceptual term; its ImageNet weights cannot be fetched
 * offline (only the npm registry is reachable), so it is left out, as the README says.
 *
 * Exact resumption. Everything random in a step is a function of saved state: the loader draws
 * crops, flips and weather from (seed, epoch, sample index), and `loader.position` is saved; the
 * model's own generator (dropout, the UaR's Monte-Carlo dropout) is saved with getState(); AdamW's
 * moments and step counts and the scheduler's clock are saved. A run killed with SIGKILL and
 * resumed from its last checkpoint therefore repeats, step for step, the losses an uninterrupted run
 * gets (the test suite checks it).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { psnrLoss, smoothL1Loss, tensor, tidy } from '@mofme/tensor';
import { AdamW, LRScheduler, constantSchedule, warmupCosineSchedule, type Schedule } from '@mofme/nn';
import { createModel, countParameters, toModelInput, type MoFME } from '@mofme/mofme';
import { createLoader } from '@mofme/data';
import { OPTION_KEYS, runConfigOf, type Flags } from '../options';
import {
  firstNonFinite, listCheckpoints, loadWeightsInto, markBest, openMetricsLog, pruneCheckpoints, readState, resolveModelFile, resolveResume,
  restoreTraining, saveCheckpoint, writeRunConfig, type TrainingState,
} from '../checkpoint';
import { openData, outputDir, selfCommand } from '../io';
import { evaluate, EvaluationStopped, type EvalResult } from '../evaluate';
import { selectBackend } from '../backend';
import { CliError, oneLine } from '../errors';
import { Progress, formatDuration, peakResidentMiB } from '../progress';

/** The command line's `mofme train`: the flags given, as text (not commander's defaults: options.ts
 *  has its own layers), --config and --resume. */
export async function trainCommand(cmd: Command): Promise<number> {
  const { config, resume, ...opts } = cmd.opts<{ config?: string; resume?: string } & Record<string, unknown>>();
  const flags: Flags = Object.fromEntries(OPTION_KEYS.filter((k) => cmd.getOptionValueSource(k) === 'cli').map((k) => [k, opts[k]]));
  return (await train({ flags, ...(config ? { configFile: config } : {}), ...(resume ? { resume } : {}) })).exitCode;
}

export interface TrainResult {
  runDir: string;
  steps: number;
  exitCode: number;
  lastCheckpoint: string | null;
  bestCheckpoint: string | null;
  lastVal: EvalResult | null;
}

export interface TrainRequest {
  /** options given (the command line's flags as text, or the demo's whole config) over the defaults */
  flags: Flags;
  /** a JSON file of options between the defaults and the flags */
  configFile?: string;
  /** continue the run in this folder (a run folder or one checkpoint folder) */
  resume?: string;
  /** no progress output (the demo prints its own) */
  quiet?: boolean;
}

export async function train(request: TrainRequest): Promise<TrainResult> {
  // ---- run folder and configuration ------------------------------------------------------------
  let resume = null as { ckpt: string; runDir: string } | null;
  let saved = null as TrainingState | null;
  const run = runConfigOf(request, request.resume ? () => {
    resume = resolveResume(request.resume!);
    return (saved = readState(resume.ckpt));
  } : undefined);
  const { train: cfg, model: modelConfig } = run;
  const runDir = resume ? resume.runDir : resolve(cfg.out);
  if (!resume && listCheckpoints(runDir).length) {
    throw new CliError(`--out ${runDir} already holds a training run; continue it with --resume ${runDir}, or choose another --out`);
  }
  outputDir(runDir, '--out');
  await selectBackend(cfg);

  // ---- data ------------------------------------------------------------------------------------
  const trainData = await openData(cfg.data, 'train', cfg.layout, { cleanFraction: cfg.cleanFraction, flatLightFraction: cfg.flatLightFraction });
  const valSpec = cfg.val ?? (cfg.data === 'builtin' ? 'builtin' : 'none');
  const valData = valSpec === 'none' ? null : await openData(valSpec, 'val', cfg.layout);
  const loader = createLoader(trainData, {
    batchSize: cfg.batchSize, crop: cfg.crop, seed: cfg.seed, policy: 'skip',
    ...(cfg.workers !== undefined ? { workers: cfg.workers } : {}),
    ...(saved ? { start: saved.loader } : {}),
  });
  if (loader.batchesPerEpoch === 0) throw new CliError(`--batch-size ${cfg.batchSize}: the training data has only ${trainData.length} pairs`);
  const totalSteps = cfg.steps ?? (cfg.epochs ?? 1) * loader.batchesPerEpoch;

  // ---- model, optimiser, schedule ---------------------------------------------------------------
  const model: MoFME = createModel(modelConfig, { seed: cfg.seed });
  if (cfg.init && !resume) { // fine-tuning: the same network, its weights from a model file
    await loadWeightsInto(model, resolveModelFile(cfg.init), '--init', 'pass the same --preset and overrides');
  }
  const optimizer = new AdamW(model.parameters(), run.optimizer); // betas (0.9, 0.999): AdamW's default
  const warmup = Math.min(run.schedule.warmup, totalSteps - 1);
  const schedule: Schedule = run.schedule.kind === 'cosine'
    ? warmupCosineSchedule({ warmup, total: totalSteps, minFactor: run.schedule.minFactor, startFactor: 1 / Math.max(1, warmup) })
    : warmup > 0 ? (t) => Math.min(1, (t + 1) / warmup) : constantSchedule();
  const scheduler = new LRScheduler(optimizer, schedule);

  // ---- resume ------------------------------------------------------------------------------------
  let step = 0;
  let bestPsnr: number | null = null, bestStep: number | null = null;
  let elapsedBefore = 0;
  let lastCheckpoint: string | null = null;
  if (resume && saved) {
    await restoreTraining(resume.ckpt, saved, model, optimizer, scheduler);
    ({ step, bestPsnr, bestStep } = saved);
    elapsedBefore = saved.elapsedSeconds;
    lastCheckpoint = resume.ckpt;
  }
  const logMetrics = openMetricsLog(runDir, saved ? step : null);
  writeRunConfig(runDir, { train: cfg, model: modelConfig, totalSteps });

  const progress = new Progress(cfg.logEvery, undefined, request.quiet);
  const params = countParameters(modelConfig).total;
  progress.log(`${resume ? `resuming ${resume.ckpt} at step ${step}` : 'training'}: ${cfg.model} (${cfg.preset}, ${params.toLocaleString('en-US')} parameters), ` +
    `${trainData.length} training pairs, ${cfg.crop}x${cfg.crop} crops, batch ${cfg.batchSize}, ${totalSteps} steps -> ${runDir}`);
  if (valData) {
    const n = cfg.valLimit ? Math.min(cfg.valLimit, valData.length) : valData.length;
    const what = cfg.valCrop ? `center ${cfg.valCrop}x${cfg.valCrop} crops of ${n} images` : `${n} whole images (tiled)`;
    progress.log(`validation: ${what} of ${valSpec}, ${cfg.valEvery ? `every ${cfg.valEvery} steps` : 'at each checkpoint'} (--val-crop, --val-limit, --val none)`);
  }

  // ---- validation and checkpoints ------------------------------------------------------------
  let lastVal: EvalResult | null = null;
  const validate = async (): Promise<EvalResult | null> => {
    if (!valData) return null;
    let r: EvalResult;
    try {
      r = await evaluate(model, valData, { ...(cfg.valCrop ? { centerCrop: cfg.valCrop } : {}), limit: cfg.valLimit, stop: () => interrupted });
    } catch (e) {
      if (e instanceof EvaluationStopped) return null; // a signal came during validation: save without it
      throw new CliError(`validation at step ${step}: ${oneLine(e)}; stopped without saving. Last good checkpoint: ${lastCheckpoint ?? 'none'}`, 3);
    }
    const tasks = Object.fromEntries(Object.entries(r.tasks).map(([k, t]) => [k, { psnr: t.psnr, ssim: t.ssim }]));
    logMetrics({ type: 'val', step, psnr: r.average.psnr, ssim: r.average.ssim, identityPsnr: r.average.identityPsnr, identitySsim: r.average.identitySsim, tasks, seconds: r.seconds });
    const finite = Number.isFinite(r.average.psnr) && Number.isFinite(r.average.ssim);
    progress.log(`val @ ${step}: PSNR ${r.average.psnr.toFixed(2)} dB (identity ${r.average.identityPsnr.toFixed(2)}), SSIM ${r.average.ssim.toFixed(4)} ` +
      `(${r.images.length} images in ${r.seconds.toFixed(1)} s)${finite ? '' : '; not finite: the model\'s outputs are not numbers, this checkpoint cannot become best/'}`);
    lastVal = r;
    return r;
  };
  let t0 = performance.now();
  const checkpoint = async (val: EvalResult | null): Promise<void> => {
    const state: TrainingState = {
      step, loader: loader.position, rng: model.rng.getState(), bestPsnr, bestStep,
      elapsedSeconds: elapsedBefore + (performance.now() - t0) / 1000, config: cfg,
    };
    // a score that is not a number never wins (NaN > x is false, but the first one would win against null)
    const isBest = val !== null && Number.isFinite(val.average.psnr) && Number.isFinite(val.average.ssim) && (bestPsnr === null || val.average.psnr > bestPsnr);
    if (isBest) { state.bestPsnr = bestPsnr = val.average.psnr; state.bestStep = bestStep = step; }
    lastCheckpoint = saveCheckpoint(runDir, model, optimizer, scheduler, state);
    if (isBest) markBest(runDir, lastCheckpoint);
    pruneCheckpoints(runDir, cfg.keepLast);
  };

  // ---- signals: Ctrl-C or SIGTERM finishes the step, saves, and exits; a second one quits at once ---
  let interrupted = false;
  const onSigint = (signal: NodeJS.Signals) => {
    if (interrupted) {
      // never during a checkpoint write (those are synchronous): the newest complete checkpoint stays
      progress.stop();
      console.log(`${signal} again: quit without saving at step ${step}; last checkpoint ${lastCheckpoint ?? 'none'}`);
      process.exit(130);
    }
    interrupted = true;
    progress.log(`${signal}: saving a checkpoint after this step (${signal === 'SIGINT' ? 'Ctrl-C' : signal} again to quit without saving)`);
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  const faultNanAt = Number(process.env.MOFME_FAULT_NAN_AT_STEP ?? NaN); // test hook: poison one step's loss

  // ---- the loop --------------------------------------------------------------------------------
  model.train();
  progress.start(totalSteps, step);
  t0 = performance.now();
  let exitCode = 0;
  let lastCkptStep = step;
  try {
    if (step < totalSteps) {
      for await (const batch of loader.stream()) {
        const tStep = performance.now();
        const lr = optimizer.paramGroups[0]!.lr * optimizer.lrFactor; // the rate this step uses, for the log
        const loss = tidy(() => {
          const x = toModelInput(tensor(batch.input, { shape: batch.shape })); // degraded
          const y = tensor(batch.target, { shape: batch.shape }); // clean, [0, 1]
          const out = model.forward(x).image;
          const l = cfg.loss === 'psnr' ? psnrLoss(out, y) : smoothL1Loss(out, y, 1, 'mean');
          optimizer.zeroGrad();
          l.backward();
          const value = l.item();
          if (!Number.isFinite(value) || step + 1 === faultNanAt) return step + 1 === faultNanAt ? NaN : value; // do not apply a poisoned update
          optimizer.step();
          scheduler.step();
          return value;
        });
        const lastGood = `Last good checkpoint: ${lastCheckpoint ?? 'none (no checkpoint was written yet)'}`;
        if (!Number.isFinite(loss)) {
          throw new CliError(`loss is ${loss} at step ${step + 1}; stopped without saving (lower --lr?). ${lastGood}`, 3);
        }
        const bad = firstNonFinite(model.namedParameters());
        if (bad) throw new CliError(`weights are not finite after step ${step + 1} (${bad}); stopped without saving (lower --lr?). ${lastGood}`, 3);
        step += 1;
        const imagesPerSec = batch.shape[0] / ((performance.now() - tStep) / 1000);
        const peakMiB = peakResidentMiB();
        logMetrics({ type: 'train', step, loss, lr, imagesPerSec, peakMiB, epoch: batch.epoch, time: elapsedBefore + (performance.now() - t0) / 1000 });
        progress.update({ step, loss, lr, imagesPerSec, peakMiB });

        // let a pending signal handler run: the step above never gave the event loop a turn
        await new Promise((r) => setImmediate(r));
        const atCkpt = step % cfg.ckptEvery === 0 || step === totalSteps;
        const atVal = cfg.valEvery > 0 ? step % cfg.valEvery === 0 || step === totalSteps : atCkpt;
        const val = atVal && !interrupted ? await validate() : null; // a signal saves at once, without validating
        if (atCkpt || interrupted) {
          await checkpoint(val);
          lastCkptStep = step;
        }
        if (interrupted || step >= totalSteps) break;
      }
    }
  } catch (e) {
    progress.stop();
    await loader.close();
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
  progress.stop();
  await loader.close();
  if (lastCkptStep !== step) await checkpoint(null);
  const secs = elapsedBefore + (performance.now() - t0) / 1000;
  if (interrupted) {
    console.log(`interrupted at step ${step}: checkpoint ${lastCheckpoint}; continue with: ${selfCommand()} train --resume ${runDir}`);
    exitCode = 130;
  } else if (!request.quiet) {
    console.log(`done: ${step} steps in ${formatDuration(secs)}${bestPsnr !== null ? `; best validation PSNR ${bestPsnr.toFixed(2)} dB at step ${bestStep}` : ''}; checkpoints in ${runDir}`);
  }
  return {
    runDir, steps: step, exitCode, lastCheckpoint,
    bestCheckpoint: existsSync(join(runDir, 'best')) ? join(runDir, 'best') : null, lastVal,
  };
}
