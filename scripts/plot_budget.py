#!/usr/bin/env python
"""Is it the batch or the steps? The headline metric of the same policies at two epoch budgets,
drawn against the batch size and against the optimizer steps each run takes.

The figure of results/mnist/cpu-budget40/README.md ("When does LEGW hold?"): MNIST under the `shifted` hand-over at the
10-epoch budget (results/mnist/cpu-shifted) and at an equal 40 epochs for every batch size
(results/mnist/cpu-budget40). If a policy's loss at a large batch is a matter of too few steps, its
points at the two budgets fall on one curve in the right panel (same steps, same accuracy,
whatever the batch); if the batch itself costs accuracy, the 40-epoch points lie below the
10-epoch points of the smaller batch with as many steps. The grey band is the base batch's seed
spread (mean +- 2 std over its seeds, from --band), the yardstick "holds accuracy" is read against.

    python scripts/plot_budget.py     # writes results/mnist/cpu-budget40/budget.{png,svg,md}
    python scripts/plot_budget.py --setting 10=DIR --setting 40=DIR --out DIR --task mnist
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.axes import set_error_ylim, wants_error_axis
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.figure import policy_styles, save_figure, task_title
from legw_repro.analysis.frames import ordered_policies
from legw_repro.analysis.metrics import metric_info
from legw_repro.analysis.report import format_cell, md_table

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "10 epochs": REPO / "results/mnist/cpu-shifted/records",
    "40 epochs": REPO / "results/mnist/cpu-budget40/records",
}
POLICIES = ("sqrt_legw", "sqrt", "linear")
LINESTYLES = ("-", "--", ":", "-.")


def budget_table(
    settings: Mapping[str, Path], task: str, policies: tuple[str, ...] = POLICIES
) -> pd.DataFrame:
    """One row per (setting, policy, batch size): seeds pooled (mean, std, n, steps), with
    the setting's label and its epoch budget."""
    pieces = []
    for label, records in settings.items():
        runs = collect_runs([records])
        runs = runs[(runs["task"] == task) & runs["policy"].isin(policies)]
        agg = aggregate(runs)
        agg.insert(0, "setting", label)
        agg.insert(1, "epochs", pd.to_numeric(runs["epochs"], errors="coerce").max())
        pieces.append(agg)
    return pd.concat(pieces, ignore_index=True)


def base_band(records: Path, task: str, policy: str = "sqrt_legw") -> tuple[float, float, int]:
    """The base batch's mean, std (ddof 1) and seed count for ``policy`` in ``records``."""
    agg = aggregate(collect_runs([records]))
    row = agg[(agg["task"] == task) & (agg["policy"] == policy)]
    row = row[row["batch_size"] == row["base_batch_size"]].iloc[0]
    return float(row["mean"]), float(row["std"]), int(row["n"])


def plot_budget(table: pd.DataFrame, band: tuple[float, float, int] | None, task: str) -> Figure:
    """Left: metric vs batch size; right: metric vs optimizer steps; one line per (policy,
    budget), the budget told by the line style."""
    metric = metric_info(table["metric"].dropna().iloc[0])
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax_b, ax_s = fig.subplots(1, 2)
    styles = policy_styles(table["policy"])
    settings = list(dict.fromkeys(table["setting"]))
    for (policy, setting), g in table.groupby(["policy", "setting"], sort=False):
        g = g.sort_values("batch_size")
        ls = LINESTYLES[settings.index(setting) % len(LINESTYLES)]
        y = metric.display(g["mean"])
        e = metric.display(g["std"].fillna(0.0))
        kw = dict(color=styles[policy]["color"], marker=styles[policy]["marker"], ls=ls, capsize=3)
        ax_b.errorbar(g["batch_size"], y, yerr=e, label=f"{policy}, {setting}", **kw)
        ax_s.errorbar(g["steps"], y, yerr=e, **kw)
    for ax, xlabel in ((ax_b, "batch size"), (ax_s, "optimizer steps in the run")):
        ax.set_xscale("log", base=2 if ax is ax_b else 10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"final {table['split'].dropna().iloc[0]} {metric.label}")
        ax.grid(True, alpha=0.3)
        if band is not None:
            mean, std, n = band
            lo, hi = metric.display([mean - 2 * std, mean + 2 * std])
            ax.axhspan(lo, hi, color="#bbbbbb", alpha=0.35, label=f"base batch ± 2 std ({n} seeds)")
    ys = metric.display(table["mean"].dropna())
    for ax in (ax_b, ax_s):
        if wants_error_axis(metric, ys):
            set_error_ylim(ax, ys)  # log of the error: 98.4 vs 98.9 stays visible next to 91
        else:
            ax.margins(y=0.08)
    ax_b.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{task_title(task)}: equal epoch budgets, against batch and against steps")
    return fig


def budget_markdown(table: pd.DataFrame) -> str:
    """A row per (setting, batch), a column per policy, with the run's step count."""
    policies = ordered_policies(table["policy"])
    lines = []
    for (setting, batch), g in table.groupby(["setting", "batch_size"], sort=False):
        cells = {p: format_cell(r) for p, r in zip(g["policy"], g.to_dict("records"), strict=True)}
        steps = g["steps"].dropna()
        lines.append(
            [str(setting), str(int(batch)), f"{steps.iloc[0]:g}" if len(steps) else "—"]
            + [cells.get(p, "—") for p in policies]
        )
    return md_table(
        ["setting", "batch", "steps", *policies], lines, align="-rr" + "-" * len(policies)
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--setting",
        action="append",
        help="LABEL=RECORDS_DIR (repeatable; default: MNIST shifted at 10 and 40 epochs)",
    )
    ap.add_argument("--band", type=Path, default=REPO / "results/mnist/cpu/records")
    ap.add_argument("--out", type=Path, default=REPO / "results/mnist/cpu-budget40")
    ap.add_argument("--task", default="mnist")
    args = ap.parse_args(argv)
    settings = dict(s.split("=", 1) for s in args.setting) if args.setting else SETTINGS
    settings = {k: Path(v) for k, v in settings.items()}
    for label, path in settings.items():
        if not path.is_dir():
            ap.error(f"--setting {label}={path}: no such records directory")
    table = budget_table(settings, args.task)
    band = base_band(args.band, args.task) if args.band and args.band.is_dir() else None
    args.out.mkdir(parents=True, exist_ok=True)
    md = budget_markdown(table)
    (args.out / "budget.md").write_text(md + "\n")
    print(md)
    for path in save_figure(plot_budget(table, band, args.task), args.out, "budget"):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
