"""Entry point: `python -m legw_repro.train task=ptb policy=sqrt_legw batch_size=320`.

Compose (Hydra) -> the run spec, checked (legw_repro/spec.py: clear errors, before anything
runs) -> build the task -> train -> write the run record. The same command runs under `torchrun --nproc_per_node=N` (DDP; the
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
from omegaconf import DictConfig, OmegaConf

from legw_repro import distributed
from legw_repro.data.download import DataError
from legw_repro.distributed import DistInfo
from legw_repro.records import RunRecord, now_iso, read_summary
from legw_repro.spec import RunSpec, build_spec, record_fields
from legw_repro.validate import ConfigError, task_class

log = logging.getLogger("legw_repro.train")


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into `run_dir`; returns the summary written there."""
    spec = build_spec(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    previous = read_summary(run_dir)
    if cfg.resume and previous and previous.get("status") in ("completed", "diverged"):
        log.info("%s already %s; skipping (resume=true)", run_dir, previous["status"])
        return previous
    dist = distributed.setup(spec.device)
    try:
        return _train(cfg, spec, dist, run_dir, (previous or {}).get("started_at"))
    finally:
        distributed.teardown()


def _train(
    cfg: DictConfig, spec: RunSpec, dist: DistInfo, run_dir: Path, started_at: str | None
) -> dict[str, Any]:
    from legw_repro.trainer import Trainer

    task = task_class(cfg)(cfg, dist)
    task.spec = spec
    task.check_data()
    record = RunRecord(run_dir, cfg, enabled=dist.is_main)
    trainer = Trainer(
        spec,
        task,
        dist,
        record,
        progress=bool(cfg.progress),
        crash_at_step=int(cfg.get("crash_at_step") or 0),
    )
    base = {
        **record_fields(spec),
        "metric": task.metric,
        "higher_is_better": task.higher_is_better,
        "model": OmegaConf.to_container(cfg.task.model, resolve=True),
        "device": str(dist.device),
        "started_at": started_at or now_iso(),
    }
    record.write_config()
    record.write_summary({**base, **trainer.summary_fields(), "status": "running"})
    tags = ("task", "policy", "batch_size", "seed", "scale")
    record.start_wandb({k: base[k] for k in tags} | {"k": trainer.summary_fields()["k"]})
    log.info(
        "run dir %s | %s %s batch %d | device %s | world %d | %d steps/epoch, %d steps",
        run_dir,
        spec.task,
        spec.policy,
        spec.batch_size,
        dist.device,
        dist.world_size,
        trainer.spe,
        trainer.total_steps,
    )
    try:
        result = trainer.fit(resume=bool(cfg.resume))
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
        final = trainer.final_metrics("failed")
        _finish(record, {**base, **trainer.summary_fields()}, "failed", reason, final)
        raise
    summary = _finish(record, {**base, **trainer.summary_fields()}, **result)
    if dist.is_main:
        log.info("%s: %s %s", run_dir, summary["status"], summary["final"])
    return summary


def _finish(
    record: RunRecord, fields: dict[str, Any], status: str, reason: str | None, final: dict, **extra
) -> dict[str, Any]:
    """The final summary.json (status, reason, final metrics, a task's extra fields)."""
    summary = {**fields, "status": status, "reason": reason, "final": final, **extra}
    summary["finished_at"] = now_iso()
    record.write_summary(summary)
    record.close()
    return summary


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
