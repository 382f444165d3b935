"""The PyTorch side of one cell of the model table of `pnpm bench` (bench/model.bench.ts).

The bench writes our model (safetensors, our names and config) and its inputs to files, then runs
this script once per cell, in a fresh process so that the peak resident memory it reports belongs
to that cell alone. It loads the twin (mofme_torch.py) with the very same weights and inputs our
engine gets, times the task, and prints one JSON line:
  {"ms": median wall milliseconds, "cpu_ms": median CPU milliseconds of the process (all threads),
   "runs": timed runs, "cold": true if only the first run was timed,
   "rss_mb": peak resident set size of the process, "torch": version, "threads": threads used}

Task (argv[1], JSON): kind "forward" | "train" | "restore", model (file), input (file with `x`, and
`y` for "train"), threads, reps, budget_s; tile and stride for "restore".
Threads: torch.set_num_threads(threads), and OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set to the same
number by the caller before the process starts (the BLAS reads them at load time).
Timing: one first run; if it took less than a third of the budget, up to `reps` more runs while the
budget lasts, and the median of those (the first run pays for allocation and lazy init). The budget
counts CPU seconds, not wall seconds, so that how many runs are timed does not depend on the load
of a shared machine.
"""
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mofme_torch import load_model, load_safetensors, restore  # noqa: E402


def main():
    task = json.loads(sys.argv[1])
    torch.set_num_threads(task['threads'])
    torch.manual_seed(0)
    model, _, _ = load_model(task['model'])
    data = load_safetensors(task['input'])[0]
    x = data['x'].float()
    if task['kind'] == 'forward':
        def run():
            with torch.inference_mode():
                model(x)
    elif task['kind'] == 'restore':
        def run():
            restore(model, x, task['tile'], task['stride'])
    elif task['kind'] == 'train':
        y = data['y'].float()
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)

        def run():
            opt.zero_grad()
            F.smooth_l1_loss(model(x), y, beta=1.0).backward()
            opt.step()
    else:
        raise ValueError(f'unknown task kind {task["kind"]!r}')

    def timed():
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        return time.perf_counter() - t0, time.process_time() - c0

    first = timed()
    times = []
    spent = first[1]
    if first[1] < task['budget_s'] / 3:
        while len(times) < task['reps'] and spent < task['budget_s']:
            times.append(timed())
            spent += times[-1][1]
    kept = times or [first]
    ms = 1000 * statistics.median(t[0] for t in kept)
    cpu_ms = 1000 * statistics.median(t[1] for t in kept)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({'ms': ms, 'cpu_ms': cpu_ms, 'runs': max(1, len(times)), 'cold': not times, 'rss_mb': rss_mb,
                      'torch': torch.__version__, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    main()
