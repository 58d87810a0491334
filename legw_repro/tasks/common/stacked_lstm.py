"""N independent LSTMs run as one: every weight carries a leading member dimension and each time
step is one batched matmul per layer, so N small models fill the device like one large one.

Why not nn.LSTM under torch.func.vmap: PyTorch has no batching rule for aten::lstm. The math is
nn.LSTM's exactly (gate order i, f, g, o; two biases; c' = f*c + i*g, h' = o*tanh(c')), so a member
equals its own nn.LSTM up to float summation order (tests/test_fused.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: one layer's stacked weights: w_ih [N, 4H, in], w_hh [N, 4H, H], b_ih [N, 4H], b_hh [N, 4H]
Layer = tuple[Tensor, Tensor, Tensor, Tensor]


def stacked_lstm(
    x: Tensor, h0: Tensor, c0: Tensor, layers: list[Layer]
) -> tuple[Tensor, Tensor, Tensor]:
    """`x` [N, T, B, in] (time-major per member), `h0`/`c0` [N, L, B, H] -> the top layer's
    outputs [N, T, B, H] and the final h, c [N, L, B, H]."""
    n, t, b, _ = x.shape
    hs, cs = [], []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        # the input projection of all time steps at once: one large matmul per layer
        proj = torch.baddbmm(
            (b_ih + b_hh).unsqueeze(1), x.reshape(n, t * b, -1), w_ih.transpose(1, 2)
        ).view(n, t, b, -1)
        h, c = h0[:, layer], c0[:, layer]
        # unbind, not proj[:, step]: each select's backward would write a whole zero [N, T, B, 4H]
        steps = proj.unbind(1)
        w_hh_t = w_hh.transpose(1, 2)
        outs = []
        for step in steps:
            gates = torch.baddbmm(step, h, w_hh_t)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs, dim=1)
        hs.append(h)
        cs.append(c)
    return x, torch.stack(hs, dim=1), torch.stack(cs, dim=1)


def lstm_layers(stacks: dict[str, Tensor], prefix: str, num_layers: int) -> list[Layer]:
    """The stacked weights of nn.LSTM `prefix` (e.g. "lstm") in the order stacked_lstm takes."""
    return [
        tuple(
            stacks[f"{prefix}.{kind}_l{k}"]
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        for k in range(num_layers)
    ]
