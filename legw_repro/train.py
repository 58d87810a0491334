"""Entry point: `python -m legw_repro.train task=ptb policy=sqrt_legw batch_size=320`.

Compose (Hydra) -> the run spec, checked (legw_repro/config/spec.py: clear errors, before anything
runs) -> the run directory: locked (runlock.py), matched against the configuration it holds
(fingerprint.py, rundir.py) -> build the task, check the data against the config -> train ->
write the run record. The same command runs under `torchrun --nproc_per_node=N` (DDP; the batch
stays the *global* batch) and as a Hydra multirun sweep (`-m`). In a sweep a failed run is
recorded as failed and the sweep moves on; a single run exits non-zero.

Exit status: 0 completed, diverged or skipped; 1 failed (an exception, or a stalled, dead or absent
DDP rank); 2 refused before training (a bad value, a run directory holding another
configuration or a finished result, no loadable checkpoint); 73 another process writes the
run directory (a sweep: after its other runs, naming each run it could not finish); 74 a write found the disk full (free space, then resume=true); 75 preempted,
resume with resume=true; 128 + N killed by a second signal N.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from legw_repro.config.cli import check_overrides, fail
from legw_repro.config.config_dir import CONFIGS
from legw_repro.loop.diskfull import DiskFull
from legw_repro.loop.distributed import DistributedFault
from legw_repro.run.lifecycle import run
from legw_repro.run.preemption import Preempted, hand_over
from legw_repro.run.runlock import EXIT_LOCKED, RunLocked
from legw_repro.run.status import EXIT_NO_SPACE, EXIT_REFUSED, Refused

log = logging.getLogger("legw_repro.train")


@hydra.main(version_base="1.3", config_path=str(CONFIGS), config_name="train")
def _hydra_main(cfg: DictConfig) -> dict[str, Any] | list[dict[str, Any]] | None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    t0 = time.time()
    try:
        if cfg.get("fuse_group"):  # set by the sweeper (hydra.sweeper.fuse): a fused group
            return _run_group(str(cfg.fuse_group))
        return run(cfg, run_dir)
    except Preempted as e:
        hand_over(e, multirun=multirun)
    except RunLocked as e:
        if not multirun:
            fail(e, EXIT_LOCKED)
        # not done: the sweep launches the rest, then ends with EXIT_LOCKED naming this run
        # (hydra_plugins/legw_sweeper), never 0 for a run it did not finish
        raise
    except Refused as e:
        fail(e, EXIT_REFUSED)
    except DistributedFault as e:
        fail(e, 1)
    except DiskFull as e:  # in a sweep too: the next run would find the same full disk
        fail(e, EXIT_NO_SPACE)
    except Exception as e:
        if not multirun:
            raise
        # recorded as failed in summary.json; the sweep goes on with the next run
        log.exception("run %s failed after %.0fs: %s", run_dir, time.time() - t0, e)
    return None


def _run_group(path: str) -> list[dict[str, Any]]:
    """The runs a group file names (legw_repro/sweep/fuse.py), trained as one fused group."""
    from legw_repro.run.group import GroupMember, run_group
    from legw_repro.sweep.fuse import read_group

    members = [
        GroupMember(OmegaConf.create(m["config"]), Path(m["run_dir"]), tuple(m["overrides"]))
        for m in read_group(path)
    ]
    return run_group(members)


def main() -> None:
    """`legw-train` and `python -m legw_repro.train`: the same checks for both. A mistyped key
    is refused (with the closest known one) before Hydra composes anything."""
    check_overrides(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
