"""What a sweep costs before it starts: steps per run and wall time, from a short calibration.

Pure: `legw_repro/sweep/calibrate.py` measures `Sample`s (a few optimizer steps at the grid's
smallest and largest batch, on this machine); this module turns them into each run's steps and
seconds and the sweep's wall time with some runs side by side. The model is deliberately
simple -- a step costs a + c * batch seconds (a line through the two samples), an epoch has
the same number of items at every batch, and each worker pays the measured start-up once (a
sweep's launcher imports torch once per worker process, not once per run) -- so the estimate is
as good as those assumptions: evaluation passes are not in it (they add a few percent per
epoch), and runs side by side are assumed not to slow each other down.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One calibration run: its batch, steps per epoch, seconds per optimizer step (median
    after the first) and seconds from launch to the first step (imports, data, model)."""

    batch: int
    steps_per_epoch: int
    sec_per_step: float
    startup_s: float


def step_seconds(samples: Sequence[Sample], batch: int) -> float:
    """Seconds per optimizer step at `batch`: the line through the smallest and largest
    sample (a single sample scales with the batch), never below the fastest sample."""
    lo, hi = min(samples, key=lambda s: s.batch), max(samples, key=lambda s: s.batch)
    if hi.batch == lo.batch:
        return lo.sec_per_step * batch / lo.batch
    slope = (hi.sec_per_step - lo.sec_per_step) / (hi.batch - lo.batch)
    fastest = min(s.sec_per_step for s in samples)
    return max(lo.sec_per_step + slope * (batch - lo.batch), fastest)


def run_steps(samples: Sequence[Sample], batch: int, epochs: float) -> int:
    """Optimizer steps of a run: an epoch holds the same items at every batch size (taken from
    the smallest-batch sample, the finest count)."""
    lo = min(samples, key=lambda s: s.batch)
    per_epoch = max(1, (lo.steps_per_epoch * lo.batch) // batch)
    return int(math.ceil(per_epoch * epochs))


def run_seconds(samples: Sequence[Sample], batch: int, epochs: float) -> float:
    return run_steps(samples, batch, epochs) * step_seconds(samples, batch)


def makespan(durations: Sequence[float], workers: int, startup_s: float = 0.0) -> float:
    """Wall time of running `durations` on `workers` side by side, longest first, each to the
    worker that frees up first (what a process pool does with a sorted queue), each worker
    starting `startup_s` late."""
    loads = [startup_s] * max(1, workers)
    for d in sorted(durations, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + d)
    return max(loads)


def human(seconds: float) -> str:
    """`45s`, `12 min`, `3.4 h`."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
