"""A few optimizer steps of a sweep point on this machine, to price the sweep (legw_repro/sweep/cost.py).

Why a real run and not a benchmark model: start-up (imports, data, model), the data pipeline
and the device all count, and the trainer already logs each step's time (metrics.jsonl). The
run goes to a temporary directory that is removed afterwards, and is killed once it has logged
enough steps: a dry run writes nothing into the runs directory.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from legw_repro.run.records import METRICS, read_rows, read_summary
from legw_repro.sweep.cost import Sample
from legw_repro.sweep.plan import Point

REPO = Path(__file__).resolve().parents[2]


class CalibrationError(RuntimeError):
    """The calibration run stopped before it logged a step: one line, with its last words."""


def _rows(path: Path) -> list[dict]:
    """The training rows logged so far (a line being written is left out)."""
    return [r for r in read_rows(path) if r.get("kind") == "train"]


def measure(
    point: Point,
    steps: int = 4,
    timeout_s: float = 300.0,
    env: Mapping[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> Sample:
    """Train `point` for `steps` + 1 optimizer steps in a temporary directory, then kill it."""
    with tempfile.TemporaryDirectory(prefix="legw-calibrate-") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "legw_repro.train", *point.overrides, *extra]
        cmd += [f"hydra.run.dir={run_dir}", "progress=false", "wandb.mode=disabled"]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        first_at, rows = None, []
        try:
            while time.monotonic() - t0 < timeout_s and proc.poll() is None:
                rows = _rows(run_dir / METRICS)
                if rows and first_at is None:
                    first_at = time.monotonic() - t0
                if len(rows) > steps:
                    break
                time.sleep(0.2)
            summary = (read_summary(run_dir) or {}) if rows else {}
        finally:
            proc.kill()
            err = proc.communicate()[1] or ""
        if len(rows) < 2:
            last = " ".join(err.strip().splitlines()[-1:]) or f"exit {proc.returncode}"
            raise CalibrationError(f"calibrating batch {point.batch} failed: {last}")
    times = [b["time"] - a["time"] for a, b in zip(rows, rows[1:], strict=False)]
    sec = statistics.median(times)
    startup = max((first_at or 0.0) - sec, 0.0)  # launch to the first step, less that step
    return Sample(point.batch, int(summary.get("steps_per_epoch") or 1), sec, startup)
