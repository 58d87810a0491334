"""The variants figure: one panel per diagnostic variant, each readable on its own.

All the variants in one axes made 30+ series whose colours and markers repeated (the hand-over
grids span every batch size), so each variant gets its own panel, at most eight series, no
colour/marker pair twice in a panel:

* a variant at one batch size (a longer budget, clipping off) is drawn against the policies,
  beside the main grid at that batch and the main grid at the batch with about as many steps
  ('main, same steps'), as the table lists them;
* a variant over several batch sizes (another hand-over, another budget) is drawn against the
  batch size, one policy per colour: the variant solid with the policy's marker, the main grid
  dashed with a level mark ('_'); more than four policies go to a second panel.

The y axis is the same in every panel (log of the error for an accuracy next to a collapse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from legw_repro.analysis.axes import batch_axis, dodge, edge_cross, metric_ylim
from legw_repro.analysis.figure import grid, policy_styles, suptitle, task_title
from legw_repro.analysis.frames import ordered_policies
from legw_repro.analysis.metrics import Metric, metric_info

MAIN = "main"
SAME_STEPS = f"{MAIN}, same steps"
MAX_POLICIES = 4  # a batch-size panel draws two series a policy: at most eight
# the one-batch panels: main grid, main grid with the same steps, the variant
SETTING_STYLES = (("#1f77b4", "o"), ("#d62728", "s"), ("#2ca02c", "^"))


@dataclass(frozen=True)
class Panel:
    """One variant (``policies``: the ones this panel draws), and the rows to compare it with."""

    variant: str
    policies: tuple[str, ...]
    rows: pd.DataFrame  # the variant's aggregate rows
    main: pd.DataFrame  # the main grid's rows at the variant's batch sizes
    control: pd.DataFrame  # the main grid at the batch with the same steps (one-batch panels)


def _steps(rows: pd.DataFrame) -> dict[int, float]:
    return rows.groupby("batch_size")["steps"].first().dropna().astype(float).to_dict()


def _control(cmp: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The main grid at the batch whose steps are closest to a one-batch variant's, when the
    variant's steps differ from the main grid's at its own batch."""
    main = cmp[cmp["setting"].isin([MAIN, SAME_STEPS])].drop_duplicates(["batch_size", "policy"])
    [(batch, steps)] = _steps(rows).items() or [(None, np.nan)]
    by_batch = pd.Series(_steps(main))
    if batch is None or by_batch.empty or by_batch.get(batch) == steps or not np.isfinite(steps):
        return main.iloc[:0]
    closest = int((by_batch - steps).abs().idxmin())
    return main[main["batch_size"] == closest] if closest != batch else main.iloc[:0]


def panels(cmp: pd.DataFrame) -> list[Panel]:
    """The panels of :func:`plot_variants`: the one-batch diagnostics first, then the variants
    over several batch sizes, each in the table's order."""
    out = []
    main = cmp[cmp["setting"] == MAIN]
    for variant in dict.fromkeys(cmp["setting"]):
        if variant in (MAIN, SAME_STEPS):
            continue
        rows = cmp[cmp["setting"] == variant]
        at = main[main["batch_size"].isin(rows["batch_size"])]
        one = rows["batch_size"].nunique() == 1
        control = _control(cmp, rows) if one else main.iloc[:0]
        policies = ordered_policies(rows["policy"])
        step = len(policies) if one else MAX_POLICIES
        for i in range(0, len(policies), step):
            out.append(Panel(variant, tuple(policies[i : i + step]), rows, at, control))
    return sorted(out, key=lambda p: p.rows["batch_size"].nunique() > 1)


def _values(rows: pd.DataFrame, metric: Metric) -> list[float]:
    mean = metric.display(rows["mean"].to_numpy(float))
    std = metric.display(rows["std"].fillna(0.0).to_numpy(float))
    return [v for v in (*(mean - std), *(mean + std)) if np.isfinite(v)]


def _setting_label(name: str, rows: pd.DataFrame) -> str:
    r = rows.iloc[0]
    steps = f"{r['steps']:g}" if pd.notna(r["steps"]) else "?"
    return (
        f"{name}: batch {int(r['batch_size'])}, {r['epochs']:g} epochs, {steps} steps, "
        f"clip {r['clip']}"
    )


def _by_policy(ax: Axes, p: Panel, metric: Metric) -> None:
    """A one-batch variant: x = policy, a series per setting (main, same steps, variant)."""
    settings = [(MAIN, p.main), (SAME_STEPS, p.control), (p.variant, p.rows)]
    settings = [(name, rows) for name, rows in settings if not rows.empty]
    width = 0.6 / len(settings)
    for j, (name, rows) in enumerate(settings):
        color, marker = SETTING_STYLES[
            [MAIN, SAME_STEPS].index(name) if name in (MAIN, SAME_STEPS) else 2
        ]
        d = rows.set_index("policy")
        for i, pol in enumerate(p.policies):
            if pol not in d.index:
                continue
            x, row = i + (j - (len(settings) - 1) / 2) * width, d.loc[pol]
            y = metric.display([row["mean"]])[0]
            if np.isfinite(y):
                e = metric.display([row["std"] if pd.notna(row["std"]) else 0.0])[0]
                ax.errorbar([x], [y], yerr=[e], color=color, marker=marker, capsize=3)
            elif row["n_diverged"]:
                edge_cross(ax, x, 0.04, color)
        ax.plot([], [], color=color, marker=marker, ls="none", label=_setting_label(name, rows))
    ax.set_xticks(range(len(p.policies)), p.policies)
    ax.set_xlim(-0.5, len(p.policies) - 0.5)
    for x in np.arange(len(p.policies) - 1) + 0.5:
        ax.axvline(x, color="#cccccc", lw=0.8)
    ax.set_title(f"{p.variant}: batch {int(p.rows['batch_size'].iloc[0])}", fontsize=10)


def _by_batch(ax: Axes, p: Panel, metric: Metric) -> None:
    """A variant over several batch sizes: x = batch, per policy the variant (solid, markers)
    and the main grid (dashed)."""
    styles = policy_styles(p.policies)
    for i, pol in enumerate(p.policies):
        st = styles[pol]
        v = p.rows[p.rows["policy"] == pol].sort_values("batch_size")
        x = v["batch_size"].to_numpy(float) * dodge(i, len(p.policies))
        y = metric.display(v["mean"].to_numpy(float))
        e = metric.display(v["std"].fillna(0.0).to_numpy(float))
        ok = np.isfinite(y)
        label = f"{pol}: {p.variant}"
        ax.errorbar(
            x[ok],
            y[ok],
            yerr=e[ok],
            color=st["color"],
            marker=st["marker"],
            ms=5.5,
            lw=1.6,
            capsize=3,
            label=label,
        )
        for xi in x[~ok & (v["n_diverged"].to_numpy() > 0)]:
            edge_cross(ax, xi, 0.04, st["color"])
        m = p.main[p.main["policy"] == pol].sort_values("batch_size")
        if len(m):
            ym = metric.display(m["mean"].to_numpy(float))
            # a level mark, so that a lone point (the others diverged) still shows
            line = {"ls": "--", "lw": 1.2, "marker": "_", "ms": 10, "mew": 1.5, "alpha": 0.8}
            xm = m["batch_size"].to_numpy(float) * dodge(i, len(p.policies))
            ax.plot(xm, ym, color=st["color"], label=f"{pol}: {MAIN} grid", **line)
    batch_axis(ax, p.rows["batch_size"].astype(int))
    r = p.rows.iloc[0]
    part = ", ".join(p.policies)
    ax.set_title(f"{p.variant}: {r['epochs']:g} epochs, clip {r['clip']} ({part})", fontsize=10)


def _legend_handle(handle: Any) -> Any:
    """The main grid's line as a plain dashed line in the legend (its level marks would hide
    the dashes)."""
    if isinstance(handle, Line2D) and handle.get_marker() == "_":
        return Line2D([], [], color=handle.get_color(), ls="--", lw=1.2)
    return handle


def plot_variants(cmp: pd.DataFrame, task: str) -> Figure:
    """Each variant's panel (see the module docstring): mean ± std over seeds, an 'x' at the
    bottom edge where every seed diverged."""
    metric = metric_info(cmp["metric"].dropna().iloc[0])
    ps = panels(cmp)
    fig, axes = grid(len(ps), max_cols=2, panel=(7.2, 4.6), extra=0)
    ys = _values(cmp, metric)
    split = cmp["split"].dropna().iloc[0]
    for ax, p in zip(axes, ps, strict=False):
        one = p.rows["batch_size"].nunique() == 1
        (_by_policy if one else _by_batch)(ax, p, metric)
        metric_ylim(ax, metric, ys, room_top=0.06, room_bottom=0.14)
        ax.set_ylabel(f"final {split} {metric.label}", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ncol = 1 if one else 2
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(
            [_legend_handle(h) for h in handles],
            labels,
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.1),
            ncol=ncol,
            frameon=False,
            handlelength=3,
        )
    for ax in axes[len(ps) :]:
        ax.set_axis_off()
    suptitle(
        fig,
        f"{task_title(task)}: the diagnostic variants beside the main grid "
        "(mean ± std over seeds; x = all seeds diverged)",
    )
    return fig
