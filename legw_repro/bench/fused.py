"""Fused runs against separate runs: items/s of N grid points trained as one stacked model
(legw_repro/loop/fused.py) against the same N runs stepped one after another by the trainer's own
step (Trainer.eager_step), the way a sweep without fusion spends one device.

Both sides are timed over the same steps of the same members (seeds 0..N-1 of one policy) after
`warmup` untimed steps, alternated `repeats` times (the medians count: a shared machine's load
falls on both sides alike); building the models and loading the data are left out. A GPU's queue
is drained before each clock read, so the time is the device's too.

    python -m legw_repro.bench.fused --members 1,4,8            # PTB batch 20, cpu scale
    python -m legw_repro.bench.fused --members 1,4,8 --mode stacked   # the GPU's path, on a CPU
    python -m legw_repro.bench.fused --members 1,4,8,16 --device cuda --scale paper
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from typing import Any

import torch
from hydra import compose, initialize_config_dir

from legw_repro.config.config_dir import CONFIGS
from legw_repro.config.spec import build_spec
from legw_repro.loop.distributed import DistInfo
from legw_repro.loop.fused import FusedGroup
from legw_repro.loop.trainer import Trainer
from legw_repro.tasks.base import Task
from legw_repro.tasks.common.fused import fused_forward
from legw_repro.tasks.ptb.task import PTBTask


def _task(args: argparse.Namespace, seed: int) -> tuple[Any, Task]:
    overrides = [
        "task=ptb",
        f"scale={args.scale}",
        f"batch_size={args.batch_size}",
        f"policy={args.policy}",
        f"seed={seed}",
        f"device={args.device}",
        "wandb.mode=disabled",
    ]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose(config_name="train", overrides=overrides)
    return build_spec(cfg), PTBTask(cfg, DistInfo(device=torch.device(args.device)))


def _trainer(spec: Any, task: Task) -> Trainer:
    """A run without a record: the bench times steps only."""
    return Trainer(spec, task, DistInfo(device=task.device), record=None, progress=False)


def _clock(device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter()


def _steps(task: Task, n: int) -> Iterator[list[Any]]:
    batches = task.train_batches(0)
    for _ in range(n):
        yield next(batches)


def separate(args: argparse.Namespace, n: int) -> float:
    """Seconds of `args.steps` steps of each of `n` solo runs, one run after another."""
    total = 0.0
    for seed in range(n):
        spec, task = _task(args, seed)
        trainer = _trainer(spec, task)
        trainer.carry = task.init_carry(trainer.model)
        for i, micro in enumerate(_steps(task, args.warmup + args.steps)):
            if i == args.warmup:
                t0 = _clock(args.device)
            loss = trainer.eager_step(micro)
        loss.item()
        total += _clock(args.device) - t0
    return total


def fused(args: argparse.Namespace, n: int) -> float:
    """Seconds of `args.steps` steps of the `n` runs as one fused group."""
    members = [_trainer(*_task(args, seed)) for seed in range(n)]
    stacked = {"auto": None, "stacked": True, "stepwise": False}[args.mode]
    group = FusedGroup(members, fused_forward(members[0].model), stacked)
    group.run(args.warmup)
    t0 = _clock(args.device)
    group.run(args.steps)  # reads each step's losses, as the solo loop on a CPU does
    return _clock(args.device) - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", default="1,4,8", help="comma-separated group sizes N")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--scale", default="cpu")
    p.add_argument("--policy", default="sqrt_legw")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--mode",
        choices=("auto", "stacked", "stepwise"),
        default="auto",
        help="the group's step: one stacked model, or each member's solo step (auto: stacked "
        "on a GPU, stepwise on a CPU)",
    )
    p.add_argument("--steps", type=int, default=20, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument(
        "--repeats", type=int, default=1, help="alternate both sides this often; the medians"
    )
    args = p.parse_args(argv)
    items = args.batch_size * _task(args, 0)[1].bptt * args.steps
    print(
        f"PTB batch {args.batch_size}, scale {args.scale}, {args.device}, {args.steps} steps/run, "
        f"fused mode {args.mode}"
    )
    print(f"{'N':>3} {'separate tok/s':>15} {'fused tok/s':>12} {'fused/separate':>15}")
    for n in (int(s) for s in args.members.split(",")):
        # alternated, so a shared machine's load falls on both sides alike
        times = [(separate(args, n), fused(args, n)) for _ in range(args.repeats)]
        sep = n * items / statistics.median(t[0] for t in times)
        fus = n * items / statistics.median(t[1] for t in times)
        print(f"{n:>3} {sep:>15.0f} {fus:>12.0f} {fus / sep:>15.2f}", flush=True)


if __name__ == "__main__":
    main()
