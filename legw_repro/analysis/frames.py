"""Conventions shared by every analysis table: missing values, one task's rows, policy order."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from legw_repro.analysis import AnalysisError

# Policies in the order tables and legends list them (the paper's method first).
POLICY_ORDER: tuple[str, ...] = ("sqrt_legw", "sqrt", "linear", "adam", "none", "tuned")


def is_missing(value: Any) -> bool:
    """None or NaN (of any numeric type); strings and other objects are present."""
    try:
        return value is None or (
            isinstance(value, float | int | np.floating) and math.isnan(float(value))
        )
    except (TypeError, ValueError):
        return False


def first_valid(values: pd.Series) -> Any:
    """The first non-missing value of a column (NaN when there is none)."""
    v = values.dropna()
    return v.iloc[0] if len(v) else np.nan


def first(df: pd.DataFrame, col: str) -> Any:
    """The first non-missing value of ``df[col]``; None when the column is absent or empty."""
    v = first_valid(df[col]) if col in df.columns else None
    return None if is_missing(v) else v


def one_task(df: pd.DataFrame, task: str | None) -> tuple[str, pd.DataFrame]:
    """``task`` and its rows; with ``task=None`` the table must hold exactly one task."""
    tasks = sorted(df["task"].dropna().unique().tolist())
    if task is None and len(tasks) != 1:
        raise AnalysisError(f"the table holds tasks {tasks}; name one")
    task = tasks[0] if task is None else task
    if task not in tasks:
        raise AnalysisError(f"no runs of task {task!r}")
    return task, df[df["task"] == task]


def policy_sort_key(policy: Any) -> tuple[int, str]:
    """Known policies in :data:`POLICY_ORDER`, then any others alphabetically."""
    p = str(policy)
    return (POLICY_ORDER.index(p), p) if p in POLICY_ORDER else (len(POLICY_ORDER), p)


def ordered_policies(policies: Iterable[Any]) -> list[str]:
    return sorted({str(p) for p in policies if not is_missing(p)}, key=policy_sort_key)


def sort_by_policy(df: pd.DataFrame, by: list[str], **kw: Any) -> pd.DataFrame:
    """``df`` sorted by the columns ``by``, a ``policy`` column in :data:`POLICY_ORDER`."""
    key = lambda s: s.map(policy_sort_key) if s.name == "policy" else s  # noqa: E731
    return df.sort_values(by, key=key, **kw)
