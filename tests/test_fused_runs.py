"""Fused runs with their records (legw_repro/run/group.py): each member of a fused group writes
the record its solo run writes (same config and fingerprint, its losses and metrics within fp32
tolerance), a preempted group resumes bit for bit, a member resumes alone from its own
checkpoint, runs that cannot fuse are refused before any record is touched, and a member that
another process holds is left out and named."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from legw_repro.loop.fused import FusedGroup, NotFusable
from legw_repro.run.group import GroupMember, run_group
from legw_repro.run.lifecycle import run
from legw_repro.run.preemption import Preempted
from legw_repro.run.runlock import RunLock, RunLocked
from tests.helpers import checkpoint_params, make_cfg, read_rows, summary

ATOL = 2e-5
MNIST = ["task=mnist", "scale=smoke", "task.max_train_items=256", "task.max_eval_items=100"]
MNIST += ["batch_size=32", "epochs=2", "progress=false", "checkpoint_keep=all"]
PTB = ["task=ptb", "scale=smoke", "task.max_train_tokens=3000", "task.max_eval_tokens=500"]
PTB += ["batch_size=8", "epochs=2", "progress=false", "checkpoint_keep=all"]
GRID = [("sqrt_legw", 0), ("sqrt_legw", 1), ("linear", 0)]


def _members(base, data_dir, root: Path, grid=GRID, *extra: str) -> list[GroupMember]:
    out = []
    for policy, seed in grid:
        overrides = (*base, f"data_dir={data_dir}", f"policy={policy}", f"seed={seed}", *extra)
        out.append(GroupMember(make_cfg(*overrides), root / policy / f"s{seed}", overrides))
    return out


def _losses(run_dir: Path) -> torch.Tensor:
    return torch.tensor([r["loss"] for r in read_rows(run_dir, "train")])


@pytest.mark.parametrize("stacked", [True, False])
def test_members_write_their_solo_records(shared_data_dir, tmp_path, stacked):
    members = _members(MNIST, shared_data_dir, tmp_path / "fused")
    summaries = run_group(members, stacked)
    assert [s["status"] for s in summaries] == ["completed"] * 3
    for m in members:
        solo_dir = tmp_path / "solo" / m.run_dir.relative_to(tmp_path / "fused")
        solo = run(m.cfg, solo_dir)
        got = summary(m.run_dir)
        assert got["fingerprint"] == solo["fingerprint"]
        assert (m.run_dir / "config.yaml").read_text() == (solo_dir / "config.yaml").read_text()
        assert got["fused"]["members"] == 3 and got["cuda_graphs"] is False
        assert got["fused"]["stacked"] is stacked
        if stacked:  # batched matmuls: another summation order
            assert torch.allclose(_losses(m.run_dir), _losses(solo_dir), atol=ATOL, rtol=0)
        else:  # member by member: each member's own solo step, bit for bit
            assert torch.equal(_losses(m.run_dir), _losses(solo_dir))
        for key, value in solo["final"].items():
            assert got["final"][key] == pytest.approx(value, abs=1e-3), key
        assert got["steps_done"] == solo["steps_done"] and got["throughput"] > 0
        assert [r["lr"] for r in read_rows(m.run_dir, "train")] == [
            r["lr"] for r in read_rows(solo_dir, "train")
        ]


def _preempt_at(monkeypatch, step: int) -> None:
    real = FusedGroup.train_step

    def patched(self, batches):
        loss = real(self, batches)
        if self.step_count == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    monkeypatch.setattr(FusedGroup, "train_step", patched)


@pytest.mark.parametrize("stacked", [True, False])
def test_preempted_group_resumes_bit_for_bit(shared_data_dir, tmp_path, monkeypatch, stacked):
    whole = _members(PTB, shared_data_dir, tmp_path / "whole")
    run_group(whole, stacked)
    parts = _members(PTB, shared_data_dir, tmp_path / "parts", GRID, "resume=true")
    with monkeypatch.context() as m:
        _preempt_at(m, 4)
        with pytest.raises(Preempted) as err:
            run_group(parts, stacked)
    assert "after step 4" in str(err.value)
    assert [summary(p.run_dir)["status"] for p in parts] == ["preempted"] * 3
    summaries = run_group(parts, stacked)
    assert [s["status"] for s in summaries] == ["completed"] * 3
    for a, b in zip(whole, parts, strict=True):
        assert torch.equal(_losses(a.run_dir), _losses(b.run_dir))
        pa, pb = checkpoint_params(a.run_dir), checkpoint_params(b.run_dir)
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
        assert summary(b.run_dir)["resumed_from"]["step"] == 4


def test_a_member_resumes_alone_from_its_checkpoint(shared_data_dir, tmp_path, monkeypatch):
    members = _members(PTB, shared_data_dir, tmp_path, GRID[:2], "resume=true")
    with monkeypatch.context() as m:
        _preempt_at(m, 3)
        with pytest.raises(Preempted):
            run_group(members, stacked=True)
    alone = members[1]
    ckpt = torch.load(alone.run_dir / "checkpoints" / "last.pt", weights_only=False)
    storage = ckpt["model"]["lstm.weight_ih_l0"].untyped_storage().nbytes()
    assert storage == ckpt["model"]["lstm.weight_ih_l0"].nbytes  # its own slot, not the stack
    done = run(alone.cfg, alone.run_dir)
    assert done["status"] == "completed" and done["resumed_from"]["step"] == 3
    assert "fused" not in done


def test_runs_that_cannot_fuse_are_refused_before_any_record(shared_data_dir, tmp_path):
    members = _members(PTB, shared_data_dir, tmp_path, GRID[:2], "task.model.dropout=0.5")
    with pytest.raises(NotFusable, match="dropout=0.5"):
        run_group(members, stacked=True)
    assert not any((m.run_dir / "summary.json").exists() for m in members)
    mixed = _members(MNIST, shared_data_dir, tmp_path / "mixed", GRID[:1])
    mixed += _members(MNIST, shared_data_dir, tmp_path / "mixed2", GRID[1:2], "batch_size=64")
    with pytest.raises(NotFusable, match="one batch size"):
        run_group(mixed)


def test_a_member_held_elsewhere_is_named_after_the_others(shared_data_dir, tmp_path):
    members = _members(MNIST, shared_data_dir, tmp_path, GRID, "epochs=1")
    held = members[1].run_dir
    held.mkdir(parents=True)
    lock = RunLock(held)
    lock.__enter__()
    try:
        os.environ.pop("SLURM_JOB_ID", None)
        with pytest.raises(RunLocked, match=str(held)):
            run_group(members)
    finally:
        lock.__exit__(None, None, None)
    assert summary(members[0].run_dir)["status"] == "completed"
    assert summary(members[2].run_dir)["fused"]["members"] == 2
    assert not (held / "summary.json").exists()


@pytest.mark.slow
def test_a_fused_sweep_records_what_separate_runs_record(shared_data_dir, tmp_path):
    # hydra.sweeper.fuse=8: the MNIST smoke grid's runs of one batch size in one job each (the
    # k=1 aliases as before); every record equals the unfused sweep's, a relaunch trains nothing
    from tests.helpers import run_cli

    env = {"LEGW_DATA_DIR": str(shared_data_dir)}
    grid = ("-m", "+experiment=mnist_smoke", "progress=false", "task.max_train_items=512")
    fused = run_cli(
        *grid, "hydra.sweeper.fuse=8", env={**env, "LEGW_RUNS_DIR": str(tmp_path / "f")}
    )
    assert fused.returncode == 0, fused.stderr[-2000:]
    alone = run_cli(*grid, env={**env, "LEGW_RUNS_DIR": str(tmp_path / "s")})
    assert alone.returncode == 0, alone.stderr[-2000:]
    runs = sorted((tmp_path / "s").rglob("summary.json"))
    assert len(runs) == 10
    for s_path in runs:
        f_path = tmp_path / "f" / s_path.relative_to(tmp_path / "s")
        a, b = summary(f_path.parent), summary(s_path.parent)
        assert a["fingerprint"] == b["fingerprint"] and a["status"] == "completed"
        assert a["final"]["test_acc"] == pytest.approx(b["final"]["test_acc"], abs=1e-3)
        assert torch.allclose(_losses(f_path.parent), _losses(s_path.parent), atol=ATOL, rtol=0)
    fused_runs = sorted((tmp_path / "f").rglob("summary.json"))
    members = sorted(summary(p.parent).get("fused", {}).get("members", 1) for p in fused_runs)
    assert members == [2] * 5 + [5] * 5  # k=1: sqrt_legw (and its 3 aliases) with adam
    assert len(list((tmp_path / "f").rglob(".fused/group*.json"))) == 2
    again = run_cli(
        *grid, "hydra.sweeper.fuse=8", env={**env, "LEGW_RUNS_DIR": str(tmp_path / "f")}
    )
    assert again.returncode == 0 and "0 to train" in again.stderr + again.stdout


def test_stepwise_members_in_threads_equal_their_solo_runs(shared_data_dir, tmp_path, monkeypatch):
    # on a CPU whose intra-op threads leave cores idle, a stepwise group steps its members side
    # by side in threads (as separate processes would use the cores): still each member's own
    # solo step, bit for bit
    from legw_repro.loop import fused

    monkeypatch.setattr(fused, "_cores", lambda: 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        members = _members(MNIST, shared_data_dir, tmp_path / "fused")
        used = []
        real = fused.ThreadPoolExecutor
        monkeypatch.setattr(
            fused, "ThreadPoolExecutor", lambda n, **kw: used.append(n) or real(n, **kw)
        )
        run_group(members, stacked=False)
        assert used == [3]
        for m in members:
            solo_dir = tmp_path / "solo" / m.run_dir.relative_to(tmp_path / "fused")
            run(m.cfg, solo_dir)
            assert torch.equal(_losses(m.run_dir), _losses(solo_dir))
            assert summary(m.run_dir)["final"] == summary(solo_dir)["final"]
    finally:
        torch.set_num_threads(threads)
