"""Learning-rate schedules for large-batch training: LEGW and the baselines it is compared with.

LEGW ("linear-epoch gradual warmup", You et al. 2019, "Large-Batch Training for LSTM and
Beyond") scales a tuned small-batch schedule to a k times larger batch by two rules:

* the peak learning rate grows with the square root of k (Sqrt Scaling), and
* the warmup grows linearly with k, *measured in epochs*.

Notation (plain-text maths)::

    k        = batch_size / base_batch_size
    peak     = base_lr * sqrt(k)          rule="sqrt"    (LEGW, Krizhevsky 2014)
             = base_lr * k                rule="linear"  (Goyal et al. 2017)
             = base_lr                    rule="none"
    W        = warmup_epochs * k          warmup="legw"  (warmup length in epochs)
             = warmup_epochs              warmup="fixed"
    w(e)     = min(1, e / W)              (w = 1 when W = 0: no warmup)
    d(e)     = decay factor at the ABSOLUTE epoch e, with d(0) = 1 (see below)
    lr(e)    = peak * w(e) * d(e)         for 0 <= e <= epochs (e > epochs is clamped to epochs)

Decay factors d(e); every parameter is in epochs::

    constant     d = 1
    exponential  d = 1                                   for e < start_epoch
                 d = gamma ** (e - start_epoch)          staircase=False
                 d = gamma ** floor(e - start_epoch)     staircase=True
    polynomial   d = end_factor + (1 - end_factor) * (1 - e / epochs) ** power
    cosine       d = end_factor + (1 - end_factor) * 0.5 * (1 + cos(pi * e / epochs))
    multistep    d = gamma ** (number of milestones m with m <= e)

Why epochs, not steps, are the unit.  An epoch means the same amount of data at every batch
size, so a decay given in epochs needs no rescaling when the batch grows.  For the warmup it
is what makes LEGW work: with ``steps_per_epoch = N / batch_size``, a LEGW warmup of
``warmup_epochs * k`` epochs is ``warmup_epochs * k * N / (k * base_batch_size)`` =
``warmup_epochs * N / base_batch_size`` optimizer *steps* -- the same number of warmup steps
at every batch size, while the peak it climbs to grows as sqrt(k).

Why the product form ``peak * w(e) * d(e)``.  The decay is evaluated at the absolute epoch
``e``, not at "epochs since warmup ended".  Consequences:

* the decay curve is identical at every batch size (a long LEGW warmup never postpones it,
  so a k=32 run does not end its training still at a high learning rate);
* the schedule is continuous where the warmup hands over to the decay, because both factors
  are continuous (multistep and staircase exponential keep their intentional jumps);
* when the decay has already started before the warmup ends (``d(W) < 1``), the largest rate
  actually reached is ``peak * d(W)``, below ``peak``.  ``schedule_summary`` reports ``peak``
  (the rate the rule asks for); the warmup simply never quite gets there.

The public entry points are ``learning_rate`` (a pure function of the fractional epoch),
``schedule_summary`` (for logging), ``validate_schedule`` and ``LEGWScheduler`` (a
``torch.optim.lr_scheduler.LRScheduler`` stepped once per optimizer step).  ``POLICIES``
names the batch-size scaling policies compared in the paper as (rule, warmup) pairs.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = [
    "DECAYS",
    "POLICIES",
    "RULES",
    "WARMUPS",
    "LEGWScheduler",
    "Policy",
    "learning_rate",
    "policy",
    "schedule_summary",
    "validate_schedule",
]

RULES: tuple[str, ...] = ("sqrt", "linear", "none")
WARMUPS: tuple[str, ...] = ("legw", "fixed")

# Decay name -> {parameter: default}.  A default of _REQUIRED means the caller must give it:
# there is no value that is sensible for every task (a per-epoch factor, a list of epochs).
_REQUIRED = object()
_DECAY_PARAMS: dict[str, dict[str, Any]] = {
    "constant": {},
    "exponential": {"gamma": _REQUIRED, "start_epoch": 0.0, "staircase": False},
    "polynomial": {"power": 1.0, "end_factor": 0.0},
    "cosine": {"end_factor": 0.0},
    "multistep": {"milestones": _REQUIRED, "gamma": 0.1},
}
DECAYS: tuple[str, ...] = tuple(_DECAY_PARAMS)


@dataclass(frozen=True)
class Policy:
    """A batch-size scaling policy: how the peak LR and the warmup length change with k.

    Kept as data so that a run config names a policy and the schedule code has one path.
    """

    rule: str
    warmup: str


POLICIES: dict[str, Policy] = {
    # The paper's method: sqrt LR scaling + warmup linear in epochs.
    "sqrt_legw": Policy(rule="sqrt", warmup="legw"),
    # Ablation: sqrt scaling with the small-batch warmup left as it is (in epochs).
    "sqrt": Policy(rule="sqrt", warmup="fixed"),
    # Goyal et al. 2017 ("ImageNet in 1 hour"): linear scaling, fixed 5-epoch-style warmup.
    "linear": Policy(rule="linear", warmup="fixed"),
    # No scaling: the small-batch schedule reused unchanged.
    "none": Policy(rule="none", warmup="fixed"),
}


def policy(name: str) -> Policy:
    """Look up a named policy; unknown names raise ValueError listing the known ones."""
    try:
        return POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"policy={name!r} is not a known policy; known policies: {sorted(POLICIES)}"
        ) from None


# --------------------------------------------------------------------------- validation


def _real(name: str, value: Any) -> float:
    """Return value as a finite float, or raise ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")
    return value


def _gamma(name: str, value: Any, decay: str) -> float:
    g = _real(name, value)
    if not 0.0 < g <= 1.0:
        raise ValueError(
            f"{name}={value!r} for decay={decay!r} must lie in (0, 1] "
            "(it multiplies the learning rate; > 1 would grow it, <= 0 would zero or flip it)"
        )
    return g


def _end_factor(value: Any, decay: str) -> float:
    f = _real("end_factor", value)
    if not 0.0 <= f <= 1.0:
        raise ValueError(
            f"end_factor={value!r} for decay={decay!r} must lie in [0, 1] "
            "(the final LR as a fraction of the peak)"
        )
    return f


@dataclass(frozen=True)
class _Schedule:
    """A validated schedule with everything precomputed; calling it is the fast path."""

    k: float
    peak: float
    warmup_len: float  # W, in epochs
    epochs: float
    decay_fn: Callable[[float], float]

    def __call__(self, epoch: float) -> float:
        # `not epoch >= 0` also rejects NaN.
        if not epoch >= 0.0:
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        e = epoch if epoch <= self.epochs else self.epochs
        w = 1.0 if e >= self.warmup_len else e / self.warmup_len
        return self.peak * w * self.decay_fn(e)


def _make_decay(decay: str, epochs: float, params: Mapping[str, Any]) -> Callable[[float], float]:
    """Validate the decay parameters and return d(e) (e already clamped to [0, epochs])."""
    allowed = _DECAY_PARAMS[decay]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        hint = f"allowed: {sorted(allowed)}" if allowed else "it takes no parameters"
        raise ValueError(f"unknown decay parameter(s) {unknown} for decay={decay!r}; {hint}")
    missing = sorted(n for n, d in allowed.items() if d is _REQUIRED and n not in params)
    if missing:
        raise ValueError(f"decay={decay!r} requires parameter(s) {missing}")
    p = {**allowed, **params}

    if decay == "constant":
        return lambda e: 1.0

    if decay == "exponential":
        gamma = _gamma("gamma", p["gamma"], decay)
        start = _real("start_epoch", p["start_epoch"])
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

    if decay == "polynomial":
        power = _real("power", p["power"])
        if power <= 0.0:
            raise ValueError(f"power={p['power']!r} for decay='polynomial' must be > 0")
        end = _end_factor(p["end_factor"], decay)
        return lambda e: end + (1.0 - end) * (1.0 - e / epochs) ** power

    if decay == "cosine":
        end = _end_factor(p["end_factor"], decay)
        return lambda e: end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * e / epochs))

    # multistep
    raw = p["milestones"]
    if isinstance(raw, str | bytes) or not hasattr(raw, "__iter__"):
        raise ValueError(f"milestones must be a list of epochs, got {raw!r}")
    milestones = tuple(_real("milestones", m) for m in raw)
    if not milestones:
        raise ValueError("milestones=[] is empty; give at least one epoch or use decay='constant'")
    if list(milestones) != sorted(milestones):
        raise ValueError(f"milestones={list(raw)!r} must be sorted in increasing order")
    if not (milestones[0] > 0.0 and milestones[-1] <= epochs):
        raise ValueError(
            f"milestones={list(raw)!r} must lie in (0, epochs={epochs:g}] "
            "(decay parameters are in epochs, not steps; d(0) must be 1)"
        )
    gamma = _gamma("gamma", p["gamma"], decay)
    return lambda e: gamma ** bisect_right(milestones, e)


def _build(
    base_lr: Any,
    base_batch_size: Any,
    batch_size: Any,
    warmup_epochs: Any,
    epochs: Any,
    rule: Any,
    warmup: Any,
    decay: Any,
    decay_params: Mapping[str, Any],
) -> _Schedule:
    """Validate every argument and precompute the schedule (the slow path; cached by callers)."""
    lr0 = _real("base_lr", base_lr)
    if lr0 < 0.0:
        raise ValueError(f"base_lr must be >= 0, got {base_lr!r}")
    b0 = _real("base_batch_size", base_batch_size)
    if b0 <= 0.0:
        raise ValueError(f"base_batch_size must be positive, got {base_batch_size!r}")
    b = _real("batch_size", batch_size)
    if b <= 0.0:
        raise ValueError(f"batch_size must be positive, got {batch_size!r}")
    k = b / b0
    if not (k > 0.0 and math.isfinite(k)):
        raise ValueError(f"k = batch_size / base_batch_size = {k!r} must be positive and finite")
    n_epochs = _real("epochs", epochs)
    if n_epochs <= 0.0:
        raise ValueError(f"epochs must be > 0, got {epochs!r}")
    w0 = _real("warmup_epochs", warmup_epochs)
    if w0 < 0.0:
        raise ValueError(f"warmup_epochs must be >= 0 (0 = no warmup), got {warmup_epochs!r}")
    rule = _choice("rule", rule, RULES)
    warmup = _choice("warmup", warmup, WARMUPS)
    decay = _choice("decay", decay, DECAYS)

    if warmup == "legw":
        warmup_len = w0 * k
        if warmup_len > n_epochs * (1.0 + 1e-12):
            raise ValueError(
                f"warmup_epochs * k = {warmup_len} epochs exceeds epochs={epochs!r}; "
                "reduce warmup_epochs or use warmup='fixed'"
            )
    else:
        warmup_len = w0
        if warmup_len > n_epochs * (1.0 + 1e-12):
            raise ValueError(
                f"warmup_epochs = {warmup_epochs!r} epochs exceeds epochs={epochs!r}; "
                "reduce warmup_epochs"
            )

    scale = {"sqrt": math.sqrt(k), "linear": k, "none": 1.0}[rule]
    decay_fn = _make_decay(decay, n_epochs, decay_params)
    return _Schedule(
        k=k, peak=lr0 * scale, warmup_len=warmup_len, epochs=n_epochs, decay_fn=decay_fn
    )


def _freeze(value: Any) -> Any:
    """Make a decay parameter value hashable for the cache, keeping types apart.

    lru_cache would otherwise treat ``True``, ``1`` and ``1.0`` as the same key, so a value
    validation rejects could hit a cache entry built from one it accepts.
    """
    if isinstance(value, list | tuple):
        return (list, tuple(_freeze(v) for v in value))
    return (type(value), value)


def _thaw(frozen: Any) -> Any:
    """Inverse of ``_freeze``."""
    kind, value = frozen
    return [_thaw(v) for v in value] if kind is list else value


@lru_cache(maxsize=256, typed=True)
def _build_cached(
    base_lr: Any,
    base_batch_size: Any,
    batch_size: Any,
    warmup_epochs: Any,
    epochs: Any,
    rule: Any,
    warmup: Any,
    decay: Any,
    frozen_params: tuple[tuple[str, Any], ...],
) -> _Schedule:
    return _build(
        base_lr,
        base_batch_size,
        batch_size,
        warmup_epochs,
        epochs,
        rule,
        warmup,
        decay,
        {name: _thaw(v) for name, v in frozen_params},
    )


def _compile(
    base_lr: Any,
    base_batch_size: Any,
    batch_size: Any,
    warmup_epochs: Any,
    epochs: Any,
    rule: Any,
    warmup: Any,
    decay: Any,
    decay_params: Mapping[str, Any],
) -> _Schedule:
    """Validated schedule, cached on the (hashable) arguments so repeated calls are cheap."""
    args = (base_lr, base_batch_size, batch_size, warmup_epochs, epochs, rule, warmup, decay)
    try:
        frozen = tuple(sorted((n, _freeze(v)) for n, v in decay_params.items()))
        hash((args, frozen))
    except TypeError:  # an unhashable argument (e.g. a numpy array): validate uncached
        return _build(*args, decay_params)
    return _build_cached(*args, frozen)


# --------------------------------------------------------------------------- public functions


def learning_rate(
    epoch: float,
    *,
    base_lr: float,
    base_batch_size: float,
    batch_size: float,
    warmup_epochs: float,
    epochs: float,
    rule: str = "sqrt",
    warmup: str = "legw",
    decay: str = "constant",
    **decay_params: Any,
) -> float:
    """Learning rate at fractional ``epoch``: ``peak * w(epoch) * d(epoch)``.

    A pure function, so a training loop, a plot and a test all read the same curve.  See the
    module docstring for the formulas.  ``base_lr`` / ``base_batch_size`` / ``warmup_epochs``
    describe the tuned small-batch recipe; ``batch_size`` is the batch actually used.

    Decay parameters (all in epochs, so they mean the same at every batch size):

    * ``exponential``: ``gamma`` (required; factor per epoch, in (0, 1]), ``start_epoch=0``
      (d = 1 before it), ``staircase=False`` (True: d = gamma ** floor(e - start_epoch)).
      Zaremba et al.'s PTB recipe is ``gamma=0.5, start_epoch=4, staircase=True``: epochs
      0..4 at the full rate, halved from epoch 5 on, as in their Lua code (``max_epoch=4``).
      The TensorFlow PTB tutorial halves one epoch earlier: ``start_epoch=3``.
    * ``polynomial``: ``power=1.0`` (> 0), ``end_factor=0.0`` (final LR / peak, in [0, 1]).
    * ``cosine``: ``end_factor=0.0``.
    * ``multistep``: ``milestones`` (required; sorted epochs in (0, epochs]), ``gamma=0.1``.

    Because the decay is evaluated at the absolute epoch, a decay that starts before the
    warmup ends caps the largest rate actually reached at ``peak * d(W)`` < ``peak``.

    ``epoch > epochs`` is clamped to ``epochs`` (a final partial step must not crash);
    ``epoch < 0`` raises.  Invalid arguments raise ValueError (see ``validate_schedule``);
    validation is cached, so calling this every step costs little.
    """
    sched = _compile(
        base_lr,
        base_batch_size,
        batch_size,
        warmup_epochs,
        epochs,
        rule,
        warmup,
        decay,
        decay_params,
    )
    return sched(epoch)


def validate_schedule(
    *,
    base_lr: float,
    base_batch_size: float,
    batch_size: float,
    warmup_epochs: float,
    epochs: float,
    rule: str = "sqrt",
    warmup: str = "legw",
    decay: str = "constant",
    **decay_params: Any,
) -> None:
    """Raise ValueError naming the bad argument, its value and the fix; return None if valid.

    Checked: batch sizes > 0; base_lr >= 0; warmup_epochs >= 0; epochs > 0; all finite; the
    warmup actually used (``warmup_epochs * k`` under LEGW) fits inside ``epochs``; the
    rule / warmup / decay names; the decay parameters (names, required ones, ranges, sorted
    milestones).  Run it at config time to fail before any training starts.
    """
    _build(
        base_lr,
        base_batch_size,
        batch_size,
        warmup_epochs,
        epochs,
        rule,
        warmup,
        decay,
        decay_params,
    )


def schedule_summary(
    *,
    base_lr: float,
    base_batch_size: float,
    batch_size: float,
    warmup_epochs: float,
    epochs: float,
    rule: str = "sqrt",
    warmup: str = "legw",
    decay: str = "constant",
    **decay_params: Any,
) -> dict[str, float]:
    """What the scaling policy did, for run logs: ``k``, ``peak_lr`` and the ``warmup_epochs``
    actually used (W, in epochs: ``warmup_epochs * k`` under LEGW).

    ``peak_lr`` is the rule's target; if the decay starts before the warmup ends the curve
    tops out at ``peak_lr * d(W)`` instead (see the module docstring).
    """
    s = _build(
        base_lr,
        base_batch_size,
        batch_size,
        warmup_epochs,
        epochs,
        rule,
        warmup,
        decay,
        decay_params,
    )
    return {"k": s.k, "peak_lr": s.peak, "warmup_epochs": s.warmup_len}


# --------------------------------------------------------------------------- torch scheduler


class LEGWScheduler(LRScheduler):
    """``learning_rate`` as a PyTorch scheduler, stepped once per optimizer step.

    Usage (the usual PyTorch order)::

        sched = LEGWScheduler(opt, steps_per_epoch, base_lr=..., base_batch_size=...,
                              batch_size=..., warmup_epochs=..., epochs=...)
        for batch in loader:
            loss.backward(); opt.step(); sched.step()

    After construction the optimizer's rate is the one for step 0 (epoch 0); step ``s`` uses
    ``learning_rate(s / steps_per_epoch, ...)``.  With a warmup that rate at step 0 is 0, so
    the very first update is a no-op -- harmless, and it keeps the schedule exactly the pure
    function of the epoch (the warmup is one step shorter in effect, not re-timed).

    Each param group ``g`` gets ``learning_rate(...) * ratio_g`` with
    ``ratio_g = (g's lr when the scheduler was built) / base_lr``, so groups built with
    different rates (e.g. a smaller rate for embeddings) keep their ratio.  Build the
    optimizer with ``lr=base_lr`` for a single group.

    ``state_dict()`` holds only plain Python values (safe for ``torch.load(weights_only=True)``)
    including the schedule arguments; ``load_state_dict()`` restores them (they win over the
    constructor's) and puts the current rate back into the optimizer, so a scheduler rebuilt
    on a fresh optimizer continues exactly where the saved one stopped.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        steps_per_epoch: int,
        *,
        last_epoch: int = -1,
        base_lr: float,
        base_batch_size: float,
        batch_size: float,
        warmup_epochs: float,
        epochs: float,
        rule: str = "sqrt",
        warmup: str = "legw",
        decay: str = "constant",
        **decay_params: Any,
    ) -> None:
        if (
            isinstance(steps_per_epoch, bool)
            or not isinstance(steps_per_epoch, numbers.Integral)
            or steps_per_epoch <= 0
        ):
            raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.schedule_kwargs: dict[str, Any] = {
            "base_lr": base_lr,
            "base_batch_size": base_batch_size,
            "batch_size": batch_size,
            "warmup_epochs": warmup_epochs,
            "epochs": epochs,
            "rule": rule,
            "warmup": warmup,
            "decay": decay,
            **{n: (list(v) if isinstance(v, tuple) else v) for n, v in decay_params.items()},
        }
        # Validate once, here; get_lr() then only evaluates the precomputed schedule.
        self._schedule = self._compile_kwargs(self.schedule_kwargs)
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _compile_kwargs(kw: Mapping[str, Any]) -> _Schedule:
        names = ("base_lr", "base_batch_size", "batch_size", "warmup_epochs", "epochs")
        names += ("rule", "warmup", "decay")
        params = {n: v for n, v in kw.items() if n not in names}
        return _build(*(kw[n] for n in names), params)

    def _ratios(self) -> list[float]:
        base = float(self.schedule_kwargs["base_lr"])
        if base == 0.0:  # every rate is 0 anyway; avoid 0/0
            return [1.0 for _ in self.base_lrs]
        return [float(lr) / base for lr in self.base_lrs]

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Rates for step ``self.last_epoch`` (PyTorch's name for the step counter here)."""
        lr = self._schedule(self.last_epoch / self.steps_per_epoch)
        return [lr * r for r in self._ratios()]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("_schedule", None)  # a closure: rebuilt from schedule_kwargs on load
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        state.pop("_schedule", None)
        super().load_state_dict(state)
        self._schedule = self._compile_kwargs(self.schedule_kwargs)
        # Put the restored step's rate back into the optimizer, so resuming works even when
        # the optimizer state is not (or not yet) loaded.
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = [
            g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
            for g in self.optimizer.param_groups
        ]
