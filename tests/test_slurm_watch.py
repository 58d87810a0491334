"""A SLURM job that vanished on a cluster without accounting (legw_repro/sweep/slurm_watch.py):
submitit's own watcher keeps it UNKNOWN (not done) forever because sacct fails; ours asks squeue,
and a job squeue no longer lists ends the wait with submitit's UncompletedJobError (the sweeper's
one line and status 75). No SLURM here: `sacct` and `squeue` are fakes on PATH."""

from __future__ import annotations

import os
import threading
import time

import pytest
from submitit.core.utils import UncompletedJobError
from submitit.slurm import slurm

from legw_repro.sweep.slurm_watch import GONE, Watcher
from tests.test_sweeper import _done, _Launcher, _sweeper

NO_ACCOUNTING = "echo 'Slurm accounting storage is disabled' >&2; exit 1"


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Fake sacct/squeue: `set(sacct=..., squeue=...)` writes each one's shell body."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def set_tools(**bodies: str) -> None:
        for name, body in bodies.items():
            tool = bin_dir / name
            tool.write_text(f"#!/bin/sh\necho called >> {tmp_path / name}.calls\n{body}\n")
            tool.chmod(0o755)

    set_tools(sacct=NO_ACCOUNTING, squeue="exit 0")
    return set_tools


def _job(tmp_path, watcher) -> slurm.SlurmJob:
    (tmp_path / "jobs").mkdir(exist_ok=True)  # submitit's job folder, without a result
    job = slurm.SlurmJob(folder=tmp_path / "jobs", job_id="17_0")
    assert job.watcher is watcher
    job._results_timeout_s = 0
    return job


def _is_done(job) -> bool:
    time.sleep(0.01)  # submitit ignores a forced update within 1 ms of the last one
    return job.done(force_check=True)


def test_submitits_own_watcher_never_sees_the_job_end(tmp_path, cluster, monkeypatch):
    """Why the fallback exists: with sacct failing, a job gone without a result stays UNKNOWN."""
    monkeypatch.setattr(slurm.SlurmJob, "watcher", slurm.SlurmInfoWatcher(delay_s=600))
    job = _job(tmp_path, slurm.SlurmJob.watcher)
    assert not _is_done(job) and job.state == "UNKNOWN"


def test_a_job_that_left_the_queue_ends_the_wait(tmp_path, cluster, monkeypatch):
    monkeypatch.setattr(slurm.SlurmJob, "watcher", Watcher(delay_s=600))
    job = _job(tmp_path, slurm.SlurmJob.watcher)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            job.result()
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            outcome.append(e)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(timeout=60)  # submitit's own watcher: forever
    assert not waiter.is_alive(), "job.result() still waits for a job squeue does not list"
    (e,) = outcome
    assert isinstance(e, UncompletedJobError) and f"state: {GONE}" in str(e)


@pytest.mark.parametrize(
    ("squeue", "done"),
    [
        ("echo '17_0|RUNNING|n1'", False),
        ("echo '17_0|PENDING|'", False),
        ("echo '17_0|CONFIGURING|n1'", False),  # a node booting: submitit would call it done
        ("echo '17_[0-3]|PENDING|'", False),  # an array's pending tasks on one line
        ("echo '17_0|CANCELLED|'", True),
        ("echo '17_1|RUNNING|n1'", True),  # another task listed, this one gone
        ("echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1", False),
    ],
)
def test_squeue_decides_when_sacct_fails(tmp_path, cluster, monkeypatch, squeue, done):
    monkeypatch.setattr(slurm.SlurmJob, "watcher", Watcher(delay_s=600))
    cluster(squeue=squeue)
    assert _is_done(_job(tmp_path, slurm.SlurmJob.watcher)) is done


def test_sacct_decides_where_it_works(tmp_path, cluster, monkeypatch):
    monkeypatch.setattr(slurm.SlurmJob, "watcher", Watcher(delay_s=600))
    job = _job(tmp_path, slurm.SlurmJob.watcher)
    cluster(sacct="printf 'JobID|State|NodeList\\n17_0|RUNNING|n1\\n'", squeue="exit 0")
    assert not _is_done(job)
    cluster(sacct="printf 'JobID|State|NodeList\\n17_0|COMPLETED|n1\\n'")
    assert _is_done(job) and job.state == "COMPLETED"
    assert not (tmp_path / "squeue.calls").exists()


def test_the_sweeper_installs_it_for_slurm_only(monkeypatch):
    monkeypatch.setattr(slurm.SlurmJob, "watcher", slurm.SlurmInfoWatcher(delay_s=600))
    local = _Launcher(_done)
    local._EXECUTOR = "local"
    _sweeper(local)._launch([["batch_size=20"]])
    assert type(slurm.SlurmJob.watcher) is slurm.SlurmInfoWatcher
    on_slurm = _Launcher(_done)
    on_slurm._EXECUTOR = "slurm"
    _sweeper(on_slurm)._launch([["batch_size=20"]])
    assert isinstance(slurm.SlurmJob.watcher, Watcher)
