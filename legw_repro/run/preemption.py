"""Preemption: SIGTERM / SIGUSR1 / SIGINT (Ctrl-C) stop a run at a step boundary, nothing lost.

Why: clusters end jobs with a signal (SLURM sends SIGUSR1 with `--signal`, then SIGTERM), and a
trainer that dies on it leaves no checkpoint for the steps since the last one and a summary that
says "running" forever. Here the first signal only sets a flag; the trainer finishes the step
it is in, writes a checkpoint and the summary with status "preempted" (and a heartbeat), and
then `hand_over` passes the baton:

1. a Python-level handler installed for that signal before ours (submitit installs one to requeue
   the job) is called with the signal, so the job is requeued as its launcher intended; for a
   SIGTERM, which submitit only logs, its requeue is called while the job is still RUNNING
   (SLURM's default preemption: `requeue_on_sigterm`);
2. otherwise a run inside a Hydra multirun raises `Preempted` (the launcher records the job as
   failed with that type; a relaunch with resume=true continues it);
3. otherwise the process exits with status 75 (`EXIT_PREEMPTED`, EX_TEMPFAIL: "resume me").

Ctrl-C (SIGINT) is one of them: it used to end in a KeyboardInterrupt traceback with the status
left "running" and every step since the start lost. The handler is installed as soon as the
run holds its directory (run/lifecycle.py), before the data is loaded, so a signal in the first
seconds is kept and the run stops after its first step instead of dying with nothing recorded.
A second signal exits at once (status 128 + signal), for an operator who means it. Handlers can
only be installed from the main thread; elsewhere (a thread-pool launcher) signals keep their
default action and the run is resumed from its last regular checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from legw_repro.run.status import EXIT_PREEMPTED, SWEEP_CONTROL_ENV

log = logging.getLogger("legw_repro.run.preemption")

#: exit status of a preempted single run: resume it with resume=true (EX_TEMPFAIL)
SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any]


class Preempted(Exception):
    """Raised after a preempted run wrote its checkpoint and summary: resume it."""

    def __init__(self, signum: int, step: int | None, run_dir: str, previous: Any = None) -> None:
        """`step` None: the run had not begun (its sweep was stopped before): nothing written."""
        self.signum, self.step, self.run_dir, self.previous = signum, step, run_dir, previous
        name = signal.Signals(signum).name
        super().__init__(
            f"{run_dir}: not begun, its sweep was stopped by {name}; relaunch the sweep"
            if step is None
            else f"{run_dir}: preempted by {name} after step {step}; checkpoint and summary "
            "written (status 'preempted'); rerun with resume=true to continue"
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
        #: the signal of a joblib sweep stopped before this run began (its control folder's
        #: `stop`): the run does not begin (`Preempted` with no step), nothing is written
        self.sweep_stopped: int | None = None
        self._mark: Path | None = None

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
            self._join_sweep()
        else:
            log.info("not the main thread: SIGTERM/SIGUSR1/SIGINT keep their default action")
        return self

    def _join_sweep(self) -> None:
        """In a joblib sweep's worker: mark this process as one that takes the sweep's signal
        (idle workers have no handler and would die of it), then see whether the sweep was
        stopped already (its `stop` is written before it signals the marked workers)."""
        control = os.environ.get(SWEEP_CONTROL_ENV)
        if not control or not Path(control).is_dir():
            return
        self._mark = Path(control) / f"run-{os.getpid()}"
        self._mark.touch()
        try:
            self.sweep_stopped = int((Path(control) / "stop").read_text())
        except (OSError, ValueError):
            return

    def __exit__(self, *exc: object) -> None:
        if self._mark is not None:
            self._mark.unlink(missing_ok=True)
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)

    def preempted(self, step: int, run_dir: str) -> Preempted:
        assert self.signum is not None
        previous = self.previous.get(self.signum)
        if previous is signal.default_int_handler:  # Python's own: it would raise a traceback
            previous = None
        return Preempted(self.signum, step, run_dir, previous)


def slurm_job_state(job_id: str | None) -> str | None:
    """The job's state as slurmctld has it (RUNNING, COMPLETING, ...); None when unknown."""
    if not job_id:
        return None
    try:
        res = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (
        res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else None
    )


def requeued_by_slurm(job_id: str | None) -> bool:
    """Whether SLURM is requeueing this job itself (`scontrol requeue`, a requeue-mode
    preemption): its restart count has already gone past the one this attempt started with."""
    if not job_id:
        return False
    try:
        res = subprocess.run(
            ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    found = re.search(r"\bRestarts=(\d+)", res.stdout) if res.returncode == 0 else None
    return found is not None and int(found[1]) > int(os.environ.get("SLURM_RESTART_COUNT", "0"))


def _leave_for_the_requeue(signum: int, frame: Any) -> None:
    """End the job the way submitit ends one it requeued: SystemExit, no result written, so the
    sweep's watcher waits for the requeued job instead of reading this attempt's stop."""
    sys.exit(-1)


def requeue_on_sigterm(previous: Any) -> Handler | None:
    """submitit's requeue for a SIGTERM it would only log ("Bypassing signal SIGTERM").

    Why: SLURM preempts with SIGTERM by default (SIGUSR1 only with preempt_send_user_signal),
    and a bypassed SIGTERM let the job end COMPLETED, never requeued, the sweep gone with 75.
    A SIGTERM while the job is still RUNNING is a preemption's grace time (or `scancel
    --signal=TERM`): requeue, as submitit does for its own signal. A job SLURM is requeueing
    itself (`scontrol requeue`: COMPLETING with its restart count raised) leaves without a
    result, as submitit's own requeue does, so that the sweep waits for it. A job being
    cancelled (`scancel`: COMPLETING), or one whose state cannot be read, is not requeued:
    cancel means stop."""
    owner = getattr(previous, "__self__", None)
    requeue = getattr(owner, "checkpoint_and_try_requeue", None)
    if getattr(previous, "__name__", "") != "bypass" or not callable(requeue):
        return None
    job = os.environ.get("SLURM_JOB_ID")
    state = slurm_job_state(job)
    if state == "RUNNING":
        log.info("SIGTERM in a running SLURM job: requeueing it (submitit), as for its signal")
        return requeue
    if requeued_by_slurm(job):
        log.info("SIGTERM: SLURM is requeueing this job itself; leaving it to the requeued job")
        return _leave_for_the_requeue
    log.info("SIGTERM with the job %s: not requeued", (state or "state unknown").lower())
    return None


def hand_over(exc: Preempted, *, multirun: bool) -> NoReturn:
    """After the record is written: the earlier handler (for a SIGTERM under submitit, its
    requeue), else raise (multirun), else exit 75."""
    if exc.signum == signal.SIGTERM and (requeue := requeue_on_sigterm(exc.previous)):
        requeue(exc.signum, None)
    elif callable(exc.previous):
        log.info("calling the handler installed before ours for %s", signal.Signals(exc.signum))
        exc.previous(exc.signum, None)
    if multirun:
        raise exc
    print(f"preempted: {exc}", file=sys.stderr, flush=True)
    sys.exit(EXIT_PREEMPTED)
