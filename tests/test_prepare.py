"""The analysis's pure parts: the metric registry, the tables behind the history figures, and
that importing and drawing leave the caller's matplotlib backend alone."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.history import metrics_frame
from legw_repro.analysis.metrics import metric_info
from legw_repro.analysis.prepare import curve_frames, ideal_steps, lr_curves, run_ends
from legw_repro.analysis.target import default_target
from tests.test_analysis import write_run

# --------------------------------------------------------------------------- metric registry


def test_registry_formats_and_relaxes_each_metric():
    acc, ppl, bleu = (metric_info(m) for m in ("acc", "ppl", "bleu"))
    assert (acc.format(0.98811), acc.format_spread(0.0014)) == ("98.81%", "0.14")
    assert acc.format_gap(-0.012, -1.2) == "-1.20 pt" and acc.format_short(0.9831) == "98.31%"
    assert ppl.format(114.5) == "114.50" and ppl.format_gap(4.0, 4.0) == "+4.00 (+4.0%)"
    assert acc.parse(97.0) == pytest.approx(0.97) and ppl.parse(120) == 120.0
    value, text = acc.relax(0.99)
    assert value == pytest.approx(0.985) and text == "0.5 pt"
    assert ppl.relax(100.0) == (pytest.approx(101.0), "1%")
    assert bleu.relax(30.0) == (pytest.approx(29.7), "1%")
    assert bleu.higher_is_better and bleu.chance == 0.0 and not bleu.percent
    assert (acc.axis, ppl.axis, bleu.axis) == ("error", "log", "linear")
    assert list(acc.display([0.5])) == [50.0] and list(bleu.display([27.5])) == [27.5]
    with pytest.raises(AnalysisError, match="declare it in legw_repro/analysis/metrics.py"):
        metric_info("wer")


@pytest.fixture(scope="module")
def bleu_root(tmp_path_factory):
    """A GNMT-like sweep: BLEU on valid and test, higher is better, two policies."""
    root = tmp_path_factory.mktemp("gnmt")
    for policy, slope in (("sqrt_legw", 0.5), ("linear", 3.0)):
        for batch in (64, 128, 256):
            for seed in (0, 1):
                test = 28.0 - slope * np.log2(batch / 64) + (0.5 if seed else -0.5)
                finals = {e: (test - 1.0 - (4 - e), test if e == 4 else None) for e in (1, 2, 3, 4)}
                write_run(root, task="gnmt", metric="bleu", policy=policy, batch=batch, base=64,
                          seed=seed, finals=finals, model_size=None)  # fmt: skip
    return root


def test_a_bleu_task_needs_no_code_of_its_own(bleu_root, tmp_path):
    """The registry alone carries BLEU through the table, the report and the figures."""
    from legw_repro.analysis.plots import make_figures, plot_metric_vs_batch
    from legw_repro.analysis.report import results_table, write_report

    runs = collect_runs([bleu_root])
    agg = aggregate(runs)
    assert set(agg["metric"]) == {"bleu"} and set(agg["split"]) == {"test"}
    table = results_table(agg, "gnmt").splitlines()
    assert table[0] == "| batch | k | sqrt_legw | linear |"
    assert table[4] == "| 256 | 4 | 27.00 ± 0.71 (n=2) | 22.00 ± 0.71 (n=2) |"
    target = default_target(runs, "gnmt")  # best valid 27.0 at batch 64, relaxed by 1%
    assert target.value == pytest.approx(27.0 * 0.99) and target.higher_is_better
    text = write_report(runs, agg, tmp_path, "gnmt", target=target).read_text()
    assert text.startswith("# GNMT-lite seq2seq: LEGW batch-size scaling")
    assert "**final test BLEU** (higher is better)" in text
    assert "| linear | 256 | 4 |" in text and "-6.00 (-21.4%)" in text
    ax = plot_metric_vs_batch(agg, "gnmt").axes[0]
    assert ax.get_ylabel() == "final test BLEU (higher is better)" and ax.get_yscale() == "linear"
    paths = make_figures(runs, tmp_path, "gnmt", agg=agg, target=target)
    stems = sorted({p.stem for p in paths})
    assert stems == ["bleu_vs_batch", "curves", "lr_schedules", "time_to_target"]


# --------------------------------------------------------------------------- preparation


def history(*rows: dict) -> pd.DataFrame:
    return metrics_frame(rows)


def ev(epoch: float, ppl: float) -> dict:
    return {
        "kind": "eval",
        "split": "valid",
        "step": round(100 * epoch),
        "epoch": epoch,
        "ppl": ppl,
    }


def train(step: int, lr: float, spe: int = 4) -> dict:
    return {
        "kind": "train",
        "step": step,
        "epoch": step / spe,
        "epoch_start": (step - 1) / spe,
        "lr": lr,
    }


def run_row(run_dir: str, **kw) -> dict:
    return {"run_dir": run_dir, "batch_size": 64, "policy": "sqrt_legw", "seed": 0} | kw


def test_curve_frames_pool_the_seeds_and_mark_where_runs_stopped():
    metrics = {
        "a": history(ev(1.0, 200.0), ev(2.0, 150.0)),
        "b": history(ev(1.0, 220.0), ev(2.00001, 170.0), ev(3.0, float("inf"))),
        "c": history({"kind": "train", "step": 1, "epoch": 0.5}),  # diverged in epoch 1
        "d": history(ev(1.0, 1.0)),  # failed: left out
    }
    runs = pd.DataFrame(
        [
            run_row("a", status="completed", epochs_done=2.0),
            run_row("b", seed=1, status="completed", epochs_done=2.0),
            run_row("c", seed=2, status="diverged", epochs_done=np.nan),
            run_row("d", seed=3, status="failed", epochs_done=1.0),
        ]
    )
    curves, ends = curve_frames(runs, metrics, "ppl")
    assert curves["epoch"].tolist() == [1.0, 2.0]  # rounded to 1e-4; inf dropped
    assert curves["mean"].tolist() == [210.0, 160.0] and curves["n"].tolist() == [2, 2]
    assert curves["min"].tolist() == [200.0, 150.0] and curves["max"].tolist() == [220.0, 170.0]
    assert ends["run_dir"].tolist() == ["a", "b", "c"]
    assert ends["end"].tolist() == [2.0, 3.0, 0.5] and ends["stop"].tolist() == [2.0, 2.0, 0.5]
    assert run_ends(runs.iloc[[3]], {})["end"].isna().all()  # no history: no end


def test_lr_curves_draw_each_step_from_where_it_began():
    metrics = {
        "div": history(train(1, 9.0)),
        "ok": history(*(train(s, 0.1 * s) for s in range(1, 9))),
        "adam": history(train(1, 1e-3), train(2, 2e-3)),
    }
    runs = pd.DataFrame(
        [
            run_row("div", status="diverged", optimizer="sgd", warmup_epochs=0.5, epochs=2),
            run_row("ok", seed=1, status="completed", optimizer="sgd", warmup_epochs=0.5, epochs=2),
            run_row("adam", policy="adam", status="completed", optimizer="adam", warmup_epochs=3,
                    epochs=2),
        ]
    )  # fmt: skip
    lines = lr_curves(runs, metrics)
    sgd = lines[lines["policy"] == "sqrt_legw"]
    assert sgd["epoch"].tolist() == [s / 4 for s in range(8)]  # epoch_start, as logged
    assert sgd["lr"].tolist() == pytest.approx([0.1 * s for s in range(1, 9)])
    assert set(sgd["status"]) == {"completed"} and set(sgd["warmup_end"]) == {0.5}
    assert not sgd["secondary"].any()
    adam = lines[lines["policy"] == "adam"]
    assert adam["secondary"].all() and adam["warmup_end"].isna().all()  # warmup past the end
    assert len(lr_curves(runs, metrics, max_points=3).query("policy == 'sqrt_legw'")) == 3


def test_ideal_steps_scale_each_policys_base_by_one_over_k():
    tta = pd.DataFrame(
        {
            "policy": ["sqrt_legw", "sqrt_legw", "linear"],
            "batch_size": [20, 40, 40],
            "base_batch_size": [20, 20, 20],
            "steps_mean": [400.0, 250.0, 100.0],
        }
    )
    ideal = ideal_steps(tta, [20, 40, 80])
    assert ideal["policy"].tolist() == ["sqrt_legw"] * 3  # linear has no base-batch run
    assert ideal["steps"].tolist() == [400.0, 200.0, 100.0]


# --------------------------------------------------------------------------- backend


def test_importing_and_drawing_leave_the_matplotlib_backend_alone(tmp_path):
    code = f"""
import matplotlib
matplotlib.use("svg")
import legw_repro.analysis.cli
from legw_repro.analysis import axes, figure, plots, prepare, report, variants, wandb_io
fig, ax = figure.new_figure((2, 2))
ax.plot([1, 2], [3, 4])
figure.save_figure(fig, {str(tmp_path)!r}, "x")
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    run = [sys.executable, "-c", code]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert (tmp_path / "x.svg").read_text().startswith("<?xml")
    assert not (tmp_path / "x.png").exists()  # one format
