"""DDP inside a cluster job: the tasks of one submitit job become the ranks of one run.

Why a Hydra callback: with hydra/launcher=slurm_multigpu, SLURM starts `tasks_per_node x nodes`
copies of the same Hydra job (srun tasks), each knowing only its SLURM task variables. Before
the run reads RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT (legw_repro/
distributed.py, as under torchrun), `on_job_start` exports them from submitit's
TorchDistributedEnvironment -- rank 0 on the first node's host, a port drawn from the job id.
Every task resolves the same run directory (it depends on the job's overrides only), and only
rank 0 writes the record: one run directory per run, never one per rank. Outside a submitit
job, in a one-task job, or under torchrun (RANK already set) it does nothing. Configured in
configs/experiment/_grid.yaml (hydra.callbacks), so every experiment has it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)


def submitit_tasks() -> int:
    """How many tasks the submitit job this process runs in has (1: none, or not a job)."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return 1
    try:
        import submitit

        return int(submitit.JobEnvironment().num_tasks)
    except (ImportError, RuntimeError, KeyError, ValueError):
        return 1


class SubmititDDP(Callback):
    """hydra.callbacks entry: export the torch.distributed variables of a multi-task job."""

    def on_job_start(self, config: Any = None, **kwargs: Any) -> None:
        if "RANK" in os.environ or submitit_tasks() <= 1:
            return
        from submitit.helpers import TorchDistributedEnvironment

        env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        log.info(
            "submitit task -> DDP rank %d of %d (local rank %d), master %s:%d",
            env.rank,
            env.world_size,
            env.local_rank,
            env.master_addr,
            env.master_port,
        )
