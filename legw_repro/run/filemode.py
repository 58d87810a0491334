"""The mode a new file gets from the umask, for files written through a temporary file.

tempfile.mkstemp creates its file 0600 and os.replace keeps that mode, so a record or cache
written that way could be read by its owner only, while files opened the ordinary way (the
metrics file, the data) are readable by the group and others as the umask allows: a shared
runs or data directory then held files the others could not read."""

from __future__ import annotations

import os
from pathlib import Path

_STATUS = Path("/proc/self/status")


def current_umask() -> int:
    """The process umask. Read from /proc where there is one: os.umask can only be read by
    setting it, which for a moment would change the mode of files other threads create."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def chmod_like_new_file(fd: int) -> None:
    """Give the open file `fd` (from mkstemp) the mode open() would have given it: 0666 less
    the umask (0644 under umask 022)."""
    os.fchmod(fd, 0o666 & ~current_umask())
