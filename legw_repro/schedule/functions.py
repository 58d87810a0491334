"""The schedule as pure functions: the rate at an epoch, the check of the arguments, and what
a policy did (for run logs and reports)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from legw_repro.schedule.spec import ScheduleSpec, _as_spec, _build


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
