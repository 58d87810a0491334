"""Axes the figures share: the log2 batch-size axis, y ranges that keep the differences that
matter visible (log for wide perplexities, log of the error for accuracies next to a collapse),
one policy's line dodged sideways, and the 'x' for a point with no value."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from matplotlib import transforms
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, NullLocator

from legw_repro.analysis.metrics import Metric

MIN_LOG_RATIO = 2.5  # the narrowest log y range drawn, hi / lo: a round tick or two fall inside
ACC_TICKS = (0, 50, 80, 90, 95, 97, 98, 99, 99.5, 99.8, 99.9, 99.95)
_MANTISSAS = (
    (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8),
    (1, 1.2, 1.5, 2, 3, 5, 7),
    (1, 1.5, 2, 3, 5, 7),
    (1, 2, 5),
    (1, 3),
    (1,),
)


def batch_axis(ax: Axes, batches: Iterable[int], *, label: bool = True) -> None:
    b = sorted({int(x) for x in batches})
    ax.set_xscale("log", base=2)
    ax.set_xticks(b)
    ax.set_xticklabels([str(x) for x in b])
    ax.xaxis.set_minor_locator(NullLocator())
    if b:
        ax.set_xlim(b[0] / 1.35, b[-1] * 1.35)
    if label:
        ax.set_xlabel("global batch size (log₂ axis)")


def nice_log_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Round numbers (1, 1.5, 2, 3, 5, 7 x 10^n, thinned) spanning [lo, hi] on a log axis."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi <= lo:
        return []
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    for mant in _MANTISSAS:
        ticks = [t for t in (m * 10.0**e for e in decades for m in mant) if lo <= t <= hi]
        if len(ticks) <= max_ticks and len(ticks) >= 2:
            return ticks
    ticks = [10.0**e for e in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
    if len(ticks) >= 2:
        return ticks[:: max(1, math.ceil(len(ticks) / max_ticks))]
    # a range too narrow for any round number: its ends and middle, to the fewest significant
    # digits that keep two of them inside
    ends = (lo, math.sqrt(lo * hi), hi)
    for digits in range(2, 7):
        ticks = sorted({r for r in (float(f"{v:.{digits}g}") for v in ends) if lo <= r <= hi})
        if len(ticks) >= 2:
            break
    return ticks


def wide(values: Iterable[float], ratio: float = 2.5) -> bool:
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], float)
    return len(v) > 1 and v.max() / v.min() > ratio


def set_ylim(
    ax: Axes,
    values: Iterable[float],
    *,
    log: bool,
    room_top: float = 0.06,
    room_bottom: float = 0.06,
) -> None:
    """y limits covering ``values`` with some room (fractions of the span) at each end; on a
    log axis, round plain-number ticks, over at least a factor MIN_LOG_RATIO (a single value
    would leave a range with no tick to label)."""
    v = np.asarray([x for x in values if np.isfinite(x) and (x > 0 or not log)], float)
    if log:
        ax.set_yscale("log")
    if len(v) == 0:
        return
    lo, hi = float(v.min()), float(v.max())
    if not log:
        span = hi - lo if hi > lo else (abs(hi) * 0.1 or 1.0)
        ax.set_ylim(lo - span * room_bottom, hi + span * room_top)
        return
    span = hi / lo if hi > lo else 1.5
    lo, hi = lo / span**room_bottom, hi * span**room_top
    if hi / lo < MIN_LOG_RATIO:  # one value (one seed reached the target): room for round ticks
        widen = math.sqrt(MIN_LOG_RATIO * lo / hi)
        lo, hi = lo / widen, hi * widen
    ax.set_ylim(lo, hi)
    ticks = nice_log_ticks(lo, hi)
    if ticks:
        ax.set_yticks(ticks)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))


def _error_forward(y: Any) -> Any:
    return -np.log10(np.clip(100.0 - np.asarray(y, float), 1e-3, None))


def _error_inverse(t: Any) -> Any:
    return 100.0 - 10.0 ** (-np.asarray(t, float))


def wants_error_axis(metric: Metric, values: Iterable[float]) -> bool:
    """Percentages whose errors (100 - value) span more than 4x: a collapse next to ~99%."""
    return metric.axis == "error" and wide([100.0 - y for y in values if np.isfinite(y)], 4.0)


def set_error_ylim(
    ax: Axes, values: Iterable[float], *, room_top: float = 0.06, room_bottom: float = 0.06
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


def dodge(i: int, n: int, width: float = 0.05) -> float:
    """Multiplicative x offset so that policies at the same batch size do not overlap."""
    return 2.0 ** ((i - (n - 1) / 2.0) * width)


def policy_line(
    ax: Axes,
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
    x = np.asarray(batch, float) * dodge(i, n)
    ok = np.isfinite(y)
    line = {"color": st["color"], "marker": st["marker"], "ms": 6, "lw": 1.8} | kw
    if err is None:
        ax.plot(x[ok], y[ok], **line)
    else:
        ax.errorbar(x[ok], y[ok], yerr=err[ok], **({"capsize": 3} | line))
    return x, ok


def edge_cross(ax: Axes, x: float, y_axes: float, color: str, **kw: Any) -> None:
    """An 'x' at a fixed height in axes coordinates: a point with no value to plot (every seed
    diverged, or none reached the target) stays visible at the edge instead of vanishing."""
    tf = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    mark = {"ls": "none", "marker": "x", "ms": 9, "mew": 2.2, "color": color, "clip_on": False}
    ax.plot([x], [y_axes], transform=tf, **(mark | kw))


def note(
    ax: Axes, text: str, xy: tuple[float, float], offset: tuple[float, float], color: str, **kw: Any
) -> None:
    """A small coloured annotation ``offset`` points away from ``xy``."""
    ax.annotate(text, xy, xytext=offset, textcoords="offset points", fontsize=8, color=color, **kw)


def metric_ylim(
    ax: Axes, metric: Metric, values: list[float], *, room_top: float, room_bottom: float
) -> bool:
    """The y range of a metric's values, on the axis that shows them best (the metric's
    ``axis``: log of the error for a collapse next to ~100%, log for a wide range, else
    linear); returns whether the error axis was used."""
    if wants_error_axis(metric, values):
        set_error_ylim(ax, values, room_top=room_top, room_bottom=room_bottom)
        return True
    log = metric.axis == "log" and wide(values)
    set_ylim(ax, values, log=log, room_top=room_top, room_bottom=room_bottom)
    return False
