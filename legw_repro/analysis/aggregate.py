"""Seeds pooled: one row per (task, policy, batch size) with the headline metric's mean, std
and counts, and its gap to the base batch of the same policy (``summary.csv``)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.frames import first_valid, sort_by_policy

# fmt: off
AGG_COLUMNS: tuple[str, ...] = (
    "task", "metric", "split", "higher_is_better", "scale", "model_size", "policy",
    "batch_size", "base_batch_size", "k", "peak_lr", "warmup_epochs", "steps", "mean", "std",
    "n", "n_runs", "n_diverged", "n_failed", "n_running", "wall_time_s_mean", "base_mean",
    "gap_to_base", "gap_to_base_pct", "max_lr", "mean_lr", "lr_multiplier",
)
# fmt: on
GROUP: list[str] = ["task", "policy", "batch_size"]


def _joined(values: pd.Series) -> object:
    v = sorted({str(x) for x in values.dropna()})
    return ",".join(v) if v else np.nan


def at_base(table: pd.DataFrame, col: str) -> np.ndarray:
    """For every row, ``col`` at the base batch (batch_size == base_batch_size) of the same
    task and policy (NaN where there is none)."""
    base = table[table["batch_size"] == table["base_batch_size"]].set_index(["task", "policy"])
    base = base[~base.index.duplicated()][col]
    keys = zip(table["task"], table["policy"], strict=True)
    return np.array([base.get(k, np.nan) for k in keys], dtype=float)


def _group_row(g: pd.DataFrame) -> dict[str, object]:
    """The statistics of one (task, policy, batch size) group of runs."""
    ok = g[(g["status"] == "completed") & g["metric_value"].notna()]
    vals = ok["metric_value"].astype(float).to_numpy()
    n = len(vals)
    done = g[g["status"] == "completed"]
    return {
        "metric": first_valid(g["metric"]),
        "split": first_valid(g["metric_split"]),
        "higher_is_better": bool(first_valid(g["higher_is_better"])),
        "scale": _joined(g["scale"]),
        "model_size": _joined(g["model_size"]),
        "base_batch_size": first_valid(g["base_batch_size"]),
        "k": first_valid(g["k"]),
        "peak_lr": first_valid(g["peak_lr"]),
        "warmup_epochs": first_valid(g["warmup_epochs"]),
        # the LR actually reached and the mean over the run (schedule_summary, per step)
        "max_lr": first_valid(g["max_lr"]),
        "mean_lr": first_valid(g["mean_lr"]),
        "lr_multiplier": first_valid(g["lr_multiplier"]),
        "steps": first_valid(g["total_steps"]),
        "mean": float(vals.mean()) if n else np.nan,
        "std": float(vals.std(ddof=1)) if n > 1 else np.nan,
        "n": n,
        "n_runs": len(g),
        **{f"n_{s}": int((g["status"] == s).sum()) for s in ("diverged", "failed", "running")},
        "wall_time_s_mean": float(done["wall_time_s"].mean()) if len(done) else np.nan,
    }


def check_recipes(runs: pd.DataFrame) -> None:
    """Refuse (AnalysisError) a (task, policy, batch size) group whose runs differ in anything
    but the seed (`collect.recipe_of`): three seed-0 runs with other epochs and rates came out as
    one `mean ± std over seeds` without a word. Only the keys both runs have are compared (a key
    added to the run spec since is no difference, as for resuming); runs without a recipe (W&B
    rows) are not compared."""
    if "recipe" not in runs.columns:
        return
    for key, g in runs[runs["recipe"].notna()].groupby(GROUP, sort=False):
        first = json.loads(g["recipe"].iloc[0])
        for recipe, run_dir in zip(g["recipe"].iloc[1:], g["run_dir"].iloc[1:], strict=True):
            other = json.loads(recipe)
            diff = sorted(k for k in first.keys() & other.keys() if first[k] != other[k])
            if diff:
                raise AnalysisError(
                    _pooling_refusal(key, (g["run_dir"].iloc[0], run_dir), diff, first, other)
                )


def _pooling_refusal(key: tuple, dirs: tuple, diff: list[str], a: dict, b: dict) -> str:
    shown = ", ".join(f"{k}: {a[k]} vs {b[k]}" for k in diff[:4])
    more = f" (+{len(diff) - 4} more)" if len(diff) > 4 else ""
    return (
        f"{'/'.join(str(x) for x in key)}: runs {dirs[0]} and {dirs[1]} differ in {shown}{more}, "
        "not only in the seed; they cannot be pooled as seeds: analyse them apart (another "
        "records directory)"
    )


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, policy, batch_size) with the seeds' statistics of the headline metric.

    ``mean``/``std``/``n`` are over *completed* runs that have the headline value (std with
    ddof=1, NaN when n=1); ``n_runs`` counts every run of the group and ``n_diverged``,
    ``n_failed``, ``n_running`` the others. ``k``, ``peak_lr``, ``warmup_epochs`` and ``steps``
    (``total_steps``) describe the configuration; ``wall_time_s_mean`` is over completed runs.
    ``gap_to_base`` = mean - mean at the base batch (batch_size == base_batch_size) for the same
    task and policy, ``gap_to_base_pct`` the same relative to the base mean, in percent.
    """
    if runs.empty:
        return pd.DataFrame(columns=list(AGG_COLUMNS))
    check_recipes(runs)
    rows = [
        {"task": t, "policy": p, "batch_size": int(b), **_group_row(g)}
        for (t, p, b), g in runs.groupby(GROUP, sort=False)
    ]
    agg = pd.DataFrame(rows)
    for task, g in agg.groupby("task"):
        if g["scale"].dropna().str.contains(",").any():
            warnings.warn(f"task {task}: runs of several scales are pooled", stacklevel=2)
    agg["base_mean"] = at_base(agg, "mean")
    agg["gap_to_base"] = agg["mean"] - agg["base_mean"]
    agg["gap_to_base_pct"] = 100.0 * agg["gap_to_base"] / agg["base_mean"]
    return sort_by_policy(agg, GROUP)[list(AGG_COLUMNS)].reset_index(drop=True)
