"""The scaffold every figure shares: policy styles, titles, panels, legends, saving.

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot, so importing or
drawing never selects a matplotlib backend for the caller (a notebook keeps its inline one);
:func:`save_figure` writes PNG and SVG through matplotlib's file canvases.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from legw_repro.analysis.frames import first, is_missing, one_task
from legw_repro.analysis.metrics import Metric, metric_info
from legw_repro.config.scales import is_reduced

# One colour, marker and legend label per policy, the same in every figure; unknown policies
# take the EXTRA_* entries in alphabetical order.
POLICY_STYLES: dict[str, tuple[str, str, str]] = {
    "sqrt_legw": ("#1f77b4", "o", "sqrt_legw: √k LR, k× warmup epochs (LEGW)"),  # blue
    "sqrt": ("#ff7f0e", "s", "sqrt: √k LR, fixed warmup"),  # orange
    "linear": ("#2ca02c", "^", "linear: k× LR, fixed warmup"),  # green
    "adam": ("#9467bd", "D", "adam"),  # purple
    "none": ("#7f7f7f", "v", "none: base LR, unscaled"),  # grey
    "tuned": ("#8c564b", "P", "tuned"),  # brown
}
EXTRA_COLORS: tuple[str, ...] = ("#e377c2", "#17becf", "#bcbd22", "#d62728", "#393b79", "#637939")
EXTRA_MARKERS: tuple[str, ...] = ("h", "*", "<", ">", "p", "X")
TASK_TITLES: dict[str, str] = {"ptb": "PTB", "mnist": "MNIST", "gnmt": "GNMT-lite"}
TASK_MODELS: dict[str, str] = {"ptb": "LSTM LM", "mnist": "LSTM", "gnmt": "seq2seq"}
DIVERGED_COLOR = "#222222"
Styles = Mapping[str, Mapping[str, str]]


def policy_styles(policies: Iterable[str]) -> dict[str, dict[str, str]]:
    """``policy -> {"color", "marker", "label"}``: the fixed mapping for known policies, the
    next EXTRA_* entries for unknown ones in alphabetical order (deterministic)."""
    styles = {
        p: {"color": c, "marker": m, "label": label} for p, (c, m, label) in POLICY_STYLES.items()
    }
    for i, p in enumerate(sorted({str(p) for p in policies} - set(POLICY_STYLES))):
        styles[p] = {
            "color": EXTRA_COLORS[i % len(EXTRA_COLORS)],
            "marker": EXTRA_MARKERS[i % len(EXTRA_MARKERS)],
            "label": p,
        }
    return styles


def style(styles: Styles | None, policy: str) -> Mapping[str, str]:
    if styles is None or policy not in styles:
        styles = policy_styles([policy])
    return styles[policy]


def scale_note(scale: Any, task: str | None = None) -> str:
    """Title suffix: '' for the full protocol, '(reduced CPU scale)' etc. otherwise. Whether a
    scale is reduced depends on the task too (MNIST at `cpu` is the full protocol): with ``task``
    it is looked up in the configs (legw_repro.config.scales); without, any scale but `paper` is."""
    s = "" if is_missing(scale) else str(scale)
    if s in ("", "paper"):
        return ""
    if s == "smoke":
        return "(smoke-test scale, not a result)"
    if task is not None and "," not in s and is_reduced(str(task), s) is False:
        return ""
    if s == "cpu":
        return "(reduced CPU scale)"
    return f"(reduced scale: {s})"


def task_title(task: str, model_size: Any = None) -> str:
    name = TASK_TITLES.get(str(task), str(task).upper())
    size = "" if is_missing(model_size) else str(model_size)
    return " ".join(x for x in (name, size, TASK_MODELS.get(str(task), "")) if x)


@dataclass(frozen=True)
class Subject:
    """What a figure is about -- task, metric, scale, model size -- for its title and axes."""

    task: str
    metric: Metric
    scale: Any = None
    model_size: Any = None

    def title(self, what: str) -> str:
        note = scale_note(self.scale, self.task)
        return f"{task_title(self.task, self.model_size)}: {what}" + (f" {note}" if note else "")


def subject_of(table: pd.DataFrame, task: str | None = None) -> tuple[Subject, pd.DataFrame]:
    """The subject of one task's rows of a run or aggregate table, and those rows."""
    task, rows = one_task(table, task)
    metric = metric_info(first(rows, "metric"))
    return Subject(task, metric, first(rows, "scale"), first(rows, "model_size")), rows


def new_figure(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


def grid(
    n: int, *, max_cols: int = 4, panel: tuple[float, float] = (3.6, 2.9), extra: int = 1
) -> tuple[Figure, list[Axes]]:
    """A grid with room for ``n`` panels plus ``extra`` legend slot(s)."""
    cols = max(1, min(max_cols, n + extra if n + extra <= max_cols else max_cols))
    rows = max(1, math.ceil((n + extra) / cols))
    fig = Figure(figsize=(panel[0] * cols, panel[1] * rows + 1.0), layout="constrained")
    return fig, list(fig.subplots(rows, cols, squeeze=False).ravel())


def suptitle(fig: Figure, text: str, fontsize: float = 12) -> None:
    fig.suptitle(text, x=0.01, ha="left", fontsize=fontsize)


class Legend:
    """Legend entries in the order they are added: the policies, then the marks a figure uses."""

    def __init__(self, policies: Iterable[str] = (), styles: Styles | None = None, **kw: Any):
        self.handles: list[Any] = []
        self.labels: list[str] = []
        for p in policies:
            st = style(styles, p)
            line = {"color": st["color"], "marker": st["marker"], "lw": 1.8, "ms": 6} | kw
            self.line(st["label"], **line)

    def add(self, handle: Any, label: str) -> None:
        self.handles.append(handle)
        self.labels.append(label)

    def line(self, label: str, **kw: Any) -> None:
        self.add(Line2D([], [], **kw), label)

    def diverged(self, label: str) -> None:
        """The 'x' that marks a configuration with no value to plot."""
        self.line(label, ls="none", marker="x", color=DIVERGED_COLOR, ms=9, mew=2.2)

    def in_slot(self, fig: Figure, axes: Sequence[Axes], used: int, title: str) -> None:
        """Into the first unused panel of a grid (the others hidden), or below the figure."""
        for ax in axes[used:]:
            ax.set_axis_off()
        if used < len(axes):
            axes[used].legend(
                self.handles, self.labels, loc="center", frameon=False, title=title, fontsize=9
            )
        else:
            self.below(fig, 3)

    def below(self, fig: Figure, ncols: int, **kw: Any) -> None:
        """Below the figure, in up to ``ncols`` columns."""
        ncols = min(ncols, len(self.labels))
        fig.legend(
            self.handles, self.labels, loc="outside lower center", ncols=ncols, frameon=False, **kw
        )


def save_svg(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as an SVG that depends on the figure alone: no date, and a fixed salt for
    the element ids, so that regenerating a figure from the same records leaves the committed
    file byte for byte unchanged (`make check-results`). One format: SVG is vector (sharp at
    any zoom), smaller than the PNGs were, and renders on GitHub and in browsers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"svg.hashsalt": "legw-repro"}):
        fig.savefig(path, bbox_inches="tight", metadata={"Date": None})
    return path


def save_figure(fig: Figure, out_dir: str | os.PathLike[str], stem: str) -> list[Path]:
    """Write ``<stem>.svg`` into ``out_dir``; return its path (in a list, as the callers
    collect every file they wrote)."""
    return [save_svg(fig, Path(out_dir) / f"{stem}.svg")]


def epoch_grid(runs: pd.DataFrame) -> tuple[Figure, list[Axes], list[int]]:
    """One panel per batch size of ``runs`` ("batch b (k = ...)", epochs along x), then a
    legend slot; returns the figure, the axes and the batch sizes."""
    batches = sorted(runs["batch_size"].dropna().astype(int).unique())
    fig, axes = grid(len(batches))
    for ax, b in zip(axes, batches, strict=False):
        k = first(runs[runs["batch_size"] == b], "k")
        ax.set_title(f"batch {b}" + ("" if k is None else f"  (k = {k:g})"), fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    return fig, axes, batches


def epoch_panels(
    axes: Sequence[Axes], n: int, max_epoch: float, ylabel: str, *, inner_labels: bool = True
) -> None:
    """The first ``n`` panels of a grid share the epoch range; the left column names y (the
    others hide their y tick labels unless ``inner_labels``)."""
    ncols = axes[0].get_gridspec().ncols
    for i, ax in enumerate(axes[:n]):
        if max_epoch > 0:
            ax.set_xlim(0, max_epoch * 1.03)
        if i % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=9)
        elif not inner_labels:
            ax.tick_params(labelleft=False)
