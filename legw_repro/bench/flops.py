"""FLOPs per item of a training step, and the device's measured matmul peak.

Why counted rather than written down per model: one method covers the three tasks (GNMT's
attention and packed encoder included) and follows any change to a model. The count comes from
`torch.utils.flop_counter` on a CPU copy of the model with oneDNN switched off: cuDNN's and
oneDNN's fused LSTM kernels are single operators the counter has no formula for, while the
plain CPU LSTM is built from matmuls it counts. Forward and backward are counted (the optimizer
and element-wise work are O(parameters) and left out), so this is the usual "training FLOPs":
about 3x the forward matmuls (Zaremba-small PTB: ~16 MFLOP per token).
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from legw_repro.tasks.base import Task


def to_cpu(obj: Any) -> Any:
    """Tensors, tuples, lists and objects with a `.to(device)` (e.g. SeqBatch) on the CPU."""
    cpu = torch.device("cpu")
    if isinstance(obj, torch.Tensor) or (hasattr(obj, "to") and hasattr(obj, "_replace")):
        return obj.to(cpu)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(o) for o in obj)
    return obj


def batch_items(batch: Any) -> int:
    """Items in one micro-batch, in the task's throughput unit: target tokens (padding left out)
    for a sequence pair batch, else the number of targets (PTB: bptt x batch, MNIST: images)."""
    tgt = getattr(batch, "tgt_out", None)
    if tgt is not None:
        from legw_repro.tasks.gnmt.multi30k import PAD_ID

        return int((tgt != PAD_ID).sum())
    return int(batch[1].numel())


def narrow(obj: Any, size: int, n: int) -> Any:
    """Tensors cut to their first `n` rows along the first dimension of length `size` (the
    batch's: PTB [bptt, B], MNIST [B, 28, 28], an LSTM state [layers, B, hidden]); tuples and
    lists element-wise; other objects (a SeqBatch) as they are."""
    if isinstance(obj, torch.Tensor):
        dims = [d for d, k in enumerate(obj.shape) if k == size]
        return obj.narrow(dims[0], 0, n) if dims else obj
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_replace"):
        return type(obj)(narrow(o, size, n) for o in obj)
    return obj


def flops_per_item(
    task: Task, model: nn.Module, micro: list[Any], carry: Any, max_items: int = 32
) -> float:
    """Training FLOPs (forward + backward) per item of the batch `micro[0]`, counted on at most
    `max_items` of its rows (per item the count does not depend on the batch size; the plain
    CPU LSTM it needs is slow)."""
    batch, state = to_cpu(micro[0]), to_cpu(carry)
    size = getattr(task, "micro_batch_size", 0)
    if size > max_items:
        batch, state = narrow(batch, size, max_items), narrow(state, size, max_items)
    clone = copy.deepcopy(model).to("cpu").train()
    counter = FlopCounterMode(display=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=False), counter:
            loss, _ = task.loss(clone, batch, state)
            loss.backward()
    return counter.get_total_flops() / max(1, batch_items(batch))


def peak_flops(
    device: torch.device, dtype: torch.dtype = torch.float32, seconds: float = 0.5
) -> float:
    """Matmul FLOP/s this device reaches now (square matmuls; fp32 without TF32 unless the
    process enabled it): the ceiling the achieved FLOP/s is printed against."""
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    reps, t0 = 0, time.perf_counter()
    while True:
        for _ in range(10 if device.type == "cuda" else 1):
            a @ b
            reps += 1
        sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return 2 * n**3 * reps / elapsed
