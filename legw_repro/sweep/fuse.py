"""Which points of a sweep train as one fused group, and the file that hands a group to its job.

With `hydra.sweeper.fuse=N`, the sweeper groups the points it will train by everything but
their policy and seed (so one task, scale, batch size, budget and loop settings: what a stacked
model shares, legw_repro/loop/fused.py), at most N to a group, and launches each group of two or
more as one job. The job's override `fuse_group=<file>` names a JSON file under the sweep
directory holding each member's overrides, run directory and composed config; the job trains
them with legw_repro/run/group.run_group. A point alone in its group is launched as usual.

Standard library only: the sweeper plugin imports it before any run starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from legw_repro.sweep.plan import Point

#: the folder of a sweep's group files, under its sweep directory
FOLDER = ".fused"
#: what may differ between the members of a group: each keeps its own
OWN = ("policy", "seed")


def fuse_key(point: Point) -> str:
    """Equal for points that may share a stack: their configs but for policy and seed."""
    return json.dumps({k: v for k, v in point.config.items() if k not in OWN}, sort_keys=True)


def groups(points: Sequence[Point], size: int) -> list[list[Point]]:
    """The points in groups of at most `size` that may fuse, in the points' order (a group
    starts where its first point stood)."""
    by_key: dict[str, list[list[Point]]] = {}
    out: list[list[Point]] = []
    for p in points:
        chunks = by_key.setdefault(fuse_key(p), [])
        if not chunks or len(chunks[-1]) >= size:
            chunks.append([])
            out.append(chunks[-1])
        chunks[-1].append(p)
    return out


def job_overrides(group: list[Point], sweep_dir: Path, index: int) -> list[str]:
    """The overrides of the job that trains `group`: its first point's, plus the group file
    (written here) when it has more than one member."""
    first = list(group[0].overrides)
    if len(group) == 1:
        return first
    folder = Path(sweep_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"group{index:03d}-b{group[0].batch}.json"
    members = [
        {"overrides": list(p.overrides), "run_dir": str(p.run_dir), "config": dict(p.config)}
        for p in group
    ]
    path.write_text(json.dumps(members, indent=1, default=str) + "\n")
    return [*first, f"fuse_group={path.resolve()}"]


def read_group(path: str | Path) -> list[dict[str, Any]]:
    """A group file's members: {overrides, run_dir, config} each. One line if it is unreadable."""
    from legw_repro.run.status import Refused

    try:
        members = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise Refused(
            f"fuse_group={path}: cannot read the group file ({type(e).__name__}); it is written "
            "by the sweeper (hydra.sweeper.fuse): relaunch the sweep"
        ) from None
    if not isinstance(members, list) or not all(
        isinstance(m, dict) and {"overrides", "run_dir", "config"} <= m.keys() for m in members
    ):
        raise Refused(f"fuse_group={path}: not a group file; relaunch the sweep")
    return members
