"""Driving the real trainer and the bare loop in turns, in one process.

Why inside the trainer's own run: the figure for "the suite's trainer" must include everything
a run does per step (schedule, rows, checks, checkpoint flags, progress bar), so the harness runs
`legw_repro.run.lifecycle.run` unchanged and only wraps the task's batch iterator (`ticking`). Every
`steps_per_block` trainer steps the wrapper stops the clock, runs the bare loop over the same
steps of the epoch -- the same batches (same shapes, same sentence lengths), produced by the
task's own iterator -- and restarts it: the blocks alternate trainer, bare, trainer, bare, ...
on one machine state.

`Window` is the variant for several processes sharing one device: after a warm-up each process
waits for the others (a file barrier), counts the steps it finishes in a fixed window, then
ends its run (`WindowClosed`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from legw_repro.bench.bare import BareLoop
from legw_repro.bench.stats import Block, Plan

Tick = Callable[[list[Any]], None]


class Clock:
    """Wall and process-CPU time, after the device has finished its queue (a sync on CUDA:
    taken only at block boundaries), and the device's peak memory per block."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def now(self) -> tuple[float, float]:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> int | None:
        return int(torch.cuda.max_memory_allocated()) if self.cuda else None

    def block(self, loop: str, steps: int, start: tuple[float, float]) -> Block:
        wall, cpu = self.now()
        return Block(loop, steps, wall - start[0], cpu - start[1], self.peak())


class Alternator:
    """`tick(micro)` is called before each trainer step (step i of epoch 0 at the i-th tick):
    the first `warmup` steps are untimed, then `plan.blocks` trainer blocks, each followed by
    the bare loop's blocks over the same steps (with `nosync`, also without the per-step read).
    `batches_from(i)` is the task's own batch iterator from step i: a bare block draws its
    batches from it as the trainer's iterator does, so both blocks pay for producing the same
    batches (a trainer block times the production of the batch after each of its steps; so does
    a bare block, the first batch being fetched before its clock starts)."""

    def __init__(
        self,
        bare: BareLoop,
        clock: Clock,
        plan: Plan,
        warmup: int,
        batches_from: Callable[[int], Iterator[list[Any]]],
        nosync: bool = False,
    ) -> None:
        self.bare, self.clock, self.plan, self.warmup = bare, clock, plan, warmup
        self.batches_from = batches_from
        self.variants = [("bare_sync", True)] + ([("bare_nosync", False)] if nosync else [])
        self.blocks: list[Block] = []
        self.i = 0
        self._start: tuple[float, float] | None = None

    @property
    def trainer_steps(self) -> int:
        """Trainer steps the run needs: warm-up, the blocks, and one to close the last block."""
        return self.warmup + self.plan.timed_steps + 1

    def tick(self, micro: list[Any]) -> None:
        i, k = self.i - self.warmup, self.plan.steps_per_block
        self.i += 1
        if i < 0 or i > self.plan.timed_steps:
            return
        if i % k == 0 and self._start is not None:
            self.blocks.append(self.clock.block("trainer", k, self._start))
            self._run_bare(self.i - 1 - k, k)
            self._start = None
        if i < self.plan.timed_steps and self._start is None:
            self.clock.reset_peak()
            self._start = self.clock.now()

    def _run_bare(self, first_step: int, k: int) -> None:
        for loop, sync in self.variants:
            batches = self.batches_from(first_step)
            micro = next(batches)
            self.clock.reset_peak()
            start = self.clock.now()
            for _ in range(k):
                self.bare.step(micro, sync)
                micro = next(batches, None)
            self.blocks.append(self.clock.block(loop, k, start))


class WindowClosed(Exception):
    """Raised from the batch iterator to end a concurrency run once its window is over."""


class Window:
    """For N processes on one device: `warmup` untimed steps, a barrier (every process writes
    `ready-<rank>` in `barrier_dir` and waits for N of them), then the steps finished within
    `seconds`; raises WindowClosed at the first tick after it."""

    def __init__(
        self, clock: Clock, warmup: int, seconds: float, barrier_dir: Path, rank: int, n: int
    ) -> None:
        self.clock, self.warmup, self.seconds = clock, warmup, seconds
        self.barrier_dir, self.rank, self.n = Path(barrier_dir), rank, n
        self.i = 0
        self.block: Block | None = None
        self._start: tuple[float, float] | None = None

    def tick(self, micro: list[Any]) -> None:
        i = self.i - self.warmup
        self.i += 1
        if i == 0:
            wait_for_peers(self.barrier_dir, self.rank, self.n)
            self.clock.reset_peak()
            self._start = self.clock.now()
        elif i > 0 and time.perf_counter() - self._start[0] >= self.seconds:
            self.block = self.clock.block("trainer", i, self._start)
            raise WindowClosed


def wait_for_peers(directory: Path, rank: int, n: int, timeout_s: float = 300.0) -> None:
    """A file barrier: mark this process ready, return once `n` processes are."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"ready-{rank}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(directory.glob("ready-*"))) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(directory.glob('ready-*')))}/{n} ready")
        time.sleep(0.01)


@contextlib.contextmanager
def ticking(task_cls: type, tick: Tick) -> Iterator[Callable[..., Iterator[list[Any]]]]:
    """While open, `task_cls.train_batches` calls `tick(micro)` before yielding each step's
    batches. Yields the original method (for the bare loop's own batches)."""
    original = task_cls.train_batches

    def train_batches(self: Any, epoch: int, start_step: int = 0) -> Iterator[list[Any]]:
        for micro in original(self, epoch, start_step):
            tick(micro)
            yield micro

    with mock.patch.object(task_cls, "train_batches", train_batches):
        yield original
