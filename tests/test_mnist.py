"""The MNIST task end to end: the CLI run record, exact accumulation and DDP splits, the seeded
per-epoch shuffle, the chunked CPU forward, and that the task plugs into the trainer unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from legw_repro.loop.distributed import DistInfo
from legw_repro.run.lifecycle import run
from legw_repro.tasks.mnist.model import MNISTLSTM
from legw_repro.tasks.mnist.task import MNISTTask, epoch_permutation
from tests.helpers import (
    REPO,
    check_train_rows,
    checkpoint_params,
    make_cfg,
    read_rows,
    run_cli,
    summary,
)

# one epoch of the real model on 512 training images, 200 validation/test images: ~1 s per run
SMALL = [
    "task=mnist",
    "scale=smoke",
    "task.max_train_items=512",
    "task.max_eval_items=200",
    "batch_size=128",
    "epochs=1",
    "wandb.mode=disabled",
    "progress=false",
]


def _task(data_dir: Path, *overrides: str, rank: int = 0, world_size: int = 1) -> MNISTTask:
    cfg = make_cfg(*SMALL, f"data_dir={data_dir}", *overrides)
    return MNISTTask(cfg, DistInfo(rank=rank, world_size=world_size))


def _labels(task: MNISTTask, epoch: int) -> list[torch.Tensor]:
    """The labels of every micro-batch of every step of `epoch`, flattened to one list."""
    return [y for step in task.train_batches(epoch) for (_, y) in step]


@pytest.mark.slow
def test_cli_smoke_run_record(tmp_path, shared_data_dir):
    rd = tmp_path / "run"
    res = run_cli("task=mnist", "scale=smoke", f"data_dir={shared_data_dir}", f"hydra.run.dir={rd}")
    assert res.returncode == 0, res.stderr[-3000:]
    s = summary(rd)
    assert s["status"] == "completed" and s["task"] == "mnist" and s["policy"] == "sqrt_legw"
    assert s["metric"] == "acc" and s["higher_is_better"] is True
    assert s["throughput_unit"] == "images/s" and s["throughput"] > 0
    assert s["batch_size"] == s["base_batch_size"] == 128
    assert s["steps_per_epoch"] == 2048 // 128  # the smoke slice, last partial batch dropped
    for key in ("valid_acc", "test_acc", "best_valid_acc"):
        assert 0.0 <= s["final"][key] <= 1.0
    assert s["final"]["test_acc"] > 0.2  # learned something over chance (0.1)
    cfg = yaml.safe_load((rd / "config.yaml").read_text())
    assert cfg["task"]["name"] == "mnist" and cfg["task"]["max_train_items"] == 2048
    assert all(row["loss"] > 0 for row in check_train_rows(rd))
    evals = read_rows(rd, "eval")
    assert {r["split"] for r in evals} == {"valid", "test"}
    assert all(0.0 <= r["acc"] <= 1.0 and r["loss"] > 0 for r in evals)
    assert len([r for r in evals if r["split"] == "valid"]) == cfg["epochs"]


def test_accumulation_equals_full_batch(tmp_path, shared_data_dir):
    a = run(make_cfg(*SMALL, f"data_dir={shared_data_dir}"), tmp_path / "full")
    b = run(make_cfg(*SMALL, f"data_dir={shared_data_dir}", "accum_steps=2"), tmp_path / "acc")
    assert a["status"] == b["status"] == "completed"
    pa, pb = checkpoint_params(tmp_path / "full"), checkpoint_params(tmp_path / "acc")
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) < 1e-5
    la = [r["loss"] for r in read_rows(tmp_path / "full", "train")]
    lb = [r["loss"] for r in read_rows(tmp_path / "acc", "train")]
    assert la == pytest.approx(lb, rel=1e-5)
    assert a["final"]["valid_acc"] == pytest.approx(b["final"]["valid_acc"], abs=1e-2)


def test_shuffle_is_seeded_per_epoch(shared_data_dir):
    task = _task(shared_data_dir)
    assert task.steps_per_epoch == 512 // 128
    e0 = _labels(task, 0)
    torch.manual_seed(1234)  # the global RNG plays no part
    assert all(torch.equal(a, b) for a, b in zip(e0, _labels(task, 0), strict=True))
    # a fresh task (a resumed run) sees the same order
    assert all(
        torch.equal(a, b) for a, b in zip(e0, _labels(_task(shared_data_dir), 0), strict=True)
    )
    # every step has the full batch; epochs and seeds differ
    assert [len(y) for y in e0] == [128] * 4
    p0, p1 = epoch_permutation(512, 0, 0), epoch_permutation(512, 0, 1)
    assert sorted(p0.tolist()) == list(range(512)) and not torch.equal(p0, p1)
    assert not torch.equal(p0, epoch_permutation(512, 1, 0))
    assert not all(torch.equal(a, b) for a, b in zip(e0, _labels(task, 1), strict=True))
    # resuming mid-epoch continues the same order
    tail = [y for step in task.train_batches(0, start_step=2) for (_, y) in step]
    assert all(torch.equal(a, b) for a, b in zip(e0[2:], tail, strict=True))


def test_ranks_and_micro_batches_tile_the_global_batch(shared_data_dir):
    whole = [step[0][0] for step in _task(shared_data_dir).train_batches(0)]
    split = [
        _task(shared_data_dir, "accum_steps=2", rank=r, world_size=2).train_batches(0)
        for r in range(2)
    ]
    for full, r0, r1 in zip(whole, *split, strict=True):
        parts = [x for x, _ in r0] + [x for x, _ in r1]
        assert [len(p) for p in parts] == [32] * 4
        assert torch.equal(torch.cat(parts), full)


def test_data_and_eval(shared_data_dir):
    task = _task(shared_data_dir, "task.max_train_items=null", "task.max_eval_items=null")
    x, y = task.split("train")
    assert x.dtype == torch.float32 and x.shape == (55_000, 28, 28) and y.dtype == torch.int64
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1.0) < 0.05  # normalised
    assert len(task.split("valid")[1]) == 5000 and len(task.split("test")[1]) == 10_000
    assert task.steps_per_epoch == 55_000 // 128
    torch.manual_seed(0)
    small = _task(shared_data_dir)
    result = small.evaluate(small.build_model(), "valid")
    assert set(result) == {"loss", "acc"} and 0.0 <= result["acc"] <= 1.0
    with pytest.raises(ValueError, match="batch_size"):
        _ = _task(shared_data_dir, "batch_size=1024").steps_per_epoch


def test_chunked_cpu_forward_matches_whole_batch():
    torch.manual_seed(0)
    x, y = torch.randn(300, 28, 28), torch.randint(0, 10, (300,))
    grads = []
    for chunk in (0, 64):
        torch.manual_seed(1)
        m = MNISTLSTM(hidden=32, forget_bias=1.0, cpu_chunk=chunk)
        out = m(x)
        torch.nn.functional.cross_entropy(out, y).backward()
        grads.append((out.detach(), [p.grad.clone() for p in m.parameters()]))
    (o0, g0), (o1, g1) = grads
    assert torch.allclose(o0, o1, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g0, g1, strict=True))


def test_pixel_input_and_bad_input():
    m = MNISTLSTM(input="pixel", hidden=8)
    assert m(torch.randn(2, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="task.model.input"):
        MNISTLSTM(input="column")


def test_task_plugs_into_unchanged_trainer():
    assert "mnist" not in (REPO / "legw_repro" / "loop" / "trainer.py").read_text().lower()
    cfg = yaml.safe_load((REPO / "configs" / "task" / "mnist.yaml").read_text())
    assert cfg["cls"] == "legw_repro.tasks.mnist.MNISTTask" and cfg["base_batch_size"] == 128
    # LEGW at 64x the base batch must fit the epoch budget at every scale
    for scale in ("cpu", "paper"):
        f = yaml.safe_load((REPO / "configs" / "task_scale" / f"mnist_{scale}.yaml").read_text())
        assert 64 * cfg["schedule"]["warmup_epochs"] <= f["epochs"]
