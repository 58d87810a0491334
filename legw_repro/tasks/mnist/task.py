"""MNIST classification with an LSTM reading the image row by row (the LEGW paper's MNIST task),
metric: accuracy (a fraction in [0, 1], higher is better).

Data: the 60k training images minus a seeded 5000-image validation hold-out (``task.val_size``,
``task.split_seed``: fixed, independent of the training seed), and the 10k test set. Every split
is converted once to normalised float tensors kept on the device.

Order: each epoch is a permutation of the training set drawn from a ``torch.Generator`` seeded
from (``seed``, epoch) alone -- not from the global RNG -- so a resumed run, and every rank of a
DDP run, sees exactly the order an uninterrupted single process would. The last partial batch is
dropped, so every optimizer step has the same global batch (steps_per_epoch = N_train //
batch_size). Rank r of a DDP run takes the r-th block of each global batch and cuts it into
``accum_steps`` micro-batches (``rank_slices``); the loss is a mean per micro-batch, so any world
size or accumulation computes the same update as one process holding the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from legw_repro.loop.distributed import DistInfo, rank_slices
from legw_repro.tasks.base import Task
from legw_repro.tasks.common.download import resolve_data_dir
from legw_repro.tasks.mnist.data import MNISTData, load_mnist
from legw_repro.tasks.mnist.keys import KEYS
from legw_repro.tasks.mnist.model import MNISTLSTM

# the usual MNIST pixel statistics (of [0, 1]-scaled training pixels)
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that depends on (seed, epoch) only; SeedSequence mixes the pair so that
    nearby seeds and epochs give unrelated streams."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The training-set order of `epoch` (a permutation of range(n), on the CPU)."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch))


class MNISTTask(Task):
    metric = "acc"
    higher_is_better = True
    item_unit = "images"
    config_keys = KEYS
    fixed_shapes = True  # fixed batches, the last partial one dropped

    def __init__(self, cfg: DictConfig, dist: DistInfo) -> None:
        super().__init__(cfg, dist)
        t = cfg.task
        self.seed = int(cfg.seed)  # each key checked by its declaration (keys.py)
        self.eval_batch_size = int(t.eval_batch_size)
        self._data: MNISTData | None = None
        self._tensors: dict[str, tuple[Tensor, Tensor]] = {}

    # -- data -------------------------------------------------------------------------------
    @property
    def data(self) -> MNISTData:
        if self._data is None:
            t = self.cfg.task
            self._data = load_mnist(
                resolve_data_dir(self.cfg.data_dir),
                val_size=int(t.val_size),
                split_seed=int(t.split_seed),
            )
        return self._data

    def check_data(self) -> None:
        _ = self.data

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """(images [N, 28, 28] float32 normalised, labels [N] int64) on the device, converted once.
        `name`: "train", "valid" or "test"; cut to max_train_items / max_eval_items if set."""
        if name not in self._tensors:
            d, t = self.data, self.cfg.task
            raw = {
                "train": (d.train_x, d.train_y),
                "valid": (d.val_x, d.val_y),
                "test": (d.test_x, d.test_y),
            }
            if name not in raw:
                raise ValueError(f"unknown split {name!r}; choose 'train', 'valid' or 'test'")
            x, y = raw[name]
            limit = t.max_train_items if name == "train" else t.max_eval_items
            if limit:
                x, y = x[: int(limit)], y[: int(limit)]
            xf = (x.to(torch.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
            self._tensors[name] = (xf.to(self.device), y.to(self.device))
        return self._tensors[name]

    @property
    def n_train(self) -> int:
        limit = self.cfg.task.max_train_items
        n = len(self.data.train_y)
        return min(n, int(limit)) if limit else n

    @property
    def steps_per_epoch(self) -> int:
        steps = self.n_train // self.batch_size
        if steps < 1:
            raise ValueError(
                f"batch_size={self.batch_size} exceeds the {self.n_train} training images; "
                "use a smaller batch_size (or a larger task.max_train_items)"
            )
        return steps

    @property
    def items_per_step(self) -> int:
        return self.batch_size

    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[list[Any]]:
        x, y = self.split("train")
        # on the device once per epoch: a copy per step would make each step wait for the GPU
        perm = epoch_permutation(self.n_train, self.seed, epoch).to(self.device)
        slices = rank_slices(
            self.batch_size, self.dist.rank, self.dist.world_size, self.accum_steps
        )
        b = self.batch_size
        for i in range(start_step, self.steps_per_epoch):
            idx = perm[i * b : (i + 1) * b]
            yield [(x[idx[s]], y[idx[s]]) for s in slices]

    # -- model ------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        m = self.cfg.task.model
        return MNISTLSTM(
            input=str(m.input),
            hidden=int(m.hidden),
            num_layers=int(m.num_layers),
            forget_bias=float(m.get("forget_bias") or 0.0),
            cpu_chunk=int(m.get("cpu_chunk") or 0),
        )

    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, Any]:
        x, y = batch
        return F.cross_entropy(model(x).float(), y), None

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        was_training = model.training
        model.eval()
        x, y = self.split(split)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, len(y), self.eval_batch_size):
            xb, yb = (
                x[start : start + self.eval_batch_size],
                y[start : start + self.eval_batch_size],
            )
            logits = model(xb).float()
            total += F.cross_entropy(logits, yb, reduction="sum").double()
            correct += (logits.argmax(dim=1) == yb).sum()
        model.train(was_training)
        n = len(y)
        return {"loss": total.item() / n, "acc": correct.item() / n}
