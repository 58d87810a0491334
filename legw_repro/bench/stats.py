"""Blocks of timed steps -> per-loop figures and trainer/bare ratios (pure functions).

Why blocks and per-block ratios: on a machine shared with other jobs the speed of *both* loops
drifts by tens of percent within a minute, far more than the overhead being measured. The
harness therefore runs the trainer and the bare loop in alternating blocks of a few steps on
the same batches; the ratio of two neighbouring blocks sees nearly the same machine, and the
median over blocks drops the blocks a burst of other work hit.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """`steps` consecutive steps of one loop: wall and process-CPU seconds, and the peak memory
    while they ran (bytes; CUDA: max allocated in the block, CPU: None, see the report)."""

    loop: str  # "trainer", "bare_sync" (reads the loss every step), "bare_nosync"
    steps: int
    wall_s: float
    cpu_s: float
    peak_bytes: int | None = None


@dataclass(frozen=True)
class Plan:
    """How many steps a block has and how many blocks of each loop to run."""

    steps_per_block: int
    blocks: int

    @property
    def timed_steps(self) -> int:
        return self.steps_per_block * self.blocks


def plan(step_s: float, block_s: float, budget_s: float, max_steps: int, min_blocks: int = 3,
         max_blocks: int = 12, loops: int = 2) -> Plan:  # fmt: skip
    """Blocks of about `block_s` seconds (at least one step), as many as `budget_s` allows for
    `loops` loops taking turns (between `min_blocks` and `max_blocks`), and at most `max_steps`
    timed steps of one loop (the trainer must not cross an epoch end inside a block)."""
    step_s = max(step_s, 1e-6)
    k = max(1, round(block_s / step_s))
    n = int(budget_s / (loops * k * step_s))
    n = min(max(n, min_blocks), max_blocks, max(1, max_steps // k))
    k = min(k, max(1, max_steps // n))
    return Plan(steps_per_block=k, blocks=max(1, n))


def paired_ratios(a: list[Block], b: list[Block], cpu: bool = False) -> list[float]:
    """Per-block speed of loop `a` relative to `b` (b's seconds / a's seconds for the same
    steps; > 1: `a` is faster), pairing the i-th blocks."""
    out = []
    for x, y in zip(a, b, strict=False):
        tx, ty = (x.cpu_s, y.cpu_s) if cpu else (x.wall_s, y.wall_s)
        if tx > 0 and ty > 0:
            out.append((ty / y.steps) / (tx / x.steps))
    return out


@dataclass(frozen=True)
class LoopFigures:
    """One loop's figures over its blocks: step time (median, min, max of the block means),
    throughput at the median step, and the peak memory seen."""

    loop: str
    blocks: int
    steps_per_block: int
    step_ms_median: float
    step_ms_min: float
    step_ms_max: float
    items_per_s: float
    peak_bytes: int | None


def figures(blocks: list[Block], items_per_step: float) -> LoopFigures:
    """The figures of one loop's blocks (all of the same loop)."""
    if not blocks:
        raise ValueError("no blocks")
    per_step = [b.wall_s / b.steps for b in blocks]
    median = statistics.median(per_step)
    peaks = [b.peak_bytes for b in blocks if b.peak_bytes is not None]
    return LoopFigures(
        loop=blocks[0].loop,
        blocks=len(blocks),
        steps_per_block=blocks[0].steps,
        step_ms_median=1e3 * median,
        step_ms_min=1e3 * min(per_step),
        step_ms_max=1e3 * max(per_step),
        items_per_s=items_per_step / median if median > 0 else float("nan"),
        peak_bytes=max(peaks) if peaks else None,
    )


def median_or_nan(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def by_loop(blocks: list[Block]) -> dict[str, list[Block]]:
    """Blocks grouped by loop, each group in the order run."""
    out: dict[str, list[Block]] = {}
    for b in blocks:
        out.setdefault(b.loop, []).append(b)
    return out
