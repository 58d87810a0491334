"""The oracle's view in the analysis: the gap column, the exponent fit, the figure, the report."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from legw_repro.analysis.oracle_view import (
    oracle_gaps,
    oracle_section,
    plot_tuned_lr,
    scaling_exponent,
)


def agg_rows(metric="acc", hib=True):
    rows = []
    for k, legw, tuned, mult in [
        (1, 0.99, 0.99, 1.0),
        (8, 0.98, 0.985, 2.0),
        (64, 0.91, 0.97, 4.0),
    ]:
        base = {
            "task": "mnist",
            "metric": metric,
            "higher_is_better": hib,
            "batch_size": 128 * k,
            "base_batch_size": 128,
            "k": float(k),
        }
        rows.append(
            {
                **base,
                "policy": "sqrt_legw",
                "mean": legw,
                "peak_lr": 0.1 * math.sqrt(k),
                "lr_multiplier": 1.0,
            }
        )
        rows.append(
            {
                **base,
                "policy": "tuned",
                "mean": tuned,
                "peak_lr": 0.1 * math.sqrt(k) * mult,
                "lr_multiplier": mult,
            }
        )
        rows.append(
            {
                **base,
                "policy": "sqrt",
                "mean": legw + 0.001,
                "peak_lr": 0.1 * math.sqrt(k),
                "lr_multiplier": 1.0,
            }
        )
    return pd.DataFrame(rows)


def test_gap_is_untuned_minus_tuned_per_batch():
    gaps = oracle_gaps(agg_rows())
    assert list(gaps["batch_size"]) == [128, 1024, 8192]
    assert gaps["gap"].tolist() == pytest.approx([0.0, -0.005, -0.06])
    assert gaps["lr_multiplier"].tolist() == [1.0, 2.0, 4.0]


def test_no_tuned_runs_no_section_no_figure_rows():
    agg = agg_rows()
    agg = agg[agg["policy"] != "tuned"]
    assert oracle_gaps(agg).empty
    assert oracle_section(agg) == ""


def test_exponent_fit_recovers_the_scaling():
    agg = agg_rows()
    # tuned peak = 0.1 * sqrt(k) * mult with mult = 1, 2, 4 at k = 1, 8, 64: k^(0.5 + 1/3)
    assert scaling_exponent(agg) == pytest.approx(0.5 + 1 / 3, rel=1e-6)


def test_section_and_figure():
    text = oracle_section(agg_rows())
    assert "| 8192 | 91.00% | 97.00% | -6.00 | x4 |" in text
    assert "negative = tuning helps" in text
    assert "k^0.83" in text
    ppl = oracle_section(agg_rows(metric="ppl", hib=False))
    assert "positive = tuning helps" in ppl
    fig = plot_tuned_lr(agg_rows())
    (ax,) = fig.axes
    assert ax.get_yscale() == "log" and len(ax.lines) == 3
    assert "fit k^0.83" in ax.get_legend_handles_labels()[1][2]
