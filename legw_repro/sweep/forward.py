"""A sweep's preemption signal forwarded to the runs in its worker processes (joblib/loky).

Why: a signal sent to the sweep process alone (`kill`, a scheduler signalling the main PID)
never reached the runs in loky's worker processes; the sweep exited 75 at once, its pool went
with it, and every run in flight was left `running` with the steps since its last checkpoint
lost. Forwarded, each run finishes its step, checkpoints, records `preempted` and hands
`Preempted` back to the sweep, which then exits 75 as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from legw_repro.run.status import SWEEP_CONTROL_ENV


def worker_pids() -> list[int]:
    """The live worker processes of joblib's loky pool in this process (none: empty)."""
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:
        return []
    executor = getattr(reusable_executor, "_executor", None)
    processes = dict(getattr(executor, "_processes", None) or {})
    return [p.pid for p in processes.values() if p.is_alive()]


def forward(signum: int) -> int:
    """Send `signum` to every loky worker that runs a run; returns how many got it. With the
    sweep's control folder (SWEEP_CONTROL_ENV), `stop` is written there first, so that a run
    a worker begins afterwards does not begin, and only the workers whose run marked itself
    get the signal: an idle worker has no handler and would die of it (joblib then ends the
    sweep with TerminatedWorkerError and a traceback)."""
    pids = worker_pids()
    control = os.environ.get(SWEEP_CONTROL_ENV)
    if control and pids and Path(control).is_dir():
        (Path(control) / "stop").write_text(str(signum))
        marked = {p.name.removeprefix("run-") for p in Path(control).glob("run-*")}
        pids = [pid for pid in pids if str(pid) in marked]
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, signum)
            sent += 1
        except ProcessLookupError:
            pass
    return sent
