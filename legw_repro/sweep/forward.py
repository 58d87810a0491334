"""A sweep's preemption signal forwarded to the runs in its worker processes (joblib/loky).

Why: a signal sent to the sweep process alone (`kill`, a scheduler signalling the main PID)
never reached the runs in loky's worker processes; the sweep exited 75 at once, its pool went
with it, and every run in flight was left `running` with the steps since its last checkpoint
lost. Forwarded, each run finishes its step, checkpoints, records `preempted` and hands
`Preempted` back to the sweep, which then exits 75 as before.
"""

from __future__ import annotations

import os


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
    """Send `signum` to every loky worker; returns how many got it."""
    sent = 0
    for pid in worker_pids():
        try:
            os.kill(pid, signum)
            sent += 1
        except ProcessLookupError:
            pass
    return sent
