"""Train a model of ours on several processes (or machines) with PyTorch's DistributedDataParallel,
and write it back in our format. "When one machine is not enough" in the README runs it.

The round trip: `mofme train` (or the bundled model) gives a model.safetensors with our names and
config; scripts/torch/export-pairs.ts writes training pairs to a pairs.safetensors; this script,
started by `torchrun --nproc_per_node N`, loads the model into the PyTorch twin (mofme_torch.py),
wraps it in DistributedDataParallel (gloo backend: CPUs; nccl for GPUs works the same way), trains
it, and rank 0 writes OUT/model.safetensors (our names, the same config, the step in the metadata),
which `mofme eval --checkpoint OUT` and `mofme restore --checkpoint OUT` read as they read our own.

Data parallelism: every process holds the whole model; each step, each process takes its own
share of the batch (a DistributedSampler: the same shuffled order on every rank, rank r takes every
N-th sample from r), computes its gradients, and DDP averages them across processes during the
backward pass, so all replicas apply the same AdamW update and stay identical. The loss printed is
the mean over processes. Same objective as `mofme train`: SmoothL1 (beta 1) between the restored
image and the clean one, the degraded input scaled to [-1, 1].

find_unused_parameters=True: with top-k routing, an expert that no token of a process's share
chose gets no gradient on that process (and the paper preset's dead parameters never do); DDP must
be told, or it waits forever for those gradients.

Also writes OUT/losses.json: per-step losses, the loss on all the pairs before and after training
(rank 0, eval mode), world size, seconds.

  torchrun --standalone --nproc_per_node 2 scripts/torch/ddp_train.py \
      --model MODEL.safetensors --pairs DIR/pairs.safetensors --out OUT [--steps 30 --batch 4 --lr 1e-3]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.distributed.elastic.multiprocessing.errors import record  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset  # noqa: E402
from mofme_torch import load_model, load_safetensors, save_model  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True, help='our model file (model.safetensors written by mofme train, or the bundled one)')
    p.add_argument('--pairs', required=True, help='safetensors with input and target [N, 3, H, W] in [0, 1] (export-pairs.ts)')
    p.add_argument('--out', required=True, help='folder for model.safetensors and losses.json')
    p.add_argument('--steps', type=int, default=30, help='optimiser steps (default 30: a few epochs of a small folder)')
    p.add_argument('--batch', type=int, default=4, help='images per process per step (global batch = this x processes)')
    p.add_argument('--lr', type=float, default=1e-3, help='AdamW learning rate (1e-3: mofme train\'s default from scratch; about 1e-4 to fine-tune an already trained model)')
    p.add_argument('--weight-decay', type=float, default=1e-4, help='AdamW weight decay (mofme train default)')
    p.add_argument('--threads', type=int, default=1, help='torch threads per process (default 1: one core per process)')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args()


@record  # a failing process's error reaches torchrun's summary even when its stderr goes to a log file
def main():
    a = parse_args()
    for flag, path in (('--model', a.model), ('--pairs', a.pairs)):
        if not os.path.isfile(path):  # one line on stdout (torchrun may send stderr to a log file)
            print(f'ddp_train.py: {flag} {path}: no such file', flush=True)
            sys.exit(2)
    torch.set_num_threads(a.threads)
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(a.seed + rank)  # dropout differs per process, as it would on separate machines

    model, config, metadata = load_model(a.model)
    pairs = load_safetensors(a.pairs)[0]
    if 'input' not in pairs or 'target' not in pairs or pairs['input'].shape != pairs['target'].shape:
        raise SystemExit(f'{a.pairs}: expected tensors input and target of one shape [N, 3, H, W]')
    x_all = pairs['input'].float() * 2 - 1  # degraded, [-1, 1] as the model expects
    y_all = pairs['target'].float()  # clean, [0, 1]
    sampler = DistributedSampler(TensorDataset(x_all, y_all), num_replicas=world, rank=rank, shuffle=True, seed=a.seed, drop_last=True)
    loader = DataLoader(TensorDataset(x_all, y_all), batch_size=a.batch, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise SystemExit(f'{a.pairs}: {len(x_all)} pairs give no batch of {a.batch} on each of {world} processes')

    def loss_on_all_pairs():
        model.eval()
        with torch.no_grad():
            value = sum(F.smooth_l1_loss(model(x_all[i:i + 8]), y_all[i:i + 8], beta=1.0, reduction='sum').item()
                        for i in range(0, len(x_all), 8)) / y_all.numel()
        model.train()
        return value

    before = loss_on_all_pairs() if rank == 0 else None
    ddp = DistributedDataParallel(model, find_unused_parameters=True)  # broadcasts rank 0's weights
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=a.lr, betas=(0.9, 0.999), weight_decay=a.weight_decay)
    start_step = int(metadata.get('step', '0') or 0)
    losses, step, epoch, t0 = [], 0, 0, time.time()
    model.train()
    while step < a.steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = F.smooth_l1_loss(ddp(x), y, beta=1.0)
            optimizer.zero_grad()
            loss.backward()  # DDP all-reduces (averages) the gradients here
            optimizer.step()
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            losses.append(mean.item() / world)
            step += 1
            if rank == 0:
                print(f'step {step}/{a.steps}  loss {losses[-1]:.5f}  ({world} processes, {time.time() - t0:.1f} s)', flush=True)
            if step >= a.steps:
                break
        epoch += 1

    if rank == 0:
        after = loss_on_all_pairs()
        os.makedirs(a.out, exist_ok=True)
        save_model(os.path.join(a.out, 'model.safetensors'), model, step=start_step + step)
        report = {'losses': losses, 'before': before, 'after': after, 'world_size': world, 'steps': step,
                  'global_batch': a.batch * world, 'seconds': time.time() - t0, 'config': config['ffn']}
        tmp = os.path.join(a.out, 'losses.json.tmp')
        with open(tmp, 'w') as f:
            json.dump(report, f, indent=1)
        os.replace(tmp, os.path.join(a.out, 'losses.json'))
        print(f'loss on all {len(x_all)} pairs: {before:.5f} before, {after:.5f} after; wrote {a.out}/model.safetensors', flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
