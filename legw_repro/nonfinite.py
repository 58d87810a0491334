"""Watching the training loss for NaN / inf without forcing a host sync per step.

Why a device-side watch: a non-finite loss must stop the run and the record must say at which
step, but reading the loss on the host every step (`.item()`) stalls a GPU pipeline. The watch
keeps two tensors on the loss's device -- the first non-finite step (-1: none yet) and the last
finite loss with its step -- updated by `observe` with device ops only; `poll` reads them (one
sync). On a CPU, and while the trainer still reads every loss for its metrics row, it polls every
step, so the run stops at the bad step itself. On CUDA, polling every N steps still records the
exact first bad step and the last finite loss before it; the run then stops at most N - 1 steps
later, and the summary names the bad step, not the step it stopped at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NonFinite:
    step: int  # the first optimizer step whose loss was NaN or inf
    loss: float  # that loss (nan, inf or -inf)
    last_finite_step: int  # 0: no finite loss before it
    last_finite_loss: float | None

    def reason(self) -> str:
        before = (
            f"last finite loss {self.last_finite_loss:.6g} at step {self.last_finite_step}"
            if self.last_finite_loss is not None
            else "no finite loss before it"
        )
        return f"loss is {self.loss} at step {self.step} ({before})"


class NonFiniteWatch:
    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=self.device)
        self.bad_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.last_finite = torch.full((), math.nan, dtype=torch.float64, device=self.device)
        self.last_finite_step = torch.zeros((), dtype=torch.int64, device=self.device)

    def observe(self, loss: torch.Tensor, step: int) -> None:
        """Record step `step`'s loss (a 0-d tensor on the watch's device); no host sync."""
        loss = loss.detach().to(torch.float64)
        step_t = torch.full((), step, dtype=torch.int64, device=self.device)
        clean = self.first_bad < 0
        finite = torch.isfinite(loss)
        first = clean & ~finite
        self.first_bad = torch.where(first, step_t, self.first_bad)
        self.bad_loss = torch.where(first, loss, self.bad_loss)
        keep = clean & finite
        self.last_finite = torch.where(keep, loss, self.last_finite)
        self.last_finite_step = torch.where(keep, step_t, self.last_finite_step)

    def poll(self) -> NonFinite | None:
        """The first non-finite step seen so far, or None (reads the device: one sync)."""
        step = int(self.first_bad.item())
        if step < 0:
            return None
        last = float(self.last_finite.item())
        return NonFinite(
            step=step,
            loss=float(self.bad_loss.item()),
            last_finite_step=int(self.last_finite_step.item()),
            last_finite_loss=None if math.isnan(last) else last,
        )
