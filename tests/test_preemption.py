"""Preemption loses nothing, and a checkpoint or metrics file that went bad is caught.

One reference run and one run preempted (SIGTERM) after step 12 of 24 are trained once per
module (the slow suite: seconds of training); every test works on a copy of the preempted
directory. Resumed, it must equal the
uninterrupted run bit for bit -- also when its newest checkpoint is truncated and it falls back
to the one before. The exit-status hand-over (75, a handler installed before ours, a second
signal) runs the real command line, in the slow suite.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import signal

import pytest
import torch

from legw_repro.loop.checkpoint import CheckpointError
from legw_repro.run.lifecycle import run
from legw_repro.run.preemption import EXIT_PREEMPTED, Preempted, PreemptionGuard, hand_over
from legw_repro.run.records import RecordError
from tests.faults import fault_cli, signal_at
from tests.helpers import checkpoint_params, make_cfg, read_rows, summary
from tests.test_train import SMALL

COMMON = [*SMALL, "checkpoint_every_steps=5", "checkpoint_every_min=0"]
STOP = 12  # preempted after this step; checkpoints at 5, 10, 12 (prev.pt holds step 10)


def _cfg(data_dir, *extra):
    return make_cfg(*COMMON, f"data_dir={data_dir}", *extra)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared_data_dir):
    rd = tmp_path_factory.mktemp("ref")
    assert run(_cfg(shared_data_dir), rd)["status"] == "completed"
    return rd


@pytest.fixture(scope="module")
def preempted_dir(tmp_path_factory, shared_data_dir):
    rd = tmp_path_factory.mktemp("pre")
    with pytest.MonkeyPatch.context() as mp:
        signal_at(mp, STOP, signal.SIGTERM)
        with pytest.raises(Preempted) as e:
            run(_cfg(shared_data_dir), rd)
    assert e.value.signum == signal.SIGTERM and e.value.step == STOP
    return rd


@pytest.fixture
def preempted(preempted_dir, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(preempted_dir, rd)
    return rd


@pytest.mark.slow
def test_sigterm_finishes_the_step_then_checkpoints_and_records_preempted(preempted):
    s = summary(preempted)
    assert s["status"] == "preempted" and s["steps_done"] == STOP
    assert "SIGTERM" in s["reason"] and "resume=true" in s["reason"]
    assert s["heartbeat_at"] and s["fingerprint"]
    ckpt = torch.load(preempted / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["loop"]["step"] == STOP  # the step in flight was finished and saved
    assert [r["step"] for r in read_rows(preempted, "train")] == list(range(1, STOP + 1))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


@pytest.mark.slow
def test_resumed_after_preemption_equals_uninterrupted(preempted, reference, shared_data_dir):
    s = run(_cfg(shared_data_dir, "resume=true"), preempted)
    assert s["status"] == "completed" and s["resumed_from"] == {"checkpoint": "last.pt", "step": 12}
    assert s["final"] == summary(reference)["final"]
    a, b = checkpoint_params(reference), checkpoint_params(preempted)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_rows(preempted, "train")]
    assert steps == list(range(1, s["total_steps"] + 1))


@pytest.mark.slow
def test_truncated_checkpoint_falls_back_to_the_previous_one(
    preempted, reference, shared_data_dir, caplog
):
    last = preempted / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # a copy cut short
    with caplog.at_level(logging.WARNING, logger="legw_repro.loop.checkpoint"):
        s = run(_cfg(shared_data_dir, "resume=true"), preempted)
    assert s["resumed_from"] == {"checkpoint": "prev.pt", "step": 10}
    warned = [r.getMessage() for r in caplog.records]
    assert any(str(last) in m and "cannot be loaded" in m for m in warned), warned
    a, b = checkpoint_params(reference), checkpoint_params(preempted)
    assert all(torch.equal(a[k], b[k]) for k in a)  # steps 11-12 redone exactly
    assert [r["step"] for r in read_rows(preempted, "train")] == list(range(1, 25))


@pytest.mark.slow
def test_no_loadable_checkpoint_is_one_line_naming_both(preempted, shared_data_dir):
    for name in ("last.pt", "prev.pt"):
        (preempted / "checkpoints" / name).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError) as e:
        run(_cfg(shared_data_dir, "resume=true"), preempted)
    msg = str(e.value)
    assert "last.pt cannot be loaded" in msg and "prev.pt cannot be loaded" in msg
    assert "overwrite=true" in msg and "\n" not in msg
    assert summary(preempted)["status"] == "preempted"  # the record is left as it was


@pytest.mark.slow
@pytest.mark.parametrize("theirs", ["f" * 64, None])
def test_a_checkpoint_of_another_run_is_refused(preempted, shared_data_dir, theirs):
    # another seed's last.pt copied into a run was continued and recorded as this seed
    last = preempted / "checkpoints" / "last.pt"
    assert torch.load(last, weights_only=False)["fingerprint"] == summary(preempted)["fingerprint"]
    for name in ("last.pt", "prev.pt"):
        ckpt = torch.load(preempted / "checkpoints" / name, weights_only=False)
        ckpt["fingerprint"] = theirs  # another run's, or none (written before the field)
        torch.save(ckpt, preempted / "checkpoints" / name)
    why = "belongs to another run" if theirs else "names no run"
    with pytest.raises(CheckpointError, match=why) as e:
        run(_cfg(shared_data_dir, "resume=true"), preempted)
    assert "\n" not in str(e.value)
    assert summary(preempted)["status"] == "preempted"  # the record is left as it was


@pytest.mark.slow
def test_deleted_metrics_is_refused_not_continued(preempted, shared_data_dir):
    (preempted / "metrics.jsonl").unlink()
    with pytest.raises(RecordError, match="metrics.jsonl is missing, but the checkpoint is at"):
        run(_cfg(shared_data_dir, "resume=true"), preempted)
    assert summary(preempted)["status"] == "preempted"


@pytest.mark.slow
def test_resume_with_another_config_after_preemption_is_refused(preempted, shared_data_dir):
    """The issue's first case: a killed lr-20 run relaunched with lr 5 finished on lr 20."""
    with pytest.raises(RecordError) as e:
        run(_cfg(shared_data_dir, "resume=true", "task.sgd.base_lr=5"), preempted)
    assert "task.sgd.base_lr: 20.0 -> 5.0" in str(e.value)
    assert summary(preempted)["status"] == "preempted"


# -- the hand-over, unit by unit ---------------------------------------------------------------
def _preempted(previous=None) -> Preempted:
    return Preempted(signal.SIGUSR1, 7, "runs/x", previous)


def test_hand_over_calls_the_handler_installed_before_ours():
    seen = []
    with pytest.raises(SystemExit) as e:
        hand_over(_preempted(lambda s, f: seen.append(s)), multirun=False)
    assert seen == [signal.SIGUSR1] and e.value.code == EXIT_PREEMPTED


def test_hand_over_raises_in_a_multirun_and_exits_75_alone():
    with pytest.raises(Preempted):
        hand_over(_preempted(signal.SIG_DFL), multirun=True)
    with pytest.raises(SystemExit) as e:
        hand_over(_preempted(), multirun=False)
    assert e.value.code == 75


def test_preempted_crosses_a_process_boundary():
    back = pickle.loads(pickle.dumps(_preempted(lambda s, f: None)))
    assert (back.signum, back.step, back.run_dir) == (signal.SIGUSR1, 7, "runs/x")
    assert "resume=true" in str(back) and back.previous is None


def test_guard_remembers_the_previous_handler_and_restores_it():
    def mine(signum, frame):
        raise AssertionError("the guard's handler should run, not this one")

    old = signal.signal(signal.SIGUSR1, mine)
    try:
        with PreemptionGuard() as guard:
            signal.raise_signal(signal.SIGUSR1)
            assert guard.requested and guard.signum == signal.SIGUSR1
            assert guard.preempted(3, "d").previous is mine
        assert signal.getsignal(signal.SIGUSR1) is mine
    finally:
        signal.signal(signal.SIGUSR1, old)


# -- the real command line ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])  # SIGINT: Ctrl-C
def test_cli_preempted_exits_75_then_resumes(tmp_path, shared_data_dir, sig):
    args = [*COMMON, f"data_dir={shared_data_dir}", f"hydra.run.dir={tmp_path}"]
    res = fault_cli(*args, step=5, action=sig)
    assert res.returncode == EXIT_PREEMPTED, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "resume=true" in res.stderr
    assert summary(tmp_path)["status"] == "preempted"
    res = fault_cli(*args, "resume=true", step=0, action="")
    assert res.returncode == 0 and summary(tmp_path)["status"] == "completed"


@pytest.mark.slow
def test_cli_calls_an_earlier_handler_and_a_second_signal_exits_at_once(tmp_path, shared_data_dir):
    marker = tmp_path / "requeued"
    common = [*COMMON, f"data_dir={shared_data_dir}"]
    res = fault_cli(
        *common,
        f"hydra.run.dir={tmp_path / 'a'}",
        step=5,
        action="SIGUSR1",
        PREVIOUS_HANDLER=marker,
    )
    assert res.returncode == 0, res.stderr[-2000:]  # the earlier handler (submitit's) exited
    assert marker.read_text() == str(int(signal.SIGUSR1))
    assert summary(tmp_path / "a")["status"] == "preempted"  # written before the hand-over
    res = fault_cli(*common, f"hydra.run.dir={tmp_path / 'b'}", step=5, action="SIGTERM,SIGTERM")
    assert res.returncode == 128 + signal.SIGTERM and "second signal" in res.stderr
    assert (
        summary(tmp_path / "b")["status"] == "running"
    )  # gone at once, the lock with it: resumable


@pytest.mark.slow
def test_a_signal_before_the_first_step_is_kept_and_recorded(
    tmp_path, shared_data_dir, monkeypatch
):
    # SIGTERM while the data loads (before the trainer exists) used to kill the run with 143
    # and no record; now the run stops after its first step, checkpointed and "preempted"
    from legw_repro.config import validate

    real = validate.check_task_data

    def signalled(task, epochs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(task, epochs)

    monkeypatch.setattr("legw_repro.run.lifecycle.check_task_data", signalled)
    with pytest.raises(Preempted) as e:
        run(_cfg(shared_data_dir), tmp_path)
    assert e.value.signum == signal.SIGTERM and e.value.step == 1
    assert summary(tmp_path)["status"] == "preempted"
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_preempted_ctrl_c_does_not_hand_over_to_pythons_keyboardinterrupt():
    with PreemptionGuard() as guard:
        signal.raise_signal(signal.SIGINT)  # a flag, not a KeyboardInterrupt
        exc = guard.preempted(3, "runs/x")
    assert exc.signum == signal.SIGINT and exc.previous is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class _Submitit:
    """submitit's SignalHandler as the run sees it: SIGTERM bound to `bypass` (a log line)."""

    def __init__(self):
        self.calls = []

    def bypass(self, signum, frame=None):
        self.calls.append(("bypass", signum))

    def checkpoint_and_try_requeue(self, signum, frame=None):
        self.calls.append(("requeue", signum))


@pytest.mark.parametrize(
    ("state", "expected"),
    [("RUNNING", "requeue"), ("COMPLETING", "bypass"), (None, "bypass")],
)
def test_sigterm_under_submitit_requeues_a_running_job_only(monkeypatch, state, expected):
    # SLURM preempts with SIGTERM by default; submitit only logs it, so the job ended COMPLETED
    # and was never requeued. Running (a preemption's grace time): requeue; being cancelled
    # (scancel: COMPLETING) or unknown: do not
    from legw_repro.run import preemption

    monkeypatch.setattr(preemption, "slurm_job_state", lambda job_id: state)
    monkeypatch.setattr(preemption, "requeued_by_slurm", lambda job_id: False)
    handler = _Submitit()
    exc = Preempted(signal.SIGTERM, 7, "runs/x", handler.bypass)
    with pytest.raises(Preempted):
        hand_over(exc, multirun=True)
    assert handler.calls == [(expected, signal.SIGTERM)]


def test_a_job_slurm_requeues_itself_leaves_without_a_result(tmp_path, monkeypatch):
    # `scontrol requeue` (seen on a SLURM 22.05 cluster): SIGTERM with the job COMPLETING and
    # its Restarts already raised. The run handed Preempted to submitit, which wrote it as the
    # job's result: the sweep exited 75 while SLURM ran the requeued job. Now the job leaves as
    # submitit's own requeue does (SystemExit, no result), so the sweep waits for it
    from legw_repro.run import preemption

    scontrol = tmp_path / "scontrol"
    scontrol.write_text('#!/bin/sh\necho "JobId=$5 JobState=COMPLETING Requeue=1 Restarts=1"\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.setattr(preemption, "slurm_job_state", lambda job_id: "COMPLETING")
    assert preemption.requeued_by_slurm("42")
    handler = _Submitit()
    with pytest.raises(SystemExit) as exit_:
        hand_over(Preempted(signal.SIGTERM, 7, "runs/x", handler.bypass), multirun=True)
    assert exit_.value.code == -1 and handler.calls == []
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the requeued attempt, then scancel
    assert not preemption.requeued_by_slurm("42")
    with pytest.raises(Preempted):
        hand_over(Preempted(signal.SIGTERM, 7, "runs/x", handler.bypass), multirun=True)
    assert handler.calls == [("bypass", signal.SIGTERM)]


def test_slurm_job_state_reads_squeue(tmp_path, monkeypatch):
    from legw_repro.run.preemption import slurm_job_state

    squeue = tmp_path / "squeue"
    squeue.write_text('#!/bin/sh\n[ "$3" = 42 ] && echo RUNNING\n')
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert slurm_job_state("42") == "RUNNING"
    assert slurm_job_state("7") is None and slurm_job_state(None) is None


@pytest.mark.slow
def test_a_signal_stops_at_the_next_step_not_the_next_sync_window(tmp_path, shared_data_dir):
    """The flag is polled every step in one process, also where losses are read only every
    `sync_every` steps (a GPU): the bound from signal to checkpoint is one step."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("legw_repro.loop.trainer.sync_every", lambda device: 50)
        signal_at(mp, 7, signal.SIGTERM)
        with pytest.raises(Preempted) as e:
            run(_cfg(shared_data_dir), tmp_path)
    assert e.value.step == 7 and summary(tmp_path)["status"] == "preempted"
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["loop"]["step"] == 7
