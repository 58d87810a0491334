"""The figures of one task (PNG and SVG): they draw prepared tables and compute nothing.

Every figure uses the same colour and marker for a policy, a log2 batch-size axis labelled with
the batch sizes themselves, and says the task and the scale in its title (see
:mod:`legw_repro.analysis.figure`). :func:`draw_figures` draws all four, :func:`make_figures`
also saves them:

* ``<metric>_vs_batch`` -- final metric vs batch size, one line per policy (the paper's figure);
* ``curves`` -- validation metric vs epoch, one panel per batch size;
* ``lr_schedules`` -- the learning rate actually applied vs epoch, one panel per batch size;
* ``time_to_target`` -- optimizer steps and wall time to a validation target, and speedup.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import transforms
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.axes import (
    batch_axis,
    edge_cross,
    metric_ylim,
    note,
    policy_line,
    set_ylim,
    wide,
)
from legw_repro.analysis.figure import (
    Legend,
    Styles,
    Subject,
    epoch_grid,
    epoch_panels,
    new_figure,
    policy_styles,
    save_figure,
    style,
    subject_of,
    suptitle,
)
from legw_repro.analysis.frames import first, ordered_policies
from legw_repro.analysis.history import load_all_metrics
from legw_repro.analysis.metrics import Metric
from legw_repro.analysis.oracle_view import oracle_gaps, plot_tuned_lr
from legw_repro.analysis.prepare import curve_frames, ideal_steps, lr_curves
from legw_repro.analysis.references import references_for
from legw_repro.analysis.target import Target, aggregate_time_to_target, time_to_target


def metric_label(metric: Metric, split: str | None = None, *, direction: bool = True) -> str:
    text = f"{split} {metric.label}" if split else metric.label
    return text + (f" ({metric.direction})" if direction else "")


# --------------------------------------------------------------------------- metric vs batch


def _batch_means(ax: Axes, g: pd.DataFrame, metric: Metric, styles: Styles) -> tuple[list, bool]:
    """Each policy's mean ± std over seeds vs batch size; a configuration whose seeds all
    diverged is an 'x' at the worse edge with d/N, a partly diverged one says so. Returns the
    y values drawn and whether any configuration diverged entirely."""
    hib = metric.higher_is_better
    edge_y = 0.045 if hib else 0.955
    edge_tf = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    policies, yvals, any_diverged = ordered_policies(g["policy"]), [], False
    for i, p in enumerate(policies):
        st = style(styles, p)
        d = g[g["policy"] == p].sort_values("batch_size")
        y, err = metric.display(d["mean"]), metric.display(d["std"].fillna(0.0))
        batch = d["batch_size"].to_numpy(float)
        line = {"ms": 6.5, "lw": 1.9, "capsize": 3.5, "elinewidth": 1.2, "zorder": 3}
        x, ok = policy_line(ax, batch, y, err, i, len(policies), st, **line)
        yvals += list(y[ok] - err[ok]) + list(y[ok] + err[ok])
        for xi, yi, (_, row) in zip(x, y, d.iterrows(), strict=True):
            nd, nr = int(row.get("n_diverged", 0) or 0), int(row.get("n_runs", 0) or 0)
            if not np.isfinite(yi) and nd > 0:
                any_diverged = True
                edge_cross(ax, xi, edge_y, st["color"], ms=11, mew=2.8, zorder=4)
                at, off = (xi, edge_y), (0, -15 if not hib else 9)
                note(ax, f"{nd}/{nr}", at, off, st["color"], xycoords=edge_tf, ha="center")
            elif np.isfinite(yi) and nd > 0:
                off = (-8, 6 if not hib else -13)
                note(ax, f"{nd}/{nr} diverged", (xi, yi), off, st["color"], ha="right")
    return yvals, any_diverged


def _references(ax: Axes, s: Subject, split: str, legend: Legend, yvals: list) -> list[str]:
    """Published results for the runs' model size as dashed lines; returns the caption notes."""
    m, dashes = s.metric, [(6, 3), (2, 2), (8, 2, 2, 2)]
    refs = [r for r in references_for(s.task, m.name, s.model_size) if r.split == split]
    for j, r in enumerate(refs):
        v = float(m.display([r.value])[0])
        yvals.append(v)
        line = ax.axhline(v, color="black", lw=1.1, dashes=dashes[j % 3], zorder=1, alpha=0.8)
        legend.add(line, f"{r.label}: {r.value:g} {split} {m.name} (batch {r.batch_size})")
    if refs:
        return [f"Dashed lines: published results, {'; '.join(sorted({r.source for r in refs}))}."]
    if published := [r for r in references_for(s.task, m.name) if r.split == split]:
        sizes = ", ".join(f"{r.model_size} {r.value:g}" for r in published)
        return [
            f"No published reference for model size '{s.model_size}' (published {split} "
            f"{m.name} at batch {published[0].batch_size}: {sizes}; {published[0].source})."
        ]
    return []


def _k_axis(ax: Axes, base: object, batches: list[int]) -> None:
    """k = batch / base batch on the top axis."""
    if base is None or not np.isfinite(float(base)):
        return
    b0 = float(base)
    sec = ax.secondary_xaxis("top", functions=(lambda b: b / b0, lambda k: k * b0))
    sec.set_xscale("log", base=2)
    ks = [b / b0 for b in batches]
    sec.set_xticks(ks)
    sec.set_xticklabels([f"{k:g}" for k in ks])
    sec.xaxis.set_minor_locator(NullLocator())
    sec.set_xlabel(f"k = batch size / base batch size {int(b0)}")


def plot_metric_vs_batch(
    agg: pd.DataFrame, task: str | None = None, *, styles: Styles | None = None, references=True
) -> Figure:
    """Final headline metric (mean ± std over seeds) vs batch size, one line per policy, from
    :func:`~legw_repro.analysis.aggregate.aggregate`'s table (or summary.csv read back). A
    configuration where every seed diverged is an 'x' at the worse edge labelled d/N; a partly
    diverged one carries a "d/N diverged" note. Published reference results (PTB: Zaremba et
    al. 2014, batch 20) are dashed horizontal lines."""
    s, g = subject_of(agg, task)
    m, split = s.metric, str(first(g, "split") or "test")
    styles = styles or policy_styles(g["policy"])
    batches = sorted(g["batch_size"].astype(int).unique())
    fig, ax = new_figure((11, 5.8))
    legend = Legend(ordered_policies(g["policy"]), styles, lw=1.9, ms=6)
    yvals, any_diverged = _batch_means(ax, g, m, styles)
    if any_diverged:
        legend.diverged("all seeds diverged: x at the edge, d/N = diverged/runs")
    notes = [
        f"Points: mean over seeds of the final {split} {m.label}; error bars: ±1 std over seeds "
        "(ddof=1); policies are offset slightly along x so that they do not hide each other."
    ]
    notes += _references(ax, s, split, legend, yvals) if references else []
    room = 0.16 if any_diverged else 0.06  # the worse edge holds the diverged 'x' marks
    top, bottom = (0.06, room) if m.higher_is_better else (room, 0.06)
    if metric_ylim(ax, m, yvals, room_top=top, room_bottom=bottom):
        notes.append(
            "The y axis is logarithmic in the error (100 − accuracy), so that differences "
            "near 99% stay visible next to a collapse."
        )
    batch_axis(ax, batches)
    _k_axis(ax, first(g, "base_batch_size"), batches)
    ax.set_ylabel(f"final {metric_label(m, split)}")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(s.title(f"final {split} {m.label} vs batch size"), fontsize=12, loc="left")
    ax.legend(
        legend.handles,
        legend.labels,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
        title="policy: LR rule, warmup",
        title_fontsize=9,
        alignment="left",
    )
    fig.text(0, 0, "\n".join(notes), fontsize=8, color="#444444", ha="left", va="bottom", wrap=True)
    fig.get_layout_engine().set(h_pad=0.4)
    return fig


# --------------------------------------------------------------------------- histories


def plot_curves(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    ends: pd.DataFrame,
    task: str | None = None,
    *,
    styles: Styles | None = None,
    target: Target | None = None,
) -> Figure:
    """Validation metric vs epoch (``curves`` and ``ends`` from
    :func:`~legw_repro.analysis.prepare.curve_frames`), one panel per batch size of the runs
    that did not fail (shared y axis), one line per policy: the mean over seeds with a min-max
    band. A diverged run is an 'x' at the worse edge at the epoch where it stopped; ``target``
    is a dotted line."""
    s, r = subject_of(runs, task)
    r, m = r[r["status"] != "failed"], s.metric
    styles = styles or policy_styles(r["policy"])
    policies = ordered_policies(r["policy"])
    goal = [] if target is None else [float(m.display([target.value])[0])]
    fig, axes, batches = epoch_grid(r)
    yvals: list[float] = []
    for ax, b in zip(axes, batches, strict=False):
        for p in policies:
            st = style(styles, p)
            stops = ends[(ends["batch_size"] == b) & (ends["policy"] == p)]
            for stop in stops.loc[stops["status"] == "diverged", "stop"]:
                if np.isfinite(stop):
                    y_edge = 0.955 if not m.higher_is_better else 0.045
                    edge_cross(ax, stop, y_edge, st["color"], mew=2.4, zorder=4)
            c = curves[(curves["batch_size"] == b) & (curves["policy"] == p)]
            if c.empty:
                continue
            ep, y = c["epoch"].to_numpy(float), m.display(c["mean"])
            ax.plot(ep, y, color=st["color"], marker=st["marker"], ms=3.5, lw=1.6)
            if c["n"].iloc[0] > 1:
                lo, hi = m.display(c["min"]), m.display(c["max"])
                ax.fill_between(ep, lo, hi, color=st["color"], alpha=0.18, lw=0)
            yvals.extend(y[np.isfinite(y)])
        for v in goal:
            ax.axhline(v, color="black", lw=1.0, ls=":", zorder=1)
    yvals += goal
    top, bottom = (0.05, 0.12) if m.higher_is_better else (0.12, 0.05)
    for ax in axes[: len(batches)]:
        log = m.axis == "log" and wide(yvals)
        set_ylim(ax, yvals, log=log, room_top=top, room_bottom=bottom)
    max_epoch = ends["end"].max()  # NaN (no history at all): no common x range
    ylabel = metric_label(m, "valid", direction=False)
    epoch_panels(axes, len(batches), max_epoch, ylabel, inner_labels=False)
    legend = Legend(policies, styles)
    legend.line("band: min–max over seeds", color="#999999", lw=7, alpha=0.35)
    if (r["status"] == "diverged").any():
        legend.diverged("diverged: x at the epoch it stopped")
    if target is not None:
        legend.line(f"time-to-target goal: {target.label}", color="black", lw=1.0, ls=":")
    legend.in_slot(fig, axes, len(batches), title="line: mean over seeds")
    suptitle(fig, s.title(f"validation {m.label} during training"))
    return fig


def plot_lr_schedules(
    runs: pd.DataFrame,
    lines: pd.DataFrame,
    task: str | None = None,
    *,
    styles: Styles | None = None,
) -> Figure:
    """The learning rate actually applied (``lines`` from
    :func:`~legw_repro.analysis.prepare.lr_curves`) vs epoch, one panel per batch size, one
    line per policy; another optimizer's LR (Adam's ~1e-3 next to SGD's ~1) is dashed on a
    right-hand axis. A dotted vertical line in the policy's colour marks its end of warmup."""
    s, r = subject_of(runs, task)
    styles = styles or policy_styles(r["policy"])
    policies = ordered_policies(r["policy"])
    fig, axes, batches = epoch_grid(r)
    secondary: set[str] = set()
    for ax, b in zip(axes, batches, strict=False):
        twin = None
        for i, p in enumerate(policies):
            c, st = lines[(lines["batch_size"] == b) & (lines["policy"] == p)], style(styles, p)
            if c.empty:
                continue
            on = ax
            if c["secondary"].iloc[0]:
                opt = str(c["optimizer"].iloc[0])
                if twin is None:
                    twin = ax.twinx()
                    twin.set_ylabel(f"{opt} learning rate (right axis)", fontsize=8)
                on = twin
                secondary.add(opt)
            # earlier policies wider and underneath, so identical schedules stay visible
            lw, ls = max(1.2, 3.6 - 0.8 * i), "--" if on is not ax else "-"
            on.plot(c["epoch"], c["lr"], color=st["color"], lw=lw, ls=ls, zorder=2 + i)
            if c["status"].iloc[0] == "diverged":
                last = {"ls": "none", "marker": "x", "ms": 8, "mew": 2.2, "color": st["color"]}
                on.plot([c["epoch"].iloc[-1]], [c["lr"].iloc[-1]], **last)
            if np.isfinite(c["warmup_end"].iloc[0]):
                ax.axvline(c["warmup_end"].iloc[0], color=st["color"], lw=1.0, ls=":")
        ax.set_ylim(bottom=0)
        if twin is not None:
            twin.set_ylim(bottom=0)
    max_epoch = float(lines["epoch"].max()) if len(lines) else 0.0
    epoch_panels(axes, len(batches), max_epoch, "learning rate")
    legend = Legend(policies, styles)
    legend.line("end of warmup (policy colour)", color="#555555", lw=1.0, ls=":")
    if secondary:
        label = f"dashed: {', '.join(sorted(secondary))} LR on the right axis"
        legend.line(label, color="#555555", lw=1.5, ls="--")
    legend.line("identical schedules overlap (wider = listed first)", color="none")
    if (r["status"] == "diverged").any():
        legend.diverged("diverged: x where the run stopped")
    legend.in_slot(fig, axes, len(batches), title="LR of each step (own y scale per panel)")
    suptitle(fig, s.title("learning-rate schedules actually applied"))
    return fig


# --------------------------------------------------------------------------- time to target


def _time_unit(seconds: np.ndarray) -> tuple[float, str]:
    finite = seconds[np.isfinite(seconds)] if len(seconds) else seconds
    mx = float(finite.max()) if len(finite) else 0.0
    return (3600.0, "h") if mx >= 7200 else (60.0, "min") if mx >= 180 else (1.0, "s")


def _to_target_panel(
    ax: Axes, g: pd.DataFrame, cols: tuple[str, str], div: float, styles: Styles
) -> tuple[list[float], bool]:
    """Mean ± std of ``cols`` (steps or time) over the seeds that reached the target vs batch
    size; "r/N" where only some did, an 'x' at the top where none did. Returns the y values
    and whether some configuration never reached it."""
    policies, yvals, missing = ordered_policies(g["policy"]), [], False
    for i, p in enumerate(policies):
        st = style(styles, p)
        d = g[g["policy"] == p].sort_values("batch_size")
        y, e = d[cols[0]].to_numpy(float) / div, d[cols[1]].fillna(0.0).to_numpy(float) / div
        x, ok = policy_line(ax, d["batch_size"].to_numpy(float), y, e, i, len(policies), st)
        yvals += list(y[ok] + e[ok]) + list(np.maximum(y[ok] - e[ok], y[ok] / 2))
        for xi, yi, nr, nt in zip(x, y, d["n_reached"], d["n_runs"], strict=True):
            if int(nr) == 0:
                missing = True
                edge_cross(ax, xi, 0.96 - 0.05 * i, st["color"])
            elif nr < nt:
                note(ax, f"{int(nr)}/{int(nt)}", (xi, yi), (6, 2 + 10 * i), st["color"])
    return yvals, missing


def _speedup_panel(ax: Axes, g: pd.DataFrame, batches: list[int], styles: Styles) -> None:
    """Wall-time speedup over the base batch of the same policy, against the ideal k."""
    policies, yvals = ordered_policies(g["policy"]), [1.0]
    for i, p in enumerate(policies):
        d = g[g["policy"] == p].sort_values("batch_size")
        y = d["speedup_time"].to_numpy(float)
        batch = d["batch_size"].to_numpy(float)
        x, ok = policy_line(ax, batch, y, None, i, len(policies), style(styles, p))
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
    batch_axis(ax, batches)
    ax.set_ylabel("wall-time speedup vs base batch")
    ax.set_title("speedup over the base batch (dashed: ideal = k)", fontsize=10)
    ax.grid(True, alpha=0.3)


def plot_time_to_target(
    runs: pd.DataFrame,
    tta: pd.DataFrame,
    target: Target,
    task: str | None = None,
    *,
    styles: Styles | None = None,
) -> Figure:
    """Optimizer steps and wall time until the first validation evaluation meets ``target``
    (``tta``: :func:`~legw_repro.analysis.target.aggregate_time_to_target`) vs batch size --
    mean over the seeds that reached it, "r/N" when only some did, 'x' at the top when none did
    -- and the wall-time speedup over the base batch of the same policy, against the ideal k."""
    s, r = subject_of(runs, task)
    styles = styles or policy_styles(r["policy"])
    g = tta[tta["task"] == s.task]
    batches = sorted(r["batch_size"].dropna().astype(int).unique())
    unit, uname = _time_unit(g["time_s_mean"].to_numpy(float))
    fig = Figure(figsize=(16, 5.2), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        (("steps_mean", "steps_std"), 1.0, "optimizer steps to target"),
        (("time_s_mean", "time_s_std"), unit, f"wall time to target ({uname})"),
    )
    for ax, (cols, div, ylabel) in zip(axes[:2], panels, strict=True):
        yvals, missing = _to_target_panel(ax, g, cols, div, styles)
        if cols[0] == "steps_mean":  # perfect scaling from each policy's own base batch
            ideal = ideal_steps(g, batches)
            for p, d in ideal.groupby("policy", sort=False):
                color = style(styles, p)["color"]
                ax.plot(
                    d["batch_size"], d["steps"], color=color, ls="--", lw=1, alpha=0.6, zorder=1
                )
            yvals += list(ideal["steps"])
        # room at the top for one row of "never reached" markers per policy
        frac = 0.05 * g["policy"].nunique() + 0.04
        top = frac * 1.06 / (1 - frac) if missing else 0.06
        set_ylim(ax, yvals, log=True, room_top=top)
        batch_axis(ax, batches)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_title(
        "optimizer steps (dashed: perfect scaling from the base batch, ∝ 1/k)", fontsize=10
    )
    axes[1].set_title("wall time (at the first evaluation meeting the target)", fontsize=10)
    _speedup_panel(axes[2], g, batches, styles)
    legend = Legend(ordered_policies(g["policy"]), styles)
    if missing:
        legend.diverged("target never reached (no seed)")
    legend.below(fig, 5, fontsize=9)
    suptitle(
        fig,
        s.title(f"time to reach {target.label}")
        + f"\ntarget: {target.description}.  Means over the seeds that reached it; "
        "r/N = seeds that reached it of the runs.",
        fontsize=11,
    )
    return fig


# --------------------------------------------------------------------------- all four


def draw_figures(
    runs: pd.DataFrame,
    task: str | None = None,
    *,
    agg: pd.DataFrame | None = None,
    metrics: Mapping[str, pd.DataFrame] | None = None,
    target: Target | None = None,
    tta: pd.DataFrame | None = None,
    styles: Styles | None = None,
) -> dict[str, Figure]:
    """One task's figures by file stem. The histories (``metrics``: run_dir -> frame, read
    from the run dirs when not given) feed the curves, the schedules and -- with a ``target``
    -- the time to target (``tta``, computed when not given); without any history only the
    metric-vs-batch figure is drawn."""
    s, r = subject_of(runs, task)
    agg = aggregate(r) if agg is None else agg[agg["task"] == s.task]
    styles = styles or policy_styles(r["policy"])
    metrics = load_all_metrics(r) if metrics is None else metrics
    figs = {f"{s.metric.name}_vs_batch": plot_metric_vs_batch(agg, s.task, styles=styles)}
    if not oracle_gaps(agg).empty:
        figs["tuned_lr"] = plot_tuned_lr(agg, styles)
    if not any(len(m) for m in metrics.values()):
        return figs
    curves, ends = curve_frames(r, metrics, s.metric.name)
    figs["curves"] = plot_curves(r, curves, ends, s.task, styles=styles, target=target)
    figs["lr_schedules"] = plot_lr_schedules(r, lr_curves(r, metrics), s.task, styles=styles)
    if target is not None:
        if tta is None:
            tta = aggregate_time_to_target(time_to_target(r, target, metrics))
        figs["time_to_target"] = plot_time_to_target(r, tta, target, s.task, styles=styles)
    return figs


def make_figures(
    runs: pd.DataFrame, out_dir: str | os.PathLike[str], task: str | None = None, **kw: object
) -> list[Path]:
    """:func:`draw_figures` saved into ``out_dir`` as PNG and SVG; returns the paths written."""
    figs = draw_figures(runs, task, **kw)  # type: ignore[arg-type]
    return [p for stem, fig in figs.items() for p in save_figure(fig, out_dir, stem)]
