"""The record of a NaN / inf training loss: at which step, and the last finite loss before it.

Why a record of its own: a non-finite loss must stop the run, and summary.json must say where
(`nonfinite_step`, `last_finite_loss`) rather than "diverged somewhere in a 20-step window".
The trainer does not read every loss on the host as it is computed (a GPU would wait on each
read); `legw_repro.loop.losslog.LossLog` reads the losses of several steps at once and finds the
first non-finite one among them, so the step named is exact even when the run stops a few steps
after it (every step on a CPU, where a read costs nothing).
"""

from __future__ import annotations

from dataclasses import dataclass


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
