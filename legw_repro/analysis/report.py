"""Tables and the Markdown report: ``summary.csv`` and ``report.md`` for one task.

* :func:`results_table` -- headline metric ``mean ± std (n=N)`` per batch size (rows) x policy
  (columns); a configuration whose seeds diverged says ``diverged (d/N)``;
* :func:`details_table` -- per (policy, batch size): k, peak LR, warmup epochs, steps, wall
  time, mean and gap to the base batch, run counts;
* :func:`time_to_target_table` -- steps/wall time to the target and speedups;
* :func:`write_summary_csv`, :func:`write_report` -- the files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from legw_repro.analysis.aggregate import AGG_COLUMNS
from legw_repro.analysis.frames import ordered_policies
from legw_repro.analysis.metrics import metric_info
from legw_repro.analysis.plots import scale_note, task_title
from legw_repro.analysis.references import references_for
from legw_repro.analysis.target import Target

DASH = "—"


def _nan(x: Any) -> bool:
    try:
        return x is None or (isinstance(x, float | int | np.floating) and math.isnan(float(x)))
    except (TypeError, ValueError):
        return False


def format_metric(value: float, metric: str) -> str:
    """A metric value as shown in tables: accuracy in percent, others with two decimals."""
    return DASH if _nan(value) else metric_info(metric).format(value)


def format_cell(row: pd.Series | dict) -> str:
    """``mean ± std (n=N)`` (no ± when n=1), then ``diverged (d/N)``, ``failed (f/N)``,
    ``running (r/N)`` for the runs of the configuration that did not complete."""
    metric = str(row["metric"])
    n, total = int(row["n"]), int(row["n_runs"])
    parts = []
    if n > 0:
        text = format_metric(row["mean"], metric)
        if n > 1 and not _nan(row["std"]):
            text += f" ± {metric_info(metric).format_spread(row['std'])}"
        parts.append(f"{text} (n={n})")
    for key, word in (("n_diverged", "diverged"), ("n_failed", "failed"), ("n_running", "running")):
        c = int(row.get(key, 0) or 0)
        if c:
            parts.append(f"{word} ({c}/{total})")
    return "; ".join(parts) if parts else DASH


def _shown_path(path: Any) -> str:
    """A run directory as the report names it: relative to the working directory when it lies
    below it (committed reports then name `results/...`, not one machine's checkout)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, TypeError):
        return str(path)


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> str:
    align = align or ("-" * len(header))
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _one_task(agg: pd.DataFrame, task: str | None) -> tuple[str, pd.DataFrame]:
    tasks = sorted(agg["task"].dropna().unique().tolist())
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"the table holds tasks {tasks}; pass task=")
        task = tasks[0]
    return task, agg[agg["task"] == task]


def _k(value: Any) -> str:
    return DASH if _nan(value) else f"{float(value):g}"


def results_table(agg: pd.DataFrame, task: str | None = None) -> str:
    """Markdown: one row per batch size, one column per policy (headline metric cells)."""
    task, g = _one_task(agg, task)
    policies = ordered_policies(g["policy"])
    rows = []
    for b in sorted(g["batch_size"].astype(int).unique()):
        gb = g[g["batch_size"] == b]
        cells = []
        for p in policies:
            r = gb[gb["policy"] == p]
            cells.append(format_cell(r.iloc[0]) if len(r) else DASH)
        rows.append(
            [str(b), _k(gb["k"].dropna().iloc[0] if gb["k"].notna().any() else np.nan), *cells]
        )
    return md_table(["batch", "k", *policies], rows, "rr" + "l" * len(policies))


def format_seconds(s: float) -> str:
    if _nan(s):
        return DASH
    if s >= 7200:
        return f"{s / 3600:.2f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def _gap(row: pd.Series) -> str:
    metric = str(row["metric"])
    if int(row["batch_size"]) == (
        -1 if _nan(row["base_batch_size"]) else int(row["base_batch_size"])
    ):
        return "base"
    if _nan(row["gap_to_base"]):
        return DASH
    return metric_info(metric).format_gap(row["gap_to_base"], row["gap_to_base_pct"])


def _num(x: Any, fmt: str = "{:.4g}") -> str:
    return DASH if _nan(x) else fmt.format(float(x))


def details_table(agg: pd.DataFrame, task: str | None = None) -> str:
    """Markdown: per (policy, batch size) the configuration and its outcome."""
    task, g = _one_task(agg, task)
    metric = str(g["metric"].dropna().iloc[0]) if g["metric"].notna().any() else ""
    rows = []
    for p in ordered_policies(g["policy"]):
        for _, r in g[g["policy"] == p].sort_values("batch_size").iterrows():
            runs = f"{int(r['n'])}/{int(r['n_runs'])}"
            rows.append(
                [
                    p,
                    int(r["batch_size"]),
                    _k(r["k"]),
                    _num(r["peak_lr"]),
                    _num(r["warmup_epochs"]),
                    _num(r["steps"], "{:.0f}"),
                    format_seconds(r["wall_time_s_mean"]),
                    format_cell(r),
                    _gap(r),
                    runs,
                ]
            )
    header = [
        "policy",
        "batch",
        "k",
        "peak LR",
        "warmup epochs",
        "steps",
        "wall time (mean)",
        f"{metric} mean ± std",
        "gap to base",
        "completed/runs",
    ]
    return md_table(header, rows, "lrrrrrrlrr")


def time_to_target_table(tta: pd.DataFrame, task: str | None = None) -> str:
    """Markdown: per (policy, batch size) seeds reaching the target, mean steps and wall time,
    speedups over the base batch (same policy)."""
    task, g = _one_task(tta, task)
    rows = []
    for p in ordered_policies(g["policy"]):
        for _, r in g[g["policy"] == p].sort_values("batch_size").iterrows():
            rows.append(
                [
                    p,
                    int(r["batch_size"]),
                    f"{int(r['n_reached'])}/{int(r['n_runs'])}",
                    _num(r["steps_mean"], "{:.0f}"),
                    format_seconds(r["time_s_mean"]),
                    _num(r["epoch_mean"], "{:.2f}"),
                    _num(r["speedup_time"], "{:.2f}×"),
                    _num(r["speedup_steps"], "{:.2f}×"),
                    _k(r["k"]),
                ]
            )
    header = [
        "policy",
        "batch",
        "reached",
        "steps",
        "wall time",
        "epochs",
        "speedup (time)",
        "speedup (steps)",
        "ideal (k)",
    ]
    return md_table(header, rows, "lrrrrrrrr")


def write_summary_csv(agg: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """The aggregate table as CSV (the columns of :data:`~legw_repro.analysis.collect.AGG_COLUMNS`,
    full precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in AGG_COLUMNS if c in agg.columns] + [
        c for c in agg.columns if c not in AGG_COLUMNS
    ]
    agg[cols].to_csv(path, index=False)
    return path


def read_summary_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``summary.csv`` read back (the input of :func:`~legw_repro.analysis.plots.plot_metric_vs_batch`
    and :func:`results_table`)."""
    df = pd.read_csv(path)
    if "higher_is_better" in df:
        df["higher_is_better"] = df["higher_is_better"].astype(str).str.lower().eq("true")
    return df


def write_report(
    runs: pd.DataFrame,
    agg: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    task: str | None = None,
    *,
    target: Target | None = None,
    tta: pd.DataFrame | None = None,
    figures: Iterable[str | os.PathLike[str]] = (),
    command: str | None = None,
    sections: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` for one task into ``out_dir`` and return its path. ``sections`` are
    further Markdown blocks (e.g. the diagnostic variants) placed after the figures."""
    task, g = _one_task(agg, task)
    r = runs[runs["task"] == task]
    metric = str(g["metric"].dropna().iloc[0])
    split = str(g["split"].dropna().iloc[0]) if g["split"].notna().any() else "test"
    scale = g["scale"].dropna().iloc[0] if g["scale"].notna().any() else None
    size = g["model_size"].dropna().iloc[0] if g["model_size"].notna().any() else None
    base = g["base_batch_size"].dropna()
    counts = r["status"].value_counts()
    status_txt = ", ".join(f"{int(counts[s])} {s}" for s in counts.index)
    note = scale_note(scale, task)
    lines = [
        f"# {task_title(task, size)}: LEGW batch-size scaling{(' ' + note) if note else ''}",
        "",
        f"Headline metric: **final {split} {metric_info(metric).label}** "
        f"({'higher' if bool(g['higher_is_better'].iloc[0]) else 'lower'} is better), "
        "mean ± std over seeds (ddof=1; no ± when n=1), n = completed seeds"
        + (f"; base batch size {int(base.iloc[0])}" if len(base) else "")
        + f". Scale: `{scale}`. Runs: {len(r)} ({status_txt}).",
    ]
    if split != "test":
        lines += [
            "",
            f"These runs have no test evaluation: the table uses the final **{split}** value.",
        ]
    if command:
        lines += ["", f"Generated by `{command}`."]
    lines += [
        "",
        f"## Final {split} {metric_info(metric).label} by batch size and policy",
        "",
        results_table(g, task),
        "",
    ]
    lines += [
        "## Per-configuration details",
        "",
        "k = batch / base batch; peak LR and warmup epochs are the values used at that batch "
        "size; steps = total optimizer steps; gap to base = mean − mean at the base batch "
        "for the same policy.",
        "",
        details_table(g, task),
        "",
    ]
    if tta is not None and target is not None and len(tta):
        lines += [
            "## Time to target",
            "",
            f"Target: {target.label} ({target.description}). Steps and wall time at the "
            "first validation evaluation that meets it, averaged over the seeds that reached "
            "it; speedups are relative to the base batch of the same policy.",
            "",
            time_to_target_table(tta, task),
            "",
        ]
    figs = [Path(f) for f in figures if str(f).endswith(".png")]
    if figs:
        lines += ["## Figures", ""]
        for f in figs:
            lines += [f"![{f.stem}]({f.name})", ""]
    lines += [sec for sec in sections if sec]
    bad = r[r["status"].isin(["diverged", "failed", "running"])]
    if len(bad):
        lines += [
            "## Runs that did not complete",
            "",
            *(
                f"- `{_shown_path(row['run_dir'])}`: {row['status']}"
                + (
                    f" — {row['reason']}"
                    if isinstance(row["reason"], str) and row["reason"]
                    else ""
                )
                for _, row in bad.iterrows()
            ),
            "",
        ]
    refs = references_for(task, metric, size)
    if refs:
        lines += [
            "## Published reference results",
            "",
            *(
                f"- {ref.label}: {ref.value:g} {ref.split} {ref.metric} at batch {ref.batch_size} "
                f"({ref.source})"
                for ref in refs
            ),
            "",
        ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
