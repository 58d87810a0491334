"""PTB word-level language modelling (Zaremba et al. 2014), metric: perplexity (lower is better).

Layout: the training stream is laid out as `batch_size` contiguous columns (the global batch) and
cut into BPTT windows; the hidden state is carried from window to window within an epoch and
reset at each epoch. Rank r of a DDP run owns the r-th block of columns, and each of its
micro-batches a sub-block with its own hidden state, so a run with any world size or any number
of accumulation steps computes the same updates as one process holding the whole global batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from legw_repro.config.keys import show
from legw_repro.config.validate import ConfigError
from legw_repro.loop.distributed import DistInfo, rank_slices
from legw_repro.tasks.base import Task
from legw_repro.tasks.common.download import resolve_data_dir
from legw_repro.tasks.ptb.data import PTBCorpus, batchify, eval_windows, load_ptb, window
from legw_repro.tasks.ptb.keys import KEYS
from legw_repro.tasks.ptb.model import SIZES, LSTMLanguageModel


def perplexity(loss: float) -> float:
    """exp(loss), the true value however large; inf only where a float cannot hold it (a loss
    above ~709). It was capped at exp(50) without a word, so a record said 5.2e21 for a run
    whose perplexity was far larger: a number that did not happen."""
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


class PTBTask(Task):
    metric = "ppl"
    higher_is_better = False
    item_unit = "tokens"
    config_keys = KEYS
    fixed_shapes = True  # fixed BPTT windows

    def __init__(self, cfg: DictConfig, dist: DistInfo) -> None:
        super().__init__(cfg, dist)
        t = cfg.task
        size = SIZES[t.model.size]  # each key checked by its declaration (keys.py)
        self.hidden = int(t.model.hidden or size.hidden)
        self.dropout = float(size.dropout if t.model.dropout is None else t.model.dropout)
        self.init_scale = float(t.model.init_scale or size.init_scale)
        self.num_layers = int(t.model.num_layers)
        self.bptt = int(t.bptt or size.bptt)
        self._corpus: PTBCorpus | None = None
        self._train: Tensor | None = None

    # -- data -------------------------------------------------------------------------------
    @property
    def corpus(self) -> PTBCorpus:
        if self._corpus is None:
            self._corpus = load_ptb(resolve_data_dir(self.cfg.data_dir))
        return self._corpus

    def check_data(self) -> None:
        _ = self.corpus

    def _stream(self, split: str, limit: int | None) -> Tensor:
        s = getattr(self.corpus, split)
        return s[:limit] if limit else s

    @property
    def train_source(self) -> Tensor:
        """This rank's columns of the global [n_rows, batch_size] layout, on the device."""
        if self._train is None:
            full = batchify(self._stream("train", self.cfg.task.max_train_tokens), self.batch_size)
            start = self.dist.rank * self.batch_size // self.dist.world_size
            stop = start + self.batch_size // self.dist.world_size
            self._train = full[:, start:stop].contiguous().to(self.device)
        return self._train

    def check_limits(self) -> None:
        """The evaluation columns must leave at least one window in each evaluation split."""
        t = self.cfg.task
        limit = t.get("max_eval_tokens")
        for split in ("valid", "test"):
            tokens = getattr(self.corpus, split)
            n = len(tokens[: int(limit)] if limit else tokens)
            if n // int(t.eval_batch_size) < 2:
                raise ConfigError(
                    f"task.eval_batch_size={t.eval_batch_size} leaves no evaluation window in the "
                    f"{n} tokens of the {split} split (task.max_eval_tokens={show(limit)}); use "
                    f"at most {max(1, n // 2)} columns, or more tokens"
                )

    @property
    def steps_per_epoch(self) -> int:
        n_tokens = len(self._stream("train", self.cfg.task.max_train_tokens))
        n_rows = n_tokens // self.batch_size
        steps = (n_rows - 1) // self.bptt
        if steps < 1:
            raise ValueError(
                f"batch_size={self.batch_size} leaves no full BPTT window of {self.bptt} tokens in "
                f"{n_tokens} training tokens; use a smaller batch_size or more data"
            )
        return steps

    @property
    def items_per_step(self) -> int:
        return self.batch_size * self.bptt

    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[list[Any]]:
        src = self.train_source
        # micro-batch slices within this rank's block of columns
        local = rank_slices(src.shape[1], 0, 1, self.accum_steps)
        for i in range(start_step, self.steps_per_epoch):
            x, y = window(src, i, self.bptt)
            yield [(x[:, s], y[:, s]) for s in local]

    # -- model ------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return LSTMLanguageModel(
            vocab_size=len(self.corpus.vocab),
            hidden=self.hidden,
            num_layers=self.num_layers,
            dropout=self.dropout,
            init_scale=self.init_scale,
            tie_weights=bool(self.cfg.task.model.tie_weights),
        )

    def _zeros(self, batch: int) -> tuple[Tensor, Tensor]:
        shape = (self.num_layers, batch, self.hidden)
        return (
            torch.zeros(shape, device=self.device),
            torch.zeros(shape, device=self.device),
        )

    def init_carry(self, model: nn.Module) -> list[Any]:
        return [self._zeros(self.micro_batch_size) for _ in range(self.accum_steps)]

    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, Any]:
        x, y = batch
        logits, hidden = model(x, carry)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        return loss, tuple(h.detach() for h in hidden)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        was_training = model.training
        model.eval()
        n_cols = int(self.cfg.task.eval_batch_size)
        src = batchify(self._stream(split, self.cfg.task.max_eval_tokens), n_cols).to(self.device)
        hidden = self._zeros(n_cols)
        total, count = 0.0, 0
        for x, y in eval_windows(src, self.bptt):
            logits, hidden = model(x, hidden)
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum"
            ).item()
            count += y.numel()
        model.train(was_training)
        loss = total / count
        return {"loss": loss, "ppl": perplexity(loss)}
