"""One writer per run directory (the bug: two trainers wrote one run dir after a relaunch)."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from legw_repro.run import runlock
from legw_repro.run.lifecycle import run
from legw_repro.run.runlock import RunLock, RunLocked, is_held, read_holder
from tests.helpers import REPO, make_cfg
from tests.test_train import SMALL

HOLD = "import sys, time; from legw_repro.run.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"  # noqa: E501


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_process_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_held(tmp_path) and read_holder(tmp_path).pid == holder.pid
        with pytest.raises(RunLocked) as e:
            RunLock(tmp_path, attempts=2, wait_s=0.05).acquire()
        msg = str(e.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg and "\n" not in msg
    finally:
        holder.kill()  # as SIGKILL, an OOM or a lost node would: no chance to release
        holder.wait()
    assert not is_held(tmp_path)
    with RunLock(tmp_path) as lock:
        assert lock.takeover and f"pid {holder.pid}" in lock.takeover
        assert read_holder(tmp_path).pid == os.getpid()
    assert read_holder(tmp_path) is None  # a clean release is not a stale lock


def test_a_trainer_into_a_locked_run_dir_is_refused_before_writing(tmp_path, shared_data_dir):
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}")
    with RunLock(tmp_path), pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
        run(cfg, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock"]


def test_the_run_logs_the_takeover_of_a_stale_lock(tmp_path, caplog):
    from legw_repro.run.lifecycle import writer

    dead = _dead_pid()
    (tmp_path / "run.lock").write_text(f'{{"pid": {dead}, "host": "h", "since": "t"}}')
    with caplog.at_level(logging.WARNING, logger="legw_repro.train"), writer(tmp_path, True):
        pass
    assert any(f"stale lock from pid {dead} on host h" in r.getMessage() for r in caplog.records)


def test_without_flock_a_live_pid_on_this_host_refuses_a_dead_one_does_not(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    host = socket.gethostname()
    lock_file = tmp_path / runlock.LOCK_NAME
    lock_file.write_text(f'{{"pid": {os.getppid()}, "host": "{host}", "since": "t"}}')
    with pytest.raises(RunLocked):
        RunLock(tmp_path).acquire()
    lock_file.write_text(f'{{"pid": {_dead_pid()}, "host": "{host}", "since": "t"}}')
    lock = RunLock(tmp_path).acquire()
    assert lock.takeover and read_holder(tmp_path).pid == os.getpid()
    lock._fd and os.close(lock._fd)


def test_release_lets_the_next_writer_in_at_once(tmp_path):
    t0 = time.monotonic()
    for _ in range(3):
        with RunLock(tmp_path) as lock:
            assert lock.takeover is None and is_held(tmp_path)
    assert time.monotonic() - t0 < 2
