"""The fused forward of each task's model (the twin legw_repro/loop/fused.py trains): N members' losses from their stacked parameters.

Each adapter is the stacked twin of one model class (tasks/mnist/model.py, tasks/ptb/model.py)
and of its task's `loss`: the same function per member, computed for all members by batched
matmuls (stacked_lstm.py). A model this module has no twin for is refused with one line.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from legw_repro.loop.fused import NotFusable
from legw_repro.tasks.common.stacked_lstm import lstm_layers, stacked_lstm
from legw_repro.tasks.mnist.model import MNISTLSTM
from legw_repro.tasks.ptb.model import LSTMLanguageModel


def _linear(stacks: dict[str, Tensor], prefix: str, x: Tensor) -> Tensor:
    """nn.Linear per member: `x` [N, M, in] -> [N, M, out]."""
    weight, bias = stacks[f"{prefix}.weight"], stacks[f"{prefix}.bias"]
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _head_means(
    stacks: dict[str, Tensor], prefix: str, x: Tensor, y: Tensor, batched: bool | None = None
) -> Tensor:
    """The output layer and the cross-entropy, a mean per member: `x` [N, M, in], `y` [N, M]
    -> [N]. On a GPU one batched matmul and one loss for all members (fewer launches); on a CPU
    member by member, each as large as its solo run's, so that a member's logits are no larger
    than its solo run's (all N at once ran the memory-bound softmax ~3.5x slower per item)."""
    if x.is_cuda if batched is None else batched:
        return _member_means(_linear(stacks, prefix, x), y)
    weights = stacks[f"{prefix}.weight"].unbind(0)  # unbind: one stacked gradient, not N zeros
    biases = stacks[f"{prefix}.bias"].unbind(0)
    return torch.stack(
        [
            F.cross_entropy(F.linear(xi, w, b).float(), yi)
            for xi, w, b, yi in zip(x.unbind(0), weights, biases, y.unbind(0), strict=True)
        ]
    )


def _member_means(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy, a mean per member: `logits` [N, M, C], `y` [N, M] -> [N]."""
    n, m, c = logits.shape
    losses = F.cross_entropy(logits.reshape(n * m, c).float(), y.reshape(n * m), reduction="none")
    return losses.view(n, m).mean(dim=1)


class FusedMNIST:
    """MNISTLSTM (row or pixel input, any layers) and MNISTTask.loss, for N members."""

    def __init__(self, model: MNISTLSTM) -> None:
        self.step_size, self.layers, self.hidden = model.step_size, model.num_layers, model.hidden

    def losses(
        self, stacks: dict[str, Tensor], batches: list[Any], carry: Any
    ) -> tuple[Tensor, Any]:
        x = torch.stack([b[0] for b in batches])  # [N, B, 28, 28]
        y = torch.stack([b[1] for b in batches])  # [N, B]
        n, b = y.shape
        seq = x.reshape(n, b, -1, self.step_size).transpose(1, 2)  # [N, T, B, step]
        zeros = seq.new_zeros(n, self.layers, b, self.hidden)
        _, h, _ = stacked_lstm(seq, zeros, zeros, lstm_layers(stacks, "lstm", self.layers))
        return _member_means(_linear(stacks, "head", h[:, -1]), y), None

    def member_carry(self, carry: Any, i: int) -> list[Any]:
        return [None]  # MNISTTask.init_carry: no state between steps

    def stack_carry(self, carries: list[list[Any] | None]) -> Any:
        return None


class FusedPTB:
    """LSTMLanguageModel (untied, no dropout) and PTBTask.loss, for N members; the carry is the
    stacked hidden state [N, L, B, H]."""

    def __init__(self, model: LSTMLanguageModel) -> None:
        if model.decoder.weight is model.embedding.weight:
            raise NotFusable("task.model.tie_weights=true is not fusable yet; set it to false")
        self.layers, self.hidden = model.num_layers, model.hidden

    def losses(
        self, stacks: dict[str, Tensor], batches: list[Any], carry: Any
    ) -> tuple[Tensor, Any]:
        x = torch.stack([b[0] for b in batches])  # [N, T, B] token ids
        y = torch.stack([b[1] for b in batches])
        n, t, b = x.shape
        if carry is None:
            zeros = stacks["embedding.weight"].new_zeros(n, self.layers, b, self.hidden)
            carry = (zeros, zeros)
        tables = stacks["embedding.weight"].unbind(0)  # each member's dense gradient, as solo
        emb = torch.stack([F.embedding(xi, w) for xi, w in zip(x.unbind(0), tables, strict=True)])
        out, h, c = stacked_lstm(emb, carry[0], carry[1], lstm_layers(stacks, "lstm", self.layers))
        losses = _head_means(stacks, "decoder", out.reshape(n, t * b, self.hidden), y.view(n, -1))
        return losses, (h.detach(), c.detach())

    def member_carry(self, carry: Any, i: int) -> list[Any] | None:
        """PTBTask.init_carry's form: one (h, c) pair [L, B, H] per micro-batch (one here)."""
        return None if carry is None else [(carry[0][i], carry[1][i])]

    def stack_carry(self, carries: list[list[Any] | None]) -> Any:
        if any(c is None for c in carries):
            return None  # a fresh group: zeros at the first step
        return tuple(torch.stack([c[0][j] for c in carries]) for j in range(2))


def fused_forward(model: nn.Module) -> FusedMNIST | FusedPTB:
    """The fused twin of `model` (one member's model, as its task builds it)."""
    dropouts = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    dropouts += [m.dropout for m in model.modules() if isinstance(m, nn.LSTM)]
    if any(p > 0 for p in dropouts):
        raise NotFusable(
            f"dropout={max(dropouts)} is not fusable (members would need their own dropout "
            "streams); set task.model.dropout=0 or train the runs separately"
        )
    if isinstance(model, MNISTLSTM):
        return FusedMNIST(model)
    if isinstance(model, LSTMLanguageModel):
        return FusedPTB(model)
    raise NotFusable(
        f"model {type(model).__name__} has no fused twin (legw_repro/tasks/common/fused.py); train "
        "its runs separately"
    )
