"""Upgrade run records of contract v1 to v2 in place (docs/run-record.md).

    python -m legw_repro.analysis.migrate DIR [DIR...]

v2 adds to summary.json the flat ``clip`` (None: no clipping) and ``model`` (the task's model
config) and the whole run ``spec``, so that the analysis never opens config.yaml; and to every
training row of metrics.jsonl ``epoch_start``, the epoch at which the step began (``epoch`` is
where it ended). A v1 row's ``lr`` already is the rate its step trained with -- the trainer read
it before the step -- so it is kept; the migration checks it against the schedule the run's
config.yaml describes (this module is the only reader of config.yaml) and refuses a record
whose logged rates disagree. It also adds ``handover``, ``max_lr`` and ``mean_lr`` (from the
schedule) where a record lacks them; records that have everything are left alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.collect import find_summaries
from legw_repro.analysis.history import read_rows
from legw_repro.records import atomic_write_text
from legw_repro.schedule import ScheduleSpec, learning_rate, schedule_summary
from legw_repro.spec import RunSpec, build_spec
from legw_repro.validate import CONFIGS

VERSION = 2


def with_epoch_start(row: dict[str, Any], steps_per_epoch: int) -> dict[str, Any]:
    """A training row with ``epoch_start`` = (step - 1) / steps_per_epoch after ``epoch``."""
    if row.get("kind") != "train":
        return row
    out = {}
    for key, value in row.items():
        out[key] = value
        if key == "epoch":
            out["epoch_start"] = (row["step"] - 1) / steps_per_epoch
    return out


def check_lr(rows: list[dict[str, Any]], spec: RunSpec, run_dir: Path) -> None:
    """Every training row's ``lr`` must be the schedule's rate where its step began."""
    for row in rows:
        if row.get("kind") != "train" or row.get("lr") is None:
            continue
        expected = learning_rate(row["epoch_start"], spec.schedule)
        if not math.isclose(row["lr"], expected, rel_tol=1e-9, abs_tol=1e-12):
            raise AnalysisError(
                f"{run_dir}: step {row['step']} logs lr={row['lr']!r} but its schedule gives "
                f"{expected!r} at epoch {row['epoch_start']:g}; not migrated"
            )


def run_config(run_dir: Path) -> DictConfig:
    """The run's config.yaml on top of today's composed defaults: a key added to configs/ since
    the run was recorded (a new trainer option) did not exist then, so its default is what the
    run did; every key the run recorded keeps the run's value."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    old = OmegaConf.load(run_dir / "config.yaml")
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        base = compose("train", overrides=[f"task={old.task.name}"])
    OmegaConf.set_struct(base, False)
    return OmegaConf.merge(base, old)


def lr_stats(summary: dict[str, Any]) -> dict[str, Any]:
    """``handover``, ``max_lr`` and ``mean_lr`` (per optimizer step) of a v2 summary's schedule:
    the fields the trainer writes since the hand-over forms exist, for records written before."""
    spec = ScheduleSpec.of(**summary["spec"]["schedule"])
    info = schedule_summary(spec, steps_per_epoch=int(summary["steps_per_epoch"]))
    return {key: info[key] for key in ("handover", "max_lr", "mean_lr")}


def migrate_run(run_dir: Path) -> bool:
    """Rewrite one run record as v2 (with the LR statistics); False when it already is."""
    summary = json.loads((run_dir / "summary.json").read_text())
    if summary.get("record_version", 1) >= VERSION:
        if "mean_lr" in summary:
            return False
        summary |= lr_stats(summary)
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return True
    if not (run_dir / "config.yaml").is_file():
        raise AnalysisError(f"{run_dir}: no config.yaml to take clip, model and spec from")
    cfg = run_config(run_dir)
    spec = build_spec(cfg, int(summary.get("world_size", 1)))
    spec = dataclasses.replace(spec, device=str(summary.get("device", spec.device)))
    spe = int(summary["steps_per_epoch"])
    rows = [with_epoch_start(r, spe) for r in read_rows(run_dir / "metrics.jsonl")]
    check_lr(rows, spec, run_dir)
    model = OmegaConf.to_container(cfg.task.model, resolve=True)
    summary |= {"record_version": VERSION, "clip": spec.optimizer.clip, "model": model}
    summary["spec"] = spec.to_dict()
    summary |= lr_stats(summary)
    if (run_dir / "metrics.jsonl").exists():
        text = "".join(json.dumps(r) + "\n" for r in rows)
        atomic_write_text(run_dir / "metrics.jsonl", text)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m legw_repro.analysis.migrate", description=__doc__)
    ap.add_argument("dirs", nargs="+", metavar="DIR", help="searched recursively for records")
    args = ap.parse_args(argv)
    try:
        runs = [p.parent for p in find_summaries(args.dirs)]
        if not runs:
            raise AnalysisError("no summary.json found under " + ", ".join(args.dirs))
        done = sum(migrate_run(d) for d in runs)
    except (AnalysisError, ValueError, KeyError, OSError) as e:
        print(f"migrate: error: {e}", file=sys.stderr)
        return 2
    print(f"{done} run record(s) migrated to v{VERSION}, {len(runs) - done} already v{VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
