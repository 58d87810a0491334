"""A stalled DDP rank ends the job within `dist_timeout_s`, with a clear message and a record
that says "failed" (gloo's own default would wait 30 minutes). Two CPU processes (gloo); rank 1
stops itself (SIGSTOP) after step 3, as a hung or swapped-out rank would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.faults import FAULT_WRAPPER
from tests.helpers import REPO, summary
from tests.test_train import SMALL

TIMEOUT_S = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0]


@pytest.mark.slow
def test_a_stalled_rank_ends_the_job_within_the_timeout(tmp_path, shared_data_dir):
    port = _free_port()
    args = [
        *SMALL,
        "epochs=20",  # long enough that the stall comes well before the end
        f"data_dir={shared_data_dir}",
        f"dist_timeout_s={TIMEOUT_S}",
        f"hydra.run.dir={tmp_path}",
    ]
    procs = []
    for rank in (0, 1):
        env = _rank_env(rank, port, FAULT_STEP="3", FAULT_ACTION="SIGSTOP", FAULT_RANK="1")
        cmd = [sys.executable, "-c", FAULT_WRAPPER, *args]
        procs.append(
            subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        )
    rank0, rank1 = procs
    try:
        deadline = time.monotonic() + 240
        while rank1.poll() is None and time.monotonic() < deadline:  # wait for rank 1 to stop
            if _state(rank1.pid) == "T":  # stopped
                break
            time.sleep(0.1)
        stopped = time.monotonic()
        _, err = rank0.communicate(timeout=TIMEOUT_S + 60)
        waited = time.monotonic() - stopped
    finally:
        rank1.send_signal(signal.SIGKILL)
        rank1.wait()
        if rank0.poll() is None:
            rank0.kill()
    err = err.decode()
    assert rank0.returncode == 1, err[-3000:]
    assert waited < TIMEOUT_S + 30, waited  # bounded by dist_timeout_s, not gloo's 30 minutes
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: rank 0/2: a collective failed") and "dist_timeout_s=4s" in last
    assert "Traceback" not in err
    s = summary(tmp_path)
    assert s["status"] == "failed" and "another rank stalled or died" in s["reason"]


def _rank_env(rank: int, port: int, **extra: str) -> dict[str, str]:
    """The environment of rank `rank` of a 2-rank env:// launch on this host."""
    return {
        **os.environ,
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        **extra,
    }


def _lone_rank(rank: int, run_dir, data_dir) -> subprocess.Popen:
    """One rank of a 2-rank env:// launch (srun, a torchrun per node) whose peer never starts."""
    env = _rank_env(rank, _free_port())
    env.pop("HYDRA_FULL_ERROR", None)
    args = [*SMALL, f"data_dir={data_dir}", "dist_timeout_s=2", f"hydra.run.dir={run_dir}"]
    cmd = [sys.executable, "-m", "legw_repro.train", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)


def test_a_peer_that_never_starts_ends_the_run_with_one_line(tmp_path, shared_data_dir):
    """Rank 0 alone: one line naming the wait and the fix, exit 1, a "failed" record with that
    reason (torch raised a traceback after the wait and left no record). Rank 1 alone: the same
    line naming rank 0, within the timeout (torch's client retried up to ~3x as long, printing
    C++ stack traces), and no record: only rank 0 writes one."""
    procs = {rank: _lone_rank(rank, tmp_path / f"r{rank}", shared_data_dir) for rank in (0, 1)}
    errs = {rank: p.communicate(timeout=120)[1] for rank, p in procs.items()}
    for rank, err in errs.items():
        assert procs[rank].returncode == 1, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert len(err.strip().splitlines()) == 1, err[-3000:]
    last0 = errs[0].strip().splitlines()[-1]
    assert last0.startswith("error: rank 0/2: the other ranks did not join within")
    assert "dist_timeout_s=2s" in last0 and "1 of 2 joined" in last0
    s = summary(tmp_path / "r0")
    assert s["status"] == "failed" and s["reason"] == last0.removeprefix("error: ")
    assert s["world_size"] == 2 and s["fingerprint"] and s["finished_at"]
    assert (tmp_path / "r0" / "config.yaml").is_file()
    last1 = errs[1].strip().splitlines()[-1]
    assert last1.startswith("error: rank 1/2: rank 0 did not answer at 127.0.0.1:")
    assert "dist_timeout_s=2s" in last1
    assert not {"summary.json", "config.yaml"} & {p.name for p in (tmp_path / "r1").iterdir()}
