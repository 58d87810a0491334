"""The tuned-LR oracle beside the untuned policies: the price of not tuning, and the LR it found.

``tuned`` runs (scripts/oracle.py) use sqrt-LEGW's warmup with the peak LR chosen per batch size
on validation. Two views: a table per batch size of sqrt_legw's mean, the oracle's, the gap
"sqrt_legw minus tuned" (what skipping the tuning costs; its sign says which is better through
the metric's direction) and the winning multiplier; and a log-log figure of the tuned peak LR
against the batch size beside the sqrt and linear rules, with the fitted exponent -- the
suite's own measurement of how the best LR scales.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from legw_repro.analysis.axes import batch_axis
from legw_repro.analysis.figure import new_figure, style
from legw_repro.analysis.frames import first, is_missing
from legw_repro.analysis.metrics import metric_info

TUNED, UNTUNED = "tuned", "sqrt_legw"


def oracle_gaps(agg: pd.DataFrame) -> pd.DataFrame:
    """Per batch size where both exist: ``untuned``, ``tuned`` (means over seeds), ``gap`` =
    untuned - tuned, ``lr_multiplier`` and ``peak_lr`` of the winner. Empty without tuned runs."""
    cols = ["batch_size", "untuned", "tuned", "gap", "lr_multiplier", "peak_lr"]
    t = agg[agg["policy"] == TUNED].set_index("batch_size")
    u = agg[agg["policy"] == UNTUNED].set_index("batch_size")
    batches = sorted(set(t.index) & set(u.index))
    rows = [
        {
            "batch_size": int(b),
            "untuned": u.at[b, "mean"],
            "tuned": t.at[b, "mean"],
            "gap": u.at[b, "mean"] - t.at[b, "mean"],
            "lr_multiplier": t.at[b, "lr_multiplier"],
            "peak_lr": t.at[b, "peak_lr"],
        }
        for b in batches
    ]
    return pd.DataFrame(rows, columns=cols)


def scaling_exponent(agg: pd.DataFrame) -> float:
    """Least-squares slope of log(tuned peak LR) on log(k): 0.5 is sqrt, 1 is linear scaling."""
    t = agg[(agg["policy"] == TUNED) & agg["peak_lr"].notna() & agg["k"].notna()]
    if t["k"].nunique() < 2:
        return math.nan
    return float(np.polyfit(np.log(t["k"].astype(float)), np.log(t["peak_lr"].astype(float)), 1)[0])


def oracle_section(agg: pd.DataFrame) -> str:
    """Markdown for the report ("" without tuned runs)."""
    gaps = oracle_gaps(agg)
    if gaps.empty:
        return ""
    m = metric_info(first(agg, "metric"))
    sign = "negative" if m.higher_is_better else "positive"
    lines = [
        "## The price of not tuning: sqrt_legw vs the tuned-LR oracle",
        "",
        "`tuned` = sqrt-LEGW's warmup with the peak LR chosen per batch size from the grid "
        "sqrt-LEGW LR x 2^-2..2^2 (widened at an edge) on the validation metric only, then run "
        f"at every seed (scripts/oracle.py). Gap = sqrt_legw - tuned; {sign} = tuning helps.",
        "",
        "| batch | sqrt_legw | tuned | gap | best LR multiplier | tuned peak LR |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for _, r in gaps.iterrows():
        mult = "—" if is_missing(r["lr_multiplier"]) else f"x{float(r['lr_multiplier']):g}"
        gap = "—" if is_missing(r["gap"]) else f"{m.display(r['gap']):+.2f}"
        lines.append(
            f"| {int(r['batch_size'])} | {m.format(r['untuned'])} | {m.format(r['tuned'])} | {gap} "
            f"| {mult} | {float(r['peak_lr']):.3g} |"
        )
    exponent = scaling_exponent(agg)
    if math.isfinite(exponent):
        lines += ["", f"Fitted scaling of the tuned peak LR: LR ∝ k^{exponent:.2f} (sqrt: 0.5)."]
    return "\n".join(lines) + "\n"


def plot_tuned_lr(agg: pd.DataFrame, styles=None) -> Figure:
    """Tuned peak LR vs batch size on log-log axes, with the sqrt and linear rules through the
    base batch's tuned LR: where the tuned points fall shows the exponent the data prefer."""
    t = agg[agg["policy"] == TUNED].sort_values("batch_size")
    fig, ax = new_figure((7.5, 5))
    b, lr = t["batch_size"].astype(float).to_numpy(), t["peak_lr"].astype(float).to_numpy()
    base_b = float(first(t, "base_batch_size") or b[0])
    anchor = lr[np.argmin(np.abs(b - base_b))] / math.sqrt(
        b[np.argmin(np.abs(b - base_b))] / base_b
    )
    k = b / base_b
    ax.plot(b, anchor * np.sqrt(k), color="#ff7f0e", ls="--", lw=1.4, label="sqrt rule: √k")
    ax.plot(b, anchor * k, color="#2ca02c", ls=":", lw=1.4, label="linear rule: k")
    st = style(styles, TUNED)
    exponent = scaling_exponent(agg)
    ax.plot(
        b,
        lr,
        marker=st["marker"],
        color=st["color"],
        lw=1.9,
        ms=7,
        label=f"tuned (best on validation), fit k^{exponent:.2f}",
    )
    ax.set_yscale("log", base=2)
    batch_axis(ax, [int(x) for x in b])
    ax.set_ylabel("peak learning rate")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, frameon=False)
    task = first(t, "task") or ""
    ax.set_title(f"{task}: the peak LR per-batch tuning chooses", fontsize=12, loc="left")
    return fig
