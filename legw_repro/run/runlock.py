"""One writer per run directory: `run.lock`, an advisory lock that names its holder.

Why: after a sweep relaunch two trainers once wrote the same run directory, interleaving their
metrics rows and overwriting each other's checkpoints. The lock is an `flock` on `run.lock`,
which the kernel drops when its process dies however it dies (SIGKILL, OOM, a node reboot), so
a lock is never left held by a dead process; the file's text (PID, host, start time) only says
who holds it, for the refusal message and for `holder()`. When the previous holder died without
releasing, its text is still there and the next writer takes over with a message naming it.

Filesystems without `flock` (some network mounts) fall back to the text alone: a holder on this
host whose PID is alive refuses, a dead one is taken over; a holder on another host cannot be
checked, so it refuses (delete the file once that run is known to be gone).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from legw_repro.run.status import EXIT_LOCKED  # noqa: F401 - re-exported for the CLI

LOCK_NAME = "run.lock"
#: exit status of a run refused because another process writes its directory (EX_CANTCREAT)
_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


class RunLocked(Exception):
    """Another live process writes this run directory. The message is one line."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} (since {self.since})"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _parse(text: str) -> Holder | None:
    try:
        d = json.loads(text)
        return Holder(int(d["pid"]), str(d["host"]), str(d.get("since", "?")))
    except (ValueError, KeyError, TypeError):
        return None


def read_holder(run_dir: Path) -> Holder | None:
    """Who the lock file names (the holder, or the last one that did not release), if anyone."""
    try:
        return _parse((Path(run_dir) / LOCK_NAME).read_text())
    except OSError:
        return None


def is_held(run_dir: Path) -> bool:
    """Whether a live process holds the run directory's lock now (a probe: a shared lock taken
    and dropped at once; on a filesystem without flock, the named PID's liveness on this host)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in _BUSY:
            return True
        h = read_holder(run_dir)
        return h is not None and (h.host != socket.gethostname() or pid_alive(h.pid))
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class RunLock:
    """`with RunLock(run_dir) as lock:` -- held for the whole run; `lock.takeover` names a stale
    holder that was replaced (None when the directory was free)."""

    def __init__(self, run_dir: Path, *, attempts: int = 5, wait_s: float = 0.2) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.attempts, self.wait_s = attempts, wait_s
        self.takeover: str | None = None
        self._fd: int | None = None

    def _refuse(self, holder: Holder | None) -> RunLocked:
        who = holder.describe() if holder else "another process"
        return RunLocked(
            f"{self.path.parent} is being written by {who}; one writer per run directory: wait "
            f"for it or stop it, or choose another hydra.run.dir (lock file: {self.path})"
        )

    def _flock(self, fd: int) -> bool:
        """True: locked; False: flock unsupported here. Raises RunLocked when busy."""
        for i in range(self.attempts):  # a probe (`is_held`) holds it for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as e:
                if e.errno not in _BUSY:
                    return False
                if i + 1 < self.attempts:
                    time.sleep(self.wait_s)
        raise self._refuse(_parse(os.pread(fd, 4096, 0).decode(errors="replace")))

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = self._flock(fd)
            previous = _parse(os.pread(fd, 4096, 0).decode(errors="replace"))
            me = socket.gethostname()
            other = previous is not None and previous.pid != os.getpid()
            if other and not locked and (previous.host != me or pid_alive(previous.pid)):
                raise self._refuse(previous)
            if other:
                self.takeover = (
                    f"{self.path}: taking over a stale lock from {previous.describe()}, which no "
                    "longer runs"
                )
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            text = json.dumps({"pid": os.getpid(), "host": me, "since": since})
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the file (a clean end is not a stale lock), then unlock. The file stays: removing
        it would let a process that opened it before the removal lock a different inode."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
