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
 * Loss: SmoothL1 (β = 1, mean), what the official code calls "content l1" (mofme-paper.md §5.1).
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
import { existsSync, readFileSync, appendFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { smoothL1Loss, tensor, tidy } from '@mofme/tensor';
import { AdamW, LRScheduler, constantSchedule, warmupCosineSchedule, type Schedule } from '@mofme/nn';
import { createModel, countParameters, type MoFME } from '@mofme/mofme';
import { builtinDataset, corpusDataset, createLoader, isCorpusDir, openDataset, type AnyDataset, type Layout } from '@mofme/data';
import { modelConfigOf, type TrainConfig } from './config';
import { LAYOUTS } from './options';
import {
  firstNonFinite, listCheckpoints, loadOptimizerState, loadWeightsInto, markBest, pruneCheckpoints, readState, resolveModelFile, resolveResume, saveCheckpoint, MODEL_FILE, type TrainingState,
} from './checkpoint';
import { fsError, outputDir, selfCommand, writeOutput } from './io';
import { evaluate, EvaluationStopped, type EvalResult } from './evaluate';
import { executionFor, selectBackend } from './backend';
import { CliError, oneLine } from './errors';
import { Progress, formatDuration } from './progress';

export interface TrainResult {
  runDir: string;
  steps: number;
  exitCode: number;
  lastCheckpoint: string | null;
  bestCheckpoint: string | null;
  lastVal: EvalResult | null;
}

export interface TrainOptions {
  /** continue the run in this folder (a run folder or one checkpoint folder) */
  resume?: string;
  /** no progress output (the demo prints its own) */
  quiet?: boolean;
  /** with `resume`: flags given again that may change (options.ts RESUMABLE; main.ts refuses the rest) */
  changes?: Partial<TrainConfig>;
}

/** Open a training or validation dataset: 'builtin' (with a split) or a path. */
export async function openData(spec: string, split: 'train' | 'val' | 'test', layout?: string): Promise<AnyDataset> {
  if (spec === 'builtin') return builtinDataset(split);
  if (!existsSync(spec)) throw new CliError(`--data ${spec}: no such file or folder`);
  if (isCorpusDir(spec)) return corpusDataset(spec, split); // clean photos of `mofme data corpus`: weather on the fly
  if (statSync(spec).isDirectory() && readdirSync(spec).length === 0) throw new CliError(`--data ${spec}: the folder is empty`);
  let ds;
  try {
    ds = await openDataset(spec, { policy: 'skip', ...(layout ? { layout: layout as Layout } : {}) });
  } catch (e) {
    // the data package speaks to programmers ("pass { layout }"); say it in flags
    const why = oneLine(e).replace(/^openDataset: /, '').replace(/pass \{ layout \}/, `pass --layout (${LAYOUTS.join(', ')})`);
    throw new CliError(`--data ${spec}: ${why}`);
  }
  if (ds.length === 0) {
    const first = ds.skipped[0];
    const why = first ? `${ds.skipped.length} skipped; first: ${skippedProblem(first)}` : `layout ${ds.layout}`;
    throw new CliError(`--data ${spec}: no input/ground-truth pairs found (${why}); run ${selfCommand()} data check ${spec}`);
  }
  return ds;
}

/** One skipped pair in words: a list file may name an input that does not exist (the data package then reports its missing ground truth). */
export function skippedProblem(s: { input: string; target: string | null; reason: string }): string {
  if (!existsSync(s.input)) return `${s.input}: no such input image`;
  return `${s.input}: ${s.reason.replace(` for "${s.input}"`, '')}${s.target ? ` (${s.target})` : ''}`;
}

export async function train(flagsConfig: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  // ---- run folder and configuration ------------------------------------------------------------
  const resume = options.resume ? resolveResume(options.resume) : null;
  const saved = resume ? readState(resume.ckpt) : null;
  const cfg: TrainConfig = saved ? { ...saved.config, ...options.changes } : flagsConfig; // a resumed run keeps its own config
  if (saved && options.changes?.steps !== undefined) {
    if (options.changes.steps <= saved.step) throw new CliError(`--steps ${options.changes.steps}: the run is already at step ${saved.step}; give more steps to continue it`);
    delete cfg.epochs; // --steps replaces an --epochs length
  }
  const runDir = resume ? resume.runDir : resolve(cfg.out);
  if (!resume && listCheckpoints(runDir).length) {
    throw new CliError(`--out ${runDir} already holds a training run; continue it with --resume ${runDir}, or choose another --out`);
  }
  outputDir(runDir, '--out');
  const backend = await selectBackend(cfg.backend);
  const modelConfig = executionFor(modelConfigOf(cfg), backend);

  // ---- data ------------------------------------------------------------------------------------
  const trainData = await openData(cfg.data, 'train', cfg.layout);
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
  const optimizer = new AdamW(model.parameters(), { lr: cfg.lr, betas: [0.9, 0.999], weightDecay: cfg.weightDecay });
  const warmup = Math.min(cfg.warmup, totalSteps - 1);
  const schedule: Schedule = cfg.schedule === 'cosine'
    ? warmupCosineSchedule({ warmup, total: totalSteps, minLr: Math.min(cfg.minLr, cfg.lr), startFactor: 1 / Math.max(1, warmup) })
    : warmup > 0 ? (t, base) => base * Math.min(1, (t + 1) / warmup) : constantSchedule();
  const scheduler = new LRScheduler(optimizer, schedule);

  // ---- resume ------------------------------------------------------------------------------------
  let step = 0;
  let bestPsnr: number | null = null, bestStep: number | null = null;
  let elapsedBefore = 0;
  let lastCheckpoint: string | null = null;
  const metricsFile = join(runDir, 'metrics.jsonl');
  if (resume && saved) {
    await loadWeightsInto(model, join(resume.ckpt, MODEL_FILE), 'checkpoint', 'was the run folder edited?');
    await loadOptimizerState(resume.ckpt, optimizer, scheduler);
    model.rng.setState(saved.rng);
    ({ step, bestPsnr, bestStep } = saved);
    elapsedBefore = saved.elapsedSeconds;
    lastCheckpoint = resume.ckpt;
    // forget what the killed run logged after this checkpoint: those steps are about to be redone
    // (a line cut by the kill is dropped too)
    if (existsSync(metricsFile)) {
      const kept = readFileSync(metricsFile, 'utf8').split('\n').filter((l) => {
        try { return l.trim() && (JSON.parse(l) as { step: number }).step <= step; } catch { return false; }
      });
      writeOutput(metricsFile, kept.map((l) => l + '\n').join(''));
    }
  } else {
    writeOutput(metricsFile, '');
  }
  writeOutput(join(runDir, 'config.json'), JSON.stringify({ train: cfg, model: modelConfig, totalSteps }, null, 2) + '\n');
  // metrics.jsonl is a log: appended line by line (a kill can cut only its last line, dropped on resume)
  const logMetrics = (record: object) => {
    try { appendFileSync(metricsFile, JSON.stringify(record) + '\n'); } catch (e) { throw fsError('write', metricsFile, e); }
  };

  const progress = new Progress(cfg.logEvery, undefined, options.quiet);
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
        const lr = optimizer.paramGroups[0]!.lr;
        const loss = tidy(() => {
          const x = tensor(batch.input, { shape: batch.shape }).sub(0.5).div(0.5); // degraded, [−1, 1] as the official loader
          const y = tensor(batch.target, { shape: batch.shape }); // clean, [0, 1]
          const l = smoothL1Loss(model.forward(x).image, y, 1, 'mean');
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
        logMetrics({ type: 'train', step, loss, lr, imagesPerSec, epoch: batch.epoch, time: elapsedBefore + (performance.now() - t0) / 1000 });
        progress.update({ step, loss, lr, imagesPerSec });

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
  } else if (!options.quiet) {
    console.log(`done: ${step} steps in ${formatDuration(secs)}${bestPsnr !== null ? `; best validation PSNR ${bestPsnr.toFixed(2)} dB at step ${bestStep}` : ''}; checkpoints in ${runDir}`);
  }
  return {
    runDir, steps: step, exitCode, lastCheckpoint,
    bestCheckpoint: existsSync(join(runDir, 'best')) ? join(runDir, 'best') : null, lastVal,
  };
}
