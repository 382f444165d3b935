/**
 * Our side of one cell of the model table (model.bench.ts); scripts/torch/bench_torch.py is the
 * PyTorch side and takes the same task. The bench runs each cell in a fresh process so that the
 * peak resident memory printed here (process.resourceUsage().maxRSS: the WebAssembly memory and
 * the worker threads included) belongs to that cell alone. Threads: MOFME_THREADS, set by the
 * caller, sizes the kernel pool.
 *
 * Task (argv[2], JSON): kind "forward" | "train" | "restore", model (a model file of ours), input
 * (safetensors with `x`, and `y` for "train"), reps, budget_s; tile and stride for "restore".
 * Prints one JSON line: {ms, cpu_ms, runs, cold, rss_mb, threads} or {error} (and exits 1); cpu_ms is
 * the CPU time of the whole process (every thread), median like ms.
 * Timing: as the PyTorch side: one first run; if it took less than a third of the budget, up to
 * `reps` more while the budget lasts, and their median. The budget counts CPU seconds (the number
 * of timed runs then does not depend on the load of a shared machine).
 */
import { noGrad, profilingRequested, resetProfile, smoothL1Loss, tidy } from '@mofme/tensor';
import { AdamW, loadSafetensorsSync } from '@mofme/nn';
import { createModel, resolveConfig, restore, type MofmeConfig } from '@mofme/mofme';

interface Task { kind: 'forward' | 'train' | 'restore'; model: string; input: string; reps: number; budget_s: number; tile?: number; stride?: number }

function main(): void {
  const task = JSON.parse(process.argv[2]!) as Task;
  const file = loadSafetensorsSync(task.model);
  const model = createModel(resolveConfig(JSON.parse(file.metadata.config!) as MofmeConfig), { seed: 0 });
  model.loadStateDict(file.tensors);
  const data = loadSafetensorsSync(task.input).tensors;
  const x = data.x!;
  let run: () => void;
  if (task.kind === 'forward') {
    model.eval();
    run = () => tidy(() => noGrad(() => void model.forward(x).image.data()));
  } else if (task.kind === 'restore') {
    run = () => void restore(model, x, { tile: task.tile, stride: task.stride }).data();
  } else {
    const y = data.y!;
    model.train();
    const optimizer = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.999], weightDecay: 1e-4 });
    run = () => tidy(() => {
      optimizer.zeroGrad();
      const loss = smoothL1Loss(model.forward(x).image, y, 1, 'mean');
      loss.backward();
      optimizer.step();
      loss.item();
    });
  }
  const timed = (): { wall: number; cpu: number } => {
    const t0 = performance.now(), c0 = process.cpuUsage();
    run();
    const c = process.cpuUsage(c0);
    return { wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
  };
  const first = timed();
  // MOFME_PROFILE: the tables printed at exit cover the timed runs, not the cold first one (fresh
  // memory, compilation), unless that is the only run
  if (profilingRequested() && first.cpu < (task.budget_s * 1000) / 3) resetProfile();
  const times: { wall: number; cpu: number }[] = [];
  let spent = first.cpu;
  if (first.cpu < (task.budget_s * 1000) / 3) {
    while (times.length < task.reps && spent < task.budget_s * 1000) {
      times.push(timed());
      spent += times[times.length - 1]!.cpu;
    }
  }
  const kept = times.length ? times : [first];
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2;
  };
  console.log(JSON.stringify({
    ms: median(kept.map((t) => t.wall)), cpu_ms: median(kept.map((t) => t.cpu)), runs: kept.length, cold: !times.length,
    rss_mb: process.resourceUsage().maxRSS / 1024, threads: Number(process.env.MOFME_THREADS ?? 0),
  }));
  process.exit(0); // the kernel pool's worker threads would keep the process alive
}

try {
  main();
} catch (e) {
  console.log(JSON.stringify({ error: (e as Error).message.split('\n')[0] }));
  process.exit(1);
}
