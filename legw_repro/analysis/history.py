"""A run's history, ``metrics.jsonl`` (docs/run-record.md), as a table for the figures.

The file is read by :func:`legw_repro.run.records.read_rows`, the one reader of the record
format: it tolerates a half line left by a killed writer and a step logged again on resume.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from legw_repro.run.records import METRICS, read_rows

# fmt: off
METRIC_COLUMNS: tuple[str, ...] = (
    "kind", "step", "epoch", "epoch_start", "time", "lr", "loss", "split",
)
# fmt: on


def metrics_frame(rows: Iterable[Mapping[str, Any]], *, dedupe: bool = True) -> pd.DataFrame:
    """History rows as a table with the :data:`METRIC_COLUMNS` first (NaN where absent). With
    ``dedupe``, a row repeated for the same (kind, split, step) keeps its last version."""
    df = pd.DataFrame([dict(r) for r in rows])
    for col in METRIC_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    if df.empty:
        return df[list(METRIC_COLUMNS)]
    if dedupe:
        df = df[~df.duplicated(subset=["kind", "split", "step"], keep="last")]
    cols = list(METRIC_COLUMNS) + [c for c in df.columns if c not in METRIC_COLUMNS]
    return df[cols].reset_index(drop=True)


def load_metrics(run_dir: str | os.PathLike[str], *, dedupe: bool = True) -> pd.DataFrame:
    """A run's ``metrics.jsonl`` as a table (empty with the standard columns when missing)."""
    return metrics_frame(read_rows(Path(run_dir) / METRICS), dedupe=dedupe)


def load_all_metrics(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``run_dir -> load_metrics(run_dir)`` for every local run in the table."""
    dirs = runs["run_dir"].dropna().unique()
    return {d: load_metrics(d) for d in dirs if Path(d).is_dir()}
