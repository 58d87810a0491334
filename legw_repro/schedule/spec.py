"""``ScheduleSpec``, every argument of a schedule as one frozen value, and the validated,
precomputed schedule it compiles to (``_Schedule``: a callable of the epoch)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from legw_repro.schedule.decays import DECAYS, choice, make_decay
from legw_repro.schedule.handover import HANDOVERS, lr_at
from legw_repro.schedule.scaling import (
    RULES,
    WARMUPS,
    checked_numbers,
    peak_factor,
    warmup_length,
)

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


def _build(spec: ScheduleSpec) -> _Schedule:
    """Validate every argument and precompute the schedule (the slow path; cached by callers)."""
    lr0, k, n_epochs, w0 = checked_numbers(spec)
    rule = choice("rule", spec.rule, RULES)
    warmup = choice("warmup", spec.warmup, WARMUPS)
    decay = choice("decay", spec.decay, DECAYS)
    handover = choice("handover", spec.handover, HANDOVERS)

    warmup_len = warmup_length(warmup, w0, k)
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

    scale = peak_factor(rule, k)
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
