"""Tables and the Markdown report: ``summary.csv`` and ``report.md`` for one task.

* :func:`results_table` -- headline metric ``mean ± std (n=N)`` per batch size (rows) x policy
  (columns); a configuration whose seeds diverged says ``diverged (d/N)``;
* :func:`details_table` -- per (policy, batch size): k, peak LR, warmup epochs, steps, wall
  time, mean and gap to the base batch, run counts;
* :func:`time_to_target_table` -- steps/wall time to the target and speedups;
* :func:`write_summary_csv`, :func:`write_report` -- the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from legw_repro.analysis.aggregate import AGG_COLUMNS
from legw_repro.analysis.figure import scale_note, task_title
from legw_repro.analysis.frames import first, first_valid, is_missing, one_task, ordered_policies
from legw_repro.analysis.metrics import metric_info
from legw_repro.analysis.oracle_view import oracle_section
from legw_repro.analysis.references import references_for
from legw_repro.analysis.target import Target

DASH = "—"
Column = tuple[str, str, Callable[[pd.Series], Any]]  # header, alignment (l/r), cell


def _num(x: Any, fmt: str = "{:.4g}") -> str:
    return DASH if is_missing(x) else fmt.format(float(x))


def format_metric(value: float, metric: str) -> str:
    """A metric value as shown in tables (see :mod:`legw_repro.analysis.metrics`)."""
    return DASH if is_missing(value) else metric_info(metric).format(value)


def format_cell(row: pd.Series | dict) -> str:
    """``mean ± std (n=N)`` (no ± when n=1), then ``diverged (d/N)``, ``failed (f/N)``,
    ``running (r/N)`` for the runs of the configuration that did not complete."""
    metric = str(row["metric"])
    n, total = int(row["n"]), int(row["n_runs"])
    parts = []
    if n > 0:
        text = format_metric(row["mean"], metric)
        if n > 1 and not is_missing(row["std"]):
            text += f" ± {metric_info(metric).format_spread(row['std'])}"
        parts.append(f"{text} (n={n})")
    for word in ("diverged", "failed", "running"):
        c = int(row.get(f"n_{word}", 0) or 0)
        if c:
            parts.append(f"{word} ({c}/{total})")
    return "; ".join(parts) if parts else DASH


def format_seconds(s: float) -> str:
    if is_missing(s):
        return DASH
    if s >= 7200:
        return f"{s / 3600:.2f} h"
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s"


def _gap(row: pd.Series) -> str:
    if not is_missing(row["base_batch_size"]) and row["batch_size"] == row["base_batch_size"]:
        return "base"
    if is_missing(row["gap_to_base"]):
        return DASH
    return metric_info(row["metric"]).format_gap(row["gap_to_base"], row["gap_to_base_pct"])


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


def results_table(agg: pd.DataFrame, task: str | None = None) -> str:
    """Markdown: one row per batch size, one column per policy (headline metric cells)."""
    task, g = one_task(agg, task)
    policies = ordered_policies(g["policy"])
    rows = []
    for b, gb in g.groupby(g["batch_size"].astype(int)):
        cells = {
            p: format_cell(r) for p, r in zip(gb["policy"], gb.to_dict("records"), strict=True)
        }
        rows.append(
            [str(b), _num(first_valid(gb["k"]), "{:g}"), *(cells.get(p, DASH) for p in policies)]
        )
    return md_table(["batch", "k", *policies], rows, "rr" + "l" * len(policies))


def _config_table(g: pd.DataFrame, columns: Sequence[Column]) -> str:
    """Markdown: a row per (policy, batch size), policies in their order, batches ascending."""
    rows = [
        [cell(r) for _, _, cell in columns]
        for p in ordered_policies(g["policy"])
        for _, r in g[g["policy"] == p].sort_values("batch_size").iterrows()
    ]
    return md_table([h for h, _, _ in columns], rows, "".join(a for _, a, _ in columns))


def details_table(agg: pd.DataFrame, task: str | None = None) -> str:
    """Markdown: per (policy, batch size) the configuration and its outcome."""
    task, g = one_task(agg, task)
    metric = first(g, "metric") or ""
    # fmt: off
    columns: list[Column] = [
        ("policy", "l", lambda r: r["policy"]),
        ("batch", "r", lambda r: int(r["batch_size"])),
        ("k", "r", lambda r: _num(r["k"], "{:g}")),
        ("peak LR", "r", lambda r: _num(r["peak_lr"])),
        ("max LR", "r", lambda r: _num(r["max_lr"], "{:.3g}")),
        ("mean LR", "r", lambda r: _num(r["mean_lr"], "{:.3g}")),
        ("warmup epochs", "r", lambda r: _num(r["warmup_epochs"])),
        ("steps", "r", lambda r: _num(r["steps"], "{:.0f}")),
        ("wall time (mean)", "r", lambda r: format_seconds(r["wall_time_s_mean"])),
        (f"{metric} mean ± std", "l", format_cell),
        ("gap to base", "r", _gap),
        ("completed/runs", "r", lambda r: f"{int(r['n'])}/{int(r['n_runs'])}"),
    ]
    # fmt: on
    return _config_table(g, columns)


def time_to_target_table(tta: pd.DataFrame, task: str | None = None) -> str:
    """Markdown: per (policy, batch size) seeds reaching the target, mean steps and wall time,
    speedups over the base batch (same policy)."""
    task, g = one_task(tta, task)
    # fmt: off
    columns: list[Column] = [
        ("policy", "l", lambda r: r["policy"]),
        ("batch", "r", lambda r: int(r["batch_size"])),
        ("reached", "r", lambda r: f"{int(r['n_reached'])}/{int(r['n_runs'])}"),
        ("steps", "r", lambda r: _num(r["steps_mean"], "{:.0f}")),
        ("wall time", "r", lambda r: format_seconds(r["time_s_mean"])),
        ("epochs", "r", lambda r: _num(r["epoch_mean"], "{:.2f}")),
        ("speedup (time)", "r", lambda r: _num(r["speedup_time"], "{:.2f}×")),
        ("speedup (steps)", "r", lambda r: _num(r["speedup_steps"], "{:.2f}×")),
        ("ideal (k)", "r", lambda r: _num(r["k"], "{:g}")),
    ]
    # fmt: on
    return _config_table(g, columns)


def write_summary_csv(agg: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """The aggregate table as CSV (:data:`~legw_repro.analysis.aggregate.AGG_COLUMNS` first,
    full precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in AGG_COLUMNS if c in agg.columns]
    agg[cols + [c for c in agg.columns if c not in AGG_COLUMNS]].to_csv(path, index=False)
    return path


def read_summary_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``summary.csv`` read back (the input of :func:`~legw_repro.analysis.plots.plot_metric_vs_batch`
    and :func:`results_table`)."""
    df = pd.read_csv(path)
    if "higher_is_better" in df:
        df["higher_is_better"] = df["higher_is_better"].astype(str).str.lower().eq("true")
    return df


def _intro(g: pd.DataFrame, r: pd.DataFrame, task: str, command: str | None) -> list[str]:
    """Title, what the headline metric is, scale and run counts."""
    m, split, scale = (
        metric_info(first(g, "metric")),
        first(g, "split") or "test",
        first(g, "scale"),
    )
    counts = r["status"].value_counts()
    status_txt = ", ".join(f"{int(counts[s])} {s}" for s in counts.index)
    note = scale_note(scale, task)
    base = first(g, "base_batch_size")
    lines = [
        f"# {task_title(task, first(g, 'model_size'))}: LEGW batch-size scaling"
        + (f" {note}" if note else ""),
        "",
        f"Headline metric: **final {split} {m.label}** ({m.direction}), mean ± std over seeds "
        "(ddof=1; no ± when n=1), n = completed seeds"
        + ("" if base is None else f"; base batch size {int(base)}")
        + f". Scale: `{scale}`. Runs: {len(r)} ({status_txt}).",
    ]
    if split != "test":
        lines += [
            "",
            f"These runs have no test evaluation: the table uses the final **{split}** value.",
        ]
    return lines + (["", f"Generated by `{command}`."] if command else [])


def _tables(
    g: pd.DataFrame, task: str, target: Target | None, tta: pd.DataFrame | None
) -> list[str]:
    label, split = metric_info(first(g, "metric")).label, first(g, "split") or "test"
    lines = [
        "",
        f"## Final {split} {label} by batch size and policy",
        "",
        results_table(g, task),
        "",
    ]
    lines += [
        "## Per-configuration details",
        "",
        "k = batch / base batch; peak LR and warmup epochs are the values used at that batch "
        "size; max LR = the highest rate actually reached (below the peak when the decay "
        "starts before the warmup ends), mean LR = its mean over the optimizer steps; "
        "steps = total optimizer steps; gap to base = mean − mean at the base batch "
        "for the same policy.",
        "",
        details_table(g, task),
        "",
    ]
    if tta is None or target is None or not len(tta):
        return lines
    return lines + [
        "## Time to target",
        "",
        f"Target: {target.label} ({target.description}). Steps and wall time at the "
        "first validation evaluation that meets it, averaged over the seeds that reached "
        "it; speedups are relative to the base batch of the same policy.",
        "",
        time_to_target_table(tta, task),
        "",
    ]


def _closing(r: pd.DataFrame, task: str, metric: str, size: Any) -> list[str]:
    """The runs that did not complete and why; the published reference results."""
    lines = []
    bad = r[r["status"].isin(["diverged", "failed", "running"])]
    if len(bad):
        lines += ["## Runs that did not complete", ""]
        for _, row in bad.iterrows():
            why = f" — {row['reason']}" if isinstance(row["reason"], str) and row["reason"] else ""
            lines.append(f"- `{_shown_path(row['run_dir'])}`: {row['status']}{why}")
        lines.append("")
    if refs := references_for(task, metric, size):
        lines += ["## Published reference results", ""]
        lines += [
            f"- {ref.label}: {ref.value:g} {ref.split} {ref.metric} at batch {ref.batch_size} "
            f"({ref.source})"
            for ref in refs
        ]
        lines.append("")
    return lines


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
    task, g = one_task(agg, task)
    r = runs[runs["task"] == task]
    lines = _intro(g, r, task, command) + _tables(g, task, target, tta)
    if oracle := oracle_section(g):
        lines += [oracle]
    figs = [Path(f) for f in figures if str(f).endswith(".svg")]
    if figs:
        lines += ["## Figures", "", *(x for f in figs for x in (f"![{f.stem}]({f.name})", ""))]
    lines += [sec for sec in sections if sec]
    lines += _closing(r, task, str(first(g, "metric")), first(g, "model_size"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
