"""The optimizer of a run, built from its recipe (`OptimizerSpec`).

Why its own module: the trainer, the benchmark's bare loop (legw_repro/bench/bare.py) and the
CUDA graph step (legw_repro/loop/cudagraph.py) must all get the same optimizer with the same kernels.
"""

from __future__ import annotations

import torch
from torch import nn

from legw_repro.config.keys import OPTIMIZERS
from legw_repro.config.spec import OptimizerSpec


def fused_kernels(params: list[torch.Tensor]) -> dict[str, bool]:
    """`fused=True` where PyTorch has fused optimizer kernels for every parameter (CUDA): one
    launch per step instead of a few per tensor, which is what a small model's step waits on.
    Elsewhere PyTorch's default (foreach where supported)."""
    on_gpu = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    return {"fused": True} if on_gpu else {}


def build_optimizer(opt: OptimizerSpec, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    fused = fused_kernels(params)
    if opt.name == "sgd":
        return torch.optim.SGD(
            params, lr=opt.base_lr, momentum=opt.momentum, weight_decay=opt.weight_decay, **fused
        )
    if opt.name == "adam":
        return torch.optim.Adam(
            params,
            lr=opt.base_lr,
            betas=opt.betas,
            eps=opt.eps,
            weight_decay=opt.weight_decay,
            **fused,
        )
    raise ValueError(f"policy.optimizer={opt.name!r} is unknown; choose one of {list(OPTIMIZERS)}")
