"""Checkpoint files: written atomically, the previous one kept, a bad one named and skipped.
(The same, end to end through a resumed run: tests/test_preemption.py.)"""

from __future__ import annotations

import logging

import pytest
import torch

from legw_repro.loop import checkpoint
from legw_repro.loop.checkpoint import CheckpointError, CheckpointMismatch


def _restored(directory):
    seen = []
    path = checkpoint.load(directory, seen.append)
    return path, seen


def test_save_keeps_the_previous_checkpoint(tmp_path):
    checkpoint.save({"step": 1}, tmp_path)
    checkpoint.save({"step": 2}, tmp_path)
    assert torch.load(tmp_path / "last.pt")["step"] == 2
    assert torch.load(tmp_path / "prev.pt")["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "prev.pt"]  # no temp left


def test_a_write_that_dies_midway_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    checkpoint.save({"step": 1}, tmp_path)

    def dies(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(OSError):
        checkpoint.save({"step": 2}, tmp_path)
    assert torch.load(tmp_path / "last.pt")["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_only_prev_after_a_crash_between_the_renames(tmp_path):
    checkpoint.save({"step": 1}, tmp_path)
    (tmp_path / "last.pt").rename(tmp_path / "prev.pt")
    path, seen = _restored(tmp_path)
    assert path.name == "prev.pt" and seen == [{"step": 1}]


def test_truncated_last_falls_back_to_prev_and_names_it(tmp_path, caplog):
    checkpoint.save({"step": 1, "w": torch.ones(1000)}, tmp_path)
    checkpoint.save({"step": 2, "w": torch.ones(1000)}, tmp_path)
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:500])
    with caplog.at_level(logging.WARNING, logger="legw_repro.loop.checkpoint"):
        path, seen = _restored(tmp_path)
    assert path.name == "prev.pt" and seen[0]["step"] == 1
    assert any(str(last) in r.getMessage() for r in caplog.records)


def test_nothing_loadable_is_one_line_naming_every_file(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "prev.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as e:
        _restored(tmp_path)
    msg = str(e.value)
    assert f"{tmp_path / 'last.pt'} cannot be loaded" in msg and "prev.pt cannot" in msg
    assert "\n" not in msg


def test_no_checkpoint_is_none_and_a_mismatch_does_not_fall_back(tmp_path):
    assert _restored(tmp_path) == (None, [])
    checkpoint.save({"world_size": 1}, tmp_path)
    checkpoint.save({"world_size": 1}, tmp_path)

    def refuse(state):
        raise CheckpointMismatch("written with world_size=1 but this run has 2")

    with pytest.raises(CheckpointMismatch):
        checkpoint.load(tmp_path, refuse)


@pytest.mark.parametrize(
    ("keep", "left"), [("all", ["last.pt", "prev.pt"]), ("last", ["last.pt"]), ("none", [])]
)
def test_prune_keeps_what_checkpoint_keep_says(tmp_path, keep, left):
    """A finished run kept last.pt and prev.pt (~0.5 GB a run at GNMT's recipe), no setting
    dropped them."""
    checkpoint.save({"step": 1}, tmp_path)
    checkpoint.save({"step": 2}, tmp_path)
    checkpoint.prune(tmp_path, keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == left
