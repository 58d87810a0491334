"""What a run's loop carries between steps besides the model, optimizer and schedule: the
state a checkpoint holds (LoopState) and why a loop ended early (Stop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Stop:
    """Why the loop ended early: status "diverged" or "preempted", and the reason."""

    status: str
    reason: str


@dataclass
class LoopState:
    """Everything besides model/optimizer/scheduler that a resumed run needs."""

    step: int = 0
    initial_loss: float | None = None
    best_metric: float | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    wall_time: float = 0.0  # training seconds accumulated over all attempts
    #: seconds of training steps, for the throughput: each window of steps is timed from its
    #: first step's start to the loss read that ends it (the read waits for the device, so on a
    #: GPU this is the device's time too, not only the host's launches); evaluations and
    #: checkpoints fall between windows and are left out
    train_time: float = 0.0
    recent: list[float] = field(default_factory=list)


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors, and lists/tuples of them, moved to `device` (a carry to and from a checkpoint)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    return obj


def compact(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A model's state dict with every view copied out of its base: torch.save writes a view's
    whole storage, and a fused member's parameters are slots of a stack of N members."""
    return {
        k: v.clone() if v.untyped_storage().nbytes() > v.nbytes else v for k, v in state.items()
    }
