"""The gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018, arXiv
1812.06162), from the two-batch-size unbiased estimators of their appendix A.

Why: B_simple predicts, before any LR rule is tried, the batch size beyond which a step buys
little more progress than a step at a smaller batch (steps S = S_min (1 + B_noise / B)): past it,
a fixed epoch budget starves any rule of steps. It is measured here through the Task interface,
so every task gets it the same way.

At fixed weights (no update in between), one *draw* is a batch of B_big items cut into
m = B_big / B_small micro-batches of B_small items. With g_i the gradient of micro-batch i's mean
loss, |G_small|^2 := mean_i |g_i|^2 and |G_big|^2 := |mean_i g_i|^2. Since
E|G_B|^2 = |G|^2 + tr(Sigma) / B for a batch of B independent items,

    |G|^2_est = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    S_est     = (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

are unbiased for |G|^2 and tr(Sigma). Their ratio is not, so B_simple is the ratio of the means
over many draws, with a bootstrap (over draws) percentile interval and a delta-method standard
error. Items of one draw are drawn without replacement from a finite set of N: tr(Sigma) is then
underestimated by the factor (N - B_big) / (N - 1) at most (under 2 % for MNIST at B_big = 1024).

Under DDP, `draw_norms` takes a `reduce` (sum over ranks, e.g. an all-reduce) for the summed
micro-batch gradient and the summed squared norms; the model must then be the plain module (not
the DDP wrapper, which would average the micro-batch gradients behind our back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

#: sums a tensor over ranks (in place or not) and returns the sum; None: one process
Reduce = Callable[[Tensor], Tensor]


def check_batches(b_small: int, b_big: int) -> int:
    """m = b_big / b_small, refusing sizes the estimators cannot use (one line, naming the fix)."""
    if b_small < 1:
        raise ValueError(f"b_small={b_small} must be a positive number of items")
    if b_big <= b_small or b_big % b_small:
        raise ValueError(
            f"b_big={b_big} must be a multiple of b_small={b_small} larger than it "
            f"(e.g. b_big={4 * b_small}): a draw is b_big / b_small micro-batches"
        )
    return b_big // b_small


def unbiased_pair(small_sq: Any, big_sq: Any, b_small: float, b_big: float) -> tuple[Any, Any]:
    """(|G|^2_est, tr(Sigma)_est) from one or many draws' squared norms (floats or arrays)."""
    g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)
    trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


@dataclass(frozen=True)
class NoiseEstimate:
    """B_simple over `n_draws` draws; `ci_low`/`ci_high`: bootstrap percentile interval at
    `level` (inf when the resampled mean |G|^2 is not positive); `se`: delta-method error."""

    b_simple: float
    ci_low: float
    ci_high: float
    se: float
    g2: float  # mean |G|^2_est
    trace_sigma: float  # mean tr(Sigma)_est (per item)
    n_draws: int
    b_small: int
    b_big: int
    level: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, +inf where the denominator is not positive (no finite noise scale)."""
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, num / safe, np.inf)


def delta_se(trace: np.ndarray, g2: np.ndarray) -> float:
    """Delta-method standard error of mean(trace) / mean(g2) over independent draws."""
    n = len(trace)
    mg = float(g2.mean())
    if n < 2 or mg <= 0:
        return float("inf")
    r = float(trace.mean()) / mg
    cov = np.cov(np.stack([trace, g2]), ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * mg * mg)
    return float(np.sqrt(max(var, 0.0)))


def estimate(
    small_sq: Sequence[float],
    big_sq: Sequence[float],
    b_small: int,
    b_big: int,
    *,
    n_boot: int = 2000,
    level: float = 0.9,
    seed: int = 0,
) -> NoiseEstimate:
    """B_simple = mean(tr(Sigma)_est) / mean(|G|^2_est) over the draws, with its interval."""
    check_batches(b_small, b_big)
    small = np.asarray(small_sq, dtype=np.float64)
    big = np.asarray(big_sq, dtype=np.float64)
    if small.shape != big.shape or small.ndim != 1 or len(small) < 2:
        raise ValueError(f"need two equal 1-d sequences of >= 2 draws, got {small.shape}")
    g2, trace = unbiased_pair(small, big, b_small, b_big)
    b_simple = float(_ratio(np.array(trace.mean()), np.array(g2.mean())))
    idx = np.random.default_rng(seed).integers(0, len(small), size=(n_boot, len(small)))
    boot = _ratio(trace[idx].mean(axis=1), g2[idx].mean(axis=1))
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(boot, [tail, 1.0 - tail], method="inverted_cdf")
    return NoiseEstimate(
        b_simple=b_simple,
        ci_low=float(lo),
        ci_high=float(hi),
        se=delta_se(trace, g2),
        g2=float(g2.mean()),
        trace_sigma=float(trace.mean()),
        n_draws=len(small),
        b_small=b_small,
        b_big=b_big,
        level=level,
    )


def flat_grad(params: Sequence[Tensor]) -> Tensor:
    """All parameters' gradients as one float64 vector (zeros for a parameter without one)."""
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).double()
            for p in params
        ]
    )


def draw_norms(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    micro_batches: Sequence[Any],
    carries: Sequence[Any] | None = None,
    reduce: Reduce | None = None,
) -> tuple[float, float]:
    """(|G_small|^2, |G_big|^2) of one draw: every micro-batch's gradient at the same weights.
    `loss_fn(batch, carry)` is the micro-batch's mean loss; `reduce` sums over DDP ranks."""
    params = [p for p in model.parameters() if p.requires_grad]
    total: Tensor | None = None
    small: Tensor | None = None  # on the gradients' device: NCCL reduces nothing on the CPU
    for i, mb in enumerate(micro_batches):
        model.zero_grad(set_to_none=True)
        carry = carries[i] if carries is not None and i < len(carries) else None
        loss_fn(mb, carry).backward()
        g = flat_grad(params)
        small = g.dot(g) if small is None else small + g.dot(g)
        total = g if total is None else total + g
    model.zero_grad(set_to_none=True)
    if total is None or small is None:
        raise ValueError("a draw needs at least one micro-batch")
    count = torch.tensor(float(len(micro_batches)), dtype=torch.float64, device=total.device)
    if reduce is not None:
        total, small, count = reduce(total), reduce(small), reduce(count)
    big = total / count
    return float(small / count), float(big.dot(big))


def all_reduce_sum(t: Tensor) -> Tensor:
    """The `reduce` of a DDP run: the sum over ranks of a copy of `t`."""
    import torch.distributed as dist

    out = t.clone()
    dist.all_reduce(out)
    return out


def task_draws(task: Any, first_epoch: int) -> Iterator[list[Any]]:
    """The task's optimizer-step batches from `first_epoch` on, endlessly: each one draw.
    The task must be built with batch_size = b_big and accum_steps = b_big / b_small."""
    epoch = first_epoch
    while True:
        yield from task.train_batches(epoch)
        epoch += 1


def measure_task(
    task: Any,
    model: nn.Module,
    n_draws: int,
    *,
    first_epoch: int = 1_000_000,
    reduce: Reduce | None = None,
    share: tuple[int, int] = (0, 1),
) -> tuple[list[float], list[float]]:
    """Squared norms of `n_draws` draws of `task` at `model`'s current weights. The model is in
    training mode (dropout is part of the noise the optimizer sees); each draw starts from the
    task's initial carry (an LSTM language model's zero state). `share` = (rank, world): every
    rank builds the same draws and takes micro-batches rank, rank + world, ... of each, so with
    `reduce` summing over ranks the draw is the one-process draw."""
    rank, world = share
    model.train()
    small, big = [], []
    draws = task_draws(task, first_epoch)
    for _ in range(n_draws):
        micro = next(draws)
        carries = task.init_carry(model)
        if world > 1:
            mine = range(rank, len(micro), world)
            micro = [micro[i] for i in mine]
            carries = None if carries is None else [carries[i] for i in mine if i < len(carries)]
        s, b = draw_norms(model, lambda mb, c: task.loss(model, mb, c)[0], micro, carries, reduce)
        small.append(s)
        big.append(b)
    return small, big
