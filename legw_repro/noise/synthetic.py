"""A problem whose gradient noise scale is known in closed form: the check the estimator in
legw_repro/noise/estimator.py must pass before its numbers on a real task mean anything.

Linear regression y = x . w* + eps, x ~ N(0, I_d), eps ~ N(0, sigma^2), per-item loss
(x . w - y)^2 / 2. At weights w, with D = w - w*, the per-item gradient is x (x . D - eps), so
G = D and (Gaussian fourth moments) Sigma = (|D|^2 + sigma^2) I + D D^T: hence
tr(Sigma) = d (|D|^2 + sigma^2) + |D|^2 and B_simple = tr(Sigma) / |D|^2. Every draw is a fresh
sample (an infinite population), so the two-batch estimators are exactly unbiased here.

It offers the part of the Task interface that legw_repro.noise.estimator.measure_task uses
(train_batches, init_carry, loss), so the test goes through the same code as a real task.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn


def true_b_simple(d: int, delta_sq: float, sigma_sq: float) -> float:
    """tr(Sigma) / |G|^2 of the problem at |w - w*|^2 = delta_sq."""
    return (d * (delta_sq + sigma_sq) + delta_sq) / delta_sq


class LinearRegressionTask:
    """Fresh Gaussian data on every call; `model()` is a linear map at distance
    sqrt(delta_sq) from w* (w* = 0, so the weights are D itself)."""

    def __init__(
        self, d: int, delta_sq: float, sigma_sq: float, b_small: int, m: int, seed: int = 0
    ) -> None:
        self.d, self.delta_sq, self.sigma_sq = d, delta_sq, sigma_sq
        self.b_small, self.m = b_small, m
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def b_simple(self) -> float:
        return true_b_simple(self.d, self.delta_sq, self.sigma_sq)

    def model(self) -> nn.Module:
        lin = nn.Linear(self.d, 1, bias=False).double()
        with torch.no_grad():
            w = torch.randn(1, self.d, generator=self.gen, dtype=torch.float64)
            lin.weight.copy_(w * (self.delta_sq**0.5) / w.norm())
        return lin

    def _batch(self) -> tuple[Tensor, Tensor]:
        x = torch.randn(self.b_small, self.d, generator=self.gen, dtype=torch.float64)
        eps = torch.randn(self.b_small, generator=self.gen, dtype=torch.float64)
        return x, eps * self.sigma_sq**0.5  # y = x . w* + eps with w* = 0

    def train_batches(self, epoch: int, start_step: int = 0) -> Iterator[list[Any]]:
        while True:
            yield [self._batch() for _ in range(self.m)]

    def init_carry(self, model: nn.Module) -> list[Any]:
        return [None] * self.m

    def loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, Any]:
        x, y = batch
        return 0.5 * ((model(x).squeeze(1) - y) ** 2).mean(), None
