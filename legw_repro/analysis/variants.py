"""Diagnostic variants next to the main grid: the same policies at the largest batch with a
longer epoch budget, or with gradient clipping off.

A policy that loses accuracy at 64x can fail for three different reasons, and the main grid
alone cannot tell them apart: the rule itself is wrong (more steps do not help), the budget
leaves too few optimizer steps (a longer budget closes the gap, and so does the main grid's
smaller batch with about as many steps), or the step is unstable (the run diverges, or does so
once clipping is off). This module lines the settings up in one table and one figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.axes import edge_cross, set_error_ylim, wants_error_axis
from legw_repro.analysis.figure import new_figure, save_figure, task_title
from legw_repro.analysis.frames import is_missing, ordered_policies
from legw_repro.analysis.metrics import metric_info
from legw_repro.analysis.report import format_cell, md_table

MAIN = "main"


def _setting(agg: pd.DataFrame, runs: pd.DataFrame, name: str) -> pd.DataFrame:
    agg = agg.copy()
    agg.insert(0, "setting", name)
    epochs, clips = [], []
    for _, row in agg.iterrows():
        g = runs[(runs["policy"] == row["policy"]) & (runs["batch_size"] == row["batch_size"])]
        epochs.append(pd.to_numeric(g["epochs"], errors="coerce").max())
        clip = {0.0 if is_missing(c) else float(c) for c in g["clip"]}  # None: no clipping
        clips.append(", ".join(f"{c:g}" if c else "off" for c in sorted(clip)))
    agg["epochs"] = epochs
    agg["clip"] = clips
    return agg


def compare_variants(
    main_runs: pd.DataFrame, variants: Mapping[str, pd.DataFrame], task: str
) -> pd.DataFrame:
    """One row per (setting, policy): the main grid at the variants' batch sizes, each variant,
    and -- for a variant whose step count differs from the main grid's -- the main grid at the
    batch size with the closest number of optimizer steps ('main, same steps'), which separates
    "too few steps" from "too large a batch"."""
    main = main_runs[main_runs["task"] == task]
    main_agg = aggregate(main)
    pieces = []
    batches: set[int] = set()
    control_steps: set[float] = set()
    for name, runs in variants.items():
        r = runs[runs["task"] == task]
        if r.empty:
            continue
        agg = aggregate(r)
        batches |= set(agg["batch_size"].astype(int))
        pieces.append(_setting(agg, r, name))
        for b, steps in agg.groupby("batch_size")["steps"].first().items():
            main_steps = main_agg.loc[main_agg["batch_size"] == b, "steps"].dropna()
            if len(main_steps) and np.isfinite(steps) and steps != main_steps.iloc[0]:
                control_steps.add(float(steps))
    if not pieces:
        return pd.DataFrame()
    rows = [_setting(main_agg[main_agg["batch_size"].isin(batches)], main, MAIN)]
    by_batch = main_agg.groupby("batch_size")["steps"].first().dropna()
    for steps in sorted(control_steps):
        b = int((by_batch - steps).abs().idxmin())
        if b not in batches:
            rows.append(
                _setting(main_agg[main_agg["batch_size"] == b], main, f"{MAIN}, same steps")
            )
    return pd.concat(rows + pieces, ignore_index=True)


def variants_table(cmp: pd.DataFrame) -> str:
    """Markdown: a row per setting, a column per policy."""
    policies = ordered_policies(cmp["policy"])
    header = ["setting", "batch", "epochs", "steps", "clip", *policies]
    lines = []
    for (setting, batch), g in cmp.groupby(["setting", "batch_size"], sort=False):
        first = g.iloc[0]
        cells = {p: format_cell(r) for p, r in zip(g["policy"], g.to_dict("records"), strict=True)}
        lines.append(
            [
                str(setting),
                str(int(batch)),
                f"{first['epochs']:g}",
                f"{first['steps']:g}" if pd.notna(first["steps"]) else "—",
                str(first["clip"]),
                *(cells.get(p, "—") for p in policies),
            ]
        )
    return md_table(header, lines, align="-rrr-" + "-" * len(policies))


def plot_variants(cmp: pd.DataFrame, task: str) -> Figure:
    """Headline metric per policy (x) and series (marker/colour), mean ± std over seeds; a
    series is one setting at one batch size (a variant may span several, as the hand-over
    grids do); a series where every seed diverged is an 'x' at the bottom edge."""
    policies = ordered_policies(cmp["policy"])
    series = list(dict.fromkeys(zip(cmp["setting"], cmp["batch_size"], strict=True)))
    metric = metric_info(cmp["metric"].dropna().iloc[0])
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#ff7f0e"]
    colors += ["#17becf", "#bcbd22", "#7f7f7f"]
    markers = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]
    fig, ax = new_figure((10, 5.8 + 0.12 * max(len(series) - 4, 0)))
    width = 0.7 / max(len(series), 1)
    for j, (s, batch) in enumerate(series):
        d = cmp[(cmp["setting"] == s) & (cmp["batch_size"] == batch)].set_index("policy")
        xs = np.arange(len(policies)) + (j - (len(series) - 1) / 2) * width
        color, marker = colors[j % len(colors)], markers[j % len(markers)]
        for x, p in zip(xs, policies, strict=True):
            if p not in d.index:
                continue
            row = d.loc[p]
            y = metric.display([row["mean"]])[0]
            if np.isfinite(y):
                e = metric.display([row["std"] if pd.notna(row["std"]) else 0.0])[0]
                ax.errorbar([x], [y], yerr=[e], color=color, marker=marker, capsize=3)
            elif row["n_diverged"]:
                edge_cross(ax, x, 0.04, color)
        first = d.iloc[0]
        label = (
            f"{s}: batch {int(batch)}, {first['epochs']:g} epochs, "
            f"{first['steps']:g} steps, clip {first['clip']}"
        )
        ax.plot([], [], color=color, marker=marker, ls="none", label=label)
    ax.set_xticks(range(len(policies)), policies)
    ax.set_ylabel(f"final {cmp['split'].dropna().iloc[0]} {metric.label}")
    ax.set_title(f"{task_title(task)}: budget and clipping diagnostics (x = all seeds diverged)")
    ax.grid(True, axis="y", alpha=0.3)
    ys = metric.display(cmp["mean"].to_numpy(float))
    if wants_error_axis(metric, ys):
        set_error_ylim(ax, ys, room_bottom=0.12)  # log-error axis, as in acc_vs_batch
    else:
        ax.margins(y=0.1)  # room for the 'x' marks below the lowest point
    for x in np.arange(len(policies) - 1) + 0.5:
        ax.axvline(x, color="#cccccc", lw=0.8)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, frameon=False)
    return fig


def write_variants(
    main_runs: pd.DataFrame,
    variants: Mapping[str, pd.DataFrame],
    out_dir: str | os.PathLike[str],
    task: str,
) -> tuple[str, list[Path]]:
    """The report section (Markdown) and the figure files for the variants."""
    cmp = compare_variants(main_runs, variants, task)
    if cmp.empty:
        return "", []
    cmp.to_csv(Path(out_dir) / "variants.csv", index=False)
    paths = [Path(out_dir) / "variants.csv"]
    paths += save_figure(plot_variants(cmp, task), out_dir, "variants")
    section = "\n".join(
        [
            "## Diagnostics: longer budget, no clipping",
            "",
            "The same policies at the largest batch with another epoch budget or without gradient "
            "clipping. If a longer budget closes the gap (as does the main grid at the batch with "
            "about as many steps, 'main, same steps'), the loss was too few steps; if turning "
            "clipping off makes runs diverge, the step is unstable; if neither changes the "
            "ranking, the policy itself fails.",
            "",
            variants_table(cmp),
            "",
            "![variants](variants.png)",
            "",
        ]
    )
    return section, paths
