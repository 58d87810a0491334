"""Time to target: the optimizer steps and wall time each run needed to reach a validation
goal, and the speedup of a larger batch over the base batch of the same policy. Computed once
here; the report's table and the figure both read :func:`aggregate_time_to_target`'s frame."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.aggregate import GROUP, at_base
from legw_repro.analysis.frames import first_valid, one_task, ordered_policies, sort_by_policy
from legw_repro.analysis.history import load_metrics
from legw_repro.analysis.metrics import metric_info

# fmt: off
RUN_KEYS: list[str] = [
    "task", "policy", "batch_size", "base_batch_size", "k", "seed", "status", "run_dir",
]
TTT_COLUMNS: tuple[str, ...] = (*RUN_KEYS, "reached", "step", "epoch", "time_s")
TTA_COLUMNS: tuple[str, ...] = (
    "task", "policy", "batch_size", "base_batch_size", "k", "n_runs", "n_reached", "steps_mean",
    "steps_std", "time_s_mean", "time_s_std", "epoch_mean", "speedup_time", "speedup_steps",
)
# fmt: on


@dataclass(frozen=True)
class Target:
    """Reach ``valid <metric>`` <= value (lower is better) or >= value (higher is better)."""

    task: str
    metric: str
    higher_is_better: bool
    value: float
    description: str

    @property
    def label(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        return f"valid {self.metric} {op} {metric_info(self.metric).format_short(self.value)}"


def _base_runs(sub: pd.DataFrame, task: str, policy: str) -> tuple[str, pd.DataFrame]:
    """The completed base-batch runs (else the smallest batch's) of ``policy``, or of the
    first policy that has some."""
    done = sub[(sub["status"] == "completed") & (sub["batch_size"] == sub["base_batch_size"])]
    if done.empty:
        done = sub[(sub["status"] == "completed") & (sub["batch_size"] == sub["batch_size"].min())]
    if done.empty:
        raise AnalysisError(f"task {task}: no completed base-batch run to derive a target from")
    pols = ordered_policies(done["policy"])
    chosen = policy if policy in pols else pols[0]
    return chosen, done[done["policy"] == chosen]


def default_target(
    runs: pd.DataFrame,
    task: str | None = None,
    *,
    value: float | None = None,
    policy: str = "sqrt_legw",
    tolerance: float | None = None,
) -> Target:
    """The time-to-target goal for ``task``. With ``value``, that value (a percentage metric
    may be given in percent). Otherwise the mean over seeds of ``best_valid_<metric>`` of the
    completed base-batch runs under ``policy`` (another policy when it has none), relaxed by
    ``tolerance`` (default: the metric's, see :mod:`legw_repro.analysis.metrics`)."""
    task, sub = one_task(runs, task)
    metric = str(first_valid(sub["metric"]))
    info = metric_info(metric)
    hib = bool(first_valid(sub["higher_is_better"]))
    if value is not None:
        return Target(task, metric, hib, info.parse(value), "set with --target")
    chosen, base_runs = _base_runs(sub, task, policy)
    vals = pd.Series(dtype=float)
    for col in (f"best_valid_{metric}", f"valid_{metric}"):
        if col in base_runs:
            vals = pd.to_numeric(base_runs[col], errors="coerce").dropna()
        if len(vals):
            break
    if vals.empty:
        raise AnalysisError(f"task {task}: base-batch runs have no valid {metric} for a target")
    best = float(vals.mean())
    target, tol_txt = info.relax(best, tolerance)
    batch = int(base_runs["batch_size"].iloc[0])
    best_txt = info.format_short(best)
    desc = f"{chosen} at batch {batch}: mean best valid {metric} {best_txt}, relaxed by {tol_txt}"
    return Target(task, metric, hib, target, desc)


def first_hit(m: pd.DataFrame | None, target: Target) -> pd.Series | None:
    """The first validation row of a run's history that meets ``target`` (None: never)."""
    if m is None or target.metric not in m.columns:
        return None
    ev = m[(m["kind"] == "eval") & (m["split"] == "valid")].dropna(subset=[target.metric])
    ev = ev.sort_values("step", kind="stable")
    v = ev[target.metric]
    ok = ev[v >= target.value] if target.higher_is_better else ev[v <= target.value]
    return ok.iloc[0] if len(ok) else None


def time_to_target(
    runs: pd.DataFrame, target: Target, metrics: Mapping[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """Per run of ``target.task`` (completed or diverged): the first validation evaluation that
    meets the target -- ``reached``, ``step``, ``epoch``, ``time_s`` (NaN when never reached).
    A run's history is taken from ``metrics`` (by run_dir), else read from its directory."""
    sub = runs[(runs["task"] == target.task) & runs["status"].isin(["completed", "diverged"])]
    rows = []
    for _, r in sub.iterrows():
        m = (metrics or {}).get(r["run_dir"])
        if m is None and Path(str(r["run_dir"])).is_dir():
            m = load_metrics(r["run_dir"])
        hit = first_hit(m, target)
        row = {k: r[k] for k in RUN_KEYS} | {"reached": hit is not None}
        for col, field in (("step", "step"), ("epoch", "epoch"), ("time_s", "time")):
            row[col] = float(hit[field]) if hit is not None else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=list(TTT_COLUMNS))


def aggregate_time_to_target(ttt: pd.DataFrame) -> pd.DataFrame:
    """Per (task, policy, batch_size): ``n_reached``/``n_runs``, mean/std of steps and wall time
    over the runs that reached the target, and the speedups versus the base batch of the same
    policy (``speedup_time`` = base mean time / mean time; ``speedup_steps`` likewise)."""
    if ttt.empty:
        return pd.DataFrame(columns=list(TTA_COLUMNS))
    rows = []
    for (task, policy, batch), g in ttt.groupby(GROUP, sort=False):
        hit = g[g["reached"]]  # pandas: the mean of none and the std (ddof=1) of one are NaN
        rows.append(
            {
                "task": task,
                "policy": policy,
                "batch_size": int(batch),
                "base_batch_size": first_valid(g["base_batch_size"]),
                "k": first_valid(g["k"]),
                "n_runs": len(g),
                "n_reached": len(hit),
                "steps_mean": hit["step"].mean(),
                "steps_std": hit["step"].std(),
                "time_s_mean": hit["time_s"].mean(),
                "time_s_std": hit["time_s"].std(),
                "epoch_mean": hit["epoch"].mean(),
            }
        )
    agg = pd.DataFrame(rows)
    agg["speedup_time"] = at_base(agg, "time_s_mean") / agg["time_s_mean"].astype(float)
    agg["speedup_steps"] = at_base(agg, "steps_mean") / agg["steps_mean"].astype(float)
    return sort_by_policy(agg, GROUP)[list(TTA_COLUMNS)].reset_index(drop=True)
