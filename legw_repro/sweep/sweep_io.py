"""The files a sweep reads and writes around its runs: each run's status, and the alias records
of the shared k = 1 run (legw_repro/sweep/plan.py plans them; the sweeper and scripts/reproduce.py
call these).

Why a status read here and not the trainer's: a sweep decides "launch or not" from the run
record alone (docs/run-record.md), before any run starts; the trainer makes the same decision
again, with its lock, when a launched run starts (resume=true).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from legw_repro.run.records import CONFIG, METRICS, SUMMARY, read_summary
from legw_repro.run.status import FINISHED
from legw_repro.sweep.plan import Point

#: what an alias copies from the run it records (no checkpoints: it is never resumed)
ALIAS_FILES = (CONFIG, METRICS)


def status_of(run_dir: Path) -> str | None:
    """The run's status in its summary.json; None when there is no readable one."""
    try:
        return (read_summary(Path(run_dir)) or {}).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def statuses(points: Iterable[Point]) -> dict[Path, str | None]:
    return {p.run_dir: status_of(p.run_dir) for p in points}


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def write_alias(point: Point, source: Point) -> bool:
    """Record `source`'s finished run under `point`'s policy name (its run directory), as the
    shared k = 1 run; False (nothing written) while the source is not finished."""
    if status_of(source.run_dir) not in FINISHED:
        return False
    dst = point.run_dir
    dst.mkdir(parents=True, exist_ok=True)
    for name in ALIAS_FILES:
        if (source.run_dir / name).exists():
            shutil.copyfile(source.run_dir / name, dst / name)
    summary = json.loads((source.run_dir / SUMMARY).read_text())
    pol = point.config["policy"]
    summary.update(
        policy=pol["name"], rule=pol["rule"], warmup=pol["warmup"], alias_of=str(source.run_dir)
    )
    _atomic_json(dst / SUMMARY, summary)
    return True


def write_aliases(pairs: Iterable[tuple[Point, Point]]) -> int:
    """Every alias whose source run is finished; rank 0 only (a sweep under torchrun runs this
    in every process). Returns how many were written."""
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    return sum(write_alias(p, src) for p, src in pairs)
