"""LEGW's two rules: how the peak learning rate and the warmup length grow with k.

``k = batch_size / base_batch_size``.  The peak is ``base_lr * peak_factor(rule, k)``: sqrt(k)
(Sqrt Scaling, LEGW), k (Goyal et al.'s linear scaling) or 1 (none).  The warmup lasts
``warmup_length(warmup, warmup_epochs, k)`` epochs: ``warmup_epochs * k`` under LEGW (the same
number of *steps* at every batch size), ``warmup_epochs`` under "fixed".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from legw_repro.schedule.decays import real

if TYPE_CHECKING:  # annotations only: spec.py imports this module
    from legw_repro.schedule.spec import ScheduleSpec

RULES: tuple[str, ...] = ("sqrt", "linear", "none")
WARMUPS: tuple[str, ...] = ("legw", "fixed")


def peak_factor(rule: str, k: float) -> float:
    """The factor the peak LR gets at k times the base batch."""
    return {"sqrt": math.sqrt(k), "linear": k, "none": 1.0}[rule]


def warmup_length(warmup: str, warmup_epochs: float, k: float) -> float:
    """The warmup actually used, in epochs (W in the package docstring)."""
    return warmup_epochs * k if warmup == "legw" else warmup_epochs


def checked_numbers(spec: ScheduleSpec) -> tuple[float, float, float, float]:
    """Validated (base_lr, k, epochs, warmup_epochs) of a spec."""
    lr0 = real("base_lr", spec.base_lr)
    if lr0 < 0.0:
        raise ValueError(f"base_lr must be >= 0, got {spec.base_lr!r}")
    b0 = real("base_batch_size", spec.base_batch_size)
    if b0 <= 0.0:
        raise ValueError(f"base_batch_size must be positive, got {spec.base_batch_size!r}")
    b = real("batch_size", spec.batch_size)
    if b <= 0.0:
        raise ValueError(f"batch_size must be positive, got {spec.batch_size!r}")
    k = b / b0
    if not (k > 0.0 and math.isfinite(k)):
        raise ValueError(f"k = batch_size / base_batch_size = {k!r} must be positive and finite")
    n_epochs = real("epochs", spec.epochs)
    if n_epochs <= 0.0:
        raise ValueError(f"epochs must be > 0, got {spec.epochs!r}")
    w0 = real("warmup_epochs", spec.warmup_epochs)
    if w0 < 0.0:
        raise ValueError(f"warmup_epochs must be >= 0 (0 = no warmup), got {spec.warmup_epochs!r}")
    return lr0, k, n_epochs, w0
