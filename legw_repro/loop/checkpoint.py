"""Checkpoints that survive their own corruption: `last.pt` and the one before it, `prev.pt`.

Why: a truncated last.pt (a full disk, a node lost mid-write, a copy cut short) once gave a
zip-reader traceback without the file's name, and there was nothing older to resume from. A
checkpoint is now written to a temporary file, fsynced, and only then renamed into place; the
previous last.pt becomes prev.pt first, so at every instant one complete checkpoint exists
(between the two renames it is prev.pt alone). Loading tries last.pt, then prev.pt, and names
each file that fails in one line; resuming from prev.pt redoes the steps after it exactly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from legw_repro.run.status import Refused, first_line

log = logging.getLogger("legw_repro.loop.checkpoint")

LAST, PREV = "last.pt", "prev.pt"


class CheckpointError(Refused):
    """No checkpoint of a run directory can be resumed from. One line, naming the files."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint that loads but belongs to another setting (e.g. another world size): an
    older one would not fit either, so there is no fallback."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the renames still happened
        pass
    finally:
        os.close(fd)


def save(state: dict[str, Any], directory: Path) -> Path:
    """Write `state` as directory/last.pt, keeping the previous one as prev.pt."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(f".{LAST}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    tmp = directory / f".{LAST}.{os.getpid()}.tmp"
    try:
        with tmp.open("wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        last = directory / LAST
        if last.exists():
            os.replace(last, directory / PREV)
        os.replace(tmp, last)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    return last


def candidates(directory: Path) -> list[Path]:
    """The checkpoints to resume from, newest first."""
    return [p for p in (Path(directory) / LAST, Path(directory) / PREV) if p.is_file()]


def load(directory: Path, restore: Callable[[dict[str, Any]], None]) -> Path | None:
    """Restore from the newest checkpoint that loads; the path used, or None when there is none.
    A file that fails is named in a warning and the next one is tried; when all fail,
    CheckpointError names them all."""
    failures: list[str] = []
    for path in candidates(directory):
        try:
            restore(torch.load(path, map_location="cpu", weights_only=False))
        except CheckpointMismatch:
            raise
        except Exception as e:  # noqa: BLE001 - any unreadable or incomplete file: try the next
            why = first_line(e, typed=True)
            failures.append(f"{path} cannot be loaded ({why})")
            log.warning("checkpoint %s cannot be loaded (%s); trying an older one", path, why)
            continue
        if failures:
            log.warning("resuming from %s: %s", path, "; ".join(failures))
        return path
    if failures:
        raise CheckpointError(
            "; ".join(failures) + "; no loadable checkpoint is left: restore one, or start over "
            "with overwrite=true"
        )
    return None


#: what `checkpoint_keep` leaves of a finished run's checkpoints
KEEP = {"all": (LAST, PREV), "last": (LAST,), "none": ()}


def prune(directory: Path, keep: str) -> list[str]:
    """Drop a finished run's checkpoints that `checkpoint_keep` does not keep; the names removed.
    Why: prev.pt only guards against a last.pt cut mid-write, and a finished run writes no more,
    while the two files cost ~0.5 GB a run at GNMT's recipe. Called only when a run completed or
    diverged, never on preemption (the run resumes from them)."""
    gone = []
    for name in (LAST, PREV):
        path = Path(directory) / name
        if name not in KEEP[keep] and path.is_file():
            path.unlink()
            gone.append(name)
    return gone


def check_owner(ckpt: dict[str, Any], fingerprint: str | None, where: Path) -> None:
    """CheckpointMismatch unless the checkpoint names this run (`fingerprint`, the run's
    config/fingerprint.py digest): another seed's last.pt copied in was continued and recorded
    as this run; one that names no run cannot be shown to be this run's."""
    theirs = ckpt.get("fingerprint")
    if not fingerprint or theirs == fingerprint:
        return
    whose = (
        f"belongs to another run (fingerprint {theirs[:12]}, this run's {fingerprint[:12]}: "
        "another seed or recipe); put back this run's checkpoint"
        if theirs
        else "names no run (written before checkpoints carried their run's fingerprint), so it "
        "cannot be shown to be this run's"
    )
    raise CheckpointMismatch(
        f"the checkpoint in {where} {whose}; or start over with overwrite=true"
    )
