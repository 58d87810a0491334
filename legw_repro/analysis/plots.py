"""Figures for one task's runs (matplotlib, Agg backend; PNG and SVG).

Every figure uses the same colour and marker for a policy (:func:`policy_styles`), a log2
batch-size axis labelled with the batch sizes themselves, and says the task and the scale in
its title. The figure functions return a :class:`~matplotlib.figure.Figure`;
:func:`save_figure` writes it as ``<stem>.png`` and ``<stem>.svg`` and :func:`make_figures`
draws and saves all four:

* ``<metric>_vs_batch`` -- final metric vs batch size, one line per policy (the paper's figure);
* ``curves`` -- validation metric vs epoch, one panel per batch size;
* ``lr_schedules`` -- the learning rate actually applied vs epoch, one panel per batch size;
* ``time_to_target`` -- optimizer steps and wall time to a validation target, and speedup.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

# Files only (no display needed) -- except inside Jupyter, where the inline backend draws.
if "MPLBACKEND" not in os.environ and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import transforms  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402

from legw_repro.analysis.aggregate import aggregate  # noqa: E402
from legw_repro.analysis.frames import POLICY_ORDER, ordered_policies  # noqa: E402
from legw_repro.analysis.history import load_metrics  # noqa: E402
from legw_repro.analysis.metrics import metric_info  # noqa: E402
from legw_repro.analysis.references import references_for  # noqa: E402
from legw_repro.analysis.target import (  # noqa: E402
    Target,
    aggregate_time_to_target,
    default_target,
    time_to_target,
)
from legw_repro.scales import is_reduced  # noqa: E402

# One colour and marker per policy, the same in every figure. Unknown policies take the
# EXTRA_* entries in alphabetical order.
POLICY_COLORS: dict[str, str] = {
    "sqrt_legw": "#1f77b4",  # blue
    "sqrt": "#ff7f0e",  # orange
    "linear": "#2ca02c",  # green
    "adam": "#9467bd",  # purple
    "none": "#7f7f7f",  # grey
    "tuned": "#8c564b",  # brown
}
POLICY_MARKERS: dict[str, str] = {
    "sqrt_legw": "o",
    "sqrt": "s",
    "linear": "^",
    "adam": "D",
    "none": "v",
    "tuned": "P",
}
EXTRA_COLORS: tuple[str, ...] = ("#e377c2", "#17becf", "#bcbd22", "#d62728", "#393b79", "#637939")
EXTRA_MARKERS: tuple[str, ...] = ("h", "*", "<", ">", "p", "X")
POLICY_LABELS: dict[str, str] = {
    "sqrt_legw": "sqrt_legw: √k LR, k× warmup epochs (LEGW)",
    "sqrt": "sqrt: √k LR, fixed warmup",
    "linear": "linear: k× LR, fixed warmup",
    "none": "none: base LR, unscaled",
    "adam": "adam",
    "tuned": "tuned",
}
TASK_TITLES: dict[str, str] = {"ptb": "PTB", "mnist": "MNIST", "gnmt": "GNMT-lite"}
TASK_MODELS: dict[str, str] = {"ptb": "LSTM LM", "mnist": "LSTM", "gnmt": "seq2seq"}
DIVERGED_COLOR = "#222222"
FIG_DPI = 150


# --------------------------------------------------------------------------- styles


def policy_styles(policies: Iterable[str]) -> dict[str, dict[str, str]]:
    """``policy -> {"color", "marker", "label"}``: the fixed mapping for known policies, the
    next EXTRA_* entries for unknown ones in alphabetical order (deterministic)."""
    styles: dict[str, dict[str, str]] = {}
    extra = sorted({str(p) for p in policies} - set(POLICY_COLORS))
    for p in POLICY_ORDER:
        styles[p] = {
            "color": POLICY_COLORS[p],
            "marker": POLICY_MARKERS[p],
            "label": POLICY_LABELS[p],
        }
    for i, p in enumerate(extra):
        styles[p] = {
            "color": EXTRA_COLORS[i % len(EXTRA_COLORS)],
            "marker": EXTRA_MARKERS[i % len(EXTRA_MARKERS)],
            "label": p,
        }
    return styles


def _style(styles: Mapping[str, Mapping[str, str]] | None, policy: str) -> Mapping[str, str]:
    if styles is None or policy not in styles:
        styles = policy_styles([policy])
    return styles[policy]


def scale_note(scale: Any, task: str | None = None) -> str:
    """Title suffix: '' for the full protocol, '(reduced CPU scale)' etc. otherwise. Whether a
    scale is reduced depends on the task too (MNIST at `cpu` is the full protocol): with ``task``
    it is looked up in the configs (legw_repro.scales); without, any scale but `paper` is."""
    s = "" if scale is None or (isinstance(scale, float) and math.isnan(scale)) else str(scale)
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
    model = TASK_MODELS.get(str(task), "")
    size = (
        ""
        if model_size is None or (isinstance(model_size, float) and math.isnan(model_size))
        else str(model_size)
    )
    return " ".join(x for x in (name, size, model) if x)


def _title(task: str, what: str, scale: Any, model_size: Any = None) -> str:
    note = scale_note(scale, task)
    return f"{task_title(task, model_size)}: {what}" + (f" {note}" if note else "")


def metric_label(metric: str, split: str | None = None, *, direction: bool = True) -> str:
    info = metric_info(metric)
    text = f"{split} {info.label}" if split else info.label
    return text + (f" ({info.direction})" if direction else "")


def _display(metric: str, values: Any) -> Any:
    return metric_info(metric).display(values)


def _batch_axis(ax, batches: Iterable[int], *, label: bool = True) -> None:
    b = sorted({int(x) for x in batches})
    ax.set_xscale("log", base=2)
    ax.set_xticks(b)
    ax.set_xticklabels([str(x) for x in b])
    ax.xaxis.set_minor_locator(NullLocator())
    if b:
        ax.set_xlim(b[0] / 1.35, b[-1] * 1.35)
    if label:
        ax.set_xlabel("global batch size (log₂ axis)")


def _nice_log_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Round numbers (1, 1.5, 2, 3, 5, 7 x 10^n, thinned) spanning [lo, hi] on a log axis."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi <= lo:
        return []
    for mant in (
        (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8),
        (1, 1.2, 1.5, 2, 3, 5, 7),
        (1, 1.5, 2, 3, 5, 7),
        (1, 2, 5),
        (1, 3),
        (1,),
    ):
        ticks = [
            m * 10.0**e
            for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
            for m in mant
        ]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) <= max_ticks and len(ticks) >= 2:
            return ticks
    ticks = [10.0**e for e in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
    return ticks[:: max(1, math.ceil(len(ticks) / max_ticks))]


def _dodge(i: int, n: int, width: float = 0.05) -> float:
    """Multiplicative x offset so that policies at the same batch size do not overlap."""
    return 2.0 ** ((i - (n - 1) / 2.0) * width)


def _policy_line(
    ax: Any,
    batch: np.ndarray,
    y: np.ndarray,
    err: np.ndarray | None,
    i: int,
    n: int,
    st: Mapping[str, str],
    **kw: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one policy's line (mean ± err when ``err`` is given) over the batch sizes, dodged
    sideways by its index so that the policies' error bars stay apart; points without a finite
    value are left out. Returns the dodged x and the mask of points drawn."""
    x = np.asarray(batch, float) * _dodge(i, n)
    ok = np.isfinite(y)
    style = {"color": st["color"], "marker": st["marker"], "ms": 6, "lw": 1.8} | kw
    if err is None:
        ax.plot(x[ok], y[ok], **style)
    else:
        ax.errorbar(x[ok], y[ok], yerr=err[ok], **({"capsize": 3} | style))
    return x, ok


def _edge_cross(ax: Any, x: float, y_axes: float, color: str, **kw: Any) -> None:
    """An 'x' at a fixed height in axes coordinates: a point with no value to plot (every seed
    diverged, or none reached the target) stays visible at the edge instead of vanishing."""
    tf = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    style = {"ls": "none", "marker": "x", "ms": 9, "mew": 2.2, "color": color, "clip_on": False}
    ax.plot([x], [y_axes], transform=tf, **(style | kw))


def _first(df: pd.DataFrame, col: str) -> Any:
    if col not in df.columns:
        return None
    v = df[col].dropna()
    return v.iloc[0] if len(v) else None


def _one_task(df: pd.DataFrame, task: str | None) -> tuple[str, pd.DataFrame]:
    tasks = sorted(df["task"].dropna().unique().tolist())
    if task is None:
        if len(tasks) != 1:
            raise ValueError(f"the table holds tasks {tasks}; pass task=")
        task = tasks[0]
    return task, df[df["task"] == task]


def _grid(n: int, *, max_cols: int = 4, panel: tuple[float, float] = (3.6, 2.9), extra: int = 1):
    """A grid with room for ``n`` panels plus ``extra`` legend slot(s)."""
    cols = max(1, min(max_cols, n + extra if n + extra <= max_cols else max_cols))
    rows = max(1, math.ceil((n + extra) / cols))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(panel[0] * cols, panel[1] * rows + 1.0),
        squeeze=False,
        layout="constrained",
    )
    return fig, list(axes.ravel())


def _legend_slot(fig, axes, used: int, handles, labels, title: str | None = None) -> None:
    """Put the legend into the first unused panel (hidden), or below the figure."""
    for ax in axes[used:]:
        ax.set_axis_off()
    if used < len(axes):
        axes[used].legend(handles, labels, loc="center", frameon=False, title=title, fontsize=9)
    else:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(3, len(labels)), frameon=False
        )


def _policy_handles(policies: Iterable[str], styles) -> tuple[list, list]:
    handles, labels = [], []
    for p in policies:
        st = _style(styles, p)
        handles.append(Line2D([], [], color=st["color"], marker=st["marker"], lw=1.8, ms=6))
        labels.append(st["label"])
    return handles, labels


def _diverged_handle(label: str = "diverged (all seeds)") -> tuple[Line2D, str]:
    h = Line2D([], [], ls="none", marker="x", color=DIVERGED_COLOR, ms=9, mew=2.2)
    return h, label


def _set_ylim(
    ax, values: Iterable[float], *, log: bool, room_top: float = 0.06, room_bottom: float = 0.06
) -> None:
    """y limits covering ``values`` with some room (fractions of the span) at each end; on a
    log axis, round plain-number ticks."""
    v = np.asarray([x for x in values if np.isfinite(x) and (x > 0 or not log)], float)
    if log:
        ax.set_yscale("log")
    if len(v) == 0:
        return
    lo, hi = float(v.min()), float(v.max())
    if log:
        span = hi / lo if hi > lo else 1.5
        lo, hi = lo / span**room_bottom, hi * span**room_top
        ax.set_ylim(lo, hi)
        ticks = _nice_log_ticks(lo, hi)
        if ticks:
            ax.set_yticks(ticks)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    else:
        span = hi - lo if hi > lo else (abs(hi) * 0.1 or 1.0)
        ax.set_ylim(lo - span * room_bottom, hi + span * room_top)


ACC_TICKS = (0, 50, 80, 90, 95, 97, 98, 99, 99.5, 99.8, 99.9, 99.95)


def _error_forward(y: Any) -> Any:
    return -np.log10(np.clip(100.0 - np.asarray(y, float), 1e-3, None))


def _error_inverse(t: Any) -> Any:
    return 100.0 - 10.0 ** (-np.asarray(t, float))


def _wants_error_axis(metric: str, values: Iterable[float]) -> bool:
    """Accuracies whose errors (100 - acc) span more than 4x: a collapse next to ~99%."""
    errors = [100.0 - y for y in values if np.isfinite(y)]
    return metric_info(metric).axis == "error" and _wide(errors, 4.0)


def _set_error_ylim(
    ax, values: Iterable[float], *, room_top: float = 0.06, room_bottom: float = 0.06
) -> None:
    """An accuracy axis (in %) that is logarithmic in the error, 100 - accuracy: when one policy
    collapses to chance, a linear 0-100 axis flattens the 0.5-point differences near 99% that
    the comparison is about; on this axis 98.4 vs 98.9 stays visible next to 60 vs 90."""
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    ax.set_yscale("function", functions=(_error_forward, _error_inverse))
    if len(v) == 0:
        return
    lo, hi = float(_error_forward(v.min())), float(_error_forward(v.max()))
    span = hi - lo if hi > lo else 0.1
    ylo, yhi = _error_inverse(lo - span * room_bottom), _error_inverse(hi + span * room_top)
    ax.set_ylim(ylo, yhi)
    ax.set_yticks([t for t in ACC_TICKS if ylo <= t <= yhi])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.yaxis.set_minor_locator(NullLocator())


def _wide(values: Iterable[float], ratio: float = 2.5) -> bool:
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    return len(v) > 1 and v.max() / v.min() > ratio


# --------------------------------------------------------------------------- figure a


def plot_metric_vs_batch(
    agg: pd.DataFrame,
    task: str | None = None,
    *,
    styles: Mapping[str, Mapping[str, str]] | None = None,
    references: bool = True,
) -> Figure:
    """Final headline metric (mean ± std over seeds) vs batch size, one line per policy.

    ``agg`` is :func:`~legw_repro.analysis.collect.aggregate`'s table (or summary.csv read back).
    A configuration where every seed diverged is an 'x' at the "worse" edge of the plot (top
    for perplexity, bottom for accuracy) labelled d/N; a partly diverged one carries a
    "d/N diverged" note. Published reference results (PTB: Zaremba et al. 2014, batch 20) are
    dashed horizontal lines."""
    task, g = _one_task(agg, task)
    metric = str(_first(g, "metric") or "")
    split = str(_first(g, "split") or "test")
    hib = bool(_first(g, "higher_is_better"))
    base = _first(g, "base_batch_size")
    model_size = _first(g, "model_size")
    styles = styles or policy_styles(g["policy"])
    policies = ordered_policies(g["policy"])
    batches = sorted(g["batch_size"].astype(int).unique())

    fig, ax = plt.subplots(figsize=(11, 5.8), layout="constrained")
    handles, labels = [], []
    edge_y = 0.045 if hib else 0.955
    edge_tf = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    any_diverged = False
    yvals: list[float] = []
    for i, p in enumerate(policies):
        st = _style(styles, p)
        d = g[g["policy"] == p].sort_values("batch_size")
        y = _display(metric, d["mean"])
        err = _display(metric, d["std"].fillna(0.0))
        x, ok = _policy_line(
            ax,
            d["batch_size"].to_numpy(float),
            y,
            err,
            i,
            len(policies),
            st,
            ms=6.5,
            lw=1.9,
            capsize=3.5,
            elinewidth=1.2,
            zorder=3,
        )
        yvals += list(y[ok] - err[ok]) + list(y[ok] + err[ok])
        handles.append(Line2D([], [], color=st["color"], marker=st["marker"], lw=1.9))
        labels.append(st["label"])
        for xi, yi, (_, row) in zip(x, y, d.iterrows(), strict=True):
            nd, nr = int(row.get("n_diverged", 0) or 0), int(row.get("n_runs", 0) or 0)
            if not np.isfinite(yi) and nd > 0:
                any_diverged = True
                _edge_cross(ax, xi, edge_y, st["color"], ms=11, mew=2.8, zorder=4)
                ax.annotate(
                    f"{nd}/{nr}",
                    (xi, edge_y),
                    xycoords=edge_tf,
                    xytext=(0, -15 if not hib else 9),
                    textcoords="offset points",
                    ha="center",
                    fontsize=8,
                    color=st["color"],
                )
            elif np.isfinite(yi) and nd > 0:
                ax.annotate(
                    f"{nd}/{nr} diverged",
                    (xi, yi),
                    xytext=(-8, 6 if not hib else -13),
                    textcoords="offset points",
                    ha="right",
                    fontsize=8,
                    color=st["color"],
                )
    if any_diverged:
        h, lab = _diverged_handle("all seeds diverged: x at the edge, d/N = diverged/runs")
        handles.append(h)
        labels.append(lab)

    notes = [
        f"Points: mean over seeds of the final {split} {metric_info(metric).label}; "
        "error bars: ±1 std over seeds (ddof=1); policies are offset slightly along x so that "
        "they do not hide each other.",
    ]
    if references:
        refs = [r for r in references_for(task, metric, model_size) if r.split == split]
        dashes = [(6, 3), (2, 2), (8, 2, 2, 2)]
        for j, r in enumerate(refs):
            v = float(_display(metric, [r.value])[0])
            yvals.append(v)
            line = ax.axhline(
                v, color="black", lw=1.1, dashes=dashes[j % len(dashes)], zorder=1, alpha=0.8
            )
            handles.append(line)
            labels.append(f"{r.label}: {r.value:g} {split} {metric} (batch {r.batch_size})")
        if refs:
            notes.append(
                "Dashed lines: published results, "
                + "; ".join(sorted({r.source for r in refs}))
                + "."
            )
        elif published := [r for r in references_for(task, metric) if r.split == split]:
            sizes = ", ".join(f"{r.model_size} {r.value:g}" for r in published)
            notes.append(
                f"No published reference for model size '{model_size}' (published {split} "
                f"{metric} at batch {published[0].batch_size}: {sizes}; {published[0].source})."
            )
    room = 0.16 if any_diverged else 0.06
    if _wants_error_axis(metric, yvals):
        _set_error_ylim(ax, yvals, room_top=0.06, room_bottom=room)
        notes.append(
            "The y axis is logarithmic in the error (100 − accuracy), so that differences "
            "near 99% stay visible next to a collapse."
        )
    else:
        _set_ylim(
            ax,
            yvals,
            log=metric_info(metric).axis == "log" and _wide(yvals),
            room_top=room if not hib else 0.06,
            room_bottom=room if hib else 0.06,
        )
    _batch_axis(ax, batches)
    if base is not None and np.isfinite(float(base)):
        b0 = float(base)
        sec = ax.secondary_xaxis("top", functions=(lambda b: b / b0, lambda k: k * b0))
        sec.set_xscale("log", base=2)
        ks = [b / b0 for b in batches]
        sec.set_xticks(ks)
        sec.set_xticklabels([f"{k:g}" for k in ks])
        sec.xaxis.set_minor_locator(NullLocator())
        sec.set_xlabel(f"k = batch size / base batch size {int(b0)}")
    ax.set_ylabel(f"final {metric_label(metric, split)}")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(
        _title(
            task,
            f"final {split} {metric_info(metric).label} vs batch size",
            _first(g, "scale"),
            model_size,
        ),
        fontsize=12,
        loc="left",
    )
    ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
        title="policy: LR rule, warmup",
        title_fontsize=9,
        alignment="left",
    )
    fig.text(
        0.0, 0.0, "\n".join(notes), fontsize=8, color="#444444", ha="left", va="bottom", wrap=True
    )
    fig.get_layout_engine().set(h_pad=0.4)
    return fig


# --------------------------------------------------------------------------- figure b


def _eval_curve(m: pd.DataFrame | None, metric: str, split: str = "valid") -> pd.Series:
    """``epoch -> metric`` of one run's ``split`` evaluations (finite values only)."""
    if m is None or metric not in m.columns:
        return pd.Series(dtype=float)
    ev = m[(m["kind"] == "eval") & (m["split"] == split)][["epoch", metric]].dropna()
    ev = ev[np.isfinite(ev[metric].astype(float)) & (ev[metric].astype(float).abs() < 1e6)]
    ev = ev.assign(epoch=ev["epoch"].astype(float).round(4)).drop_duplicates("epoch", keep="last")
    return ev.set_index("epoch")[metric].astype(float).sort_index()


def _metrics_for(
    runs: pd.DataFrame, metrics: Mapping[str, pd.DataFrame] | None
) -> dict[str, pd.DataFrame]:
    out = dict(metrics or {})
    for rd in runs["run_dir"].dropna().unique():
        if rd not in out and Path(rd).is_dir():
            out[rd] = load_metrics(rd)
    return out


def _panel_title(ax, batch: int, rb: pd.DataFrame) -> None:
    k = rb["k"].dropna()
    ax.set_title(f"batch {batch}" + (f"  (k = {k.iloc[0]:g})" if len(k) else ""), fontsize=10)


def plot_curves(
    runs: pd.DataFrame,
    task: str | None = None,
    *,
    metrics: Mapping[str, pd.DataFrame] | None = None,
    styles: Mapping[str, Mapping[str, str]] | None = None,
    target: Target | None = None,
) -> Figure:
    """Validation metric vs epoch, one panel per batch size (shared y axis), one line per
    policy: the mean over seeds at each evaluation, with a min-max band over seeds. A diverged
    run is an 'x' at the top edge at the epoch where it stopped; ``target`` is a dotted line."""
    task, r = _one_task(runs, task)
    r = r[r["status"] != "failed"]
    metric = str(_first(r, "metric"))
    hib = bool(_first(r, "higher_is_better"))
    styles = styles or policy_styles(r["policy"])
    metrics = _metrics_for(r, metrics)
    batches = sorted(r["batch_size"].dropna().astype(int).unique())
    policies = ordered_policies(r["policy"])
    fig, axes = _grid(len(batches))
    yvals: list[float] = []
    max_epoch = 0.0
    any_div = False
    for ax, b in zip(axes, batches, strict=False):
        rb = r[r["batch_size"] == b]
        for p in policies:
            st = _style(styles, p)
            curves = []
            for _, run in rb[rb["policy"] == p].iterrows():
                m = metrics.get(run["run_dir"])
                c = _eval_curve(m, metric)
                if len(c):
                    curves.append(c)
                if m is not None and len(m):
                    max_epoch = max(max_epoch, float(np.nanmax(m["epoch"].to_numpy(float))))
                if run["status"] == "diverged":
                    any_div = True
                    stop = pd.to_numeric(pd.Series([run.get("epochs_done")]), errors="coerce")[0]
                    if not np.isfinite(stop) and m is not None and len(m):
                        stop = float(np.nanmax(m["epoch"].to_numpy(float)))
                    if np.isfinite(stop):
                        y_edge = 0.955 if not hib else 0.045
                        _edge_cross(ax, stop, y_edge, st["color"], mew=2.4, zorder=4)
            if not curves:
                continue
            wide = pd.concat(curves, axis=1).sort_index()
            ep = wide.index.to_numpy(float)
            y = _display(metric, wide.mean(axis=1))
            ax.plot(ep, y, color=st["color"], marker=st["marker"], ms=3.5, lw=1.6)
            if wide.shape[1] > 1:
                ax.fill_between(
                    ep,
                    _display(metric, wide.min(axis=1)),
                    _display(metric, wide.max(axis=1)),
                    color=st["color"],
                    alpha=0.18,
                    lw=0,
                )
            yvals.extend(y[np.isfinite(y)])
        _panel_title(ax, b, rb)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if target is not None:
            tv = float(_display(metric, [target.value])[0])
            ax.axhline(tv, color="black", lw=1.0, ls=":", zorder=1)
    if target is not None:
        yvals.append(float(_display(metric, [target.value])[0]))
    log = metric_info(metric).axis == "log" and _wide(yvals)
    ncols = axes[0].get_gridspec().ncols
    for i, ax in enumerate(axes[: len(batches)]):
        _set_ylim(
            ax,
            yvals,
            log=log,
            room_top=0.12 if not hib else 0.05,
            room_bottom=0.12 if hib else 0.05,
        )
        if max_epoch > 0:
            ax.set_xlim(0, max_epoch * 1.03)
        if i % ncols == 0:
            ax.set_ylabel(metric_label(metric, "valid", direction=False), fontsize=9)
        else:
            ax.tick_params(labelleft=False)
    handles, labels = _policy_handles(policies, styles)
    handles.append(Line2D([], [], color="#999999", lw=7, alpha=0.35))
    labels.append("band: min–max over seeds")
    if any_div:
        h, lab = _diverged_handle("diverged: x at the epoch it stopped")
        handles.append(h)
        labels.append(lab)
    if target is not None:
        handles.append(Line2D([], [], color="black", lw=1.0, ls=":"))
        labels.append(f"time-to-target goal: {target.label}")
    _legend_slot(fig, axes, len(batches), handles, labels, title="line: mean over seeds")
    fig.suptitle(
        _title(
            task,
            f"validation {metric_info(metric).label} during training",
            _first(r, "scale"),
            _first(r, "model_size"),
        ),
        x=0.01,
        ha="left",
        fontsize=12,
    )
    return fig


# --------------------------------------------------------------------------- figure c


def plot_lr_schedules(
    runs: pd.DataFrame,
    task: str | None = None,
    *,
    metrics: Mapping[str, pd.DataFrame] | None = None,
    styles: Mapping[str, Mapping[str, str]] | None = None,
    max_points: int = 1500,
) -> Figure:
    """The learning rate actually applied (the logged ``lr`` of every training step) vs epoch,
    one panel per batch size, one line per policy (one seed each: the schedule does not depend
    on it; a completed run when there is one). A dotted vertical line in the policy's colour
    marks where its warmup ends (``warmup_epochs``) when that is inside the training."""
    task, r = _one_task(runs, task)
    styles = styles or policy_styles(r["policy"])
    metrics = _metrics_for(r, metrics)
    batches = sorted(r["batch_size"].dropna().astype(int).unique())
    policies = ordered_policies(r["policy"])
    fig, axes = _grid(len(batches))
    rank = {"completed": 0, "running": 1, "diverged": 2, "failed": 3}
    max_epoch = 0.0
    opts = r["optimizer"].dropna().astype(str) if "optimizer" in r.columns else pd.Series([])
    primary = "sgd" if "sgd" in set(opts) else (opts.mode().iloc[0] if len(opts) else None)
    secondary: set[str] = set()
    for ax, b in zip(axes, batches, strict=False):
        rb = r[r["batch_size"] == b]
        twin = None
        for i, p in enumerate(policies):
            st = _style(styles, p)
            rp = rb[rb["policy"] == p]
            if rp.empty:
                continue
            opt = _first(rp, "optimizer")
            target_ax = ax
            if primary is not None and opt is not None and str(opt) != primary:
                # another optimizer's LR lives on another scale (Adam ~1e-3 vs SGD ~1)
                if twin is None:
                    twin = ax.twinx()
                    twin.set_ylabel(f"{opt} learning rate (right axis)", fontsize=8)
                target_ax = twin
                secondary.add(str(opt))
            order = rp.assign(_rank=rp["status"].map(rank).fillna(9)).sort_values(["_rank", "seed"])
            for _, run in order.iterrows():
                m = metrics.get(run["run_dir"])
                if m is None or "lr" not in m.columns:
                    continue
                tr = m[m["kind"] == "train"][["step", "epoch", "lr"]].dropna()
                if tr.empty:
                    continue
                # a row's epoch is where its step ends; its lr was applied from where it began
                spe = run.get("steps_per_epoch")
                if spe and spe == spe:
                    tr = tr.assign(epoch=(tr["step"] - 1) / float(spe))
                if len(tr) > max_points:
                    tr = tr.iloc[:: math.ceil(len(tr) / max_points)]
                max_epoch = max(max_epoch, float(tr["epoch"].max()))
                # earlier policies wider and underneath, so identical schedules stay visible
                lw = max(1.2, 3.6 - 0.8 * i)
                ls = "--" if target_ax is not ax else "-"
                target_ax.plot(tr["epoch"], tr["lr"], color=st["color"], lw=lw, ls=ls, zorder=2 + i)
                if run["status"] == "diverged":
                    target_ax.plot(
                        [tr["epoch"].iloc[-1]],
                        [tr["lr"].iloc[-1]],
                        ls="none",
                        marker="x",
                        ms=8,
                        mew=2.2,
                        color=st["color"],
                    )
                w = pd.to_numeric(pd.Series([run.get("warmup_epochs")]), errors="coerce")[0]
                epochs = pd.to_numeric(pd.Series([run.get("epochs")]), errors="coerce")[0]
                end = epochs if np.isfinite(epochs) else float(tr["epoch"].max())
                if np.isfinite(w) and 0 < w < end:
                    ax.axvline(w, color=st["color"], lw=1.0, ls=":")
                break
        _panel_title(ax, b, rb)
        ax.set_xlabel("epoch")
        ax.set_ylim(bottom=0)
        if twin is not None:
            twin.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    ncols = axes[0].get_gridspec().ncols
    for i, ax in enumerate(axes[: len(batches)]):
        if max_epoch > 0:
            ax.set_xlim(0, max_epoch * 1.03)
        if i % ncols == 0:
            ax.set_ylabel("learning rate", fontsize=9)
    handles, labels = _policy_handles(policies, styles)
    handles.append(Line2D([], [], color="#555555", lw=1.0, ls=":"))
    labels.append("end of warmup (policy colour)")
    if secondary:
        handles.append(Line2D([], [], color="#555555", lw=1.5, ls="--"))
        labels.append(f"dashed: {', '.join(sorted(secondary))} LR on the right axis")
    handles.append(Line2D([], [], color="none"))
    labels.append("identical schedules overlap (wider = listed first)")
    if (r["status"] == "diverged").any():
        h, lab = _diverged_handle("diverged: x where the run stopped")
        handles.append(h)
        labels.append(lab)
    _legend_slot(
        fig, axes, len(batches), handles, labels, title="LR of each step (own y scale per panel)"
    )
    fig.suptitle(
        _title(
            task,
            "learning-rate schedules actually applied",
            _first(r, "scale"),
            _first(r, "model_size"),
        ),
        x=0.01,
        ha="left",
        fontsize=12,
    )
    return fig


# --------------------------------------------------------------------------- figure d


def _time_unit(seconds: np.ndarray) -> tuple[float, str]:
    finite = seconds[np.isfinite(seconds)] if len(seconds) else seconds
    mx = float(finite.max()) if len(finite) else 0.0
    if mx >= 7200:
        return 3600.0, "h"
    if mx >= 180:
        return 60.0, "min"
    return 1.0, "s"


def plot_time_to_target(
    runs: pd.DataFrame,
    task: str | None = None,
    *,
    target: Target | None = None,
    metrics: Mapping[str, pd.DataFrame] | None = None,
    styles: Mapping[str, Mapping[str, str]] | None = None,
    ttt: pd.DataFrame | None = None,
) -> Figure:
    """Optimizer steps and wall time until the first validation evaluation meets ``target``
    (default: :func:`~legw_repro.analysis.collect.default_target`), vs batch size -- mean over
    the seeds that reached it, "r/N" when only some did, 'x' at the top when none did -- and the
    wall-time speedup over the base batch of the same policy, against the ideal k."""
    task, r = _one_task(runs, task)
    if target is None:
        target = default_target(r, task)
    styles = styles or policy_styles(r["policy"])
    if ttt is None:
        ttt = aggregate_time_to_target(time_to_target(r, target, _metrics_for(r, metrics)))
    g = ttt[ttt["task"] == task]
    policies = ordered_policies(g["policy"])
    batches = sorted(r["batch_size"].dropna().astype(int).unique())
    unit, uname = _time_unit(g["time_s_mean"].to_numpy(float))

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), layout="constrained")
    panels = (
        ("steps_mean", "steps_std", 1.0, "optimizer steps to target"),
        ("time_s_mean", "time_s_std", unit, f"wall time to target ({uname})"),
    )
    any_missing = False
    for ax, (col, scol, div, ylabel) in zip(axes[:2], panels, strict=True):
        yvals: list[float] = []
        for i, p in enumerate(policies):
            st = _style(styles, p)
            d = g[g["policy"] == p].sort_values("batch_size")
            y = d[col].to_numpy(float) / div
            e = d[scol].fillna(0.0).to_numpy(float) / div
            x, ok = _policy_line(ax, d["batch_size"].to_numpy(float), y, e, i, len(policies), st)
            yvals += list(y[ok] + e[ok]) + list(np.maximum(y[ok] - e[ok], y[ok] / 2))
            for xi, yi, (_, row) in zip(x, y, d.iterrows(), strict=True):
                nr, nt = int(row["n_reached"]), int(row["n_runs"])
                if nr == 0:
                    any_missing = True
                    _edge_cross(ax, xi, 0.96 - 0.05 * i, st["color"])
                elif nr < nt:
                    ax.annotate(
                        f"{nr}/{nt}",
                        (xi, yi),
                        xytext=(6, 2 + 10 * i),
                        textcoords="offset points",
                        fontsize=8,
                        color=st["color"],
                    )
        if col == "steps_mean":
            # perfect scaling from each policy's own base-batch steps: steps x base / batch
            bb = np.asarray(batches, float)
            for p in policies:
                base = g[
                    (g["policy"] == p)
                    & (g["batch_size"] == g["base_batch_size"])
                    & g["steps_mean"].notna()
                ]
                if len(base):
                    s0, b0 = float(base["steps_mean"].iloc[0]), float(base["batch_size"].iloc[0])
                    ideal = s0 * b0 / bb
                    ax.plot(
                        bb,
                        ideal,
                        color=_style(styles, p)["color"],
                        ls="--",
                        lw=1,
                        alpha=0.6,
                        zorder=1,
                    )
                    yvals += list(ideal)
        # room at the top for one row of "never reached" markers per policy
        frac = 0.05 * len(policies) + 0.04
        _set_ylim(ax, yvals, log=True, room_top=frac * 1.06 / (1 - frac) if any_missing else 0.06)
        _batch_axis(ax, batches)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_title(
        "optimizer steps (dashed: perfect scaling from the base batch, ∝ 1/k)", fontsize=10
    )
    axes[1].set_title("wall time (at the first evaluation meeting the target)", fontsize=10)

    ax = axes[2]
    yvals = [1.0]
    for i, p in enumerate(policies):
        st = _style(styles, p)
        d = g[g["policy"] == p].sort_values("batch_size")
        y = d["speedup_time"].to_numpy(float)
        x, ok = _policy_line(ax, d["batch_size"].to_numpy(float), y, None, i, len(policies), st)
        yvals += list(y[ok])
    ks = g[["batch_size", "k"]].dropna().drop_duplicates("batch_size").sort_values("batch_size")
    if len(ks):
        ax.plot(ks["batch_size"], ks["k"], color="black", ls="--", lw=1, alpha=0.7, zorder=1)
        yvals += list(ks["k"].astype(float))
    ax.axhline(1.0, color="#888888", lw=0.8)
    ax.set_yscale("log", base=2)
    v = np.asarray([y for y in yvals if np.isfinite(y) and y > 0])
    lo, hi = math.floor(math.log2(v.min())), math.ceil(math.log2(v.max()))
    ax.set_ylim(2.0**lo / 1.25, 2.0**hi * 1.25)
    ax.set_yticks([2.0**e for e in range(lo, hi + 1)])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
    ax.yaxis.set_minor_locator(NullLocator())
    _batch_axis(ax, batches)
    ax.set_ylabel("wall-time speedup vs base batch")
    ax.set_title("speedup over the base batch (dashed: ideal = k)", fontsize=10)
    ax.grid(True, alpha=0.3)

    handles, labels = _policy_handles(policies, styles)
    if any_missing:
        h, lab = _diverged_handle("target never reached (no seed)")
        handles.append(h)
        labels.append(lab)
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(5, len(labels)),
        frameon=False,
        fontsize=9,
    )
    fig.suptitle(
        _title(task, f"time to reach {target.label}", _first(r, "scale"), _first(r, "model_size"))
        + f"\ntarget: {target.description}.  Means over the seeds that reached it; "
        "r/N = seeds that reached it of the runs.",
        x=0.01,
        ha="left",
        fontsize=11,
    )
    return fig


# --------------------------------------------------------------------------- saving


def figure_stem(metric: str) -> str:
    return f"{metric}_vs_batch"


def save_figure(
    fig: Figure, out_dir: str | os.PathLike[str], stem: str, *, close: bool = True
) -> list[Path]:
    """Write ``<stem>.png`` (150 dpi) and ``<stem>.svg`` into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=FIG_DPI, bbox_inches="tight", metadata={"Software": None})
    # a fixed salt makes the SVG's element ids deterministic: regenerating a figure from the
    # same records leaves the committed file unchanged instead of rewriting every line
    with matplotlib.rc_context({"svg.hashsalt": "legw-repro"}):
        fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})
    if close:
        plt.close(fig)
    return paths


def make_figures(
    runs: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    task: str | None = None,
    *,
    agg: pd.DataFrame | None = None,
    target: Target | None = None,
    metrics: Mapping[str, pd.DataFrame] | None = None,
    styles: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Path]:
    """Draw and save the four figures for one task; return the paths written (PNG and SVG).
    The curves, schedules and time-to-target figures need local metrics.jsonl files and are
    skipped when no run has any."""
    task, r = _one_task(runs, task)
    agg = aggregate(r) if agg is None else agg[agg["task"] == task]
    styles = styles or policy_styles(r["policy"])
    metrics = _metrics_for(r, metrics)
    metric = str(_first(r, "metric"))
    paths = save_figure(
        plot_metric_vs_batch(agg, task, styles=styles), out_dir, figure_stem(metric)
    )
    have_metrics = any(len(m) for m in metrics.values())
    if not have_metrics:
        return paths
    if target is None:
        try:
            target = default_target(r, task)
        except Exception:  # noqa: BLE001 -- no completed base run: no target line
            target = None
    paths += save_figure(
        plot_curves(r, task, metrics=metrics, styles=styles, target=target), out_dir, "curves"
    )
    paths += save_figure(
        plot_lr_schedules(r, task, metrics=metrics, styles=styles), out_dir, "lr_schedules"
    )
    if target is not None:
        fig = plot_time_to_target(r, task, target=target, metrics=metrics, styles=styles)
        paths += save_figure(fig, out_dir, "time_to_target")
    return paths
