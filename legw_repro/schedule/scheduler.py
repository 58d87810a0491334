"""``LEGWScheduler``: ``learning_rate`` as a torch LRScheduler stepped once per optimizer step."""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from legw_repro.schedule.spec import ScheduleSpec, _as_spec, _build


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
