"""A full disk is one line naming the file and the free space, exit 74; nothing already on disk
is lost (legw_repro/loop/diskfull.py).

The disk fills inside torch's own zip writer (its write raises ENOSPC, as a full file system
does), so the error that reaches the run is torch's `RuntimeError: ... unexpected pos`, the
ENOSPC only in its context: what a real full disk gave (tried on a 1.6 MB tmpfs).
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys

import pytest
import torch

from legw_repro.loop.diskfull import DiskFull, no_space, writing
from legw_repro.run.lifecycle import run
from legw_repro.run.records import atomic_write_text
from legw_repro.run.status import EXIT_NO_SPACE
from tests.helpers import REPO, checkpoint_params, make_cfg, read_rows, summary
from tests.test_train import SMALL

COMMON = [*SMALL, "checkpoint_every_steps=5", "checkpoint_every_min=0"]


class _FullAfter(io.RawIOBase):
    """A file whose device fills after `room` bytes."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.room -= len(b)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(b)


def _disk_full_at_save(monkeypatch, n: int) -> None:
    """The `n`-th torch.save (1-based) finds the disk full half-way through its file."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            f = _FullAfter(f, room=4096)
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_torch_hides_the_enospc_and_writing_finds_it(tmp_path):
    with pytest.raises(RuntimeError, match="unexpected pos") as e:
        torch.save({"x": torch.zeros(10_000)}, _FullAfter(io.BytesIO(), room=4096))
    assert no_space(e.value).errno == errno.ENOSPC
    with pytest.raises(DiskFull) as full, writing(tmp_path / "last.pt"):
        raise e.value
    msg = str(full.value)
    assert msg.startswith(f"{tmp_path / 'last.pt'}: no space left on device (")
    assert " free there)" in msg and "resume=true" in msg and "\n" not in msg
    with pytest.raises(ValueError), writing(tmp_path / "x"):  # anything else passes as it was
        raise ValueError("not a disk")


def test_a_full_disk_under_the_record_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write_text(path, "old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match=r"summary.json: no space left on device \("):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "summary.json"
    ]


@pytest.mark.slow
def test_full_disk_at_a_checkpoint_keeps_the_last_one_and_resume_loses_nothing(
    tmp_path, monkeypatch, shared_data_dir
):
    cfg = [*COMMON, f"data_dir={shared_data_dir}"]
    reference = tmp_path / "ref"
    assert run(make_cfg(*cfg), reference)["status"] == "completed"
    rd = tmp_path / "run"
    _disk_full_at_save(monkeypatch, 2)  # checkpoints at steps 5, 10, ...: step 10's fails
    with pytest.raises(DiskFull) as e:
        run(make_cfg(*cfg), rd)
    assert str(e.value).startswith(f"{rd / 'checkpoints' / 'last.pt'}: no space left on device")
    ckpts = rd / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.pt"]  # no temporary file left
    assert torch.load(ckpts / "last.pt", weights_only=False)["loop"]["step"] == 5
    s = summary(rd)
    assert s["status"] == "failed" and "no space left on device" in s["reason"]
    monkeypatch.undo()  # space freed
    assert run(make_cfg(*cfg, "resume=true"), rd)["status"] == "completed"
    ref, got = checkpoint_params(reference), checkpoint_params(rd)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert [r["loss"] for r in read_rows(rd, "train")] == [
        r["loss"] for r in read_rows(reference, "train")
    ]


# the training CLI whose second checkpoint finds the disk full
FULL_WRAPPER = """
import errno, io, os, runpy, sys, torch
real, calls = torch.save, []
class Full(io.RawIOBase):
    def __init__(self, f): self.f, self.room = f, 4096
    def writable(self): return True
    def write(self, b):
        self.room -= len(b)
        if self.room < 0: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(b)
def save(obj, f, *a, **k):
    calls.append(1)
    return real(obj, Full(f) if len(calls) == 2 else f, *a, **k)
torch.save = save
sys.argv = ["legw_repro.train", *sys.argv[1:]]
runpy.run_module("legw_repro.train", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_cli_full_disk_is_one_line_and_exit_74(tmp_path, shared_data_dir):
    args = [*COMMON, f"data_dir={shared_data_dir}", f"hydra.run.dir={tmp_path}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", FULL_WRAPPER, *args]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == EXIT_NO_SPACE == 74, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith(f"error: {tmp_path / 'checkpoints' / 'last.pt'}: no space left on")
    assert " free there)" in line and "resume=true" in line
