"""Decay factors d(x) for legw_repro.schedule, and the argument checks both modules share.

Every parameter is in epochs, so a decay means the same at every batch size::

    constant     d = 1
    exponential  d = 1                                   for x < start_epoch
                 d = gamma ** (x - start_epoch)          staircase=False
                 d = gamma ** floor(x - start_epoch)     staircase=True
    polynomial   d = end_factor + (1 - end_factor) * (1 - x / horizon) ** power
    cosine       d = end_factor + (1 - end_factor) * 0.5 * (1 + cos(pi * x / horizon))
    multistep    d = gamma ** (number of milestones m with m <= x)

``horizon`` is the budget (``epochs``) except under the ``shifted`` hand-over, where the decay
runs over what is left after the warmup.  Parameters are validated against the budget in every
form, so one recipe is valid or invalid regardless of the hand-over.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

# Decay name -> {parameter: default}.  A default of REQUIRED means the caller must give it:
# there is no value that is sensible for every task (a per-epoch factor, a list of epochs).
REQUIRED = object()
DECAY_PARAMS: dict[str, dict[str, Any]] = {
    "constant": {},
    "exponential": {"gamma": REQUIRED, "start_epoch": 0.0, "staircase": False},
    "polynomial": {"power": 1.0, "end_factor": 0.0},
    "cosine": {"end_factor": 0.0},
    "multistep": {"milestones": REQUIRED, "gamma": 0.1},
}
DECAYS: tuple[str, ...] = tuple(DECAY_PARAMS)


def real(name: str, value: Any) -> float:
    """Return value as a finite float, or raise ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")
    return value


def gamma_arg(name: str, value: Any, decay: str) -> float:
    g = real(name, value)
    if not 0.0 < g <= 1.0:
        raise ValueError(
            f"{name}={value!r} for decay={decay!r} must lie in (0, 1] "
            "(it multiplies the learning rate; > 1 would grow it, <= 0 would zero or flip it)"
        )
    return g


def end_factor_arg(value: Any, decay: str) -> float:
    f = real("end_factor", value)
    if not 0.0 <= f <= 1.0:
        raise ValueError(
            f"end_factor={value!r} for decay={decay!r} must lie in [0, 1] "
            "(the final LR as a fraction of the peak)"
        )
    return f


def make_decay(
    decay: str, epochs: float, params: Mapping[str, Any], horizon: float | None = None
) -> Callable[[float], float]:
    """Validate the decay parameters (in epochs, against the budget ``epochs``) and return d(e).

    ``horizon`` is the length over which decays defined by the budget (polynomial, cosine)
    run: ``epochs`` normally, ``epochs - W`` when the decay's clock starts at the warmup's end.
    """
    horizon = epochs if horizon is None else horizon
    allowed = DECAY_PARAMS[decay]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        hint = f"allowed: {sorted(allowed)}" if allowed else "it takes no parameters"
        raise ValueError(f"unknown decay parameter(s) {unknown} for decay={decay!r}; {hint}")
    missing = sorted(n for n, d in allowed.items() if d is REQUIRED and n not in params)
    if missing:
        raise ValueError(f"decay={decay!r} requires parameter(s) {missing}")
    p = {**allowed, **params}

    if decay == "constant":
        return lambda e: 1.0

    if decay == "exponential":
        gamma = gamma_arg("gamma", p["gamma"], decay)
        start = real("start_epoch", p["start_epoch"])
        if not 0.0 <= start <= epochs:
            raise ValueError(
                f"start_epoch={p['start_epoch']!r} must lie in [0, epochs={epochs:g}] "
                "(decay parameters are in epochs, not steps)"
            )
        staircase = p["staircase"]
        if not isinstance(staircase, bool):
            raise ValueError(f"staircase must be True or False, got {staircase!r}")
        if staircase:
            return lambda e: 1.0 if e < start else gamma ** math.floor(e - start)
        return lambda e: 1.0 if e < start else gamma ** (e - start)

    if decay in ("polynomial", "cosine"):
        if decay == "polynomial":
            power = real("power", p["power"])
            if power <= 0.0:
                raise ValueError(f"power={p['power']!r} for decay='polynomial' must be > 0")
        end = end_factor_arg(p["end_factor"], decay)
        if horizon <= 0.0:  # the warmup fills the budget: the decay never starts
            return lambda e: 1.0
        if decay == "polynomial":
            return lambda e: end + (1.0 - end) * (1.0 - e / horizon) ** power
        return lambda e: end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * e / horizon))

    return _multistep(p, epochs)


def _multistep(p: Mapping[str, Any], epochs: float) -> Callable[[float], float]:
    raw = p["milestones"]
    if isinstance(raw, str | bytes) or not hasattr(raw, "__iter__"):
        raise ValueError(f"milestones must be a list of epochs, got {raw!r}")
    milestones = tuple(real("milestones", m) for m in raw)
    if not milestones:
        raise ValueError("milestones=[] is empty; give at least one epoch or use decay='constant'")
    if list(milestones) != sorted(milestones):
        raise ValueError(f"milestones={list(raw)!r} must be sorted in increasing order")
    if not (milestones[0] > 0.0 and milestones[-1] <= epochs):
        raise ValueError(
            f"milestones={list(raw)!r} must lie in (0, epochs={epochs:g}] "
            "(decay parameters are in epochs, not steps; d(0) must be 1)"
        )
    gamma = gamma_arg("gamma", p["gamma"], "multistep")
    return lambda e: gamma ** bisect_right(milestones, e)
