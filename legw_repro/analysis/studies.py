"""The committed studies, for notebooks/results.ipynb: every results folder with run records.

A study is a folder under the results root holding ``records/`` (the thinned run records of a
grid or a search: ``results/mnist/cpu``, ``results/mnist/cpu-long``, ``results/gnmt/paper-base256``,
``results/ptb/smoke``...) or, without records, a ``summary.csv`` alone. A *grid* has one run per
(policy, batch size, seed) and is drawn like the reports draw it; a *search* (an LR oracle, the
base-recipe tuning runs) has several runs at one such point, differing in their learning rate
or model: averaging them would mix recipes, so it is listed run by run and drawn against the
peak learning rate instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.axes import edge_cross, metric_ylim
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.figure import Legend, grid, scale_note, suptitle, task_title
from legw_repro.analysis.frames import first, is_missing
from legw_repro.analysis.history import load_all_metrics
from legw_repro.analysis.metrics import metric_info
from legw_repro.analysis.plots import draw_figures, plot_metric_vs_batch
from legw_repro.analysis.report import (
    DASH,
    format_metric,
    md_table,
    read_summary_csv,
    results_table,
)
from legw_repro.analysis.target import default_target

TASK_ORDER = ("ptb", "mnist", "gnmt")
GROUPS = ("", "paper", "smoke")  # study name prefixes: cpu scale, the GPU ones, smoke references
SERIES_STYLES = tuple(
    zip(
        ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"),
        ("o", "s", "^", "D", "v", "P", "X", "<"),
        strict=True,
    )
)  # one panel's series: eight, no colour or marker twice


@dataclass(frozen=True)
class Study:
    """A results folder: ``name`` relative to the results root (``mnist/cpu-long``,
    ``gnmt/paper-base256``), its ``records`` folder (None: a summary.csv alone)."""

    name: str
    path: Path
    records: Path | None

    @property
    def summary_csv(self) -> Path:
        return self.path / "summary.csv"


def _order(name: str) -> tuple[int, int, str]:
    """The cpu-scale studies first, then the paper-scale ones, then the smoke references; by task
    (ptb, mnist, gnmt) within each. ``name`` is ``<task>/<study>``."""
    parts = name.split("/")
    study = parts[-1] if len(parts) > 1 else ""
    group = next((i for i, g in enumerate(GROUPS) if g and study.startswith(g)), 0)
    task = parts[0].split("-")[0]
    return group, TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), name


def find_studies(root: str | Path) -> list[Study]:
    """Every folder under ``root`` with a ``records/`` folder or a ``summary.csv``, in the order
    of :func:`_order` (a missing root has none)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = {p.parent for p in root.rglob("records") if p.is_dir()}
    found |= {p.parent for p in root.rglob("summary.csv") if "records" not in p.parts}
    studies = []
    for path in found:
        records = path / "records"
        studies.append(
            Study(path.relative_to(root).as_posix(), path, records if records.is_dir() else None)
        )
    return sorted(studies, key=lambda s: _order(s.name))


def is_search(runs: pd.DataFrame) -> bool:
    """Whether some (policy, batch size, seed) has several runs: a search, not a grid."""
    return bool(runs.duplicated(["task", "policy", "batch_size", "seed"]).any())


def _run_name(run_dir: str, records: Path | None) -> str:
    try:
        return Path(run_dir).resolve().relative_to(records.resolve()).as_posix()  # type: ignore[union-attr]
    except (ValueError, AttributeError):
        return Path(run_dir).name


def search_table(runs: pd.DataFrame, records: Path | None = None) -> str:
    """Markdown, one row per run of a search, by batch size and best final metric first: its
    folder, optimizer, batch, peak LR, epochs, status and final headline metric."""
    metric = str(first(runs, "metric"))
    hib = metric_info(metric).higher_is_better
    r = runs.sort_values(
        ["batch_size", "metric_value"], ascending=[True, not hib], na_position="last"
    )
    rows = []
    for _, x in r.iterrows():
        lr = DASH if is_missing(x.get("peak_lr")) else f"{float(x['peak_lr']):.4g}"
        rows.append(
            [
                _run_name(str(x["run_dir"]), records),
                str(x.get("optimizer", DASH)),
                str(int(x["batch_size"])),
                lr,
                f"{x['epochs']:g}" if not is_missing(x.get("epochs")) else DASH,
                str(x["status"]),
                format_metric(x["metric_value"], metric),
            ]
        )
    split = first(runs, "metric_split") or "final"
    header = ["run", "optimizer", "batch", "peak LR", "epochs", "status", f"{split} {metric}"]
    return md_table(header, rows, align="--rrr-r")


def plot_search(runs: pd.DataFrame, task: str, title: str) -> Figure:
    """Final headline metric vs peak LR (log axis), a series per (optimizer, batch size), at
    most eight a panel; a run without a final value (diverged, stopped) is an 'x' at the
    bottom edge at its LR."""
    metric = metric_info(str(first(runs, "metric")))
    keys = list(dict.fromkeys(zip(runs["optimizer"], runs["batch_size"], strict=True)))
    chunks = [keys[i : i + len(SERIES_STYLES)] for i in range(0, len(keys), len(SERIES_STYLES))]
    fig, axes = grid(len(chunks), max_cols=2, panel=(7.0, 4.2), extra=0)
    ys = [v for v in metric.display(runs["metric_value"].to_numpy(float)) if np.isfinite(v)]
    for ax, chunk in zip(axes, chunks, strict=False):
        legend = Legend()
        for (opt, batch), (color, marker) in zip(chunk, SERIES_STYLES, strict=False):
            g = runs[(runs["optimizer"] == opt) & (runs["batch_size"] == batch)]
            g = g.sort_values("peak_lr")
            y = metric.display(g["metric_value"].to_numpy(float))
            lr, ok = g["peak_lr"].to_numpy(float), np.isfinite(y)
            ax.plot(lr[ok], y[ok], color=color, marker=marker, ls="none", ms=6)
            for x in lr[~ok]:
                edge_cross(ax, x, 0.04, color)
            legend.line(f"{opt}, batch {int(batch)}", color=color, marker=marker, ls="none")
        ax.set_xscale("log")
        if ys:
            metric_ylim(ax, metric, ys, room_top=0.06, room_bottom=0.14)
        ax.set_xlabel("peak learning rate (log axis)")
        ax.set_ylabel(f"final {first(runs, 'metric_split') or ''} {metric.label}".strip())
        ax.grid(True, alpha=0.3)
        ax.legend(legend.handles, legend.labels, fontsize=8, frameon=False)
    for ax in axes[len(chunks) :]:
        ax.set_axis_off()
    scales = runs["scale"].dropna().unique()
    note = scale_note(scales[0], task) if len(scales) == 1 else "(runs of several scales)"
    suptitle(
        fig, f"{task_title(task)}: {title}" + (f" {note}" if note else "") + " (x: no final value)"
    )
    return fig


def png(fig: Figure, dpi: int = 72, colors: int = 256) -> bytes:
    """The figure as a PNG at ``dpi`` with a palette of ``colors`` (about a third of the bytes
    of full colour, the same to the eye): a notebook stores its outputs, kept small."""
    from PIL import Image  # matplotlib's own dependency

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    image = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="png", optimize=True)
    return out.getvalue()


Output = tuple[str, str | bytes]  # ("md", markdown) | ("text", a line) | ("png", image)
# the figures a grid study shows, by file stem (the reports' figures, less the LR schedules)
SHOWN = ("_vs_batch", "tuned_lr", "curves", "time_to_target")


def _grid_outputs(study: Study, runs: pd.DataFrame, task: str, dpi: int) -> list[Output]:

    agg = aggregate(runs)
    split, metric = first(agg, "split"), first(agg, "metric")
    out: list[Output] = [("md", f"Final {split} {metric}:\n\n" + results_table(agg, task))]
    metrics = load_all_metrics(runs)
    target = None
    if any(len(m) for m in metrics.values()):
        try:
            target = default_target(runs, task)
        except AnalysisError as e:  # no completed base-batch run to set the goal from
            out.append(("text", f"{study.name}: no time-to-target goal ({e})"))
    figs = draw_figures(runs, task, agg=agg, metrics=metrics, target=target)
    out += [("png", png(f, dpi)) for s, f in figs.items() if any(k in s for k in SHOWN)]
    return out


def study_outputs(study: Study, dpi: int = 72) -> list[Output]:
    """What the notebook shows for a study: a heading, the table, the figures (a search: its
    runs' table and the metric vs peak LR), and where the folder's report is."""

    out: list[Output] = [("md", f"### {study.name}")]
    if study.records is None:
        agg = read_summary_csv(study.summary_csv)
        task = str(first(agg, "task"))
        out.append(("md", results_table(agg, task)))
        out.append(("png", png(plot_metric_vs_batch(agg, task), dpi)))
        out.append(("text", f"{study.name}: no run records (summary.csv only) - curves skipped"))
        return out
    runs = collect_runs([study.records])
    for task in sorted(runs["task"].dropna().unique()):
        r = runs[runs["task"] == task].reset_index(drop=True)
        if is_search(r):
            out.append(
                (
                    "md",
                    f"A search ({len(r)} runs): one row per run.\n\n"
                    + search_table(r, study.records),
                )
            )
            out.append(("png", png(plot_search(r, task, f"{study.name}, metric vs peak LR"), dpi)))
        else:
            out += _grid_outputs(study, r, task, dpi)
    if (study.path / "report.md").is_file():
        out.append(("md", f"The full report: `{study.name}/report.md` in the results folder."))
    return out
