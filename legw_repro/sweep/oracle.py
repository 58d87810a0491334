"""The tuned-LR oracle: what per-batch tuning of the peak LR would have reached.

"No re-tuning needed" only means something next to the best a tuner could do.  At every batch
size the oracle keeps sqrt-LEGW's warmup rule and tries the peak LR ``sqrt-LEGW value * m`` for
multipliers ``m = 2**e`` (``e`` in -2..2 by default), picks the best on the VALIDATION metric
only (the test set is never looked at), widens the grid by one factor of 2 when the best sits
at an edge, and re-runs the winner with every seed.  The winning multipliers, plotted against
the batch size, are the suite's own measurement of the best LR scaling exponent.

Pure functions here; ``scripts/oracle.py`` runs the stages.  A run's multiplier is
``policy.lr_multiplier`` (configs/policy/tuned.yaml), recorded in summary.json.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: the first grid, as exponents of 2 around the sqrt-LEGW value
DEFAULT_EXPONENTS: tuple[int, ...] = (-2, -1, 0, 1, 2)
#: how far the grid may grow past its first edges (each step one factor of 2)
MAX_WIDEN = 2


@dataclass(frozen=True)
class Trial:
    """One search run's outcome at one batch size (seed 0)."""

    exponent: int
    status: str  # "completed" | "diverged" | "failed" | "running" | None
    valid: float | None  # the final validation metric, None if not reached


def multiplier(exponent: int) -> float:
    return 2.0**exponent


def score(trial: Trial, higher_is_better: bool) -> float:
    """Larger is better; a diverged, failed or unfinished run ranks below every finished one."""
    if trial.status != "completed" or trial.valid is None or not math.isfinite(trial.valid):
        return -math.inf
    return trial.valid if higher_is_better else -trial.valid


def best(trials: Iterable[Trial], higher_is_better: bool) -> Trial | None:
    """The best finished trial by validation metric (ties: the smaller LR, the safer one)."""
    done = [t for t in trials if score(t, higher_is_better) > -math.inf]
    if not done:
        return None
    return max(done, key=lambda t: (score(t, higher_is_better), -t.exponent))


def next_exponent(
    trials: Iterable[Trial], higher_is_better: bool, first: tuple[int, ...] = DEFAULT_EXPONENTS
) -> int | None:
    """The exponent still to try at this batch size, or None when the search is over.

    First the whole initial grid; then, while the best sits at an edge of what was tried and
    the grid has grown by less than MAX_WIDEN on that side, one more factor of 2 past it.
    """
    trials = list(trials)
    tried = {t.exponent for t in trials}
    missing = [e for e in first if e not in tried]
    if missing:
        return missing[0]
    if any(t.status not in ("completed", "diverged", "failed") for t in trials):
        return None  # an unfinished trial: decide once it is done
    top = best(trials, higher_is_better)
    if top is None:  # everything diverged: try smaller rates
        lo = min(tried) - 1
        return lo if lo >= min(first) - MAX_WIDEN else None
    if top.exponent == max(tried) and top.exponent < max(first) + MAX_WIDEN:
        return top.exponent + 1
    if top.exponent == min(tried) and top.exponent > min(first) - MAX_WIDEN:
        return top.exponent - 1
    return None


def trials_from_summaries(
    summaries: Iterable[Mapping[str, Any]], metric: str, batch_size: int
) -> list[Trial]:
    """The search runs of one batch size, read from their summary.json dicts."""
    out = []
    for s in summaries:
        if int(s.get("batch_size", -1)) != batch_size:
            continue
        m = float(s.get("lr_multiplier", 1.0))
        out.append(
            Trial(
                exponent=round(math.log2(m)),
                status=s.get("status"),
                valid=(s.get("final") or {}).get(f"valid_{metric}"),
            )
        )
    return out
