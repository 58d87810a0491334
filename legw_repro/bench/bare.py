"""The bare loop the trainer is measured against: the step a PyTorch user writes by hand.

Same model (built by the task, same seed), same loss (`task.loss`), same optimizer
(`build_optimizer`: the same class and kernels), same clipping; nothing else -- no schedule,
no metrics rows, no divergence checks, no checkpoints. `sync=True` reads the loss on the host
every step (`loss.item()`, what most hand-written loops do to print it); `sync=False` never does
(the upper bound on a GPU, where that read makes the host wait for the device).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from legw_repro.config.spec import RunSpec
from legw_repro.loop.optim import build_optimizer
from legw_repro.tasks.base import Task


class BareLoop:
    def __init__(self, task: Task, spec: RunSpec, device: torch.device) -> None:
        if spec.accum_steps != 1:
            raise ValueError("the bare loop runs one micro-batch per step (accum_steps=1)")
        torch.manual_seed(spec.seed)
        self.task = task
        self.model = task.build_model().to(device).train()
        self.optimizer = build_optimizer(spec.optimizer, self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.clip = spec.optimizer.clip
        self.carry = task.init_carry(self.model)[0]
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if spec.precision == "bf16" and device.type == "cuda"
            else contextlib.nullcontext()
        )

    def step(self, micro: list[Any], sync: bool = True) -> torch.Tensor:
        """One optimizer step on `micro` (the task's one-element list of micro-batches)."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss, self.carry = self.task.loss(self.model, micro[0], self.carry)
        loss.backward()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        if sync:
            loss.item()
        return loss
