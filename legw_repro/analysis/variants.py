"""Diagnostic variants next to the main grid: the same policies at the largest batch with a
longer epoch budget, or with gradient clipping off.

A policy that loses accuracy at 64x can fail for three different reasons, and the main grid
alone cannot tell them apart: the rule itself is wrong (more steps do not help), the budget
leaves too few optimizer steps (a longer budget closes the gap, and so does the main grid's
smaller batch with about as many steps), or the step is unstable (the run diverges, or does so
once clipping is off). This module lines the settings up in one table and one figure (a panel
a variant: legw_repro/analysis/variants_plot.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.figure import save_figure
from legw_repro.analysis.frames import is_missing, ordered_policies
from legw_repro.analysis.report import format_cell, md_table
from legw_repro.analysis.variants_plot import MAIN, SAME_STEPS, plot_variants

__all__ = ["compare_variants", "plot_variants", "variants_table", "write_variants"]


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
            rows.append(_setting(main_agg[main_agg["batch_size"] == b], main, SAME_STEPS))
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
            "ranking, the policy itself fails. A variant over several batch sizes (another "
            "hand-over or budget) is set beside the main grid at each of them.",
            "",
            variants_table(cmp),
            "",
            "![variants](variants.svg)",
            "",
        ]
    )
    return section, paths
