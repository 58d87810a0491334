"""A run's status values and the exit statuses a launcher acts on: the one copy of each.

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


class Refused(ValueError):
    """A bad input the user can fix, found before training: a config value, a run directory
    that holds something else, a checkpoint that cannot be resumed, missing data. Each layer
    declares its own subclass (ConfigError, RecordError, CheckpointError, DataError) and the
    command line ends every one the same way (one line naming the fix, EXIT_REFUSED) without
    the layers importing each other's errors."""
