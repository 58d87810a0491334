"""The Task interface: everything the trainer needs to know about a data set and a model.

The trainer (legw_repro/loop/trainer.py) knows only this interface. A new task is one folder
(a package holding its Task subclass, model and data; e.g. legw_repro/tasks/ptb/) and one file in
configs/task/ whose `cls` names the class. The class also declares what the generic code must
not guess: its config keys (`config_keys`), combinations of them (`check_config`), limits that
need the data (`check_limits`), and whether its batches have fixed shapes (`fixed_shapes`). If
adding a task needs a change anywhere else, the interface is wrong (docs/architecture.md).

Batch semantics: `batch_size` in the config is always the *global* batch of one optimizer step.
It is split across `world_size` ranks and, on each rank, into `accum_steps` equal micro-batches.
`train_batches` yields, for every optimizer step, this rank's list of micro-batches (already on the
device). The loss of each micro-batch is a mean over its items, and micro-batches are equal in
size, so averaging them (and DDP's average over ranks) gives exactly the full-batch gradient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from legw_repro.loop.distributed import DistInfo

if TYPE_CHECKING:
    from legw_repro.config.keys import Rule


class Task(ABC):
    #: the headline metric written to metrics.jsonl / summary.json, e.g. "ppl", "acc", "bleu"
    metric: str
    higher_is_better: bool
    #: unit of the throughput figure ("tokens" or "images")
    item_unit: str
    #: the rules of the `task.*` keys only this task reads (legw_repro/config/keys.py's Rule);
    #: with the common keys, every key of its configs/task/<name>.yaml must have one
    config_keys: ClassVar[Mapping[str, Rule]] = {}
    #: every training batch has the same shapes, so `cuda_graphs=true` can replay the step
    fixed_shapes: ClassVar[bool] = False

    @classmethod  # noqa: B027 - optional hook
    def check_config(cls, flat: Mapping[str, Any]) -> None:
        """Combinations of this task's keys no single rule sees (`flat`: the resolved config,
        dotted keys): raise legw_repro.config.validate.ConfigError, before anything is built."""

    def __init__(self, cfg: DictConfig, dist: DistInfo) -> None:
        self.cfg = cfg
        self.dist = dist
        self.device = dist.device
        self.batch_size = int(cfg.batch_size)
        self.accum_steps = int(cfg.accum_steps)
        self.micro_batch_size = self.batch_size // (dist.world_size * self.accum_steps)

    @property
    def name(self) -> str:
        return str(self.cfg.task.name)

    def check_data(self) -> None:  # noqa: B027 - optional hook
        """Fail fast (DataError) if the data is missing or corrupt, before anything is built."""

    def check_limits(self) -> None:  # noqa: B027 - optional hook
        """Limits of the config that need the loaded data (ConfigError), checked after
        `check_data` and `steps_per_epoch`, before the model is built."""

    @property
    @abstractmethod
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch at the *global* batch size (the same on every rank)."""

    @property
    @abstractmethod
    def items_per_step(self) -> int:
        """Items (tokens, images) in one global optimizer step, for throughput."""

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    @abstractmethod
    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[list[Any]]:
        """This rank's micro-batches for each optimizer step of `epoch`, from `start_step` on.

        Must be a deterministic function of (seed, epoch, rank) so that a resumed run and a
        DDP run see exactly the data an uninterrupted single-process run would.
        """

    def init_carry(self, model: nn.Module) -> list[Any]:
        """State carried across steps within an epoch, one entry per micro-batch (e.g. LSTM
        hidden state for truncated BPTT). Reset at the start of every epoch."""
        return [None] * self.accum_steps

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, Any]:
        """Mean loss over the micro-batch and the new (detached) carry."""

    @abstractmethod
    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """{"loss": ..., self.metric: ...} on a whole split ("valid" or "test")."""

    def write_outputs(self, model: nn.Module, run_dir: Path) -> dict[str, Any]:
        """Called once after a completed run's test evaluation, on rank 0 only: write extra files
        into the run directory (e.g. decoded translations) and return extra summary.json fields.
        Default: nothing."""
        return {}
