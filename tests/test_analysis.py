"""Analysis: run records -> tables, report, figures, W&B upload (docs/analysis.md).

The run records are synthetic (contract v2, docs/run-record.md) with values chosen so that every
aggregate is known exactly: test ppl = 100 + slope(policy) * log2(k) + (-2, 0, +2)[seed].
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from legw_repro.analysis import AnalysisError, collect, report, wandb_io
from legw_repro.analysis.aggregate import AGG_COLUMNS, aggregate
from legw_repro.analysis.cli import main
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.history import load_metrics
from legw_repro.analysis.references import references_for
from legw_repro.analysis.target import aggregate_time_to_target, default_target, time_to_target

# --------------------------------------------------------------------------- synthetic runs

PTB_BATCHES = (20, 40, 80, 160, 320, 640, 1280)
PTB_POLICIES = ("sqrt_legw", "sqrt", "linear")
PTB_SLOPE = {"sqrt_legw": 1.0, "sqrt": 4.0, "linear": 10.0}  # test ppl added per doubling
SEED_OFFSET = (-2.0, 0.0, 2.0)
EPOCHS = 4


def ptb_test_ppl(policy: str, batch: int, seed: int) -> float:
    return 100.0 + PTB_SLOPE[policy] * math.log2(batch / 20) + SEED_OFFSET[seed]


def steps_per_epoch(batch: int) -> int:
    return 2560 // batch


def step_time(batch: int) -> float:
    return 0.01 * (batch / 20) ** 0.5


def valid_curve(final_valid: float, epoch: int) -> float:
    return final_valid + 20.0 * (EPOCHS - epoch)


def schedule(policy: str, k: float, epoch: float) -> tuple[float, float, float]:
    peak = k if policy == "linear" else math.sqrt(k)
    warm = 0.05 * k if policy == "sqrt_legw" else 0.05
    return peak * min(1.0, epoch / warm) * 0.5 ** max(0.0, epoch - 2.0), peak, warm


def write_run(
    root: Path,
    *,
    task: str = "ptb",
    metric: str = "ppl",
    policy: str,
    batch: int,
    base: int,
    seed: int,
    finals: dict[int, tuple[float, float | None]],
    status: str = "completed",
    stop_step: int | None = None,
    truncate_last: bool = False,
    scale: str = "cpu",
    model_size: str | None = "small",
) -> Path:
    """One run directory. ``finals``: epoch -> (valid, test or None) evaluations."""
    run = root / f"{task}-{policy}-b{batch}-s{seed}"
    run.mkdir(parents=True)
    k = batch / base
    spe = steps_per_epoch(batch) if task == "ptb" else 6000 // batch
    total = EPOCHS * spe
    rows, final = [], {}
    last = stop_step if stop_step is not None else total
    t_step = step_time(batch)
    for step in range(1, last + 1):
        epoch = step / spe
        lr = schedule(policy, k, (step - 1) / spe)[0]  # the rate the step trained with
        loss = None if status == "diverged" and step == last else 6.0 - epoch
        rows.append(
            {
                "kind": "train",
                "step": step,
                "epoch": epoch,
                "epoch_start": (step - 1) / spe,
                "lr": lr,
                "loss": loss,
                "time": step * t_step,
            }
        )
        if step % spe == 0 and step // spe in finals:
            # the valid evaluation, then the test one (if any), 0.5 s and 0.7 s after the step
            evals = zip(("valid", "test"), finals[step // spe], (0.5, 0.7), strict=True)
            for split, value, dt in evals:
                if value is None:
                    continue
                row = {"kind": "eval", "step": step, "epoch": float(step // spe), "split": split}
                rows.append(row | {metric: value, "loss": 5.0, "time": step * t_step + dt})
                final[f"{split}_{metric}"] = value
    if final:
        vs = [v for v, _ in finals.values()]
        final[f"best_valid_{metric}"] = min(vs) if metric == "ppl" else max(vs)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if truncate_last:  # a killed writer: half of the last line, no newline
        text = text[: -(len(json.dumps(rows[-1])) // 2) - 1]
    (run / "metrics.jsonl").write_text(text)
    _, peak, warm = schedule(policy, k, 0.0)
    reason = {"diverged": f"loss is nan at step {last}", "failed": "RuntimeError: boom"}
    summary = {
        "record_version": 2,
        "task": task,
        "metric": metric,
        "higher_is_better": metric != "ppl",
        "policy": policy,
        "optimizer": "sgd",
        "rule": "linear" if policy == "linear" else "sqrt",
        "warmup": "legw",
        "decay": "exponential",
        "batch_size": batch,
        "base_batch_size": base,
        "k": k,
        "world_size": 1,
        "accum_steps": 1,
        "seed": seed,
        "scale": scale,
        "epochs": EPOCHS,
        "base_lr": 1.0,
        "clip": 0.25,
        "model": {"size": model_size, "hidden": 200} if model_size else {"hidden": 200},
        "peak_lr": peak,
        "max_lr": peak,
        "mean_lr": peak / 2,
        "warmup_epochs": warm,
        "steps_per_epoch": spe,
        "total_steps": total,
        "status": status,
        "reason": reason.get(status),
        "final": final,
        "steps_done": last,
        "epochs_done": last / spe,
        "wall_time_s": last * t_step + 1.0,
        "throughput": 1000.0,
        "throughput_unit": "tokens/s",
        "started_at": "2026-11-25T13:00:00Z",
        "finished_at": None if status == "running" else "2026-11-25T13:20:00Z",
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    return run


def build_ptb(root: Path, *, scale: str = "cpu", model_size: str | None = "small") -> Path:
    """PTB: 7 batch sizes x 3 policies x 3 seeds, with: seed 2 of (sqrt_legw, 640) missing;
    (linear, 640) seed 1 and all of (linear, 1280) diverged; (sqrt, 320) seed 2 failed;
    (sqrt, 1280) seed 2 still running, killed mid-line (truncated metrics.jsonl)."""
    for policy in PTB_POLICIES:
        for batch in PTB_BATCHES:
            for seed in range(3):
                if (policy, batch, seed) == ("sqrt_legw", 640, 2):
                    continue
                test = ptb_test_ppl(policy, batch, seed)
                finals = {
                    e: (valid_curve(test + 4.0, e), test if e == EPOCHS else None)
                    for e in range(1, EPOCHS + 1)
                }
                kw: dict = {}
                if policy == "linear" and (batch == 1280 or (batch == 640 and seed == 1)):
                    kw = {"status": "diverged", "stop_step": 3, "finals": {}}
                elif (policy, batch, seed) == ("sqrt", 320, 2):
                    kw = {"status": "failed", "stop_step": 9, "finals": {1: finals[1]}}
                elif (policy, batch, seed) == ("sqrt", 1280, 2):
                    kw = {"status": "running", "stop_step": 3, "finals": {}, "truncate_last": True}
                write_run(
                    root,
                    policy=policy,
                    batch=batch,
                    base=20,
                    seed=seed,
                    finals=kw.pop("finals", finals),
                    scale=scale,
                    model_size=model_size,
                    **kw,
                )
    return root


def mnist_valid_acc(policy: str, batch: int, seed: int) -> float:
    slope = {"sqrt_legw": 0.001, "none": 0.004}[policy]
    return 0.98 - slope * math.log2(batch / 100) + (0.001 if seed else -0.001)


def build_mnist(root: Path) -> Path:
    """MNIST: validation accuracy only (no test split), so the headline falls back to valid."""
    for policy in ("sqrt_legw", "none"):
        for batch in (100, 200, 400, 800):
            for seed in range(2):
                acc = mnist_valid_acc(policy, batch, seed)
                finals = {e: (acc - 0.01 * (EPOCHS - e), None) for e in range(1, EPOCHS + 1)}
                write_run(
                    root,
                    task="mnist",
                    metric="acc",
                    policy=policy,
                    batch=batch,
                    base=100,
                    seed=seed,
                    finals=finals,
                    model_size=None,
                )
    return root


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    build_ptb(root / "ptb")
    build_mnist(root / "mnist")
    return root


@pytest.fixture(scope="module")
def runs(runs_root) -> pd.DataFrame:
    return collect_runs([runs_root])


@pytest.fixture(scope="module")
def agg(runs) -> pd.DataFrame:
    return aggregate(runs)


def row(df: pd.DataFrame, task: str, policy: str, batch: int) -> pd.Series:
    r = df[(df["task"] == task) & (df["policy"] == policy) & (df["batch_size"] == batch)]
    assert len(r) == 1, (task, policy, batch)
    return r.iloc[0]


# --------------------------------------------------------------------------- collect


def test_collect_one_row_per_run_with_statuses_marked(runs):
    ptb = runs[runs["task"] == "ptb"]
    assert len(ptb) == 7 * 3 * 3 - 1  # one missing seed
    assert len(runs[runs["task"] == "mnist"]) == 16
    assert ptb["status"].value_counts().to_dict() == {
        "completed": 56,
        "diverged": 4,
        "failed": 1,
        "running": 1,
    }
    assert ptb["diverged"].sum() == 4 and ptb["failed"].sum() == 1 and ptb["running"].sum() == 1
    failed = ptb[ptb["failed"]].iloc[0]
    assert (failed["policy"], failed["batch_size"], failed["seed"]) == ("sqrt", 320, 2)
    assert failed["reason"] == "RuntimeError: boom"
    # final.* flattened into columns, config's task.model.size read
    r = ptb[(ptb["policy"] == "sqrt") & (ptb["batch_size"] == 80) & (ptb["seed"] == 1)].iloc[0]
    assert r["test_ppl"] == 108.0 and r["valid_ppl"] == 112.0 and r["best_valid_ppl"] == 112.0
    assert r["metric_split"] == "test" and r["metric_value"] == 108.0
    assert r["model_size"] == "small" and Path(r["run_dir"]).is_dir()
    for col in (
        "task",
        "policy",
        "batch_size",
        "seed",
        "k",
        "peak_lr",
        "warmup_epochs",
        "total_steps",
        "wall_time_s",
        "status",
        "run_dir",
    ):
        assert col in runs.columns


@pytest.mark.parametrize("text", ['{"task": "mnist", "sta', "{}", "[]", ""])
def test_an_unreadable_or_empty_summary_stops_the_analysis_naming_it(tmp_path, text):
    # it was skipped with a warning (the report counted "3 completed" and showed the point as
    # never run), and {} was called a v1 record to migrate
    build_mnist(tmp_path)
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "summary.json").write_text(text)
    with pytest.raises(AnalysisError) as e:
        collect_runs([tmp_path])
    msg = str(e.value)
    assert str(bad / "summary.json") in msg and "remove that run directory" in msg
    assert "\n" not in msg and "v1" not in msg


def test_load_metrics_tolerates_a_truncated_last_line(runs):
    r = runs[(runs["policy"] == "sqrt") & (runs["batch_size"] == 1280) & (runs["seed"] == 2)]
    run_dir = r["run_dir"].iloc[0]
    assert not Path(run_dir, "metrics.jsonl").read_text().endswith("\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a truncated LAST line is expected: no warning
        m = load_metrics(run_dir)
    assert m["step"].tolist() == [1, 2]
    assert m["kind"].tolist() == ["train", "train"]
    assert list(m.columns[:8]) == [
        "kind", "step", "epoch", "epoch_start", "time", "lr", "loss", "split"
    ]  # fmt: skip


def test_load_metrics_recovers_glued_rows_dedupes_and_warns_on_garbage(tmp_path):
    rows = [
        {"kind": "train", "step": s, "epoch": s / 10, "lr": 0.1 * s, "loss": 5.0, "time": float(s)}
        for s in range(1, 5)
    ]
    lines = [json.dumps(r) for r in rows]
    # killed half-way through step 3, resumed: step 3 is logged again glued to the remains
    text = lines[0] + "\n" + lines[1] + "\n" + lines[2][:20] + lines[2] + "\n"
    text += "not json at all\n" + lines[3].replace('"loss": 5.0', '"loss": 4.0') + "\n"
    text += lines[3] + "\n"
    (tmp_path / "metrics.jsonl").write_text(text)
    with pytest.warns(UserWarning, match="malformed line"):
        m = load_metrics(tmp_path)
    assert m["step"].tolist() == [1, 2, 3, 4]
    assert m["loss"].tolist() == [5.0, 5.0, 5.0, 5.0]  # duplicate step 4: the last version kept
    assert load_metrics(tmp_path / "nowhere").empty


# --------------------------------------------------------------------------- aggregate


def test_aggregate_exact_numbers(agg):
    r = row(agg, "ptb", "sqrt_legw", 20)
    assert (r["mean"], r["std"], r["n"], r["n_runs"]) == (100.0, 2.0, 3, 3)
    assert r["split"] == "test" and r["metric"] == "ppl" and not r["higher_is_better"]
    assert (r["k"], r["peak_lr"], r["warmup_epochs"], r["steps"]) == (1.0, 1.0, 0.05, 512)
    assert r["wall_time_s_mean"] == pytest.approx(512 * 0.01 + 1.0)
    assert (r["base_mean"], r["gap_to_base"], r["gap_to_base_pct"]) == (100.0, 0.0, 0.0)

    r = row(agg, "ptb", "sqrt_legw", 640)  # missing seed 2: values 103, 105
    assert (r["mean"], r["n"], r["n_runs"]) == (104.0, 2, 2)
    assert r["std"] == pytest.approx(math.sqrt(2.0))
    assert (r["k"], r["steps"]) == (32.0, 16)
    assert r["peak_lr"] == pytest.approx(math.sqrt(32)) and r["warmup_epochs"] == 1.6
    assert r["gap_to_base"] == 4.0 and r["gap_to_base_pct"] == pytest.approx(4.0)

    r = row(agg, "ptb", "sqrt", 320)  # seed 2 failed: values 114, 116
    assert (r["mean"], r["n"], r["n_runs"], r["n_failed"]) == (115.0, 2, 3, 1)
    assert r["std"] == pytest.approx(math.sqrt(2.0))

    r = row(agg, "ptb", "sqrt", 1280)  # seed 2 running
    assert (r["mean"], r["n"], r["n_running"], r["n_diverged"]) == (123.0, 2, 1, 0)

    r = row(agg, "ptb", "linear", 640)  # seed 1 diverged: values 148, 152
    assert (r["mean"], r["n"], r["n_diverged"]) == (150.0, 2, 1)
    assert r["std"] == pytest.approx(math.sqrt(8.0))
    assert r["gap_to_base"] == 50.0 and r["gap_to_base_pct"] == pytest.approx(50.0)

    r = row(agg, "ptb", "linear", 1280)  # every seed diverged
    assert (r["n"], r["n_runs"], r["n_diverged"]) == (0, 3, 3)
    assert np.isnan(r["mean"]) and np.isnan(r["std"]) and np.isnan(r["gap_to_base"])
    assert np.isnan(r["wall_time_s_mean"]) and r["peak_lr"] == 64.0

    r = row(agg, "ptb", "linear", 320)
    assert (r["mean"], r["std"], r["gap_to_base"]) == (140.0, 2.0, 40.0)
    assert len(agg[agg["task"] == "ptb"]) == 21


def test_aggregate_std_is_nan_for_a_single_seed(runs):
    one = runs[(runs["task"] == "ptb") & (runs["policy"] == "sqrt") & (runs["seed"] == 0)]
    a = aggregate(one)
    assert (a["n"] == 1).all() and a["std"].isna().all()
    assert row(a, "ptb", "sqrt", 40)["mean"] == 102.0
    assert row(a, "ptb", "sqrt", 40)["gap_to_base"] == 4.0


def test_headline_falls_back_to_valid_when_there_is_no_test(agg):
    r = row(agg, "mnist", "none", 800)
    assert r["split"] == "valid" and r["metric"] == "acc" and r["higher_is_better"]
    assert r["mean"] == pytest.approx(0.968) and r["std"] == pytest.approx(0.001 * math.sqrt(2))
    assert r["base_mean"] == pytest.approx(0.98) and r["gap_to_base"] == pytest.approx(-0.012)
    assert r["k"] == 8.0 and r["n"] == 2


# --------------------------------------------------------------------------- time to target


def test_default_target_and_time_to_target(runs):
    t = default_target(runs, "ptb")
    # sqrt_legw at batch 20: best valid 102, 104, 106 -> mean 104, relaxed by 1%
    assert t.value == pytest.approx(105.04) and not t.higher_is_better
    assert "sqrt_legw at batch 20" in t.description
    tta = aggregate_time_to_target(time_to_target(runs, t))
    base = row(tta, "ptb", "sqrt_legw", 20)  # seeds 0, 1 reach it at epoch 4 (step 512)
    assert (base["n_reached"], base["n_runs"], base["steps_mean"]) == (2, 3, 512.0)
    assert base["time_s_mean"] == pytest.approx(512 * 0.01 + 0.5)
    r40 = row(tta, "ptb", "sqrt_legw", 40)  # valid 103, 105 <= 105.04; 107 is not
    assert (r40["n_reached"], r40["steps_mean"], r40["speedup_steps"]) == (2, 256.0, 2.0)
    t40 = 256 * step_time(40) + 0.5
    assert r40["time_s_mean"] == pytest.approx(t40)
    assert r40["speedup_time"] == pytest.approx((512 * 0.01 + 0.5) / t40)
    assert row(tta, "ptb", "linear", 1280)["n_reached"] == 0  # diverged: never

    assert default_target(runs, "ptb", value=120.0).value == 120.0
    acc = default_target(runs, "mnist")
    assert acc.value == pytest.approx(0.98 - 0.005) and acc.higher_is_better
    assert default_target(runs, "mnist", value=97.0).value == pytest.approx(0.97)  # percent
    with pytest.raises(AnalysisError):
        default_target(runs)  # two tasks: which one?


# --------------------------------------------------------------------------- report


def test_results_table_rows(agg):
    table = report.results_table(agg, "ptb").splitlines()
    assert table[0] == "| batch | k | sqrt_legw | sqrt | linear |"
    assert table[2] == (
        "| 20 | 1 | 100.00 ± 2.00 (n=3) | 100.00 ± 2.00 (n=3) | 100.00 ± 2.00 (n=3) |"
    )
    assert table[6] == (
        "| 320 | 16 | 104.00 ± 2.00 (n=3) | 115.00 ± 1.41 (n=2); failed (1/3) | "
        "140.00 ± 2.00 (n=3) |"
    )
    assert table[7] == (
        "| 640 | 32 | 104.00 ± 1.41 (n=2) | 120.00 ± 2.00 (n=3) | "
        "150.00 ± 2.83 (n=2); diverged (1/3) |"
    )
    assert table[8] == (
        "| 1280 | 64 | 106.00 ± 2.00 (n=3) | 123.00 ± 1.41 (n=2); running (1/3) | diverged (3/3) |"
    )
    assert len(table) == 2 + 7
    mnist = report.results_table(agg, "mnist").splitlines()
    assert mnist[0] == "| batch | k | sqrt_legw | none |"
    assert mnist[5] == "| 800 | 8 | 97.70% ± 0.14 (n=2) | 96.80% ± 0.14 (n=2) |"


def test_summary_csv_round_trip(agg, tmp_path):
    path = report.write_summary_csv(agg, tmp_path / "summary.csv")
    back = report.read_summary_csv(path)
    assert list(back.columns) == list(AGG_COLUMNS)
    pd.testing.assert_series_equal(back["mean"], agg["mean"], check_names=False)
    assert back["higher_is_better"].dtype == bool
    assert report.results_table(back, "ptb") == report.results_table(agg, "ptb")


def test_report_md_content(runs, agg, tmp_path):
    ptb_runs = runs[runs["task"] == "ptb"]
    t = default_target(ptb_runs, "ptb")
    tta = aggregate_time_to_target(time_to_target(ptb_runs, t))
    path = report.write_report(
        runs, agg, tmp_path, "ptb", target=t, tta=tta, figures=[tmp_path / "ppl_vs_batch.svg"]
    )
    text = path.read_text()
    assert path.name == "report.md"
    assert text.startswith("# PTB small LSTM LM: LEGW batch-size scaling (reduced CPU scale)")
    assert "Runs: 62 (56 completed, 4 diverged, 1 failed, 1 running)" in text
    assert report.results_table(agg, "ptb") in text
    assert (
        "| linear | 320 | 16 | 16 | 16 | 8 | 0.05 | 32 | 2.3 s | 140.00 ± 2.00 (n=3) | "
        "+40.00 (+40.0%) | 3/3 |"
    ) in text
    assert (
        "| sqrt_legw | 20 | 1 | 1 | 1 | 0.5 | 0.05 | 512 | 6.1 s | 100.00 ± 2.00 (n=3) | base | 3/3 |"
        in text
    )
    assert "| linear | 1280 | 64 | 64 | 64 | 32 | 0.05 | 8 | — | diverged (3/3) | — | 0/3 |" in text
    assert "| sqrt_legw | 40 | 2/3 | 256 |" in text  # time-to-target table
    assert "![ppl_vs_batch](ppl_vs_batch.svg)" in text
    assert "loss is nan at step 3" in text and "RuntimeError: boom" in text
    assert "Zaremba et al. 2014, small: 114.5 test ppl" in text
    mnist = report.write_report(runs, agg, tmp_path / "m", "mnist").read_text()
    assert "final valid accuracy" in mnist and "no test evaluation" in mnist
    assert "| none | 800 | 8 |" in mnist and "-1.20 pt" in mnist


# --------------------------------------------------------------------------- figures


def test_metric_vs_batch_marks_diverged_and_references(agg):
    from legw_repro.analysis import plots

    fig = plots.plot_metric_vs_batch(agg, "ptb")
    ax = fig.axes[0]
    xs = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(xs) == 1 and xs[0].get_xdata()[0] == pytest.approx(1280, rel=0.1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("diverged" in label for label in labels)
    assert any("Zaremba et al. 2014, small: 114.5" in label for label in labels)
    assert not any("medium" in label for label in labels)  # only the run's model size
    assert "PTB small" in ax.get_title(loc="left") and "reduced CPU scale" in ax.get_title(
        loc="left"
    )
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(b) for b in PTB_BATCHES]
    assert ax.get_xscale() == "log"
    texts = [t.get_text() for t in ax.texts]
    assert "3/3" in texts and "1/3 diverged" in texts
    fig = plots.plot_metric_vs_batch(agg, "mnist")
    assert "accuracy (%)" in fig.axes[0].get_ylabel()
    assert fig.axes[0].get_ylim()[1] < 100.0 and fig.axes[0].get_ylim()[0] > 90.0  # percent


def test_policy_colours_are_fixed():
    from legw_repro.analysis.figure import POLICY_STYLES, policy_styles

    a = policy_styles(["linear", "zeta", "alpha"])
    b = policy_styles(["alpha", "sqrt_legw", "zeta"])
    assert a["linear"]["color"] == POLICY_STYLES["linear"][0] == b["linear"]["color"]
    assert a["alpha"] == b["alpha"] and a["zeta"] == b["zeta"]
    assert a["alpha"]["color"] != a["zeta"]["color"]
    assert a["alpha"]["color"] not in {c for c, _, _ in POLICY_STYLES.values()}


def test_reduced_label_depends_on_task_and_scale(tmp_path):
    from legw_repro.analysis.figure import scale_note
    from legw_repro.config.scales import is_reduced

    # MNIST on a CPU is the full protocol; PTB on a CPU is shrunk
    assert is_reduced("mnist", "cpu") is False and is_reduced("ptb", "cpu") is True
    assert is_reduced("ptb", "paper") is False and is_reduced("mnist", "smoke") is True
    assert is_reduced("ptb", "no-such-scale") is None
    assert scale_note("cpu", "mnist") == "" and scale_note("cpu", "ptb") == "(reduced CPU scale)"
    assert scale_note("cpu") == "(reduced CPU scale)"  # no task: the cautious label
    assert scale_note("smoke", "mnist").startswith("(smoke-test")
    # a task_scale file's scale.reduced wins over the scale's own flag
    (tmp_path / "scale").mkdir()
    (tmp_path / "task_scale").mkdir()
    (tmp_path / "scale" / "lap.yaml").write_text("name: lap\nreduced: true\n")
    assert is_reduced("x", "lap", tmp_path) is True
    (tmp_path / "task_scale" / "x_lap.yaml").write_text("scale:\n  reduced: false\n")
    assert is_reduced("x", "lap", tmp_path) is False


def test_references():
    assert [r.value for r in references_for("ptb", "ppl")] == [114.5, 82.7, 78.4]
    assert [r.value for r in references_for("ptb", "ppl", "medium")] == [82.7]
    assert references_for("ptb", "ppl", "tiny") == []
    assert references_for("mnist", "acc") == []


# --------------------------------------------------------------------------- CLI


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("legw-analyze: error: no summary.json found")
    build_mnist(tmp_path / "runs")
    assert main([str(tmp_path / "runs"), "--task", "ptb", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["legw-analyze: error: no runs of task 'ptb'; tasks found: mnist"]
    # WANDB_MODE=disabled (conftest): reading runs back from W&B is refused up front
    assert main(["--wandb", "me/legw", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "WANDB_MODE=disabled" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cli_writes_tables_report_and_figures(runs_root, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([str(runs_root), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    for task, metric in (("ptb", "ppl"), ("mnist", "acc")):
        d = out / task
        for stem in (f"{metric}_vs_batch", "curves", "lr_schedules", "time_to_target"):
            svg = d / f"{stem}.svg"
            assert "<svg" in svg.read_text()[:2000], svg
            assert not (d / f"{stem}.png").exists()  # one format
            assert f"  {svg}" in stdout
        assert (d / "summary.csv").is_file() and (d / "report.md").is_file()
        assert f"  {d / 'report.md'}" in stdout
    assert "| 1280 | 64 | 106.00 ± 2.00 (n=3) | 123.00 ± 1.41 (n=2); running (1/3) " in stdout
    back = report.read_summary_csv(out / "ptb" / "summary.csv")
    assert row(back, "ptb", "linear", 1280)["n_diverged"] == 3
    assert "![curves](curves.svg)" in (out / "ptb" / "report.md").read_text()

    # --task and --target: one task straight into --out
    one = tmp_path / "one"
    assert main([str(runs_root), "--task", "mnist", "--target", "97.5", "--out", str(one)]) == 0
    assert "valid acc ≥ 97.50%" in (one / "report.md").read_text()


# --------------------------------------------------------------------------- W&B


def test_wandb_record_and_history_mapping():
    summary = {
        "task": "ptb",
        "policy": "sqrt_legw",
        "batch_size": 320,
        "status": "completed",
        "final/test_ppl": 118.9,
        "final/valid_ppl": 123.4,
        "train/loss": 4.6,
        "_runtime": 99.0,
        "_step": 820,
    }
    config = {
        "seed": 3,
        "scale": {"name": "cpu"},
        "task": {"name": "ptb", "base_batch_size": 20, "model": {"size": "small"}},
    }
    rec = wandb_io.wandb_run_to_record(config, summary, state="finished", path="me/legw/abc")
    assert rec["test_ppl"] == 118.9 and rec["valid_ppl"] == 123.4
    assert rec["seed"] == 3 and rec["base_batch_size"] == 20 and rec["scale"] == "cpu"
    assert rec["model_size"] == "small" and rec["wall_time_s"] == 99.0
    assert rec["run_dir"] == "wandb:me/legw/abc" and "train/loss" not in rec
    crashed = wandb_io.wandb_run_to_record({"task": {"name": "ptb"}}, {}, state="crashed")
    assert crashed["status"] == "failed" and crashed["task"] == "ptb"
    df = collect.runs_from_records([rec])
    assert df["metric"].iloc[0] == "ppl" and df["metric_value"].iloc[0] == 118.9
    assert df["k"].iloc[0] == 16.0

    hist = [
        {"_step": 1, "train/lr": 0.5, "train/epoch": 0.1, "train/loss": 6.0},
        {
            "_step": 2,
            "train/lr": 1.0,
            "train/epoch": 0.2,
            "valid/ppl": 300.0,
            "valid/epoch": 0.2,
            "valid/time": 3.0,
        },
    ]
    m = wandb_io.wandb_history_to_metrics(hist)
    assert m["kind"].tolist() == ["train", "train", "eval"]
    ev = m[m["kind"] == "eval"].iloc[0]
    assert (ev["split"], ev["step"], ev["ppl"], ev["time"]) == ("valid", 2, 300.0, 3.0)


def test_collect_wandb_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(AnalysisError, match="needs the online API"):
        wandb_io.collect_wandb("me/legw")
    with pytest.raises(AnalysisError, match="ENTITY/PROJECT"):
        wandb_io.collect_wandb("legw")


@pytest.mark.slow
def test_upload_wandb_offline_writes_run_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    build_mnist(tmp_path / "runs")
    out = tmp_path / "results"
    assert main([str(tmp_path / "runs"), "--out", str(out), "--upload-wandb", "me/legw"]) == 0
    stdout = capsys.readouterr().out
    run_dirs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1, os.listdir(tmp_path)
    run_dir = run_dirs[0]
    assert f"wandb sync {run_dir}" in stdout
    assert list(run_dir.glob("run-*.wandb"))  # the offline run's data, for `wandb sync`
    # the SVG figures as HTML media (W&B's images are raster only)
    images = sorted(p.name.split("_0_")[0] for p in run_dir.rglob("media/html/**/*.html"))
    assert images == ["acc_vs_batch", "curves", "lr_schedules", "time_to_target"]
    assert list(run_dir.rglob("media/table/**/*.table.json"))


def test_saved_figures_are_byte_identical_when_regenerated(agg, tmp_path):
    """Committed figures must not churn when `make analyze-<task>` redraws them."""
    from legw_repro.analysis.figure import save_figure
    from legw_repro.analysis.plots import plot_metric_vs_batch

    a = save_figure(plot_metric_vs_batch(agg, "ptb"), tmp_path / "a", "fig")
    b = save_figure(plot_metric_vs_batch(agg, "ptb"), tmp_path / "b", "fig")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_accuracy_axis_is_log_error_when_a_policy_collapses(tmp_path):
    from legw_repro.analysis.plots import plot_metric_vs_batch
    from tests.test_variants import record

    for seed in (0, 1):
        record(tmp_path, "sqrt_legw", 128, seed, acc=0.99)
        record(tmp_path, "sqrt_legw", 6000, seed, acc=0.985)
        record(tmp_path, "linear", 6000, seed, acc=0.11)  # chance level
    ax = plot_metric_vs_batch(aggregate(collect_runs([tmp_path])), "mnist").axes[0]
    assert ax.get_yscale() == "function"
    ticks = list(ax.get_yticks())
    assert 99 in ticks and 50 in ticks  # 98.5 vs 99 and the collapse on one axis
    # without a collapse the axis stays linear
    for seed in (0, 1):
        record(tmp_path / "calm", "sqrt_legw", 128, seed, acc=0.99)
        record(tmp_path / "calm", "sqrt_legw", 6000, seed, acc=0.985)
    ax = plot_metric_vs_batch(aggregate(collect_runs([tmp_path / "calm"])), "mnist").axes[0]
    assert ax.get_yscale() == "linear"


# --------------------------------------------------------------------------- contract v2

REPO = Path(__file__).resolve().parents[1]
COMMITTED = (  # SGD with clipping (PTB), Adam without (MNIST, clipping off)
    REPO / "results/ptb/cpu/records/sqrt_legw/b1280-s0",
    REPO / "results/mnist/cpu-noclip/records/adam/b8192-s0",
)


def as_v1(src: Path, dst: Path) -> Path:
    """A committed v2 record written back as v1: no clip/model/spec, no epoch_start."""
    dst.mkdir(parents=True)
    summary = json.loads((src / "summary.json").read_text())
    v1 = {k: v for k, v in summary.items() if k not in ("clip", "model", "spec")}
    (dst / "summary.json").write_text(json.dumps(v1 | {"record_version": 1}, indent=2) + "\n")
    shutil.copyfile(src / "config.yaml", dst / "config.yaml")
    rows = [json.loads(x) for x in (src / "metrics.jsonl").read_text().splitlines()]
    for r in (r for r in rows if r["kind"] == "train"):
        del r["epoch_start"]
    (dst / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def test_the_analysis_refuses_a_v1_record(tmp_path, capsys):
    as_v1(COMMITTED[0], tmp_path / "runs" / "old")
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 run record(s) of contract v1" in err[0]
    assert "reads v2 only" in err[0]
    assert not (tmp_path / "out").exists()


def test_clip_and_model_size_come_from_summary_json_alone(runs):
    run_dir = Path(runs["run_dir"].iloc[0])
    assert not (run_dir / "config.yaml").exists()  # the synthetic records have none
    ptb = runs[runs["task"] == "ptb"]
    assert set(ptb["model_size"]) == {"small"} and set(ptb["clip"]) == {0.25}
    assert set(runs.loc[runs["task"] == "mnist", "model_size"].isna()) == {True}


def _visible_tick_labels(ax, fig) -> list[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    lo, hi = sorted(ax.get_ylim())
    ticks = [
        (t, lab.get_text()) for t, lab in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    ]
    return [text for t, text in ticks if lo <= t <= hi and text]


@pytest.mark.parametrize("task", ["ptb", "gnmt"])
def test_time_to_target_wall_time_axis_has_tick_labels(task):
    # the committed runs: one seed reaches the target at the base batch only, a single value
    # whose narrow log range held no round tick, so the axis had no labels at all
    from legw_repro.analysis.history import load_all_metrics
    from legw_repro.analysis.plots import plot_time_to_target

    runs = collect_runs([REPO / "results" / task / "cpu" / "records"])
    target = default_target(runs, task)
    tta = aggregate_time_to_target(time_to_target(runs, target, load_all_metrics(runs)))
    fig = plot_time_to_target(runs, tta, target, task)
    steps, wall, _ = fig.axes[:3]
    assert "wall time" in wall.get_ylabel()
    for ax in (steps, wall):
        assert len(_visible_tick_labels(ax, fig)) >= 2, ax.get_ylabel()


def test_a_log_axis_over_one_value_gets_round_ticks():
    from matplotlib.figure import Figure

    from legw_repro.analysis.axes import nice_log_ticks, set_ylim

    fig = Figure()
    ax = fig.subplots()
    set_ylim(ax, [8.23, 8.23], log=True)
    assert len(_visible_tick_labels(ax, fig)) >= 2
    assert len(nice_log_ticks(1.01, 1.02)) == 2  # no round number inside: the ends


def test_cli_default_output_is_reproduced_not_the_committed_results(tmp_path, monkeypatch):
    build_mnist(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    assert main([str(tmp_path / "runs"), "--task", "mnist"]) == 0
    assert (tmp_path / "reproduced/cpu/mnist/report.md").is_file()
    assert not (tmp_path / "results").exists()


def _with_spec(run: Path, **spec) -> None:
    s = json.loads((run / "summary.json").read_text())
    s["spec"] = {"task": s["task"], "seed": s["seed"], "epochs": 5, "device": "cpu"} | spec
    (run / "summary.json").write_text(json.dumps(s))


def test_runs_of_other_recipes_are_not_pooled_as_seeds(tmp_path):
    """Three seed-0 runs with other epochs and rates came out as `48.93% ± 10.18 (n=3)`, exit 0:
    a group whose runs differ in more than the seed is refused, naming the runs and the keys."""
    finals = {5: (100.0, 99.0)}
    common = dict(policy="sqrt_legw", batch=40, base=20, finals=finals)
    a = write_run(tmp_path / "a", seed=0, **common)
    b = write_run(tmp_path / "b", seed=1, **common)
    # neither the device nor a key the older record lacks (lr_multiplier) is a difference
    _with_spec(a, optimizer={"base_lr": 1.0}, device="cuda", lr_multiplier=1.0)
    _with_spec(b, optimizer={"base_lr": 1.0})
    assert aggregate(collect_runs([tmp_path]))["n_runs"].tolist() == [2]  # seeds of one recipe
    c = write_run(tmp_path / "c", seed=0, **common)
    _with_spec(c, optimizer={"base_lr": 3.0}, epochs=2)
    with pytest.raises(AnalysisError) as e:
        aggregate(collect_runs([tmp_path]))
    msg = str(e.value)
    assert "\n" not in msg and str(c) in msg and "not only in the seed" in msg
    assert "epochs: 5 vs 2" in msg and "optimizer.base_lr: 1.0 vs 3.0" in msg
