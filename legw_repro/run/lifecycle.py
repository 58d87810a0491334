"""One run's life, from a checked config to its record: `run(cfg, run_dir)`.

The run spec, checked (legw_repro/config/spec.py: clear errors, before anything runs) -> the run
directory: locked (runlock.py), matched against the configuration it holds (fingerprint,
rundir.py: start, resume, skip or refuse) -> build the task, check the data against the config
-> train (legw_repro/loop/trainer.py) -> write the run record (records.py). The command line
around it (Hydra, exit statuses) is legw_repro/train.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from legw_repro.config.cli import check_writable
from legw_repro.config.fingerprint import config_values, digest
from legw_repro.config.spec import RunSpec, build_spec, record_fields
from legw_repro.config.validate import ConfigError, check_task_data, task_class
from legw_repro.loop import checkpoint, distributed
from legw_repro.loop.diskfull import DiskFull, no_space
from legw_repro.loop.distributed import DistInfo, DistributedFault
from legw_repro.run import rundir
from legw_repro.run.preemption import Preempted, PreemptionGuard
from legw_repro.run.records import CONFIG, RunRecord, now_iso, read_summary
from legw_repro.run.runlock import RunLock
from legw_repro.run.status import FINISHED, Refused, one_line

log = logging.getLogger(__name__)


@contextlib.contextmanager
def writer(run_dir: Path, is_main: bool) -> Iterator[None]:
    """Rank 0 holds the run directory's lock for the whole run; the other ranks write nothing."""
    if not is_main:
        yield
        return
    check_writable(run_dir)
    with RunLock(run_dir) as lock:
        if lock.takeover:
            log.warning("%s", lock.takeover)
        yield


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one configuration into `run_dir`; returns the summary written there. Raises
    ConfigError (refused before training), RunLocked, Preempted (record written: resume it)."""
    spec = build_spec(cfg, int(os.environ.get("WORLD_SIZE", "1")))
    run_dir = Path(run_dir)
    values = config_values(cfg)
    # the signals are caught from here on, before the data is loaded (run/preemption.py)
    is_main = int(os.environ.get("RANK", "0")) == 0
    with writer(run_dir, is_main), PreemptionGuard() as guard:
        if guard.sweep_stopped is not None:  # its sweep was stopped before it began
            raise Preempted(guard.sweep_stopped, None, str(run_dir))
        decision, previous = decide(cfg, run_dir, values)
        if decision.action == "skip":
            return previous  # type: ignore[return-value]
        kept = (previous or {}) if decision.action == "resume" else {}
        started = kept.get("started_at")
        try:
            dist = distributed.setup(spec.device, float(cfg.dist_timeout_s))
        except DistributedFault as e:  # the other ranks never joined: recorded, then one line
            if is_main:
                _unjoined(cfg, spec, run_dir, kept, attempt(digest(values), started), str(e))
            raise
        try:
            return _train(cfg, spec, dist, run_dir, started, digest(values), decision.action, guard)
        finally:
            distributed.teardown()


def decide(
    cfg: DictConfig, run_dir: Path, values: dict[str, Any]
) -> tuple[rundir.Decision, dict[str, Any] | None]:
    """What this attempt does with `run_dir` (start, resume, skip; a refusal raises), and the
    summary it holds; an overwrite's discarded files are gone when this returns."""
    previous = read_summary(run_dir)
    decision = rundir.decide(
        run_dir,
        (previous or {}).get("status"),
        rundir.holds_record(run_dir),
        rundir.config_difference(run_dir, previous, values)
        if previous or (run_dir / CONFIG).is_file()
        else [],
        resume=bool(cfg.resume),
        overwrite=bool(cfg.overwrite),
    )
    if decision.action == "skip":
        log.info("%s already %s; skipping (resume=true)", run_dir, previous["status"])  # type: ignore[index]
    if decision.discard and int(os.environ.get("RANK", "0")) == 0:
        log.warning("overwrite=true: discarded %s", rundir.discard(run_dir))
    return decision, previous


def attempt(fingerprint: str, started_at: str | None) -> dict[str, Any]:
    """The summary fields of this attempt: what it trains (fingerprint), where and since when."""
    return {
        "fingerprint": fingerprint,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": started_at or now_iso(),
    }


def _unjoined(
    cfg: DictConfig, spec: RunSpec, run_dir: Path, kept: dict, this: dict, reason: str
) -> None:
    """Rank 0's record of a run whose other ranks never joined: config.yaml and a "failed"
    summary of what is known before the task is built. A resumed run keeps what its record
    said (`kept`: steps done, final metrics), but not whence it last resumed: this attempt
    resumed nothing."""
    record = RunRecord(run_dir, cfg)
    record.write_config()
    fields = record_fields(spec)
    fields |= {k: v for k, v in kept.items() if k not in fields and k != "resumed_from"} | this
    finish(record, fields, "failed", reason, kept.get("final") or {})


@contextlib.contextmanager
def _as_config_errors() -> Iterator[None]:
    """Building the task and model from a checked config: a ValueError left is still a bad
    input found before training (a batch larger than the data set), so it ends as one."""
    try:
        yield
    except Refused:
        raise
    except ValueError as e:
        raise ConfigError(one_line(e)) from None


def _train(
    cfg: DictConfig,
    spec: RunSpec,
    dist: DistInfo,
    run_dir: Path,
    started_at: str | None,
    fingerprint: str,
    action: str,
    guard: PreemptionGuard,
) -> dict[str, Any]:
    trainer = build(cfg, spec, dist, run_dir, fingerprint, action)
    base = open_record(cfg, trainer, started_at)
    trainer.preemption = guard
    summary = _fit(trainer, trainer.record, base, dist, float(cfg.dist_timeout_s))
    if summary["status"] == "preempted":
        raise guard.preempted(trainer.state.step, str(run_dir))
    conclude(cfg, summary, trainer.record, dist)
    return summary


def build(
    cfg: DictConfig,
    spec: RunSpec,
    dist: DistInfo,
    run_dir: Path,
    fingerprint: str,
    action: str,
    *,
    fused: bool = False,
    overrides: Sequence[str] | None = None,
) -> Any:
    """The run's task and Trainer, restored on a resume; its record is not touched yet (a
    refusal here leaves it as it was). `fused`: a member of a fused group (run/group.py),
    which trains eagerly; `overrides`: its own, for .hydra/overrides.yaml."""
    from legw_repro.loop.trainer import Trainer

    record = RunRecord(run_dir, cfg, enabled=dist.is_main, overrides=overrides)
    with _as_config_errors():
        task = task_class(cfg)(cfg, dist)
        task.check_data()
        check_task_data(task, float(spec.epochs))
        trainer = Trainer(
            spec,
            task,
            dist,
            record,
            progress=bool(cfg.progress),
            cuda_graphs=False if fused else cfg.get("cuda_graphs", False),
            fingerprint=fingerprint,
        )
    if fused and cfg.get("cuda_graphs", False) is not False:
        trainer.graphs_off = "a member of a fused group: the group's stacked step runs eagerly"
    if action == "resume":
        trainer.restore()
    return trainer


def open_record(cfg: DictConfig, trainer: Any, started_at: str | None) -> dict[str, Any]:
    """The record of a built run opened: config written, first heartbeat, W&B; the summary
    fields every later summary repeats."""
    spec, task, dist, record = trainer.spec, trainer.task, trainer.dist, trainer.record
    base = {
        **record_fields(spec),
        "metric": task.metric,
        "higher_is_better": task.higher_is_better,
        "model": OmegaConf.to_container(cfg.task.model, resolve=True),
        "device": str(dist.device),
        **attempt(trainer.fingerprint, started_at),
    }
    if trainer.resumed_from:
        base["resumed_from"] = {"checkpoint": trainer.resumed_from, "step": trainer.state.step}
    record.write_config()
    trainer.heartbeat = lambda: record.write_summary(
        {**base, **trainer.summary_fields(), "status": "running", "heartbeat_at": now_iso()}
    )
    trainer.heartbeat()
    tags = ("task", "policy", "batch_size", "seed", "scale")
    record.start_wandb({k: base[k] for k in tags} | {"k": trainer.summary_fields()["k"]})
    log.info(
        "run dir %s | %s %s batch %d | device %s | world %d | %d steps/epoch, %d steps%s",
        record.run_dir,
        spec.task,
        spec.policy,
        spec.batch_size,
        dist.device,
        dist.world_size,
        trainer.spe,
        trainer.total_steps,
        f" | resumed at step {trainer.state.step}" if trainer.resumed_from else "",
    )
    return base


def conclude(cfg: DictConfig, summary: dict[str, Any], record: RunRecord, dist: DistInfo) -> None:
    """After a finished run's summary: the checkpoints it keeps (checkpoint_keep), a log line."""
    if dist.is_main and summary["status"] in FINISHED:
        gone = checkpoint.prune(record.checkpoint_path.parent, str(cfg.checkpoint_keep))
        if gone:
            log.info("%s: checkpoint_keep=%s removed %s", record.run_dir, cfg.checkpoint_keep, gone)
    if dist.is_main:
        log.info("%s: %s %s", record.run_dir, summary["status"], summary["final"])


def _fit(trainer: Any, record: RunRecord, base: dict, dist: DistInfo, timeout_s: float) -> dict:
    """Train and write the final summary; a failure is recorded as "failed", then raised (a
    collective that failed as DistributedFault, a full disk as DiskFull: one line each)."""
    try:
        result = trainer.fit(resume=trainer.resumed_from is not None)
    except Exception as e:
        fault = distributed.fault_message(e, dist, timeout_s)
        full = e if isinstance(e, DiskFull) else None
        if full is None and (cause := no_space(e)) is not None:  # a write no `writing` names
            full = DiskFull(record.run_dir, cause)
        reason = fault or (str(full) if full else f"{type(e).__name__}: {e}")
        final = trainer.final_metrics("failed")
        try:
            finish(record, {**base, **trainer.summary_fields()}, "failed", reason, final)
        except DiskFull:
            if full is None:
                raise
            # no room for the summary either: it stays "running" at the last heartbeat
        if fault:
            raise DistributedFault(fault) from e
        if full is not None and full is not e:
            raise full from e
        raise
    return finish(record, {**base, **trainer.summary_fields()}, **result)


def finish(
    record: RunRecord, fields: dict[str, Any], status: str, reason: str | None, final: dict, **extra
) -> dict[str, Any]:
    """The final summary.json (status, reason, final metrics, a task's extra fields)."""
    summary = {**fields, "status": status, "reason": reason, "final": final, **extra}
    summary["finished_at"] = summary["heartbeat_at"] = now_iso()
    record.write_summary(summary)
    record.close()
    return summary
