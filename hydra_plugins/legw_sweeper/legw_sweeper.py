"""The LEGW grid sweeper: Hydra's basic sweeper (the product of `hydra.sweeper.params` and the
command line), plus what a batch-size sweep needs on any launcher:

* finished runs (summary status completed/diverged) are not launched again, so relaunching a
  sweep costs nothing for them -- not even a queued SLURM array task; the others are launched
  with the experiment's resume=true and continue from their checkpoints;
* at k = 1 the points that are one run (legw_repro/sweep/plan.py) are trained once and recorded
  under the other policies' names after the launch (legw_repro/sweep_io.write_aliases);
* two points that would share a run directory stop the sweep before anything starts;
* a preemption signal handed over by a run (after it wrote its checkpoint and summary), or
  received between runs, ends the sweep with status 75: relaunch the same command to go on;
* with `fuse=N` (hydra.sweeper.fuse), the runs of one batch size train as fused groups of up
  to N, one job each (legw_repro/sweep/fuse.py, legw_repro/run/group.py), each run with its
  own record as if it had trained alone;
* a run whose directory another live process holds (a requeued job still running it) is not
  done: the sweep launches the others, then ends with status 73 naming each such run, so that
  no caller reads success for a run nobody finished here;
* on SLURM, a job's state comes from squeue where sacct has none (no accounting): a job that
  left the queue without a result ends the sweep (75) instead of a wait without end
  (legw_repro/sweep/slurm_watch.py).

Hydra only loads plugins from the `hydra_plugins` package, so this class lives here; the
planning is legw_repro's (sweep.py pure, grid.py composing, sweep_io.py files).
"""

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Dict, Optional  # noqa: UP035 - Hydra reads these annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobStatus
from hydra.errors import HydraException
from omegaconf import OmegaConf

from legw_repro.run.status import EXIT_LOCKED, EXIT_PREEMPTED, SWEEP_CONTROL_ENV, first_line

log = logging.getLogger(__name__)


@dataclass
class LegwSweeperConf:
    _target_: str = "hydra_plugins.legw_sweeper.legw_sweeper.LegwSweeper"
    # no `from __future__ import annotations` here: Hydra loads plugin modules outside
    # sys.modules, where dataclasses cannot resolve string annotations
    max_batch_size: Optional[int] = None  # noqa: UP045
    # runs of one batch size trained as one stacked model, up to this many to a job (null: each
    # run its own job); legw_repro/sweep/fuse.py
    fuse: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045


ConfigStore.instance().store(
    group="hydra/sweeper", name="legw", node=LegwSweeperConf, provider="legw_repro"
)


_forwarded: list[int] = []


def _stop(signum: int, frame: FrameType | None) -> None:
    from legw_repro.sweep.forward import forward

    if frame is not None and not _forwarded and (n := forward(signum)):
        _forwarded.append(signum)  # the runs checkpoint and hand Preempted back; a 2nd: exit
        log.warning("%s received: forwarded to %d runs in flight", signal.Signals(signum).name, n)
        return
    how = "handed over by the run after its checkpoint" if frame is None else "received"
    log.warning(
        "%s %s: the sweep stops; relaunch the same command to resume it",
        signal.Signals(signum).name,
        how,
    )
    raise SystemExit(EXIT_PREEMPTED)


class LegwSweeper(BasicSweeper):
    """BasicSweeper that plans before it launches (see the module docstring)."""

    def __init__(
        self,
        max_batch_size: Optional[int] = None,  # noqa: UP045
        params: Optional[Dict[str, str]] = None,  # noqa: UP006, UP045
        fuse: Optional[int] = None,  # noqa: UP045
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.fuse = fuse

    def sweep(self, arguments: list[str]) -> Any:
        from legw_repro.sweep.grid import cached, job_overrides, point_of
        from legw_repro.sweep.plan import duplicate_dirs, plan
        from legw_repro.sweep.sweep_io import statuses, write_aliases

        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        loader, master = self.hydra_context.config_loader, self.config
        compose = cached(lambda job: loader.load_sweep_config(master, job))
        jobs = job_overrides(self.params, arguments)
        points = [point_of(compose(job), job) for job in jobs]
        if dupes := duplicate_dirs(points):
            raise HydraException(
                f"two points of this sweep share the run directory {dupes[0]}: put every swept "
                "key in hydra.sweep.subdir (the experiments use ${policy.name}/b${batch_size}-s${seed})"
            )
        the_plan = plan(points, statuses(points))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info("%s: %s", sweep_dir, the_plan.describe())
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        write_aliases(the_plan.aliases)  # those whose shared run finished before this launch
        with _control_folder():
            returns = self._launch(self._jobs(the_plan.train, sweep_dir))
        written = write_aliases(the_plan.aliases)
        if written:
            log.info("recorded the shared k=1 run under %d more policy names", written)
        return returns

    def _jobs(self, points: Any, sweep_dir: Path) -> list[list[str]]:
        """One job per point, or per fused group of points with `fuse` (sweep/fuse.py)."""
        from legw_repro.sweep.fuse import groups, job_overrides

        if not self.fuse or self.fuse < 2:
            return [list(p.overrides) for p in points]
        jobs = [job_overrides(g, sweep_dir, i) for i, g in enumerate(groups(points, self.fuse))]
        log.info("fuse=%d: %d runs in %d jobs", self.fuse, len(points), len(jobs))
        return jobs

    def _launch(self, batch_overrides: list[list[str]]) -> list[Any]:
        """Launch in chunks of max_batch_size; a preemption signal ends the sweep (status 75)."""
        assert self.launcher is not None
        returns: list[Any] = []
        size = self.max_batch_size or len(batch_overrides) or 1
        locked: list[str] = []
        if getattr(self.launcher, "_EXECUTOR", "") == "slurm":
            from legw_repro.sweep.slurm_watch import install

            install()  # a job that vanished on a cluster without sacct ends the wait
        with _preemption_stops_the_sweep():
            for start in range(0, len(batch_overrides), size):
                chunk = batch_overrides[start : start + size]
                results = _launch_chunk(self.launcher, chunk, start)
                for r in results:
                    value = r._return_value  # `return_value` raises a failure; a preemption
                    failed = type(value).__name__ if r.status == JobStatus.FAILED else ""
                    if failed == "Preempted":
                        _stop(getattr(value, "signum", signal.SIGTERM), None)
                    if failed == "RunLocked":
                        locked.append(str(value))
                        continue
                    _ = r.return_value  # any other failure stops the sweep, as in Hydra's
                returns.append(results)
        if locked:
            _locked(locked)
        return returns


@contextlib.contextmanager
def _control_folder() -> Iterator[None]:
    """The sweep's control folder (SWEEP_CONTROL_ENV) for its joblib workers, which inherit the
    variable: runs mark themselves there, a forwarded signal leaves `stop` (sweep/forward.py).
    One per sweep process, so that loky's reused workers keep pointing at it."""
    folder = Path(tempfile.gettempdir()) / f"legw-sweep-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    (folder / "stop").unlink(missing_ok=True)  # an earlier sweep of this process
    before = os.environ.get(SWEEP_CONTROL_ENV)
    os.environ[SWEEP_CONTROL_ENV] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SWEEP_CONTROL_ENV, None)
        else:
            os.environ[SWEEP_CONTROL_ENV] = before
        shutil.rmtree(folder, ignore_errors=True)


def _launch_chunk(launcher: Any, chunk: list[list[str]], start: int) -> Any:
    """One launch; a job that ended without a result (SIGKILL: OOM, a lost node, scancel) is
    one line and status 75, not submitit's traceback: its run resumes from its checkpoint."""
    try:
        return launcher.launch(chunk, initial_job_idx=start)
    except Exception as e:
        if type(e).__name__ != "UncompletedJobError":
            raise
        log.error(
            "a job of this sweep ended without a result (killed: out of memory, a lost node, "
            "scancel?): %s; relaunch the same command: its run resumes from its last checkpoint",
            first_line(e),
        )
        raise SystemExit(EXIT_PREEMPTED) from None


def _locked(messages: list[str]) -> None:
    """The runs another process holds are not done: say which, then status 73."""
    for m in messages:
        log.error("not finished by this sweep: %s", m)
    log.error(
        "%d run(s) of this sweep are held by another live process (a requeued job still "
        "running them?); relaunch the same command when it has ended",
        len(messages),
    )
    raise SystemExit(EXIT_LOCKED)


class _preemption_stops_the_sweep:  # noqa: N801 - used as a context manager
    """SIGTERM/SIGUSR1/SIGINT -> status 75 (main thread only; a run installs its own handler over this
    one and calls it after writing its checkpoint)."""

    def __enter__(self) -> None:
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
                self.previous[s] = signal.signal(s, _stop)

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
