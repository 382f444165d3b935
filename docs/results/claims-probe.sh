#!/bin/bash
# The CPU probe behind docs/uar.md §4: CPU seconds (user + system, GNU time) of `mofme train` with
# the `pnpm experiment --claims` recipe (corpus, crop 128, batch 8) at 2 and at 6 steps, per model;
# (6-step − 2-step)/4 is the cost of one step without the start-up. Writes runs/claims-probe/cpu.txt.
cd "$(dirname "$0")/../.." && mkdir -p runs/claims-probe
for v in "dense:--model dense" "moe-e4k2:--model moe --experts 4 --topk 2" "moe-e16k4:--model moe --experts 16 --topk 4" "mofme-e4k2-linear:--model mofme --experts 4 --topk 2 --router linear" "mofme-e4k2-uar:--model mofme --experts 4 --topk 2 --router uar" "mofme-e16k4-linear:--model mofme --experts 16 --topk 4 --router linear" "mofme-e16k4-uar:--model mofme --experts 16 --topk 4 --router uar"; do
  name=${v%%:*}; flags=${v#*:}
  for s in 2 6; do
    rm -rf runs/claims-probe/$name-$s
    /usr/bin/time -f "$name $s %U %S %e" -a -o runs/claims-probe/cpu.txt node --conditions=source --import tsx apps/cli/src/main.ts train --preset tiny $flags --data runs/corpus --steps $s --seed 1 --batch-size 8 --crop 128 --out runs/claims-probe/$name-$s --ckpt-every $s --keep-last 1 --val none > runs/claims-probe/$name-$s.log 2>&1
  done
done
uptime >> runs/claims-probe/cpu.txt
