"""CUDA MPS (the Multi-Process Service) for runs that share one GPU.

Why: separate processes on one GPU time-slice it -- each kernel has the device to itself -- so
at small batches, where a run fills a fraction of the GPU, four runs side by side gave the same
tokens/s in all as one (issue 29's H200 measurement). MPS runs the kernels of several processes
at once. It is NVIDIA's daemon, started per user with `nvidia-cuda-mps-control -d`; processes
that see its pipe directory (CUDA_MPS_PIPE_DIRECTORY) become its clients. `scripts/bench.py
--sharing time-slice,mps` measures N runs side by side both ways.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

CONTROL = "nvidia-cuda-mps-control"


def unavailable(device: str) -> str | None:
    """Why MPS cannot be used here (one line), else None."""
    if device != "cuda":
        return f"MPS needs device=cuda (this bench runs on {device})"
    if shutil.which(CONTROL) is None:
        return f"{CONTROL} is not on PATH (it ships with the NVIDIA driver utilities)"
    return None


def client_env(workdir: Path) -> dict[str, str]:
    """The environment that makes a process a client of the daemon kept in `workdir`."""
    return {
        "CUDA_MPS_PIPE_DIRECTORY": str(workdir / "pipe"),
        "CUDA_MPS_LOG_DIRECTORY": str(workdir / "log"),
    }


@contextlib.contextmanager
def daemon(workdir: Path) -> Iterator[dict[str, str]]:
    """An MPS control daemon of our own (its pipe and log in `workdir`) for the duration of the
    block; yields the clients' environment. Stopped with `quit` on the way out, also on error."""
    env = client_env(workdir)
    for d in env.values():
        Path(d).mkdir(parents=True, exist_ok=True)
    full = {**os.environ, **env}
    subprocess.run([CONTROL, "-d"], env=full, check=True, timeout=30)
    try:
        yield env
    finally:
        subprocess.run([CONTROL], input="quit\n", text=True, env=full, timeout=30, check=False)
