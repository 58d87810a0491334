"""What a run directory holds, and what a new attempt may do with it.

Why: a sweep decides "skip / resume / start" from the run directory alone, so the directory
must never be continued or reused by a configuration other than the one that started it, and a
finished result must never be retrained over by accident. `decide` is the whole policy, as a
pure function of the record's status, the configuration difference and the two switches:

| the directory holds            | resume=false | resume=true                      | overwrite=true |
|--------------------------------|--------------|----------------------------------|----------------|
| nothing                        | start        | start                            | start          |
| a run, same fingerprint        | refused      | skip if finished, else resume    | start over     |
| a run, another fingerprint     | refused      | refused (lists the keys)         | start over     |
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legw_repro.config.fingerprint import differences, digest, recorded_values
from legw_repro.loop import checkpoint
from legw_repro.run.records import CONFIG, METRICS, SUMMARY, RecordError
from legw_repro.run.status import FINISHED

#: what a new attempt replaces when it starts over (overwrite=true)
RECORD_FILES = (SUMMARY, METRICS, CONFIG, "checkpoints", "translations")
_SHOWN = 8  # differing keys named in a refusal


@dataclass(frozen=True)
class Decision:
    action: str  # "start" | "resume" | "skip"
    discard: bool = False  # remove the old record first (overwrite=true)


def holds_record(run_dir: Path) -> bool:
    run_dir = Path(run_dir)
    return (run_dir / SUMMARY).is_file() or bool(checkpoint.candidates(run_dir / "checkpoints"))


def config_difference(run_dir: Path, summary: dict[str, Any] | None, values: dict) -> list[str]:
    """The keys whose values differ from the configuration the directory was started with
    (empty: the same). Equal fingerprints are the fast path; otherwise the run's config.yaml is
    compared key by key, on the keys both configurations have: a key added to configs/ since
    the run started (its default keeps the old behaviour) must not orphan every run directory
    written before it, nor must a record from before fingerprints."""
    stored = (summary or {}).get("fingerprint")
    if stored and stored == digest(values):
        return []
    old = recorded_values(run_dir)
    if old is None:
        return ["config.yaml: missing or unreadable, so the configuration cannot be compared"]
    return differences(old, values, common_only=True)


def _listing(diff: list[str]) -> str:
    more = f"; and {len(diff) - _SHOWN} more" if len(diff) > _SHOWN else ""
    return "; ".join(diff[:_SHOWN]) + more


def decide(
    run_dir: Path, status: str | None, has_record: bool, diff: list[str], *, resume: bool,
    overwrite: bool,
) -> Decision:  # fmt: skip
    """Start, resume or skip; RecordError (one line, the ways forward) when refused."""
    if not has_record:
        return Decision("start")
    if overwrite:
        return Decision("start", discard=True)
    what = f"a {status or 'started'} run"
    if not resume:
        raise RecordError(
            f"{run_dir} already holds {what}: pass resume=true to continue it (a finished run is "
            "then skipped), overwrite=true to discard it and start over, or choose another "
            "hydra.run.dir"
        )
    if diff:
        raise RecordError(
            f"resume=true, but {run_dir} holds {what} of another configuration "
            f"({len(diff)} difference(s): {_listing(diff)}); start this one in a new run "
            "directory (hydra.run.dir=...), or discard the old one with overwrite=true"
        )
    return Decision("skip" if status in FINISHED else "resume")


def discard(run_dir: Path) -> list[str]:
    """Remove the record files (overwrite=true); logs and the lock stay. Returns what went."""
    gone = []
    for name in RECORD_FILES:
        path = Path(run_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        gone.append(name)
    return gone
