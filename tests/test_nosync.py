"""The training step never waits for the device: losses stay there and are read every
`sync_every` steps (legw_repro/loop/losslog.py), with the same rows, the same weights and the NaN
still named at its own step. Counted on a CPU by patching the Tensor methods that read a value
on the host; on a GPU with torch.cuda.set_sync_debug_mode. No timings here (scripts/bench.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from legw_repro.loop import losslog
from legw_repro.loop.losslog import LossLog
from legw_repro.loop.trainer import Trainer
from legw_repro.run.lifecycle import run
from tests.helpers import checkpoint_params, make_cfg, read_rows, summary
from tests.test_train import SMALL

#: the Tensor methods that copy a value to the host (a device sync on a GPU)
HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


@contextmanager
def counting_host_reads() -> Iterator[list[int]]:
    """A one-element list that counts every host read of a tensor while the context is open."""
    count = [0]
    saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def counted(real):
        def wrapper(self, *args, **kwargs):
            count[0] += 1
            return real(self, *args, **kwargs)

        return wrapper

    for name, real in saved.items():
        setattr(torch.Tensor, name, counted(real))
    try:
        yield count
    finally:
        for name, real in saved.items():
            setattr(torch.Tensor, name, real)


def _reads_per_step(monkeypatch) -> dict[int, int]:
    """Host reads inside each `Trainer._step` call, by the step it completed."""
    per_step: dict[int, int] = {}
    real = Trainer._step

    def step(self, micro, bar):
        with counting_host_reads() as n:
            out = real(self, micro, bar)
        per_step[self.state.step] = n[0]
        return out

    monkeypatch.setattr(Trainer, "_step", step)
    return per_step


def _cfg(data_dir, *extra: str):
    return make_cfg(*SMALL, f"data_dir={data_dir}", *extra)


def test_no_host_read_between_read_steps(tmp_path, shared_data_dir, monkeypatch):
    monkeypatch.setitem(losslog.SYNC_EVERY, "cpu", 4)
    per_step = _reads_per_step(monkeypatch)
    s = run(_cfg(shared_data_dir), tmp_path)
    assert s["status"] == "completed" and s["total_steps"] == 24
    assert sorted(per_step) == list(range(1, 25))
    quiet = {k: v for k, v in per_step.items() if k % 4}
    assert quiet and all(v == 0 for v in quiet.values()), quiet
    assert all(per_step[k] >= 1 for k in range(4, 25, 4))  # the read itself
    assert [r["step"] for r in read_rows(tmp_path, "train")] == list(range(1, 25))


def test_reading_every_n_steps_changes_nothing(tmp_path, shared_data_dir, monkeypatch):
    one = run(_cfg(shared_data_dir), tmp_path / "one")
    monkeypatch.setitem(losslog.SYNC_EVERY, "cpu", 5)
    five = run(_cfg(shared_data_dir), tmp_path / "five")
    assert one["final"] == five["final"]
    strip = [{k: v for k, v in r.items() if k != "time"} for r in read_rows(tmp_path / "one")]
    assert strip == [
        {k: v for k, v in r.items() if k != "time"} for r in read_rows(tmp_path / "five")
    ]
    a, b = checkpoint_params(tmp_path / "one"), checkpoint_params(tmp_path / "five")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_between_reads_is_named_at_its_step(tmp_path, shared_data_dir, monkeypatch):
    monkeypatch.setitem(losslog.SYNC_EVERY, "cpu", 5)
    real = Trainer.train_step

    def nan_at_7(self, micro):
        loss = real(self, micro)
        return loss * float("nan") if self.state.step + 1 == 7 else loss

    monkeypatch.setattr(Trainer, "train_step", nan_at_7)
    s = run(_cfg(shared_data_dir), tmp_path)
    rows = read_rows(tmp_path, "train")
    assert s["status"] == "diverged" and s["steps_done"] == 10  # found at the read of step 10
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert s["nonfinite_step"] == 7 and s["last_finite_loss"] == rows[5]["loss"]
    assert "loss is nan at step 7" in s["reason"]
    assert summary(tmp_path)["nonfinite_step"] == 7


def test_loss_log_reads_in_order_and_keeps_the_last_finite_loss():
    log = LossLog(torch.device("cpu"), capacity=2)
    for v in (3.0, 2.5, 2.0):  # more than the capacity: it grows
        log.push(torch.tensor(v))
    first = log.read()
    assert first == [3.0, 2.5, 2.0] and log.first_nonfinite(first, 1) is None
    for v in (1.5, math.inf, math.nan):
        log.push(torch.tensor(v))
    second = log.read()
    bad = log.first_nonfinite(second, 4)
    assert (bad.step, bad.loss, bad.last_finite_step, bad.last_finite_loss) == (5, math.inf, 4, 1.5)
    assert log.read() == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_no_device_sync_between_reads_on_cuda(tmp_path, shared_data_dir, monkeypatch):
    """After two warm-up steps, any sync outside a read, an evaluation or a checkpoint raises."""
    monkeypatch.setitem(losslog.SYNC_EVERY, "cuda", 4)

    def allow(cls, name):
        real = getattr(cls, name)

        def wrapper(*args, **kwargs):
            mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode(0)
            try:
                return real(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode(mode)

        monkeypatch.setattr(cls, name, wrapper)

    for cls, name in [(LossLog, "read"), (Trainer, "evaluate"), (Trainer, "save_checkpoint")]:
        allow(cls, name)
    real_step = Trainer._step

    def step(self, micro, bar):
        torch.cuda.set_sync_debug_mode("error" if self.state.step >= 2 else 0)
        try:
            return real_step(self, micro, bar)
        finally:
            torch.cuda.set_sync_debug_mode(0)

    monkeypatch.setattr(Trainer, "_step", step)
    s = run(_cfg(shared_data_dir, "device=cuda"), tmp_path)
    assert s["status"] == "completed", s.get("reason")
