"""Entry point: `python -m legw_repro.train task=ptb policy=sqrt_legw batch_size=320`.

Compose (Hydra) -> validate (clear errors, before anything runs) -> build the task -> train ->
write the run record. The same command runs under `torchrun --nproc_per_node=N` (DDP; the
batch stays the *global* batch) and as a Hydra multirun sweep (`-m`). In a sweep a failed run is
recorded as failed and the sweep moves on; a single run exits non-zero.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from legw_repro.data.download import DataError
from legw_repro.records import RunRecord, now_iso, read_summary
from legw_repro.validate import ConfigError, task_class, validate

log = logging.getLogger("legw_repro.train")


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into `run_dir`; returns the summary written there."""
    from legw_repro import distributed
    from legw_repro.trainer import Trainer

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    validate(cfg, world_size)
    previous = read_summary(run_dir)
    if cfg.resume and previous and previous.get("status") in ("completed", "diverged"):
        log.info("%s already %s; skipping (resume=true)", run_dir, previous["status"])
        return previous

    dist = distributed.setup(str(cfg.device))
    try:
        task = task_class(cfg)(cfg, dist)
        task.check_data()
        record = RunRecord(run_dir, cfg, enabled=dist.is_main)
        trainer = Trainer(cfg, task, dist, record)
        base = {
            "task": str(cfg.task.name),
            "metric": task.metric,
            "higher_is_better": task.higher_is_better,
            "policy": str(cfg.policy.name),
            "optimizer": str(cfg.policy.optimizer),
            "rule": str(cfg.policy.rule),
            "warmup": str(cfg.policy.warmup),
            "decay": str(cfg.task.schedule.decay),
            "batch_size": int(cfg.batch_size),
            "base_batch_size": int(cfg.task.base_batch_size),
            "world_size": dist.world_size,
            "accum_steps": int(cfg.accum_steps),
            "seed": int(cfg.seed),
            "scale": str(cfg.scale.name),
            "epochs": cfg.epochs,
            "base_lr": float(cfg.task[cfg.policy.optimizer].base_lr),
            "device": str(dist.device),
            "started_at": (previous or {}).get("started_at") or now_iso(),
        }
        record.write_config()
        record.write_summary({**base, **trainer.summary_fields(), "status": "running"})
        record.start_wandb(
            {
                "task": base["task"],
                "policy": base["policy"],
                "batch_size": base["batch_size"],
                "k": trainer.summary_fields()["k"],
                "seed": base["seed"],
                "scale": base["scale"],
            }
        )
        log.info(
            "run dir %s | %s | device %s | world %d | %d steps/epoch, %d steps",
            run_dir,
            f"{cfg.task.name} {cfg.policy.name} batch {cfg.batch_size}",
            dist.device,
            dist.world_size,
            trainer.spe,
            trainer.total_steps,
        )
        try:
            result = trainer.fit(resume=bool(cfg.resume))
        except Exception as e:
            summary = {
                **base,
                **trainer.summary_fields(),
                "status": "failed",
                "reason": f"{type(e).__name__}: {e}",
                "final": trainer.final_metrics("failed"),
                "finished_at": now_iso(),
            }
            record.write_summary(summary)
            record.close()
            raise
        summary = {**base, **trainer.summary_fields(), **result, "finished_at": now_iso()}
        record.write_summary(summary)
        record.close()
        if dist.is_main:
            log.info("%s: %s %s", run_dir, summary["status"], summary["final"])
        return summary
    finally:
        distributed.teardown()


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> dict[str, Any] | None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    t0 = time.time()
    try:
        return run(cfg, run_dir)
    except (ConfigError, DataError) as e:
        _fail(str(e))
    except Exception as e:
        if hc.mode == RunMode.MULTIRUN:
            # recorded as failed in summary.json; the sweep goes on with the next run
            log.exception("run %s failed after %.0fs: %s", run_dir, time.time() - t0, e)
            return None
        raise
    return None


if __name__ == "__main__":
    main()
