"""Preemption: SIGTERM / SIGUSR1 / SIGINT (Ctrl-C) stop a run at a step boundary with nothing lost.

Why: clusters end jobs with a signal (SLURM sends SIGUSR1 with `--signal`, then SIGTERM), and a
trainer that dies on it leaves no checkpoint for the steps since the last one and a summary that
says "running" forever. Here the first signal only sets a flag; the trainer finishes the step
it is in, writes a checkpoint and the summary with status "preempted" (and a heartbeat), and
then `hand_over` passes the baton:

1. a Python-level handler installed for that signal before ours (submitit installs one to requeue
   the job) is called with the signal, so the job is requeued as its launcher intended (not
   Python's own SIGINT handler: it would raise KeyboardInterrupt after the record is written);
2. otherwise a run inside a Hydra multirun raises `Preempted` (the launcher records the job as
   failed with that type; a relaunch with resume=true continues it);
3. otherwise the process exits with status 75 (`EXIT_PREEMPTED`, EX_TEMPFAIL: "resume me").

Ctrl-C (SIGINT) is a preemption too: the steps since the last checkpoint are kept and the run
exits 75 like any resumable stop (not 130: the record says "preempted", and 75 is what scripts
test for "resume me"). A second signal exits at once (status 128 + signal, 130 for a second
Ctrl-C), for an operator who means it. The handler is installed when a run starts, before its
data is loaded: a signal that arrives before the first step stops the run at that step. Handlers can
only be installed from the main thread; elsewhere (a thread-pool launcher) signals keep their
default action and the run is resumed from its last regular checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from legw_repro.run.status import EXIT_PREEMPTED

log = logging.getLogger("legw_repro.run.preemption")

#: exit status of a preempted single run: resume it with resume=true (EX_TEMPFAIL)
SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any]


class Preempted(Exception):
    """Raised after a preempted run wrote its checkpoint and summary: resume it."""

    def __init__(self, signum: int, step: int, run_dir: str, previous: Any = None) -> None:
        self.signum, self.step, self.run_dir, self.previous = signum, step, run_dir, previous
        name = signal.Signals(signum).name
        super().__init__(
            f"{run_dir}: preempted by {name} after step {step}; checkpoint and summary written "
            "(status 'preempted'); rerun with resume=true to continue"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable without the earlier handler: launchers (joblib, submitit) send a job's
        exception back to the sweep process."""
        return (Preempted, (self.signum, self.step, self.run_dir))


class PreemptionGuard:
    """`with PreemptionGuard() as guard:` while training; `guard.signum` is the first signal
    received (None: none), `guard.previous[signum]` the handler that was installed before."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            print(f"error: second signal ({name}): exiting at once", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signum = signum
        log.warning("%s received: finishing this step, then checkpoint and stop", name)

    def __enter__(self) -> PreemptionGuard:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self.previous[s] = signal.signal(s, self._handle)
        else:
            log.info("not the main thread: SIGTERM/SIGUSR1 keep their default action")
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def preempted(self, step: int, run_dir: str) -> Preempted:
        assert self.signum is not None
        return Preempted(self.signum, step, run_dir, self.previous.get(self.signum))


def hand_over(exc: Preempted, *, multirun: bool) -> NoReturn:
    """After the record is written: the earlier handler, else raise (multirun), else exit 75."""
    if callable(exc.previous) and exc.previous is not signal.default_int_handler:
        log.info("calling the handler installed before ours for %s", signal.Signals(exc.signum))
        exc.previous(exc.signum, None)
    if multirun:
        raise exc
    print(f"preempted: {exc}", file=sys.stderr, flush=True)
    sys.exit(EXIT_PREEMPTED)
