#!/usr/bin/env python
"""What one GNMT-lite epoch costs on this machine, from a few optimizer steps.

    python scripts/time_gnmt.py --steps 20 --threads 1 scale=cpu batch_size=2048

Builds the task and the trainer exactly as a run does (any Hydra overrides), times `--steps`
optimizer steps of the first epoch after one warm-up step, and prints seconds per step, both
wall-clock and CPU (process time: on a machine shared with other jobs the CPU time per step of a
one-thread run is what an idle core would take), and the extrapolated epoch.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")

    from legw_repro.config.spec import build_spec
    from legw_repro.config.validate import task_class
    from legw_repro.loop import distributed
    from legw_repro.loop.trainer import Trainer
    from legw_repro.run.records import RunRecord

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        cfg = compose("train", overrides=["task=gnmt", "progress=false", *args.overrides])
    spec = build_spec(cfg, 1)
    dist = distributed.setup("cpu")
    task = task_class(cfg)(cfg, dist)
    with tempfile.TemporaryDirectory() as tmp:
        record = RunRecord(Path(tmp), cfg, enabled=False)
        trainer = Trainer(spec, task, dist, record, progress=False)
        trainer.carry = task.init_carry(trainer.model)
        batches = task.train_batches(0)
        trainer.train_step(next(batches))  # warm-up: allocations, first-call overheads
        wall, cpu = time.perf_counter(), time.process_time()
        for micro in itertools.islice(batches, args.steps):
            trainer.train_step(micro)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    spe = task.steps_per_epoch
    print(
        json.dumps(
            {
                "overrides": args.overrides,
                "threads": args.threads,
                "batch_size": task.batch_size,
                "steps_timed": args.steps,
                "steps_per_epoch": spe,
                "wall_s_per_step": round(wall / args.steps, 3),
                "cpu_s_per_step": round(cpu / args.steps, 3),
                "epoch_wall_min": round(wall / args.steps * spe / 60, 1),
                "epoch_cpu_min": round(cpu / args.steps * spe / 60, 1),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
