"""The grid sweeper's endings (hydra_plugins/legw_sweeper): a job killed without a result and a
run held by another process each end the sweep with one line and a status a caller can act on."""

from __future__ import annotations

import importlib
import logging

import pytest
from hydra.core.utils import JobReturn, JobStatus
from submitit.core.utils import UncompletedJobError

from hydra_plugins.legw_sweeper import legw_sweeper
from legw_repro.run.runlock import RunLocked
from legw_repro.run.status import EXIT_LOCKED, EXIT_PREEMPTED


class _Launcher:
    def __init__(self, outcome):
        self.outcome, self.launched = outcome, []

    def launch(self, chunk, initial_job_idx):
        self.launched.append(chunk)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return [self.outcome(job) for job in chunk]


def _sweeper(launcher):
    # Hydra's plugin scan (any earlier compose in this process) imports its core plugins anew;
    # the sweeper module is reloaded so that its base class is the one in use
    sweeper = importlib.reload(legw_sweeper).LegwSweeper(max_batch_size=1)
    sweeper.launcher = launcher
    return sweeper


def _done(job):
    ret = JobReturn(overrides=job, status=JobStatus.COMPLETED)
    ret._return_value = None
    return ret


def test_a_job_killed_without_a_result_is_one_line_and_75(caplog):
    killed = UncompletedJobError(
        "Job 17_0 (task: 0) with path /runs/.submitit/17_0/17_0_0_result.pkl\n"
        "has not produced any output (state: OUT_OF_MEMORY)\nError stream produced: ..."
    )
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        _sweeper(_Launcher(killed))._launch([["batch_size=20"]])
    assert e.value.code == EXIT_PREEMPTED
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "Job 17_0 (task: 0)" in line and "relaunch the same command" in line
    assert "\n" not in line


def test_runs_held_elsewhere_end_the_sweep_with_73_after_the_others(caplog):
    def outcome(job):
        if job == ["batch_size=80"]:
            ret = JobReturn(overrides=job, status=JobStatus.FAILED)
            ret._return_value = RunLocked("runs/ptb/b80-s0 is being written by pid 7 on host h")
            return ret
        return _done(job)

    launcher = _Launcher(outcome)
    jobs = [["batch_size=80"], ["batch_size=160"]]
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as e:
        _sweeper(launcher)._launch(jobs)
    assert e.value.code == EXIT_LOCKED
    assert launcher.launched == [[j] for j in jobs]  # the other point was still launched
    text = caplog.text
    assert "not finished by this sweep: runs/ptb/b80-s0 is being written by pid 7" in text


def test_any_other_failure_still_raises():
    with pytest.raises(ValueError):
        _sweeper(_Launcher(ValueError("boom")))._launch([["batch_size=20"]])
