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


def run_cli(
    *args: str,
    module: str = "legw_repro.train",
    torchrun: int = 0,
    timeout: int = 300,
    env: dict[str, str | None] | None = None,
):
    """`env`: variables to set on top of these, None to remove one (`{"WANDB_MODE": None}`)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
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


def check_train_rows(run_dir: Path) -> list[dict]:
    """Every step has one row (record v2) whose `lr` is the rate the schedule library gives at
    the epoch where that step began (`epoch_start`), with `epoch` where it ended; the schedule
    is read from the run's own summary.json ("spec"), not rebuilt from its config."""
    from legw_repro.config.spec import RunSpec
    from legw_repro.schedule import learning_rate

    s = summary(run_dir)
    spec, spe = RunSpec.from_dict(s["spec"]), s["steps_per_epoch"]
    rows = read_rows(run_dir, "train")
    assert [r["step"] for r in rows] == list(range(1, s["total_steps"] + 1))
    for r in rows:
        assert r["epoch_start"] == (r["step"] - 1) / spe and r["epoch"] == r["step"] / spe
        assert r["lr"] == learning_rate(r["epoch_start"], spec.schedule)
    return rows
