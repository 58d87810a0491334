"""Test helpers: compose configs like the CLI does, and run the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]


def make_cfg(*overrides: str) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        return compose(config_name="train", overrides=list(overrides))


def run_cli(*args: str, module: str = "legw_repro.train", torchrun: int = 0, timeout: int = 300):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    if torchrun:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={torchrun}",
            "-m",
            module,
            *args,
        ]
    else:
        cmd = [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def read_rows(run_dir: Path, kind: str | None = None) -> list[dict]:
    rows = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if kind is None or r["kind"] == kind]


def checkpoint_params(run_dir: Path) -> dict:
    """The model weights of a run's last checkpoint (to compare two runs' results exactly)."""
    import torch

    return torch.load(Path(run_dir) / "checkpoints" / "last.pt", weights_only=False)["model"]


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def scheduled_lr(cfg: dict, step: int, steps_per_epoch: int, *, optimizer: str = "sgd") -> float:
    """The LR the schedule library gives for optimizer step `step` (1-based, as logged) of a run
    with the resolved config `cfg` (its config.yaml): the reference the run record is checked
    against."""
    from legw_repro.schedule import learning_rate

    sched = cfg["task"]["schedule"]
    return learning_rate(
        (step - 1) / steps_per_epoch,
        base_lr=cfg["task"][optimizer]["base_lr"],
        base_batch_size=cfg["task"]["base_batch_size"],
        batch_size=cfg["batch_size"],
        warmup_epochs=sched["warmup_epochs"],
        epochs=cfg["epochs"],
        rule=cfg["policy"]["rule"],
        warmup=cfg["policy"]["warmup"],
        decay=sched["decay"],
        handover=sched.get("handover", "product"),
        **sched[sched["decay"]],
    )
