"""The training losses of the steps since the last read, kept where they were computed.

Why: reading a loss on the host (`.item()`, `float(t)`) makes the host wait until the device has
finished the step, so a GPU idles while the host prepares the next one; at small batches that
wait is most of the step. The trainer pushes each step's loss here (one device copy, no wait)
and reads them all at once (`read`: one wait) every `sync_every` steps and before anything that
needs them: an evaluation, a checkpoint, the end. The host then holds every step's exact loss,
so the metrics rows are the same as with a read per step, the first non-finite loss is found at
its own step (`first_nonfinite`, the record `legw_repro.loop.nonfinite.NonFinite`), and the
divergence rule sees every loss in order -- at most `sync_every - 1` steps after the fact.
Under DDP the read is also where ranks average their losses: one collective per read, not per
step.
"""

from __future__ import annotations

import math

import torch

from legw_repro.loop import distributed
from legw_repro.loop.distributed import DistInfo
from legw_repro.loop.nonfinite import NonFinite

#: steps between reads per device type: a CPU has nothing to wait for, so it reads every step
#: (a NaN stops the run at its own step); a GPU reads every 32 (a read drains its queue)
SYNC_EVERY: dict[str, int] = {"cpu": 1, "cuda": 32}


def sync_every(device: torch.device) -> int:
    """The default number of steps between reads on `device` (unknown types: 32)."""
    return SYNC_EVERY.get(device.type, 32)


class LossLog:
    """Step losses on the device, read in one transfer. `capacity` grows when a caller pushes
    more steps than it planned between reads (the buffer is reused, never reallocated per step)."""

    def __init__(self, device: torch.device, capacity: int = 32) -> None:
        self.values = torch.zeros(max(1, capacity), dtype=torch.float32, device=device)
        self.count = 0
        self.last_finite: tuple[int, float | None] = (0, None)  # (step, loss) before this read

    def push(self, loss: torch.Tensor) -> None:
        """Append one step's loss (a 0-d tensor on the log's device): a device copy, no wait."""
        if self.count == len(self.values):
            self.values = torch.cat([self.values, torch.zeros_like(self.values)])
        self.values[self.count].copy_(loss.detach())
        self.count += 1

    def read(self, dist: DistInfo | None = None) -> list[float]:
        """The losses pushed since the last read, oldest first, averaged over the DDP ranks
        (every rank gets the same list). One host-device sync; empties the log."""
        pending = self.values[: self.count]
        self.count = 0
        if dist is not None and dist.distributed:
            pending = distributed.all_reduce_sum(pending.clone(), dist) / dist.world_size
        return pending.tolist()

    def first_nonfinite(self, losses: list[float], first_step: int) -> NonFinite | None:
        """The first NaN/inf among `losses` (the losses of steps `first_step`, `first_step + 1`,
        ...), with the last finite loss before it (also from earlier reads); None when all are
        finite. Call once per read, in order."""
        last_step, last_loss = self.last_finite
        for step, loss in enumerate(losses, start=first_step):
            if not math.isfinite(loss):
                return NonFinite(
                    step=step, loss=loss, last_finite_step=last_step, last_finite_loss=last_loss
                )
            last_step, last_loss = step, loss
        self.last_finite = (last_step, last_loss)
        return None
