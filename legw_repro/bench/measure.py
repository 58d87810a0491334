"""One benchmark measurement: a task at one batch size on one device, in this process.

`measure` builds the bare loop, warms it up, counts FLOPs per item, sizes the blocks from the
measured step time, then runs the suite's trainer (`legw_repro.run.lifecycle.run`, a real run into a
temporary directory) with the bare loop's blocks slotted in between its own (alternate.py).
`measure_window` is one of N processes sharing a device (concurrency). Both return plain dicts
(JSON) for `scripts/bench.py`, which runs each measurement in a process of its own so that peak
memory and process-wide settings belong to one measurement.
"""

from __future__ import annotations

import contextlib
import io
import math
import resource
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from legw_repro.bench.alternate import Alternator, Clock, Tick, Window, WindowClosed, ticking
from legw_repro.bench.bare import BareLoop
from legw_repro.bench.flops import flops_per_item
from legw_repro.bench.stats import plan
from legw_repro.config.config_dir import CONFIGS
from legw_repro.config.spec import build_spec
from legw_repro.config.validate import task_class
from legw_repro.loop.distributed import DistInfo


@dataclass(frozen=True)
class TaskBench:
    """What is measured for a task: the model of `scale` (configs/task_scale), overrides that
    keep the run's final evaluation and outputs short, and the batch sizes per device type."""

    scale: str
    extra: tuple[str, ...]
    batches: dict[str, tuple[int, ...]]


TASKS: dict[str, TaskBench] = {
    # Zaremba-small (2 x 200, bptt 20): the paper-scale PTB model
    "ptb": TaskBench(
        "paper", ("task.max_eval_tokens=2000",), {"cpu": (20, 80, 320), "cuda": (20, 160, 1280)}
    ),
    # the paper's row LSTM (128 units); the cpu scale is the full protocol
    "mnist": TaskBench(
        "cpu", ("task.max_eval_items=500",), {"cpu": (128, 512, 2048), "cuda": (128, 1024, 8192)}
    ),
    # GNMT-lite at 256 units (3 + 3 layers, 8k subwords)
    "gnmt": TaskBench(
        "cpu",
        ("task.data.max_eval_items=16", "task.decode.beam=1"),
        {"cpu": (8, 16, 32), "cuda": (128, 512, 2048)},
    ),
}

#: `--smoke`: the smoke-scale models, a few small batches (tests, the GPU script's CPU check)
SMOKE: dict[str, TaskBench] = {
    "ptb": TaskBench("smoke", (), {"cpu": (8, 16), "cuda": (8, 16)}),
    "mnist": TaskBench("smoke", (), {"cpu": (32, 64), "cuda": (32, 64)}),
    "gnmt": TaskBench("smoke", (), {"cpu": (8, 16), "cuda": (8, 16)}),
}


@dataclass(frozen=True)
class Setting:
    """One measurement's configuration."""

    task: str
    batch: int
    device: str  # cpu | cuda
    scale: str
    data_dir: str
    extra: tuple[str, ...] = ()
    precision: str = "fp32"
    overrides: tuple[str, ...] = field(default=())  # more Hydra overrides (e.g. cuda_graphs)

    def compose(self, epochs: float) -> DictConfig:
        """The trainer's config: the eager step (`overrides` may set cuda_graphs=true), the task's
        recipe with a constant rate (no warmup, no decay: the schedule is still stepped every
        step), evaluation only at the end, checkpoints only at epoch ends and the end, W&B off;
        `epochs` sets the number of steps."""
        overrides = [
            f"task={self.task}",
            f"scale={self.scale}",
            f"batch_size={self.batch}",
            "policy=none",
            "seed=0",
            f"device={self.device}",
            f"precision={self.precision}",
            f"epochs={epochs!r}",
            "accum_steps=1",
            "cuda_graphs=false",  # the eager step; --graphs-batches adds cuda_graphs=true
            "task.schedule.warmup_epochs=0",
            "task.schedule.decay=constant",
            "eval_every_epochs=1000",
            "checkpoint_every_min=0",
            "wandb.mode=disabled",
            "progress=true",
            f"data_dir={self.data_dir}",
            *self.extra,
            *self.overrides,
        ]
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
            return compose(config_name="train", overrides=overrides)


def _run_trainer(cfg: DictConfig, task_cls: type, tick: Tick) -> dict[str, Any]:
    """A real run into a temporary directory, `tick` called before each step; the progress bar
    and log lines go nowhere (the bar still does its work)."""
    from legw_repro.run.lifecycle import run

    with (
        ticking(task_cls, tick),
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stderr(io.StringIO()),
    ):
        return run(cfg, Path(tmp) / "run")


def _warm_up(bare: BareLoop, clock: Clock, batches: list[list[Any]]) -> float:
    """Run the bare loop over `batches`; the fastest step after the first (seconds)."""
    times = []
    for micro in batches:
        start = clock.now()
        bare.step(micro)
        times.append(clock.now()[0] - start[0])
    return min(times[1:] or times)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def measure(
    s: Setting,
    block_s: float,
    budget_s: float,
    warmup: int = 2,
    nosync: bool = False,
    max_blocks: int = 12,
) -> dict[str, Any]:
    """The trainer and the bare loop alternated in blocks (see the module doc)."""
    t_start = time.monotonic()
    device = torch.device(s.device)
    base = s.compose(epochs=1)
    spec = build_spec(base, 1)
    task_cls = task_class(base)
    task = task_cls(base, DistInfo(device=device))
    spe = task.steps_per_epoch
    bare = BareLoop(task, spec, device)
    batches = task.train_batches(0)  # the unwrapped iterator: the bare loop's warm-up
    first = next(batches)
    flops = flops_per_item(task, bare.model, first, bare.carry)
    clock = Clock(device)
    step_s = _warm_up(bare, clock, [first] + [next(batches) for _ in range(warmup)])
    warmup = warmup if step_s < block_s else 1  # long steps: one warm-up step is enough
    loops = 3 if nosync else 2
    p = plan(step_s, block_s, budget_s, spe - warmup - 2, max_blocks=max_blocks, loops=loops)
    original = task_cls.train_batches  # not the wrapped one `ticking` installs
    alt = Alternator(bare, clock, p, warmup, lambda i: original(task, 0, i), nosync)
    summary = _run_trainer(s.compose(epochs=alt.trainer_steps / spe), task_cls, alt.tick)
    return {
        "setting": asdict(s),
        "status": summary["status"],
        "reason": summary.get("reason"),
        "steps_per_epoch": spe,
        "items_per_step": task.items_per_step,
        "item_unit": task.item_unit,
        "flops_per_item": flops,
        "warmup_step_s": step_s,
        "blocks": [asdict(b) for b in alt.blocks],
        "peak_rss_bytes": _peak_rss(),
        "seconds": time.monotonic() - t_start,
    }


def measure_fused_window(
    s: Setting, seconds: float, barrier_dir: Path, n: int, warmup: int = 3
) -> dict[str, Any]:
    """The throughput of `n` runs trained as one fused group (legw_repro/run/group.py) in this
    process, over a window as `measure_window`'s: the whole group's items per second."""
    from legw_repro.run.group import GroupMember, run_group

    device = torch.device(s.device)
    cfg = s.compose(epochs=1000)
    task_cls = task_class(cfg)
    window = Window(Clock(device), warmup, seconds, barrier_dir, 0, 1)
    task = task_cls(cfg, DistInfo(device=device))
    model = task.build_model()
    flops = flops_per_item(task, model, next(task.train_batches(0)), task.init_carry(model)[0])
    calls = iter(range(1 << 62))

    def tick(micro: list[Any]) -> None:  # each member's stream ticks: count the first one's
        if next(calls) % n == 0:
            window.tick(micro)

    with (
        contextlib.suppress(WindowClosed),
        ticking(task_cls, tick),
        tempfile.TemporaryDirectory() as tmp,
        contextlib.redirect_stderr(io.StringIO()),
    ):
        run_group([GroupMember(cfg, Path(tmp) / f"m{i}") for i in range(n)])
    if window.block is None:
        raise RuntimeError("the group ended before its window closed")
    return {
        "setting": asdict(s),
        "concurrent": n,
        "rank": 0,
        "items_per_step": task.items_per_step * n,
        "item_unit": task.item_unit,
        "flops_per_item": flops,
        "block": asdict(window.block),
        "peak_rss_bytes": _peak_rss(),
    }


def measure_window(
    s: Setting, seconds: float, barrier_dir: Path, rank: int, n: int, warmup: int = 3
) -> dict[str, Any]:
    """This process's trainer throughput while `n` processes run at once (see Window)."""
    device = torch.device(s.device)
    cfg = s.compose(epochs=1000)
    task_cls = task_class(cfg)
    window = Window(Clock(device), warmup, seconds, barrier_dir, rank, n)
    task = task_cls(cfg, DistInfo(device=device))
    flops = math.nan
    if rank == 0:  # the same model in every process: count once
        model = task.build_model()
        flops = flops_per_item(task, model, next(task.train_batches(0)), task.init_carry(model)[0])
    with contextlib.suppress(WindowClosed):
        _run_trainer(cfg, task_cls, window.tick)
    if window.block is None:
        raise RuntimeError("the run ended before its window closed")
    return {
        "setting": asdict(s),
        "concurrent": n,
        "rank": rank,
        "items_per_step": task.items_per_step,
        "item_unit": task.item_unit,
        "flops_per_item": flops,
        "block": asdict(window.block),
        "peak_rss_bytes": _peak_rss(),
    }
