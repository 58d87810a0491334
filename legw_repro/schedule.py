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
    d(x)     = decay factor, d(0) = 1 (see below)

How the warmup hands over to the decay (``handover``), for 0 <= e <= epochs (e > epochs is
clamped to epochs)::

    product   lr(e) = peak * w(e) * d(e)                       (the default)
    absolute  lr(e) = peak * w(e)        for e < W
                    = peak * d(e)        for e >= W            (a jump down if d(W) < 1)
    shifted   lr(e) = peak * w(e)        for e < W
                    = peak * d'(e - W)   for e >= W            (the decay's clock starts at W)

where ``d'`` is ``d`` with the budget-defined decays (polynomial, cosine) run over the
remaining ``epochs - W`` epochs instead of ``epochs``; exponential and multistep keep their
parameters, now counted from the warmup's end.  The three agree when there is no warmup.

Decay factors ``d`` (constant, exponential, polynomial, cosine, multistep; every parameter in
epochs) are in ``legw_repro.decays``.

Why epochs, not steps, are the unit.  An epoch means the same amount of data at every batch
size, so a decay given in epochs needs no rescaling when the batch grows.  For the warmup it
is what makes LEGW work: with ``steps_per_epoch = N / batch_size``, a LEGW warmup of
``warmup_epochs * k`` epochs is ``warmup_epochs * k * N / (k * base_batch_size)`` =
``warmup_epochs * N / base_batch_size`` optimizer *steps* -- the same number of warmup steps
at every batch size, while the peak it climbs to grows as sqrt(k).

Why three hand-overs.  The paper fixes none of them in a readable source.  ``product``
(our first convention) keeps the decay curve identical at every batch size and continuous,
but when the decay has begun before a long LEGW warmup ends (``d(W) < 1``) the rate never
reaches ``peak``: at 64x with a linear decay over the budget, MNIST's LEGW run tops out at half
its peak.  ``shifted`` is what the lead author's own LEGW code does (ResNet-50 on TPU,
``lars_util.py`` in the fastalgo fork of tensorflow/tpu: polynomial decay over the steps that
remain after the warmup); it always reaches ``peak`` and is continuous.  ``absolute`` is the
BERT/LAMB optimizer code's form: full peak at the warmup's end, then the decay at the absolute
epoch (continuous only where ``d(W) = 1``).  ``schedule_summary`` reports the highest rate
actually reached (``max_lr``) and the mean rate over the run (``mean_lr``) for each.

The public entry points are ``ScheduleSpec`` (every argument as one frozen value),
``learning_rate`` (a pure function of the fractional epoch), ``schedule_summary`` (for
logging), ``validate_schedule`` and ``LEGWScheduler`` (a
``torch.optim.lr_scheduler.LRScheduler`` stepped once per optimizer step).  ``POLICIES``
names the batch-size scaling policies compared in the paper as (rule, warmup) pairs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from legw_repro.decays import DECAYS, choice, make_decay, real

__all__ = [
    "DECAYS",
    "HANDOVERS",
    "POLICIES",
    "RULES",
    "WARMUPS",
    "LEGWScheduler",
    "Policy",
    "ScheduleSpec",
    "learning_rate",
    "lr_stats",
    "policy",
    "schedule_summary",
    "validate_schedule",
]

RULES: tuple[str, ...] = ("sqrt", "linear", "none")
WARMUPS: tuple[str, ...] = ("legw", "fixed")


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


_SPEC_FIELDS: tuple[str, ...] = (
    "base_lr",
    "base_batch_size",
    "batch_size",
    "warmup_epochs",
    "epochs",
    "rule",
    "warmup",
    "decay",
    "handover",
)


@dataclass(frozen=True)
class ScheduleSpec:
    """Every argument of a schedule as one value: built once, passed around, compiled on use.

    The schedule's signature lives here and nowhere else; ``learning_rate``,
    ``validate_schedule``, ``schedule_summary`` and ``LEGWScheduler`` take either a spec or the
    same names as keyword arguments (``ScheduleSpec.of(**kwargs)``).  Decay parameters are kept
    as sorted ``(name, value)`` pairs (lists as tuples) so that a spec is hashable.
    Construction does not validate (a spec may be built from a config before it is checked);
    ``validate()`` / ``compile()`` do, with messages that name the argument and the fix.
    """

    base_lr: float
    base_batch_size: float
    batch_size: float
    warmup_epochs: float
    epochs: float
    rule: str = "sqrt"
    warmup: str = "legw"
    decay: str = "constant"
    handover: str = "product"
    decay_params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, **kwargs: Any) -> ScheduleSpec:
        """A spec from flat keyword arguments: the fields above plus the decay's parameters."""
        required = _SPEC_FIELDS[:5]
        missing = [n for n in required if n not in kwargs]
        if missing:
            raise ValueError(f"missing schedule argument(s) {missing}; required: {list(required)}")
        fields = {n: kwargs[n] for n in _SPEC_FIELDS if n in kwargs}
        params = {n: v for n, v in kwargs.items() if n not in _SPEC_FIELDS}
        frozen = tuple(sorted((n, _tuplify(v)) for n, v in params.items()))
        return cls(**fields, decay_params=frozen)

    def kwargs(self) -> dict[str, Any]:
        """The flat keyword form (lists as lists): what checkpoints and logs store."""
        out = {n: getattr(self, n) for n in _SPEC_FIELDS}
        out.update({n: _listify(v) for n, v in self.decay_params})
        return out

    def params(self) -> dict[str, Any]:
        return {n: _listify(v) for n, v in self.decay_params}

    def compile(self) -> _Schedule:
        """Validated schedule, cached on the spec so that calling it every step is cheap."""
        try:
            key = _typed_key(self)
            hash(key)
        except TypeError:  # an unhashable argument (e.g. a numpy array): validate uncached
            return _build(self)
        return _build_cached(key, self)

    def validate(self) -> None:
        _build(self)


HANDOVERS: tuple[str, ...] = ("product", "absolute", "shifted")


def _tuplify(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuplify(v) for v in value)
    return value


def _listify(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_listify(v) for v in value]
    return value


def _typed_key(spec: ScheduleSpec) -> tuple[Any, ...]:
    """A cache key that keeps ``True``, ``1`` and ``1.0`` apart (dataclass equality does not),
    so a value that validation rejects can never hit an entry built from one it accepts."""

    def typed(v: Any) -> Any:
        if isinstance(v, tuple):
            return (tuple, tuple(typed(x) for x in v))
        return (type(v), v)

    return tuple(typed(getattr(spec, n)) for n in _SPEC_FIELDS) + (typed(spec.decay_params),)


@dataclass(frozen=True)
class _Schedule:
    """A validated schedule with everything precomputed; calling it is the fast path."""

    k: float
    peak: float
    warmup_len: float  # W, in epochs
    epochs: float
    handover: str
    decay_fn: Callable[[float], float]

    def __call__(self, epoch: float) -> float:
        # `not epoch >= 0` also rejects NaN.
        if not epoch >= 0.0:
            raise ValueError(f"epoch must be >= 0, got {epoch!r}")
        e = epoch if epoch <= self.epochs else self.epochs
        return lr_at(e, self.peak, self.warmup_len, self.handover, self.decay_fn)


def lr_at(
    e: float, peak: float, warmup_len: float, handover: str, decay_fn: Callable[[float], float]
) -> float:
    """The hand-over formulas (module docstring); ``decay_fn`` already has its horizon."""
    if e < warmup_len:
        w = e / warmup_len
        return peak * w * decay_fn(e) if handover == "product" else peak * w
    if handover == "shifted":
        return peak * decay_fn(e - warmup_len)
    return peak * decay_fn(e)


def _numbers(spec: ScheduleSpec) -> tuple[float, float, float, float]:
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


def _build(spec: ScheduleSpec) -> _Schedule:
    """Validate every argument and precompute the schedule (the slow path; cached by callers)."""
    lr0, k, n_epochs, w0 = _numbers(spec)
    rule = choice("rule", spec.rule, RULES)
    warmup = choice("warmup", spec.warmup, WARMUPS)
    decay = choice("decay", spec.decay, DECAYS)
    handover = choice("handover", spec.handover, HANDOVERS)

    warmup_len = w0 * k if warmup == "legw" else w0
    if warmup_len > n_epochs * (1.0 + 1e-12):
        if warmup == "legw":
            raise ValueError(
                f"warmup_epochs * k = {warmup_len} epochs exceeds epochs={spec.epochs!r}; "
                "reduce warmup_epochs or use warmup='fixed'"
            )
        raise ValueError(
            f"warmup_epochs = {spec.warmup_epochs!r} epochs exceeds epochs={spec.epochs!r}; "
            "reduce warmup_epochs"
        )

    scale = {"sqrt": math.sqrt(k), "linear": k, "none": 1.0}[rule]
    horizon = n_epochs - warmup_len if handover == "shifted" else n_epochs
    decay_fn = make_decay(decay, n_epochs, spec.params(), horizon=max(horizon, 0.0))
    return _Schedule(
        k=k,
        peak=lr0 * scale,
        warmup_len=warmup_len,
        epochs=n_epochs,
        handover=handover,
        decay_fn=decay_fn,
    )


@lru_cache(maxsize=256)
def _build_cached(key: tuple[Any, ...], spec: ScheduleSpec) -> _Schedule:
    return _build(spec)


def _as_spec(spec: ScheduleSpec | None, kwargs: Mapping[str, Any]) -> ScheduleSpec:
    if spec is None:
        return ScheduleSpec.of(**kwargs)
    if kwargs:
        raise TypeError(
            f"give a ScheduleSpec or keyword arguments, not both (got {sorted(kwargs)})"
        )
    return spec


# --------------------------------------------------------------------------- public functions


def learning_rate(epoch: float, spec: ScheduleSpec | None = None, **kwargs: Any) -> float:
    """Learning rate at fractional ``epoch`` (see the module docstring for the formulas).

    Give a ``ScheduleSpec`` or its fields as keyword arguments: ``base_lr``,
    ``base_batch_size``, ``batch_size``, ``warmup_epochs``, ``epochs`` (required; the tuned
    small-batch recipe and the batch actually used), ``rule="sqrt"``, ``warmup="legw"``,
    ``decay="constant"``, ``handover="product"``, and the decay's parameters.  A pure
    function, so a training loop, a plot and a test all read the same curve.

    Decay parameters (all in epochs, so they mean the same at every batch size):

    * ``exponential``: ``gamma`` (required; factor per epoch, in (0, 1]), ``start_epoch=0``
      (d = 1 before it), ``staircase=False`` (True: d = gamma ** floor(e - start_epoch)).
      Zaremba et al.'s PTB recipe is ``gamma=0.5, start_epoch=4, staircase=True``: epochs
      0..4 at the full rate, halved from epoch 5 on, as in their Lua code (``max_epoch=4``).
      The TensorFlow PTB tutorial halves one epoch earlier: ``start_epoch=3``.
    * ``polynomial``: ``power=1.0`` (> 0), ``end_factor=0.0`` (final LR / peak, in [0, 1]).
    * ``cosine``: ``end_factor=0.0``.
    * ``multistep``: ``milestones`` (required; sorted epochs in (0, epochs]), ``gamma=0.1``.

    ``epoch > epochs`` is clamped to ``epochs`` (a final partial step must not crash);
    ``epoch < 0`` raises.  Invalid arguments raise ValueError (see ``validate_schedule``);
    validation is cached, so calling this every step costs little.
    """
    return _as_spec(spec, kwargs).compile()(epoch)


def validate_schedule(spec: ScheduleSpec | None = None, **kwargs: Any) -> None:
    """Raise ValueError naming the bad argument, its value and the fix; return None if valid.

    Checked: batch sizes > 0; base_lr >= 0; warmup_epochs >= 0; epochs > 0; all finite; the
    warmup actually used (``warmup_epochs * k`` under LEGW) fits inside ``epochs``; the
    rule / warmup / decay / handover names; the decay parameters (names, required ones,
    ranges, sorted milestones).  Run it at config time to fail before any training starts.
    """
    _as_spec(spec, kwargs).validate()


def lr_stats(
    sched: Callable[[float], float], epochs: float, steps_per_epoch: int | None
) -> tuple[float, float]:
    """(highest, mean) learning rate over the run.

    With ``steps_per_epoch``: over the optimizer steps actually taken (step ``s`` trains with
    ``lr(s / steps_per_epoch)``).  Without: over a fine grid of the epoch axis (midpoints for
    the mean; grid points for the max), which is what the steps tend to as batches shrink.
    """
    if steps_per_epoch:
        n = max(1, round(epochs * steps_per_epoch))
        lrs = [sched(s / steps_per_epoch) for s in range(n)]
        return max(lrs), sum(lrs) / n
    n = 20_000
    grid = [sched(epochs * i / n) for i in range(n + 1)]
    mids = [sched(epochs * (i + 0.5) / n) for i in range(n)]
    return max(grid), sum(mids) / n


def schedule_summary(
    spec: ScheduleSpec | None = None, *, steps_per_epoch: int | None = None, **kwargs: Any
) -> dict[str, Any]:
    """What the scaling policy did, for run logs and reports.

    ``k``; ``peak_lr``, the rule's target; ``warmup_epochs`` actually used (W, in epochs:
    ``warmup_epochs * k`` under LEGW); ``handover``; ``max_lr``, the highest rate actually
    reached (below ``peak_lr`` under ``product`` when the decay starts before the warmup
    ends); ``mean_lr``, the mean rate over the run -- with the same number of epochs, the
    quantity that explains most of the differences between policies.  Give
    ``steps_per_epoch`` for the exact per-step values of a run.
    """
    s = _as_spec(spec, kwargs)
    sched = _build(s)
    max_lr, mean_lr = lr_stats(sched, sched.epochs, steps_per_epoch)
    return {
        "k": sched.k,
        "peak_lr": sched.peak,
        "warmup_epochs": sched.warmup_len,
        "handover": sched.handover,
        "max_lr": max_lr,
        "mean_lr": mean_lr,
    }


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
        spec: ScheduleSpec | None = None,
        *,
        last_epoch: int = -1,
        **kwargs: Any,
    ) -> None:
        if (
            isinstance(steps_per_epoch, bool)
            or not isinstance(steps_per_epoch, numbers.Integral)
            or steps_per_epoch <= 0
        ):
            raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.spec = _as_spec(spec, kwargs)
        #: the flat keyword form, saved in state_dict() (plain Python values only)
        self.schedule_kwargs: dict[str, Any] = self.spec.kwargs()
        # Validate once, here; get_lr() then only evaluates the precomputed schedule.
        self._schedule = _build(self.spec)
        super().__init__(optimizer, last_epoch)

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
        state.pop("spec", None)  # ditto (schedule_kwargs is its plain form)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        state.pop("_schedule", None)
        state.pop("spec", None)
        super().load_state_dict(state)
        # checkpoints written before `handover` existed used the product form (its default)
        self.spec = ScheduleSpec.of(**self.schedule_kwargs)
        self.schedule_kwargs = self.spec.kwargs()
        self._schedule = _build(self.spec)
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
