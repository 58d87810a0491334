"""Fault injection for the reliability tests: a fault at an exact optimizer step, in this
process (monkeypatch) or in a CLI subprocess (`FAULT_WRAPPER`), without test hooks in the trainer.

`Trainer.train_step` is wrapped: after step `FAULT_STEP` has been computed (the step counter is
incremented just after), the fault happens -- signals sent to this process (SIGTERM, SIGUSR1,
SIGSTOP, several comma-separated) or a NaN loss.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch

from legw_repro.loop.trainer import Trainer
from tests.helpers import REPO

# "python -c FAULT_WRAPPER args...": the training CLI with a fault at FAULT_STEP on FAULT_RANK;
# PREVIOUS_HANDLER=<file>: a SIGUSR1 handler installed first (as submitit does), which writes
# the signal number to <file> and exits 0
FAULT_WRAPPER = """
import os, runpy, signal, sys, time
from legw_repro.loop.trainer import Trainer
step, action = int(os.environ["FAULT_STEP"]), os.environ["FAULT_ACTION"]
rank = int(os.environ.get("FAULT_RANK", "0"))
real = Trainer.train_step
def patched(self, micro):
    loss = real(self, micro)
    if self.state.step + 1 == step and self.dist.rank == rank:
        for sig in action.split(","):
            os.kill(os.getpid(), getattr(signal, sig))
            time.sleep(0.2)
    return loss
Trainer.train_step = patched
marker = os.environ.get("PREVIOUS_HANDLER")
if marker:
    def previous(signum, frame):
        with open(marker, "w") as f:
            f.write(str(signum))
        sys.exit(0)
    signal.signal(signal.SIGUSR1, previous)
sys.argv = ["legw_repro.train", *sys.argv[1:]]
runpy.run_module("legw_repro.train", run_name="__main__", alter_sys=True)
"""


def at_step(monkeypatch, step: int, fault: Callable[[Trainer, torch.Tensor], torch.Tensor | None]):
    """Call `fault(trainer, loss)` right after optimizer step `step` (its return replaces the
    loss when not None)."""
    real = Trainer.train_step

    def patched(self: Trainer, micro):
        loss = real(self, micro)
        if self.state.step + 1 == step:
            out = fault(self, loss)
            return loss if out is None else out
        return loss

    monkeypatch.setattr(Trainer, "train_step", patched)


def signal_at(monkeypatch, step: int, signum: int) -> None:
    at_step(monkeypatch, step, lambda trainer, loss: os.kill(os.getpid(), signum))


def nan_at(monkeypatch, step: int) -> None:
    at_step(monkeypatch, step, lambda trainer, loss: loss * float("nan"))


def fault_cli(*args: str, step: int, action: str, rank: int = 0, timeout: int = 300, **env):
    """The training CLI in a subprocess with `action` (signals) at `step`; returns the process."""
    import subprocess

    full = {
        **os.environ,
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        "FAULT_STEP": str(step),
        "FAULT_ACTION": action,
        "FAULT_RANK": str(rank),
        **{k: str(v) for k, v in env.items()},
    }
    cmd = [sys.executable, "-c", FAULT_WRAPPER, *args]
    return subprocess.run(cmd, cwd=REPO, env=full, capture_output=True, text=True, timeout=timeout)
