"""`cuda_graphs` (legw_repro/loop/cudagraph.py): `true` is refused with one line where it cannot
apply; `auto` (the default) graphs where it applies and says why not elsewhere; a capture that
fails falls back to the eager step; on a GPU the replayed step trains like the eager one (same
losses and weights within float tolerance, across an epoch boundary that resets PTB's carried
state)."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from legw_repro.config.validate import ConfigError
from legw_repro.loop.cudagraph import CaptureFailed, GraphedStep, unsupported
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
    eager = run(make_cfg(*common, "cuda_graphs=false"), tmp_path / "eager")
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


def test_auto_on_a_cpu_run_trains_eagerly_and_says_why(tmp_path, shared_data_dir):
    out = run(make_cfg(*SMALL, f"data_dir={shared_data_dir}", "device=cpu"), tmp_path)
    assert out["status"] == "completed"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cuda_graphs"] is False
    assert summary["cuda_graphs_off"] == "needs device=cuda (this run is on cpu)"


@pytest.mark.parametrize("value", ["yes", 1, "'true'"])
def test_cuda_graphs_takes_auto_true_or_false_only(tmp_path, shared_data_dir, value):
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", "device=cpu", f"cuda_graphs={value}")
    with pytest.raises(ConfigError, match=r"choose one of \['auto', true, false\]"):
        run(cfg, tmp_path)


class _FailsToCapture:
    """A graphed step whose capture fails at its first use (as an op the capture forbids would)."""

    def step(self, micro):
        raise CaptureFailed("cuda_graphs: the step could not be captured (operation not permitted)")


def test_a_failed_capture_falls_back_to_eager_with_one_line(
    tmp_path, shared_data_dir, monkeypatch, caplog
):
    common = [*SMALL, f"data_dir={shared_data_dir}", "device=cpu", "progress=false"]
    run(make_cfg(*common), tmp_path / "eager")
    monkeypatch.setattr(
        GraphedStep, "choose", classmethod(lambda cls, t, s: (_FailsToCapture(), None))
    )
    with caplog.at_level(logging.WARNING):
        out = run(make_cfg(*common), tmp_path / "fallback")
    assert out["status"] == "completed"
    warned = [r.getMessage() for r in caplog.records if "could not be captured" in r.getMessage()]
    assert len(warned) == 1 and warned[0].endswith("training on eagerly")
    summary = json.loads((tmp_path / "fallback" / "summary.json").read_text())
    assert summary["cuda_graphs"] is False and "could not be captured" in summary["cuda_graphs_off"]
    la = [r["loss"] for r in read_rows(tmp_path / "eager", "train")]
    assert [r["loss"] for r in read_rows(tmp_path / "fallback", "train")] == la


@needs_gpu
def test_auto_graphed_ptb_on_cuda(tmp_path, shared_data_dir):
    run(make_cfg(*SMALL, f"data_dir={shared_data_dir}", "device=cuda"), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cuda_graphs"] is True and "cuda_graphs_off" not in summary
