"""`cuda_graphs=true` (legw_repro/loop/cudagraph.py): refused with one line where it cannot apply;
on a GPU the replayed step trains like the eager one (same losses and weights within float
tolerance, across an epoch boundary that resets PTB's carried state)."""

from __future__ import annotations

import pytest
import torch

from legw_repro.config.validate import ConfigError
from legw_repro.loop.cudagraph import unsupported
from legw_repro.run.lifecycle import run
from tests.helpers import checkpoint_params, make_cfg, read_rows
from tests.test_train import SMALL

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("ptb", True, "cpu", 1, 1), "needs device=cuda"),
        (("gnmt", False, "cuda", 1, 1), "fixed-shape"),
        (("mnist", True, "cuda", 2, 1), "one process"),
        (("ptb", True, "cuda", 1, 4), "accum_steps=1"),
    ],
)
def test_unsupported_names_the_reason(args, needle):
    assert needle in unsupported(*args)
    assert unsupported("ptb", True, "cuda", 1, 1) is None


def test_the_tasks_declare_their_shapes():
    """What cuda_graphs may capture is the task's to say (Task.fixed_shapes), not the loop's."""
    from legw_repro.tasks.gnmt import GNMTTask
    from legw_repro.tasks.mnist import MNISTTask
    from legw_repro.tasks.ptb import PTBTask

    assert PTBTask.fixed_shapes and MNISTTask.fixed_shapes and not GNMTTask.fixed_shapes


def test_cuda_graphs_on_a_cpu_run_is_refused_before_training(tmp_path, shared_data_dir):
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", "device=cpu", "cuda_graphs=true")
    with pytest.raises(ConfigError, match="cuda_graphs=true needs device=cuda"):
        run(cfg, tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()


#: MNIST's smoke scale (the full model on 2048 images): 32 steps per epoch at batch 64
MNIST = ["task=mnist", "scale=smoke", "batch_size=64", "wandb.mode=disabled", "progress=false"]


def _pair(tmp_path, data_dir, *overrides, base=tuple(SMALL)):
    common = [*base, f"data_dir={data_dir}", "device=cuda", *overrides]
    eager = run(make_cfg(*common), tmp_path / "eager")
    graphed = run(make_cfg(*common, "cuda_graphs=true"), tmp_path / "graphed")
    assert eager["status"] == graphed["status"] == "completed"
    la = [r["loss"] for r in read_rows(tmp_path / "eager", "train")]
    lb = [r["loss"] for r in read_rows(tmp_path / "graphed", "train")]
    assert lb == pytest.approx(la, rel=1e-4, abs=1e-5)
    a, b = checkpoint_params(tmp_path / "eager"), checkpoint_params(tmp_path / "graphed")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    lr_a = [r["lr"] for r in read_rows(tmp_path / "eager", "train")]
    assert lr_a == [r["lr"] for r in read_rows(tmp_path / "graphed", "train")]


@needs_gpu
def test_graphed_ptb_matches_eager(tmp_path, shared_data_dir):
    _pair(tmp_path, shared_data_dir, "epochs=2")  # 48 steps: warm-up, capture, an epoch reset


@needs_gpu
def test_graphed_mnist_matches_eager(tmp_path, shared_data_dir):
    _pair(tmp_path, shared_data_dir, "epochs=2", base=MNIST)


@needs_gpu
def test_graphed_adam_matches_eager(tmp_path, shared_data_dir):
    _pair(tmp_path, shared_data_dir, "policy=adam")
