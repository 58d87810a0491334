"""The benchmark harness (legw_repro/bench, scripts/bench.py): block planning, per-block ratios,
the alternation of trainer and bare blocks on the same batches, FLOPs per item, the CSV. A
benchmark is not a test: nothing here asserts a speed."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from legw_repro.bench.alternate import Alternator
from legw_repro.bench.flops import flops_per_item, narrow
from legw_repro.bench.report import COLUMNS, rows_of, table, write_csv
from legw_repro.bench.stats import Block, Plan, figures, paired_ratios, plan
from legw_repro.tasks.ptb.model import LSTMLanguageModel
from tests.helpers import REPO


@pytest.mark.parametrize(
    ("step_s", "max_steps"), [(0.001, 10_000), (0.05, 10_000), (3.0, 10_000), (0.01, 7), (5.0, 2)]
)
def test_plan_fits_the_budget_and_the_epoch(step_s, max_steps):
    p = plan(step_s, block_s=1.0, budget_s=20.0, max_steps=max_steps)
    assert p.steps_per_block >= 1 and p.blocks >= 1
    assert p.timed_steps <= max(max_steps, 1)
    if max_steps >= 36 and step_s < 1.0:
        assert 3 <= p.blocks <= 12
        assert p.steps_per_block * step_s == pytest.approx(1.0, rel=0.5)


def test_paired_ratios_compare_neighbouring_blocks_per_step():
    trainer = [Block("trainer", 4, 1.0, 0.9), Block("trainer", 4, 2.0, 1.8)]
    bare = [Block("bare_sync", 4, 0.9, 0.9), Block("bare_sync", 4, 2.2, 1.8)]
    assert paired_ratios(trainer, bare) == pytest.approx([0.9, 1.1])
    assert paired_ratios(trainer, bare, cpu=True) == pytest.approx([1.0, 1.0])


def test_figures_are_medians_over_blocks():
    blocks = [Block("trainer", 2, w, w) for w in (0.2, 0.4, 1.0)]  # 100, 200, 500 ms per step
    f = figures(blocks, items_per_step=400)
    assert (f.step_ms_median, f.step_ms_min, f.step_ms_max) == pytest.approx((200, 100, 500))
    assert f.items_per_s == pytest.approx(2000)


class FakeClock:
    """Advances by one second per reading, so every block has a known duration."""

    def __init__(self):
        self.t = 0.0

    def now(self):
        self.t += 1.0
        return self.t, self.t

    def reset_peak(self):
        pass

    def peak(self):
        return None

    def block(self, loop, steps, start):
        wall, _ = self.now()
        return Block(loop, steps, wall - start[0], wall - start[1])


class FakeBare:
    def __init__(self):
        self.calls = []

    def step(self, micro, sync=True):
        self.calls.append((micro[0], sync))


def test_alternator_runs_the_bare_loop_over_the_trainers_steps():
    bare = FakeBare()
    batches_from = lambda i: iter([[j] for j in range(i, 100)])  # noqa: E731 - step j's batch
    alt = Alternator(bare, FakeClock(), Plan(steps_per_block=3, blocks=2), 2, batches_from, True)
    for i in range(alt.trainer_steps):  # what the wrapped train_batches does before each step
        alt.tick([i])
    assert alt.trainer_steps == 2 + 6 + 1
    assert [b.loop for b in alt.blocks] == ["trainer", "bare_sync", "bare_nosync"] * 2
    assert all(b.steps == 3 for b in alt.blocks)
    steps = [(2, True), (3, True), (4, True), (2, False), (3, False), (4, False)]
    assert bare.calls == steps + [(s + 3, sync) for s, sync in steps]


class TinyLM:
    """The PTB task's loss on a bare model (what flops_per_item calls)."""

    def loss(self, model, batch, carry):
        x, y = batch
        logits, hidden = model(x, carry)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), hidden


def test_flops_per_item_matches_three_times_the_forward_matmuls():
    vocab, hidden, layers, bptt, batch = 500, 32, 2, 10, 4
    model = LSTMLanguageModel(vocab, hidden, layers)
    x = torch.randint(0, vocab, (bptt, batch))
    micro = [(x, torch.randint(0, vocab, (bptt, batch)))]
    got = flops_per_item(TinyLM(), model, micro, model.init_hidden(batch))
    forward = layers * 2 * 4 * hidden * (2 * hidden) + 2 * hidden * vocab  # per token
    assert got == pytest.approx(3 * forward, rel=0.1)


def test_flops_counted_on_a_slice_of_a_large_batch_are_the_same_per_item():
    vocab, hidden, bptt, batch = 300, 16, 5, 40
    model = LSTMLanguageModel(vocab, hidden, 2)
    micro = [(torch.randint(0, vocab, (bptt, batch)), torch.randint(0, vocab, (bptt, batch)))]
    task = TinyLM()
    task.micro_batch_size = batch
    full = flops_per_item(task, model, micro, model.init_hidden(batch), max_items=batch)
    part = flops_per_item(task, model, micro, model.init_hidden(batch), max_items=8)
    assert part == pytest.approx(full, rel=0.02)
    assert narrow(torch.zeros(28, 40, 28), 40, 8).shape == (28, 8, 28)  # the first dim of 40
    assert narrow((torch.zeros(40, 28), None), 40, 8)[0].shape == (8, 28)


def _result():
    blocks = []
    for t, b in [(1.0, 0.97), (1.1, 1.0), (0.9, 0.9)]:
        blocks += [Block("trainer", 5, t, t).__dict__, Block("bare_sync", 5, b, b).__dict__]
    setting = {"task": "ptb", "batch": 20, "device": "cpu", "scale": "paper", "data_dir": "d",
               "extra": [], "precision": "fp32", "overrides": []}  # fmt: skip
    return {"setting": setting, "status": "completed", "items_per_step": 400,
            "item_unit": "tokens", "flops_per_item": 16e6, "blocks": blocks,
            "peak_rss_bytes": 512 * 2**20}  # fmt: skip


def test_rows_carry_the_machine_the_ratio_and_the_flops(tmp_path):
    meta = {"date": "2026-01-01T00:00:00Z", "device": "cpu", "device_name": "X", "torch": "2",
            "threads": 1}  # fmt: skip
    rows = rows_of(_result(), meta, peak_flops=1e11)
    trainer = next(r for r in rows if r["loop"] == "trainer")
    assert trainer["vs_bare_sync"] == pytest.approx(0.97 / 1.0, abs=0.03)  # median of 3 pairs
    assert trainer["items_per_s"] == pytest.approx(400 / 0.2)  # median block: 1.0 s / 5 steps
    assert trainer["achieved_tflops"] == pytest.approx(16e6 * 2000 / 1e12, rel=1e-3)
    assert trainer["peak_mem_mib"] == 512.0 and trainer["mem_kind"] == "process_rss"
    path = tmp_path / "cpu-ptb.csv"
    write_csv(path, rows)
    read = list(csv.DictReader(path.open()))
    assert list(read[0]) == COLUMNS and {r["loop"] for r in read} == {"trainer", "bare_sync"}
    assert "trainer" in table(rows) and math.isfinite(float(read[0]["vs_bare_sync"]))


@pytest.mark.slow
def test_bench_script_smoke_writes_the_csv(tmp_path, shared_data_dir):
    out = tmp_path / "bench"
    cmd = [sys.executable, str(REPO / "scripts" / "bench.py"), "--smoke", "--tasks", "ptb",
           "--batches", "8", "--device", "cpu", "--out", str(out),
           "--data-dir", str(shared_data_dir)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = list(csv.DictReader((out / "cpu-ptb.csv").open()))
    assert {r["loop"] for r in rows} == {"trainer", "bare_sync"}
    assert all(float(r["items_per_s"]) > 0 and r["device"] == "cpu" for r in rows)
    assert all(r["torch"] == torch.__version__ and r["date"] for r in rows)
    assert "vs bare" in p.stdout and Path(out).is_dir()


def test_mps_is_unavailable_on_a_cpu_and_without_its_daemon(monkeypatch):
    from legw_repro.bench import mps

    assert "needs device=cuda" in mps.unavailable("cpu")
    monkeypatch.setattr(mps.shutil, "which", lambda name: None)
    assert "nvidia-cuda-mps-control is not on PATH" in mps.unavailable("cuda")
    env = mps.client_env(Path("/tmp/x"))
    assert env["CUDA_MPS_PIPE_DIRECTORY"] == "/tmp/x/pipe"


def test_bench_refuses_an_unknown_sharing(capsys):
    sys.path.insert(0, str(REPO / "scripts"))
    import bench

    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["--device", "cpu", "--sharing", "time-slice,magic"])
    assert exc.value.code == 2
    assert "--sharing magic: choose from time-slice,mps" in capsys.readouterr().err


@pytest.mark.slow
def test_concurrent_bench_rows_say_how_the_gpu_was_shared(tmp_path, shared_data_dir):
    """Side by side on a CPU: time-slice rows are measured, MPS is skipped with one line."""
    out = tmp_path / "bench"
    cmd = [sys.executable, str(REPO / "scripts" / "bench.py"), "--smoke", "--tasks", "ptb",
           "--batches", "8", "--device", "cpu", "--out", str(out), "--concurrent", "1,2",
           "--sharing", "time-slice,mps", "--data-dir", str(shared_data_dir)]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "ptb batch 8: mps skipped: MPS needs device=cuda (this bench runs on cpu)" in p.stdout
    rows = list(csv.DictReader((out / "cpu-ptb-concurrent.csv").open()))
    assert [(r["concurrent"], r["sharing"]) for r in rows] == [
        ("1", "time-slice"),
        ("2", "time-slice"),
    ]
    assert all(float(r["items_per_s"]) > 0 for r in rows)
