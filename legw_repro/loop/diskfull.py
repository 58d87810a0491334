"""A full disk, said in one line: which file, "no space left on device", how much is free.

Why: a checkpoint written onto a full disk ended in torch's zip writer's traceback
(`RuntimeError: ... unexpected pos 67840 vs 67792`), the cause (ENOSPC) only in the exception's
context and no file named; a full disk under the record (summary.json, metrics.jsonl) was an
OSError traceback without the file. `writing(path)` turns any exception whose chain holds
ENOSPC or EDQUOT into `DiskFull`, naming `path` and the free space left; the command line
prints it and exits with `EXIT_NO_SPACE` (74, sysexits' EX_IOERR). Not 75: a launcher requeues
75 into the same full disk; not 1, the status of a bug; not 2, as no setting is wrong. The
previous checkpoint is intact (checkpoint.save renames only a complete file and removes its
temporary one), so after freeing space `resume=true` continues from it.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

#: errno values that mean "the file system has no room for this write"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space(e: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT error in `e`'s chain (its causes and contexts), if any."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in NO_SPACE:
            return e
        e = e.__cause__ or e.__context__
    return None


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def free_space(path: Path) -> str:
    """`1.2 MiB free` on the file system that holds `path` (or its nearest existing parent)."""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return f"{_size(shutil.disk_usage(where).free)} free"
    except OSError:
        return "free space unknown"


class DiskFull(Exception):
    """A write that found no room. One line: the file, the reason, the free space, the fix."""

    def __init__(self, path: Path, cause: OSError) -> None:
        what = "no space left on device" if cause.errno == errno.ENOSPC else "disk quota exceeded"
        super().__init__(
            f"{path}: {what} ({free_space(path)} there); the run stopped and its last complete "
            "checkpoint is kept: free space (or choose another hydra.run.dir), then relaunch "
            "with resume=true"
        )
        self.path = Path(path)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Writes to `path` inside: a full disk ends as DiskFull naming it; anything else as it was."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:
        cause = no_space(e)
        if cause is None:
            raise
        raise DiskFull(path, cause) from e
