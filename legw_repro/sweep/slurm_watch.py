"""SLURM job states on a cluster without accounting: squeue where sacct has none.

Why: submitit (1.5) reads a job's state from sacct alone. Without accounting (no slurmdbd,
`AccountingStorageType=accounting_storage/none`) every sacct call fails ("Slurm accounting
storage is disabled"), submitit logs "Bypassing sacct error" and keeps the state UNKNOWN, which
it counts as not done: a job that ended without a result (cancelled while pending, killed, a
lost node) was waited for forever, and the sweep never ended. Here a failed sacct falls back to
squeue: the state it lists while the controller keeps the job (`MinJobAge`, 300 s by default),
and a job it no longer lists has left the queue, so it is done; submitit then finds no result
and raises UncompletedJobError, which the sweeper ends with one line and status 75 (a relaunch
resumes the run). A failed squeue (the controller unreachable) decides nothing. Where sacct
works, nothing changes.
"""

from __future__ import annotations

import shlex

from submitit.slurm import slurm

#: the first line of the fallback's output: sacct's columns, then where they came from
SQUEUE_HEADER = "JobID|State|NodeList|squeue"
#: the state of a job that squeue no longer lists (not one of submitit's unfinished states)
GONE = "LEFT_QUEUE"
#: squeue's states of a job that ended; any other it lists (CONFIGURING, SUSPENDED,
#: REQUEUE_HOLD, ...) is still to run, whatever submitit would make of it
ENDED = frozenset(
    {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY"}
    | {"TIMEOUT", GONE}
)  # fmt: skip
#: every job of this user, one line per array task, in sacct's columns
SQUEUE = 'squeue -h -r -t all -u "$(id -un)" -o "%i|%T|%N"'


class Watcher(slurm.SlurmInfoWatcher):
    """submitit's sacct watcher, with squeue when sacct fails (see the module docstring)."""

    def _make_command(self) -> list[str] | None:
        sacct = super()._make_command()
        if sacct is None:
            return None
        # sacct's output only when it succeeds; squeue's, under its header, when it fails
        script = (
            f'out=$({shlex.join(sacct)} 2>/dev/null) && printf "%s\\n" "$out" '
            f"|| {{ echo '{SQUEUE_HEADER}' && {SQUEUE}; }}"
        )
        return ["sh", "-c", script]

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        info = super().read_info(text)
        if not text.startswith(SQUEUE_HEADER):
            return info
        for stats in info.values():
            stats["squeue"] = "1"
        for job in self._registered - self._finished:  # not listed: it has left the queue
            info.setdefault(job, {"JobID": job, "State": GONE, "NodeList": "", "squeue": "1"})
        return info

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        state = self.get_state(job_id, mode=mode).upper()
        if self._info_dict.get(job_id, {}).get("squeue"):
            return state in ENDED
        return super().is_done(job_id, mode="cache")


def install() -> None:
    """Every SLURM job submitit watches in this process (the class's one shared watcher)."""
    if not isinstance(slurm.SlurmJob.watcher, Watcher):
        slurm.SlurmJob.watcher = Watcher(delay_s=slurm.SlurmJob.watcher._delay_s)
