"""The sweep planner: which points of a grid are trained, which are skipped, which are recorded
as another point's run -- and where every run and record lives.

Pure (no files, no processes), so the plan can be tested and printed without training anything.
The grid itself is Hydra's (configs/experiment/<task>_<scale>.yaml, expanded by
legw_repro/sweep/grid.py); the LEGW grid sweeper (hydra_plugins/legw_sweeper) and scripts/reproduce.py
both call `plan` on its points.

Paths are built here and nowhere else:

    <runs>/<task>/<scale>[-<variant>]/<policy>/b<batch>-s<seed>      a run directory
    <out>[-<variant>]/records/<policy>/b<batch>-s<seed>               its compact record

A variant (configs/experiment/<task>_<scale>/<variant>.yaml) is a grid with other values (a
longer budget, clipping off, another hand-over) in folders of its own, so it never mixes with
the main grid.

Sharing at k = 1 (the base batch): every LR rule gives peak = base_lr and every warmup form the
base warmup, so points whose configs differ only in the policy's name, rule and warmup are one
run. The first of them in grid order is trained; the others are recorded under their own names
as aliases of it (`Plan.aliases`), never launched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from legw_repro.config.keys import OPTIMIZERS
from legw_repro.run.status import FINISHED

#: statuses of a run that is done: a relaunch skips it
#: the policy keys that do not change a run at k = 1
K1_FREE = ("name", "rule", "warmup")


@dataclass(frozen=True)
class Point:
    """One point of a grid: its Hydra overrides, its run directory and the composed config
    (plain, resolved, without the `hydra` node)."""

    overrides: tuple[str, ...]
    run_dir: Path
    config: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def policy(self) -> str:
        return str(self.config["policy"]["name"])

    @property
    def batch(self) -> int:
        return int(self.config["batch_size"])

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def k1(self) -> bool:
        return self.batch == int(self.config["task"]["base_batch_size"])

    def share_key(self) -> str | None:
        """Equal for the points that are one run at k = 1; None away from k = 1."""
        if not self.k1:
            return None
        cfg = {**self.config, "policy": dict(self.config["policy"])}
        for key in K1_FREE:
            cfg["policy"].pop(key, None)
        return json.dumps(cfg, sort_keys=True, default=str)


@dataclass(frozen=True)
class Plan:
    """`train`: launch these (new or interrupted); `done`: finished, not launched again;
    `aliases`: (point, the point whose run it records) pairs, never launched."""

    train: tuple[Point, ...]
    done: tuple[Point, ...]
    aliases: tuple[tuple[Point, Point], ...]

    def describe(self) -> str:
        return (
            f"{len(self.train) + len(self.done)} runs ({len(self.done)} finished, "
            f"{len(self.train)} to train), {len(self.aliases)} recorded as the shared k=1 run"
        )


def plan(points: Sequence[Point], statuses: Mapping[Path, str | None]) -> Plan:
    """Split a grid's points: shared k=1 points become aliases of the first of their group;
    the rest is trained unless `statuses[run_dir]` says it is finished."""
    first: dict[str, Point] = {}
    train, done, aliases = [], [], []
    for p in points:
        key = p.share_key()
        if key is not None and key in first:
            aliases.append((p, first[key]))
            continue
        if key is not None:
            first[key] = p
        (done if statuses.get(p.run_dir) in FINISHED else train).append(p)
    return Plan(tuple(train), tuple(done), tuple(aliases))


def recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a finished run's result, to tell whether a committed record still stands for
    a point: the task recipe and the epoch budget. The optimizer block the policy does not use
    is left out, so that tuning Adam's rate does not make the SGD records stale. Records from
    before `task.schedule.handover` existed used its default, `product`. `task.epochs` is only
    the default of the top-level `epochs` (the budget a run trains for, compared below), so a
    grid that sets its own budget keeps its records when the task's default budget moves."""
    task = json.loads(json.dumps(dict(config.get("task", {})), default=str))
    task.pop("epochs", None)
    used = config.get("policy", {}).get("optimizer")
    for name in OPTIMIZERS:
        if name != used:
            task.pop(name, None)
    task.setdefault("schedule", {}).setdefault("handover", "product")
    return {"task": task, "epochs": config.get("epochs")}


def duplicate_dirs(points: Sequence[Point]) -> list[Path]:
    """Run directories that two points of a grid would share (a subdir pattern that leaves out
    a swept key): they would overwrite each other, so the sweeper refuses them."""
    seen: set[Path] = set()
    dupes = []
    for p in points:
        if p.run_dir in seen:
            dupes.append(p.run_dir)
        seen.add(p.run_dir)
    return dupes


def _suffixed(name: str, variant: str) -> str:
    return f"{name}-{variant}" if variant else name


def run_path(root: Path, policy: str, batch: int, seed: int) -> Path:
    """A run's folder under a grid's root (its run directories, or its committed records)."""
    return Path(root) / policy / f"b{batch}-s{seed}"


def results_dir(out: Path, variant: str = "") -> Path:
    """A grid's tables and figures: <out> for the main grid, <out>-<variant> beside it."""
    return Path(out).with_name(_suffixed(Path(out).name, variant))


def record_dir(out: Path, variant: str, point: Point) -> Path:
    """Where a point's compact record goes beside the results (and is committed)."""
    return run_path(results_dir(out, variant) / "records", point.policy, point.batch, point.seed)
