"""The metric registry: what the analysis knows about a task's headline metric, in one place.

A task names its metric in its run records (``metric`` in summary.json, ``<split>_<metric>`` in
``final``); tables, report and figures look everything else up here: the words on an axis,
which direction is better, how a value is printed, which y axis keeps the differences that
matter visible, how far the default time-to-target goal is relaxed, and the chance level. A new
task whose metric is not listed adds one ``Metric(...)`` to :data:`METRICS` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from legw_repro.analysis import AnalysisError


@dataclass(frozen=True)
class Metric:
    """One headline metric. ``percent``: a fraction in [0, 1] shown as a percentage (tables,
    axes, gaps in points). ``axis``: ``log`` when the values span a wide range (perplexities
    of diverging runs), ``error`` (log of 100 - value) when a collapse to chance sits next to
    values near 100%, else ``linear``. ``tolerance``: how far the default time-to-target goal
    lies from the base batch's best value, ``relative`` to it or in absolute units (accuracy
    points are absolute: 1% of 99% is a whole point). ``chance``: what guessing scores, where
    the metric alone fixes it (accuracy's depends on the number of classes)."""

    name: str
    label: str
    higher_is_better: bool
    percent: bool = False
    axis: Literal["linear", "log", "error"] = "linear"
    tolerance: float = 0.01
    relative: bool = True
    chance: float | None = None

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def display(self, values: Any) -> np.ndarray:
        """Values as drawn (a percentage for ``percent`` metrics)."""
        return np.asarray(values, dtype=float) * (100.0 if self.percent else 1.0)

    def format(self, value: float) -> str:
        """A table cell: ``98.81%`` or ``114.50``."""
        return f"{self.display(value):.2f}" + ("%" if self.percent else "")

    def format_spread(self, value: float) -> str:
        """A standard deviation next to :meth:`format` (the unit is already there)."""
        return f"{self.display(value):.2f}"

    def format_gap(self, gap: float, gap_pct: float) -> str:
        """A difference to the base batch: in points for a percentage, else also relative."""
        if self.percent:
            return f"{self.display(gap):+.2f} pt"
        return f"{gap:+.2f} ({gap_pct:+.1f}%)"

    def format_short(self, value: float) -> str:
        """A goal or a best value in running text: ``98.31%`` or ``105.04``."""
        return f"{self.display(value):.2f}%" if self.percent else f"{value:.4g}"

    def parse(self, value: float) -> float:
        """A value given on the command line: a percentage may be given in percent."""
        return float(value) / 100.0 if self.percent and float(value) > 1.0 else float(value)

    def relax(self, best: float, tolerance: float | None = None) -> tuple[float, str]:
        """The time-to-target goal ``tolerance`` short of ``best`` and how that is said."""
        tol = self.tolerance if tolerance is None else float(tolerance)
        sign = -1.0 if self.higher_is_better else 1.0
        if self.relative:
            return best * (1.0 + sign * tol), f"{100 * tol:g}%"
        return best + sign * tol, f"{100 * tol:g} pt"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("ppl", "perplexity", higher_is_better=False, axis="log"),
        Metric(
            "acc", "accuracy (%)", True, percent=True, axis="error", tolerance=0.005, relative=False
        ),
        Metric("bleu", "BLEU", higher_is_better=True, chance=0.0),  # sacreBLEU, 0-100
    )
}


def metric_info(name: Any) -> Metric:
    """The registered metric called ``name``; an unknown one is an :class:`AnalysisError` that
    says where to declare it."""
    if str(name) in METRICS:
        return METRICS[str(name)]
    raise AnalysisError(
        f"metric {name!r} is not in the registry ({', '.join(METRICS)}); "
        "declare it in legw_repro/analysis/metrics.py"
    )
