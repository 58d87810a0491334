"""Process-group set-up and the rank helpers the trainer needs.

One code path for every case: a single process (CPU or one GPU) is simply world_size == 1, and
`torchrun` (any number of GPUs or nodes) sets RANK / WORLD_SIZE / LOCAL_RANK, which we read.
Backend: NCCL on CUDA, gloo on CPU. A tensor handed to a collective must live where its backend
reads memory (`DistInfo.comm_device`): NCCL rejects CPU tensors, so every collective here takes
the DistInfo and puts its tensor there itself.
"""

from __future__ import annotations

import os
import re
import socket
import time
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
        _await_rank0(info, timeout_s)
        try:  # rank 0's TCPStore waits at most the timeout for the other ranks to connect
            dist.init_process_group(backend=info.backend, timeout=timedelta(seconds=timeout_s))
        except dist.DistError as e:
            raise DistributedFault(start_message(e, info, timeout_s)) from e
    return info


def _rendezvous() -> str:
    return f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"


def _await_rank0(info: DistInfo, timeout_s: float) -> None:
    """Another rank waits, at most `timeout_s`, until rank 0's rendezvous store listens. Why:
    torch's own client retries with a random back-off, so with rank 0 absent it waited up to ~3x
    dist_timeout_s, printing each failed try as a C++ stack trace. A probe connection that is
    closed at once is harmless to the store (torchrun's agent store listens already)."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT", "")
    if info.is_main or not addr or not port.isdigit():
        return  # rank 0 hosts the store; a missing address is torch's to name
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            with socket.create_connection((addr, int(port)), timeout=min(1.0, left)):
                return
        except socket.gaierror as e:
            raise DistributedFault(
                f"rank {info.rank}/{info.world_size}: MASTER_ADDR={addr} does not resolve "
                f"({e.strerror}): set it to rank 0's host"
            ) from None
        except OSError:
            time.sleep(min(0.2, max(left, 0.0)))
    raise DistributedFault(
        f"rank {info.rank}/{info.world_size}: rank 0 did not answer at {_rendezvous()} within "
        f"dist_timeout_s={timeout_s:g}s: start rank 0 there (MASTER_ADDR, MASTER_PORT), or raise "
        "dist_timeout_s"
    )


def start_message(e: BaseException, info: DistInfo, timeout_s: float) -> str:
    """One line for a process group that did not form (a rank never started, a port taken):
    torch raised it after the timeout as a traceback, and no record said why the run ended."""
    text = one_line(e)
    who, where = f"rank {info.rank}/{info.world_size}", _rendezvous()
    if "timed out" in text.lower() or "timeout" in text.lower():
        joined = re.search(r"(\d+)/(\d+) clients joined", text)
        seen = f"; {joined[1]} of {joined[2]} joined" if joined else ""
        return (
            f"{who}: the other ranks did not join within dist_timeout_s={timeout_s:g}s ({where}"
            f"{seen}): start every rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, "
            "or raise dist_timeout_s"
        )
    return (
        f"{who}: the process group did not start at {where} ({text[:300]}): check MASTER_ADDR "
        "and MASTER_PORT (a free port on rank 0's host)"
    )


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
