"""A run's status values, the exit statuses a launcher acts on, and the one-line form of a
refusal's message (`one_line`, `first_line`): the one copy of each.

Standard library only, so that the Hydra sweeper plugin (scanned by every Hydra program) and the
scripts can import it without torch.
"""

from __future__ import annotations

#: summary.json statuses of a run that is over: a sweep does not launch it again, resume skips it
FINISHED: tuple[str, ...] = ("completed", "diverged")

#: the run was preempted and wrote its checkpoint: requeue it with resume=true (EX_TEMPFAIL)
EXIT_PREEMPTED = 75

#: another live process holds the run directory's lock (EX_CANTCREAT)
EXIT_LOCKED = 73

#: a write found the disk full (EX_IOERR); the last checkpoint is kept: free space, resume=true
EXIT_NO_SPACE = 74

#: refused before training: a bad input the user can fix (argparse's and Hydra's usage status)
EXIT_REFUSED = 2

#: the environment variable naming a joblib sweep's control folder: each run in a worker process
#: marks itself there (`run-<pid>`) while its preemption guard is installed, and the sweep leaves
#: `stop` (the signal's number) there once it forwarded a preemption (legw_repro/sweep/forward.py)
SWEEP_CONTROL_ENV = "LEGW_SWEEP_CONTROL"


class Refused(ValueError):
    """A bad input the user can fix, found before training: a config value, a run directory
    that holds something else, a checkpoint that cannot be resumed, missing data. Each layer
    declares its own subclass (ConfigError, RecordError, CheckpointError, DataError) and the
    command line ends every one the same way (one line naming the fix, EXIT_REFUSED) without
    the layers importing each other's errors."""


def one_line(text: object) -> str:
    """`text` (an exception, a message) with every run of whitespace, newlines included, made
    one space: a refusal is one line, and a message laid out on lines keeps all its words."""
    return " ".join(str(text).split())


def first_line(e: BaseException, *, typed: bool = False) -> str:
    """The first line of `e`'s message, or its type name when it has none: the gist of a
    library's error (a traceback, a JSON decoder's position) inside one line of ours. With
    `typed`, the type name leads ("RuntimeError: ..."), for errors that say little alone."""
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    if typed:
        return f"{type(e).__name__}: {text}".rstrip(": ")
    return text or type(e).__name__
