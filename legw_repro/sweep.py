"""The sweep planner: which runs a batch-size sweep trains and where each one's record lives.

Pure (no files, no processes), so the plan can be tested and printed without training anything;
`scripts/reproduce.py` reads the configs, calls `plan_runs`, and launches what it returns.

Paths are built here and nowhere else:

    <runs>/<task>/<scale>[-<variant>]/<policy>/b<batch>-s<seed>      a run directory
    <out>[-<variant>]/records/<policy>/b<batch>-s<seed>               its committed compact record

A variant (configs/sweep/*.yaml `variants:`) is a grid with extra overrides (a longer budget,
clipping off, another hand-over) in folders of its own, so it never mixes with the main grid.

Aliases: at k = 1 (the base batch) every SGD policy has the same schedule -- peak = base_lr and
warmup = the base warmup, whatever the rule -- so one run serves them all; the others are
recorded under their own names as aliases of it (`Job.alias_of`) instead of being trained again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Grid:
    """Batch sizes x policies x seeds, with the Hydra overrides every run of the grid gets."""

    batch_sizes: tuple[int, ...]
    policies: tuple[str, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Job:
    """One point of a sweep: trained into `run_dir`, or (alias_of set) recorded there as a copy
    of the finished run at `alias_of`."""

    policy: str
    batch: int
    seed: int
    run_dir: Path
    variant: str = ""  # "": the main grid
    overrides: tuple[str, ...] = ()
    alias_of: Path | None = None


def _suffixed(name: str, variant: str) -> str:
    return f"{name}-{variant}" if variant else name


def run_path(root: Path, policy: str, batch: int, seed: int) -> Path:
    """A run's folder under a grid's root (its run directories, or its committed records)."""
    return Path(root) / policy / f"b{batch}-s{seed}"


def grid_root(runs: Path, task: str, scale: str, variant: str = "") -> Path:
    """The run directories of one grid: <runs>/<task>/<scale>[-<variant>]."""
    return Path(runs) / task / _suffixed(scale, variant)


def results_dir(out: Path, variant: str = "") -> Path:
    """A grid's tables and figures: <out> for the main grid, <out>-<variant> beside it."""
    return Path(out).with_name(_suffixed(Path(out).name, variant))


def record_dir(out: Path, job: Job) -> Path:
    """Where a job's compact record is committed (scripts/reproduce.py exports it there)."""
    return run_path(results_dir(out, job.variant) / "records", job.policy, job.batch, job.seed)


def sweep_grids(
    sweep: Mapping[str, Any],
    *,
    batch_sizes: Sequence[int] | None = None,
    policies: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    variants: bool = True,
) -> dict[str, Grid]:
    """The grids of a sweep file ("" = the main grid, then each variant), with the command
    line's batch sizes / policies / seeds in place of the file's; a variant inherits whatever
    it does not set from the main grid."""
    main = Grid(
        batch_sizes=tuple(batch_sizes or sweep["batch_sizes"]),
        policies=tuple(policies or sweep["policies"]),
        seeds=tuple(seeds or sweep["seeds"]),
    )
    grids = {"": main}
    named = (sweep.get("variants") or {}) if variants else {}
    for name, v in named.items():
        grids[name] = Grid(
            batch_sizes=tuple(v.get("batch_sizes", main.batch_sizes)),
            policies=tuple(v.get("policies", main.policies)),
            seeds=tuple(v.get("seeds", main.seeds)),
            overrides=tuple(v.get("overrides", ())),
        )
    return grids


def plan_runs(
    runs: Path,
    task: str,
    scale: str,
    grids: Mapping[str, Grid],
    *,
    base_batch: int,
    optimizers: Mapping[str, str],
) -> list[Job]:
    """Every job of every grid, in launch order (grid, seed, batch, policy). `optimizers` maps
    each policy to its optimizer ("sgd", "adam"): only SGD policies share the k=1 run."""
    jobs: list[Job] = []
    for variant, grid in grids.items():
        root = grid_root(runs, task, scale, variant)
        for seed in grid.seeds:
            for batch in grid.batch_sizes:
                shared: Path | None = None
                for policy in grid.policies:
                    run_dir = run_path(root, policy, batch, seed)
                    alias_of = None
                    if batch == base_batch and optimizers[policy] == "sgd":
                        alias_of, shared = shared, shared or run_dir
                    jobs.append(
                        Job(policy, batch, seed, run_dir, variant, grid.overrides, alias_of)
                    )
    return jobs
