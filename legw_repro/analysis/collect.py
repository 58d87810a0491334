"""The run table: every run record (docs/run-record.md) found under some directories, one row
per run, statuses kept and marked, and each task's headline value picked.

Analysis reads only the files every run leaves behind and never imports the trainer, so it
works on runs copied from another machine, on half-finished sweeps and on W&B read-backs
(:mod:`legw_repro.analysis.wandb_io` builds the same table from W&B).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.frames import is_missing, sort_by_policy
from legw_repro.analysis.metrics import METRICS, metric_info
from legw_repro.run.records import SUMMARY, RecordError, read_summary

STATUSES: tuple[str, ...] = ("completed", "diverged", "failed", "running")
RECORD_VERSION = 2  # the run-record contract this module reads (docs/run-record.md)
# The columns every run table has (NaN where a record lacks the field), in this order.
# fmt: off
RUN_COLUMNS: tuple[str, ...] = (
    "task", "metric", "higher_is_better", "policy", "batch_size", "base_batch_size", "k",
    "seed", "scale", "model_size", "status", "reason", "peak_lr", "warmup_epochs",
    "steps_per_epoch", "total_steps", "steps_done", "epochs", "epochs_done", "wall_time_s",
    "metric_split", "metric_value", "run_dir", "handover", "max_lr", "mean_lr", "lr_multiplier",
)
# fmt: on


def find_summaries(dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every ``summary.json`` under ``dirs`` (recursively; a dir may itself be a run dir)."""
    found: dict[Path, None] = {}
    for d in map(Path, dirs):
        if d.is_file() and d.name == SUMMARY:
            found[d.resolve()] = None
        elif d.is_dir():
            found.update((p.resolve(), None) for p in sorted(d.rglob(SUMMARY)) if p.is_file())
    return list(found)


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts as one level: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


#: run-spec keys that are not the recipe a seed's result stands for: the seed itself (pooled
#: over), the scale's name (its values are compared), the device, and the loop's settings
#: (evaluation cadence, checkpointing, the divergence threshold: committed seeds of one point
#: were trained with diverge_factor 2 and 3), as in the sweep's `recipe` (sweep/plan.py)
NOT_RECIPE = ("seed", "scale", "device", "loop")


def recipe_of(summary: Mapping[str, Any]) -> str | None:
    """The run's configuration except its seed, as sorted JSON: the run spec and the model. Runs
    pooled as seeds of one point must share it (`aggregate.check_recipes`); None for a record
    without a spec (a W&B row)."""
    spec = summary.get("spec")
    if not isinstance(spec, Mapping):
        return None
    flat = {k: v for k, v in flatten(spec).items() if k.split(".")[0] not in NOT_RECIPE}
    model = summary.get("model")
    if isinstance(model, Mapping):
        flat |= flatten(model, "model")
    return json.dumps(flat, sort_keys=True, default=str)


def flatten_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A summary.json as one flat row: scalar fields as they are, ``final.<key>`` as ``<key>``
    (``test_ppl``, ``best_valid_ppl``, ...), other nested dicts as ``outer.inner``
    (``model.size``); the whole run ``spec`` is left out (its flat keys are there already)."""
    row: dict[str, Any] = {}
    final = summary.get("final") or {}
    for key, value in summary.items():
        if key in ("final", "spec"):
            continue
        if isinstance(value, Mapping):
            row.update(flatten(value, key))
        elif isinstance(value, list | tuple):
            row[key] = json.dumps(value)
        else:
            row[key] = value
    if isinstance(final, Mapping):
        for key, value in final.items():
            row[f"final.{key}" if key in row else key] = value
    row["recipe"] = recipe_of(summary)
    return row


def _fill_metric_and_status(df: pd.DataFrame) -> None:
    """A row without ``metric`` (a W&B run) takes the registered metric it reports; a row
    without ``higher_is_better`` the registry's; a row without status is ``unknown``."""
    for i, row in df.iterrows():
        if is_missing(row["metric"]):
            found = [m for m in METRICS if row.reindex([f"test_{m}", f"valid_{m}"]).notna().any()]
            df.at[i, "metric"] = found[0] if found else np.nan
        if is_missing(df.at[i, "higher_is_better"]) and not is_missing(df.at[i, "metric"]):
            df.at[i, "higher_is_better"] = metric_info(df.at[i, "metric"]).higher_is_better
        if is_missing(row["status"]):
            df.at[i, "status"] = "unknown"


def runs_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise flat run rows (from files or W&B) into the run table: fill the standard
    columns, infer missing metric fields, mark the status and pick each task's headline value."""
    df = pd.DataFrame([dict(r) for r in records])
    for col in RUN_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df = df.astype(
        {c: object for c in ("task", "metric", "policy", "status", "scale", "higher_is_better")}
    )
    if df.empty:
        return df[list(RUN_COLUMNS)]
    _fill_metric_and_status(df)
    df["higher_is_better"] = df["higher_is_better"].astype(bool)
    numeric = ("batch_size", "base_batch_size", "seed", "k", "wall_time_s", "peak_lr")
    for col in (*numeric, "max_lr", "mean_lr", "lr_multiplier"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    missing_k = df["k"].isna() & df["batch_size"].notna() & df["base_batch_size"].notna()
    df.loc[missing_k, "k"] = df.loc[missing_k, "batch_size"] / df.loc[missing_k, "base_batch_size"]
    for status in STATUSES:
        df[status] = df["status"] == status
    _add_headline(df)
    df = df[list(RUN_COLUMNS) + [c for c in df.columns if c not in RUN_COLUMNS]]
    by = ["task", "policy", "batch_size", "seed", "run_dir"]
    return sort_by_policy(df, by, na_position="last").reset_index(drop=True)


def _headline_split(task: str, metric: str, sub: pd.DataFrame) -> str:
    """``test`` when every completed run of the task has a test value (or, with none completed,
    any run has one), else ``valid``: one split per task, so that means compare like with like."""
    test_col = f"test_{metric}"
    has_test = sub[test_col].notna() if test_col in sub else pd.Series(False, index=sub.index)
    done = sub["status"] == "completed"
    if not done.any():
        return "test" if has_test.any() else "valid"
    if has_test[done].all():
        return "test"
    if has_test[done].any():
        lacking = sub.loc[done & ~has_test, "run_dir"].tolist()
        warnings.warn(
            f"task {task}: completed runs without test_{metric} ({lacking}); "
            f"the table uses valid_{metric} for every run of this task",
            stacklevel=4,
        )
    return "valid"


def _add_headline(df: pd.DataFrame) -> None:
    """Per task, each run's headline value: ``<split>_<metric>`` (see :func:`_headline_split`)."""
    df["metric_split"] = pd.Series(np.nan, index=df.index, dtype=object)
    df["metric_value"] = np.nan
    for (task, metric), idx in df.groupby(["task", "metric"], dropna=False).groups.items():
        if is_missing(metric):
            continue
        split = _headline_split(task, metric, df.loc[idx])
        df.loc[idx, "metric_split"] = split
        if f"{split}_{metric}" in df.columns:
            df.loc[idx, "metric_value"] = pd.to_numeric(
                df.loc[idx, f"{split}_{metric}"], errors="coerce"
            )


def collect_runs(dirs: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per run: every ``summary.json`` under ``dirs``, flattened (``final.*`` become
    ``test_ppl``-style columns), plus ``run_dir``, ``model_size`` (``model.size``), boolean
    ``completed``/``diverged``/``failed``/``running`` marks and the headline
    ``metric_split``/``metric_value``. Diverged, failed and running runs are kept; an
    unreadable summary.json or a record of contract v1 is refused (AnalysisError)."""
    dirs, records, old = list(dirs), [], []
    for path in find_summaries(dirs):
        try:  # a bad record stops the analysis (AnalysisError: exit 2), as every input of it
            summary = read_summary(path.parent, strict=True)
        except RecordError as e:
            raise AnalysisError(str(e)) from None
        if summary.get("record_version", 1) < RECORD_VERSION:
            old.append(path.parent)
        row = flatten_summary(summary)
        row.setdefault("model_size", row.get("model.size"))
        row["run_dir"] = str(path.parent)
        records.append(row)
    if old:
        raise AnalysisError(
            f"{len(old)} run record(s) of contract v1 (e.g. {old[0]}); this version reads v2 "
            "only: upgrade them with analysis/migrate.py of an older legw-repro "
            "(git log --all -- legw_repro/analysis/migrate.py), or train them again"
        )
    return runs_from_records(records)
