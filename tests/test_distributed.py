"""Collectives put their tensors where the backend reads memory, checked without a GPU.

NCCL rejects a CPU tensor, so a trainer that builds a collective's tensor with no device (the
checkpoint-due flag once did) fails at the first step of every multi-GPU run -- and DDP is only
tested here on gloo, where CPU tensors are right. The test below plays a machine in which the
CPU stands in for "this process's GPU" and the `meta` device for "where a tensor without a device
lands": a DistInfo claims the nccl backend on the CPU, the default device is `meta`, and a spy in
place of `torch.distributed.all_reduce` asserts every tensor is on `DistInfo.comm_device`.
"""

from __future__ import annotations

import torch
import torch.distributed as tdist

from legw_repro.config.spec import build_spec
from legw_repro.config.validate import task_class
from legw_repro.loop.distributed import DistInfo
from legw_repro.loop.trainer import Trainer
from legw_repro.run.records import RunRecord
from tests.helpers import make_cfg
from tests.test_train import SMALL


def test_backend_and_comm_device_follow_the_device():
    gpu = DistInfo(device=torch.device("cuda", 1))  # a device object; nothing is allocated
    assert (gpu.backend, gpu.comm_device) == ("nccl", torch.device("cuda", 1))
    cpu = DistInfo()
    assert (cpu.backend, cpu.comm_device) == ("gloo", torch.device("cpu"))


def test_every_collective_tensor_is_on_the_backends_device(tmp_path, shared_data_dir, monkeypatch):
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", "checkpoint_every_steps=3")
    info = DistInfo(backend="nccl")  # its GPU is the CPU here; see the module docstring
    assert info.comm_device == torch.device("cpu")
    seen: list[torch.device] = []

    def all_reduce(t: torch.Tensor, op=None, **kwargs) -> None:
        seen.append(t.device)
        assert t.device == info.comm_device, f"all_reduce got a tensor on {t.device}"

    monkeypatch.setattr(tdist, "is_initialized", lambda: True)
    monkeypatch.setattr(tdist, "all_reduce", all_reduce)
    task = task_class(cfg)(cfg, info)
    trainer = Trainer(build_spec(cfg), task, info, RunRecord(tmp_path, cfg), progress=False)
    torch.set_default_device("meta")  # a tensor built without a device lands off the "GPU"
    try:
        result = trainer.fit(resume=False)
    finally:
        torch.set_default_device(None)
    assert result["status"] == "completed"
    # at least the checkpoint-due flag every step (losses are reduced at log points only)
    assert len(seen) >= trainer.total_steps
