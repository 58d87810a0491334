"""A run's history, ``metrics.jsonl`` (docs/run-record.md): the one reader of that file.

The trainer appends a row per optimizer step and per evaluation. A killed writer can leave half
a line, and a resumed run may log a step again; :func:`read_rows` tolerates both, and everything
that reads the file -- the figures, the compact archive, the record migration -- goes through it.
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

# fmt: off
METRIC_COLUMNS: tuple[str, ...] = (
    "kind", "step", "epoch", "epoch_start", "time", "lr", "loss", "split",
)
# fmt: on


def _recover_row(line: str) -> dict[str, Any] | None:
    """A killed writer can leave half a row with the next (resumed) row glued to it:
    return the last complete JSON object that ends the line, if any."""
    decoder = json.JSONDecoder()
    start = line.find("{", 1)
    while start != -1:
        try:
            obj, end = decoder.raw_decode(line, start)
        except json.JSONDecodeError:
            pass
        else:
            if end == len(line) and isinstance(obj, dict):
                return obj
        start = line.find("{", start + 1)
    return None


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a ``metrics.jsonl`` file in file order ([] when it is missing). A truncated
    last line (a killed run) is dropped silently; a malformed line elsewhere is replaced by the
    complete row glued to its end (a resume after a kill), else dropped with a warning."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(errors="replace").split("\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    rows = []
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = _recover_row(line)
            if obj is None and i != last:
                warnings.warn(f"{path}:{i + 1}: malformed line dropped", stacklevel=2)
        if isinstance(obj, dict):
            rows.append(obj)
    return rows


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
    return metrics_frame(read_rows(Path(run_dir) / "metrics.jsonl"), dedupe=dedupe)


def load_all_metrics(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``run_dir -> load_metrics(run_dir)`` for every local run in the table."""
    dirs = runs["run_dir"].dropna().unique()
    return {d: load_metrics(d) for d in dirs if Path(d).is_dir()}
