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
        env = {
            **os.environ,
            "WANDB_MODE": "disabled",
            "OMP_NUM_THREADS": "1",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "FAULT_STEP": "3",
            "FAULT_ACTION": "SIGSTOP",
            "FAULT_RANK": "1",
        }
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
