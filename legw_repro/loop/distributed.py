"""Process-group set-up and the rank helpers the trainer needs.

One code path for every case: a single process (CPU or one GPU) is simply world_size == 1, and
`torchrun` (any number of GPUs or nodes) sets RANK / WORLD_SIZE / LOCAL_RANK, which we read.
Backend: NCCL on CUDA, gloo on CPU. A tensor handed to a collective must live where its backend
reads memory (`DistInfo.comm_device`): NCCL rejects CPU tensors, so every collective here takes
the DistInfo and puts its tensor there itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from legw_repro.config.spec import resolve_device
from legw_repro.run.status import one_line

#: the process-group backend for a device type
BACKENDS: dict[str, str] = {"cuda": "nccl", "cpu": "gloo"}
#: how long a collective waits for the other ranks by default (config: dist_timeout_s); gloo's
#: own default is 30 minutes, so one stalled rank used to hang every other one that long
DEFAULT_TIMEOUT_S = 600.0


class DistributedFault(RuntimeError):
    """A collective failed or timed out: another rank stalled or died. One line."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""  # "": the one for the device (BACKENDS)

    def __post_init__(self) -> None:
        if not self.backend:
            object.__setattr__(self, "backend", BACKENDS.get(self.device.type, "gloo"))

    @property
    def comm_device(self) -> torch.device:
        """Where a collective's tensors must be: NCCL reads this process's GPU, gloo the CPU."""
        return self.device if self.backend == "nccl" else torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_pref: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_pref, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    info = DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend=info.backend, timeout=timedelta(seconds=timeout_s))
    return info


def fault_message(e: BaseException, info: DistInfo, timeout_s: float) -> str | None:
    """One line for an exception raised by a collective (a timeout, a peer gone), else None."""
    text = one_line(e)
    comm = isinstance(e, getattr(dist, "DistError", ())) or any(
        s in text.lower()
        for s in ("timed out", "timeout", "connection closed", "connection reset", "broken pipe")
    )
    if not (info.distributed and comm and isinstance(e, RuntimeError)):
        return None
    return (
        f"rank {info.rank}/{info.world_size}: a collective failed -- another rank stalled or "
        f"died (collectives wait at most dist_timeout_s={timeout_s:g}s): {text[:300]}"
    )


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_slices(global_batch: int, rank: int, world_size: int, accum_steps: int) -> list[slice]:
    """This rank's micro-batch slices of a global batch: rank r owns the r-th contiguous block,
    cut into `accum_steps` equal pieces. Raises if the batch does not divide."""
    parts = world_size * accum_steps
    if global_batch % parts:
        raise ValueError(
            f"batch_size={global_batch} is not divisible by world_size*accum_steps="
            f"{world_size}*{accum_steps}={parts}; choose a batch_size that is a multiple of {parts}"
        )
    micro = global_batch // parts
    start = rank * accum_steps * micro
    return [slice(start + i * micro, start + (i + 1) * micro) for i in range(accum_steps)]


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The sum of `t` over all ranks, on `t`'s device (moved to the backend's device and back)."""
    if not (dist.is_available() and dist.is_initialized()):
        return t
    on_comm = t.to(info.comm_device)
    dist.all_reduce(on_comm, op=dist.ReduceOp.SUM)
    return on_comm.to(t.device)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when `flag` is true on at least one (so all take a collective step)."""
    return any_rank_flags((flag,), info)[0]


def any_rank_flags(flags: tuple[bool, ...], info: DistInfo) -> tuple[bool, ...]:
    """`any_rank` for several flags in one collective (e.g. "checkpoint due", "stop")."""
    if not (dist.is_available() and dist.is_initialized()):
        return tuple(flags)
    t = torch.tensor([float(f) for f in flags], device=info.comm_device)
    return tuple(bool(v > 0) for v in all_reduce_sum(t, info).tolist())


def all_gather_object(obj: object, world_size: int) -> list[object]:
    if world_size == 1:
        return [obj]
    out: list[object] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
