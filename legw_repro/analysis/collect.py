"""Collect run records (docs/run-record.md) into pandas tables.

Analysis reads only the files every run leaves behind -- ``summary.json``, ``metrics.jsonl`` and
``config.yaml`` -- and never imports the trainer. The main entry points:

* :func:`collect_runs` -- one row per run (every ``summary.json`` under some directories);
* :func:`load_metrics` -- one run's ``metrics.jsonl`` as a table;
* :func:`aggregate` -- mean/std/n over seeds per (task, policy, batch_size), plus the gap to the
  base batch;
* :func:`default_target`, :func:`time_to_target`, :func:`aggregate_time_to_target` -- wall time
  and optimizer steps needed to reach a validation target;
* :func:`collect_wandb` -- the same run table read back from the W&B public API.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.metrics import METRICS, metric_info

# Policies in the order tables and legends list them (the paper's method first).
POLICY_ORDER: tuple[str, ...] = ("sqrt_legw", "sqrt", "linear", "adam", "none", "tuned")
STATUSES: tuple[str, ...] = ("completed", "diverged", "failed", "running")

# The columns every run table has (NaN where a record lacks the field), in this order.
RUN_COLUMNS: tuple[str, ...] = (
    "task",
    "metric",
    "higher_is_better",
    "policy",
    "batch_size",
    "base_batch_size",
    "k",
    "seed",
    "scale",
    "model_size",
    "status",
    "reason",
    "peak_lr",
    "warmup_epochs",
    "steps_per_epoch",
    "total_steps",
    "steps_done",
    "epochs",
    "epochs_done",
    "wall_time_s",
    "metric_split",
    "metric_value",
    "run_dir",
)

AGG_COLUMNS: tuple[str, ...] = (
    "task",
    "metric",
    "split",
    "higher_is_better",
    "scale",
    "model_size",
    "policy",
    "batch_size",
    "base_batch_size",
    "k",
    "peak_lr",
    "warmup_epochs",
    "steps",
    "mean",
    "std",
    "n",
    "n_runs",
    "n_diverged",
    "n_failed",
    "n_running",
    "wall_time_s_mean",
    "base_mean",
    "gap_to_base",
    "gap_to_base_pct",
)


# --------------------------------------------------------------------------- helpers


def policy_sort_key(policy: Any) -> tuple[int, str]:
    """Known policies in :data:`POLICY_ORDER`, then any others alphabetically."""
    p = str(policy)
    return (POLICY_ORDER.index(p), p) if p in POLICY_ORDER else (len(POLICY_ORDER), p)


def ordered_policies(policies: Iterable[Any]) -> list[str]:
    return sorted(
        {str(p) for p in policies if isinstance(p, str) or pd.notna(p)}, key=policy_sort_key
    )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, name, sep))
        else:
            out[name] = value
    return out


def _first_valid(values: pd.Series) -> Any:
    v = values.dropna()
    return v.iloc[0] if len(v) else np.nan


def _joined(values: pd.Series) -> Any:
    v = sorted({str(x) for x in values.dropna()})
    return ",".join(v) if v else np.nan


# --------------------------------------------------------------------------- run table


def find_summaries(dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every ``summary.json`` under ``dirs`` (recursively; a dir may itself be a run dir)."""
    found: dict[Path, None] = {}
    for d in dirs:
        d = Path(d)
        if d.is_file() and d.name == "summary.json":
            found[d.resolve()] = None
            continue
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("summary.json")):
            if p.is_file():
                found[p.resolve()] = None
    return list(found)


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's resolved ``config.yaml`` as a dict ({} when missing or unreadable)."""
    p = Path(run_dir) / "config.yaml"
    if not p.is_file():
        return {}
    try:
        cfg = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, OSError) as e:
        warnings.warn(f"{p}: unreadable config ({e}); ignoring it", stacklevel=2)
        return {}
    return cfg if isinstance(cfg, dict) else {}


def flatten_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """A summary.json as one flat row: scalar fields as they are, ``final.<key>`` as ``<key>``
    (``test_ppl``, ``best_valid_ppl``, ...), other nested dicts as ``outer.inner``."""
    row: dict[str, Any] = {}
    final = summary.get("final") or {}
    for key, value in summary.items():
        if key == "final":
            continue
        if isinstance(value, Mapping):
            row.update(_flatten(value, key))
        elif isinstance(value, list | tuple):
            row[key] = json.dumps(value)
        else:
            row[key] = value
    if isinstance(final, Mapping):
        for key, value in final.items():
            row[f"final.{key}" if key in row else key] = value
    return row


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

    for i, row in df.iterrows():
        if _is_missing(row["metric"]):  # a W&B run without the field: the metric it reports
            found = [
                m for m in METRICS if any(pd.notna(row.get(f"{s}_{m}")) for s in ("test", "valid"))
            ]
            df.at[i, "metric"] = found[0] if found else np.nan
        if _is_missing(df.at[i, "higher_is_better"]) and not _is_missing(df.at[i, "metric"]):
            df.at[i, "higher_is_better"] = metric_info(df.at[i, "metric"]).higher_is_better
        if _is_missing(row["status"]):
            df.at[i, "status"] = "unknown"
    df["higher_is_better"] = df["higher_is_better"].astype(bool)
    for col in ("batch_size", "base_batch_size", "seed", "k", "wall_time_s", "peak_lr"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    missing_k = df["k"].isna() & df["batch_size"].notna() & df["base_batch_size"].notna()
    df.loc[missing_k, "k"] = df.loc[missing_k, "batch_size"] / df.loc[missing_k, "base_batch_size"]
    for status in STATUSES:
        df[status] = df["status"] == status

    _add_headline(df)
    front = list(RUN_COLUMNS)
    rest = [c for c in df.columns if c not in front]
    df = df[front + rest]
    df = df.sort_values(
        ["task", "policy", "batch_size", "seed", "run_dir"],
        key=lambda s: s.map(policy_sort_key) if s.name == "policy" else s,
        na_position="last",
    )
    return df.reset_index(drop=True)


def _add_headline(df: pd.DataFrame) -> None:
    """Per task, the headline value of each run: test ``<metric>``, or valid when the task's
    completed runs have no test value. One split per task so that means compare like with like."""
    df["metric_split"] = np.nan
    df["metric_value"] = np.nan
    df["metric_split"] = df["metric_split"].astype(object)
    for (task, metric), idx in df.groupby(["task", "metric"], dropna=False).groups.items():
        if _is_missing(metric):
            continue
        sub = df.loc[idx]
        test_col, valid_col = f"test_{metric}", f"valid_{metric}"
        test = sub[test_col] if test_col in sub else pd.Series(np.nan, index=sub.index)
        done = sub["status"] == "completed"
        has_test = test.notna()
        if done.any():
            split = "test" if has_test[done].all() else "valid"
            if split == "valid" and has_test[done].any():
                lacking = sub.loc[done & ~has_test, "run_dir"].tolist()
                warnings.warn(
                    f"task {task}: completed runs without test_{metric} ({lacking}); "
                    f"the table uses valid_{metric} for every run of this task",
                    stacklevel=3,
                )
        else:
            split = "test" if has_test.any() else "valid"
        col = test_col if split == "test" else valid_col
        df.loc[idx, "metric_split"] = split
        if col in df.columns:
            df.loc[idx, "metric_value"] = pd.to_numeric(df.loc[idx, col], errors="coerce")


def collect_runs(dirs: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per run: every ``summary.json`` under ``dirs``, flattened (``final.*`` become
    ``test_ppl``-style columns), plus ``run_dir``, ``model_size`` (config ``task.model.size``),
    boolean ``completed``/``diverged``/``failed``/``running`` marks and the headline
    ``metric_split``/``metric_value``. Diverged, failed and running runs are kept.
    An unreadable summary.json is skipped with a warning."""
    records = []
    for path in find_summaries(dirs):
        try:
            summary = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError) as e:
            warnings.warn(f"{path}: unreadable summary ({e}); skipping this run", stacklevel=2)
            continue
        if not isinstance(summary, dict):
            warnings.warn(f"{path}: summary is not a JSON object; skipping", stacklevel=2)
            continue
        row = flatten_summary(summary)
        run_dir = path.parent
        cfg = read_config(run_dir)
        row.setdefault("model_size", _flatten(cfg).get("task.model.size"))
        wandb_cfg = cfg.get("wandb") if isinstance(cfg.get("wandb"), dict) else {}
        row.setdefault("wandb_project", wandb_cfg.get("project"))
        row.setdefault("wandb_entity", wandb_cfg.get("entity"))
        row["run_dir"] = str(run_dir)
        records.append(row)
    return runs_from_records(records)


# --------------------------------------------------------------------------- metrics.jsonl

METRIC_COLUMNS: tuple[str, ...] = ("kind", "step", "epoch", "time", "lr", "loss", "split")


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


def load_metrics(run_dir: str | os.PathLike[str], *, dedupe: bool = True) -> pd.DataFrame:
    """A run's ``metrics.jsonl`` as a DataFrame (file order; empty with the standard columns
    when the file is missing). A truncated last line (a killed run) is dropped silently; a
    malformed line elsewhere is dropped with a warning. With ``dedupe``, a row repeated for the
    same (kind, split, step) -- a resume that re-logged steps -- keeps its last version."""
    path = Path(run_dir) / "metrics.jsonl"
    rows: list[dict[str, Any]] = []
    if path.is_file():
        lines = path.read_text(errors="replace").split("\n")
        last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
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
    df = pd.DataFrame(rows)
    for col in METRIC_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    if df.empty:
        return df[list(METRIC_COLUMNS)]
    if dedupe:
        df = df[~df.duplicated(subset=["kind", "split", "step"], keep="last")]
    cols = list(METRIC_COLUMNS) + [c for c in df.columns if c not in METRIC_COLUMNS]
    return df[cols].reset_index(drop=True)


def load_all_metrics(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``run_dir -> load_metrics(run_dir)`` for every local run in the table."""
    out: dict[str, pd.DataFrame] = {}
    for run_dir in runs["run_dir"].dropna().unique():
        if Path(run_dir).is_dir():
            out[run_dir] = load_metrics(run_dir)
    return out


# --------------------------------------------------------------------------- aggregate


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
    rows = []
    for (task, policy, batch), g in runs.groupby(["task", "policy", "batch_size"], sort=False):
        ok = g[(g["status"] == "completed") & g["metric_value"].notna()]
        vals = ok["metric_value"].astype(float).to_numpy()
        n = len(vals)
        done = g[g["status"] == "completed"]
        rows.append(
            {
                "task": task,
                "metric": _first_valid(g["metric"]),
                "split": _first_valid(g["metric_split"]),
                "higher_is_better": bool(_first_valid(g["higher_is_better"])),
                "scale": _joined(g["scale"]),
                "model_size": _joined(g["model_size"]),
                "policy": policy,
                "batch_size": int(batch),
                "base_batch_size": _first_valid(g["base_batch_size"]),
                "k": _first_valid(g["k"]),
                "peak_lr": _first_valid(g["peak_lr"]),
                "warmup_epochs": _first_valid(g["warmup_epochs"]),
                "steps": _first_valid(g["total_steps"]),
                "mean": float(vals.mean()) if n else np.nan,
                "std": float(vals.std(ddof=1)) if n > 1 else np.nan,
                "n": n,
                "n_runs": len(g),
                "n_diverged": int((g["status"] == "diverged").sum()),
                "n_failed": int((g["status"] == "failed").sum()),
                "n_running": int((g["status"] == "running").sum()),
                "wall_time_s_mean": float(done["wall_time_s"].mean()) if len(done) else np.nan,
            }
        )
    agg = pd.DataFrame(rows)
    for task, g in agg.groupby("task"):
        if g["scale"].dropna().str.contains(",").any():
            warnings.warn(f"task {task}: runs of several scales are pooled", stacklevel=2)
    base = agg[agg["batch_size"] == agg["base_batch_size"]].set_index(["task", "policy"])["mean"]
    base = base[~base.index.duplicated()]
    agg["base_mean"] = [
        base.get((t, p), np.nan) for t, p in zip(agg["task"], agg["policy"], strict=True)
    ]
    agg["gap_to_base"] = agg["mean"] - agg["base_mean"]
    agg["gap_to_base_pct"] = 100.0 * agg["gap_to_base"] / agg["base_mean"]
    agg = agg.sort_values(
        ["task", "policy", "batch_size"],
        key=lambda s: s.map(policy_sort_key) if s.name == "policy" else s,
    )
    return agg[list(AGG_COLUMNS)].reset_index(drop=True)


# --------------------------------------------------------------------------- time to target


@dataclass(frozen=True)
class Target:
    """Reach ``valid <metric>`` <= value (lower is better) or >= value (higher is better)."""

    task: str
    metric: str
    higher_is_better: bool
    value: float
    description: str

    def reached(self, x: float) -> bool:
        return x >= self.value if self.higher_is_better else x <= self.value

    @property
    def label(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        return f"valid {self.metric} {op} {metric_info(self.metric).format_short(self.value)}"


def default_target(
    runs: pd.DataFrame,
    task: str | None = None,
    *,
    value: float | None = None,
    policy: str = "sqrt_legw",
    tolerance: float | None = None,
) -> Target:
    """The time-to-target goal for ``task``. With ``value``, that value (an accuracy above 1 is
    read as percent). Otherwise the mean over seeds of ``best_valid_<metric>`` of the completed
    base-batch runs under ``policy`` (another policy when it has none), relaxed by
    ``tolerance`` (default: the metric's, see :mod:`legw_repro.analysis.metrics`)."""
    tasks = runs["task"].dropna().unique().tolist()
    if task is None:
        if len(tasks) != 1:
            raise AnalysisError(f"runs hold several tasks {sorted(tasks)}; name one")
        task = tasks[0]
    sub = runs[runs["task"] == task]
    if sub.empty:
        raise AnalysisError(f"no runs of task {task!r}")
    metric = str(_first_valid(sub["metric"]))
    info = metric_info(metric)
    hib = bool(_first_valid(sub["higher_is_better"]))
    if value is not None:
        return Target(task, metric, hib, info.parse(value), "set with --target")
    done = sub[(sub["status"] == "completed") & (sub["batch_size"] == sub["base_batch_size"])]
    if done.empty:
        done = sub[(sub["status"] == "completed") & (sub["batch_size"] == sub["batch_size"].min())]
    if done.empty:
        raise AnalysisError(f"task {task}: no completed base-batch run to derive a target from")
    pols = ordered_policies(done["policy"])
    chosen = policy if policy in pols else pols[0]
    base_runs = done[done["policy"] == chosen]
    col = f"best_valid_{metric}" if f"best_valid_{metric}" in base_runs else f"valid_{metric}"
    vals = pd.to_numeric(base_runs.get(col), errors="coerce").dropna()
    if vals.empty and col != f"valid_{metric}" and f"valid_{metric}" in base_runs:
        col = f"valid_{metric}"
        vals = pd.to_numeric(base_runs[col], errors="coerce").dropna()
    if vals.empty:
        raise AnalysisError(f"task {task}: base-batch runs have no {col} to derive a target from")
    best = float(vals.mean())
    target, tol_txt = info.relax(best, tolerance)
    batch = int(base_runs["batch_size"].iloc[0])
    best_txt = info.format_short(best)
    desc = f"{chosen} at batch {batch}: mean best valid {metric} {best_txt}, relaxed by {tol_txt}"
    return Target(task, metric, hib, target, desc)


def time_to_target(
    runs: pd.DataFrame,
    target: Target,
    metrics: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Per run of ``target.task`` (completed or diverged): the first validation evaluation that
    meets the target -- ``reached``, ``step``, ``epoch``, ``time_s`` (NaN when never reached)."""
    sub = runs[(runs["task"] == target.task) & runs["status"].isin(["completed", "diverged"])]
    rows = []
    for _, r in sub.iterrows():
        m = metrics.get(r["run_dir"]) if metrics is not None else None
        if m is None:
            m = load_metrics(r["run_dir"]) if Path(str(r["run_dir"])).is_dir() else None
        hit = None
        if m is not None and target.metric in m.columns:
            ev = m[(m["kind"] == "eval") & (m["split"] == "valid")].dropna(subset=[target.metric])
            ev = ev.sort_values("step", kind="stable")
            ok = (
                ev[ev[target.metric] >= target.value]
                if target.higher_is_better
                else ev[ev[target.metric] <= target.value]
            )
            if len(ok):
                hit = ok.iloc[0]
        rows.append(
            {
                "task": r["task"],
                "policy": r["policy"],
                "batch_size": r["batch_size"],
                "base_batch_size": r["base_batch_size"],
                "k": r["k"],
                "seed": r["seed"],
                "status": r["status"],
                "run_dir": r["run_dir"],
                "reached": hit is not None,
                "step": float(hit["step"]) if hit is not None else np.nan,
                "epoch": float(hit["epoch"]) if hit is not None else np.nan,
                "time_s": float(hit["time"]) if hit is not None else np.nan,
            }
        )
    cols = [
        "task",
        "policy",
        "batch_size",
        "base_batch_size",
        "k",
        "seed",
        "status",
        "run_dir",
        "reached",
        "step",
        "epoch",
        "time_s",
    ]
    return pd.DataFrame(rows, columns=cols)


def aggregate_time_to_target(ttt: pd.DataFrame) -> pd.DataFrame:
    """Per (task, policy, batch_size): ``n_reached``/``n_runs``, mean/std of steps and wall time
    over the runs that reached the target, and the speedups versus the base batch of the same
    policy (``speedup_time`` = base mean time / mean time; ``speedup_steps`` likewise)."""
    cols = [
        "task",
        "policy",
        "batch_size",
        "base_batch_size",
        "k",
        "n_runs",
        "n_reached",
        "steps_mean",
        "steps_std",
        "time_s_mean",
        "time_s_std",
        "epoch_mean",
        "speedup_time",
        "speedup_steps",
    ]
    if ttt.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (task, policy, batch), g in ttt.groupby(["task", "policy", "batch_size"], sort=False):
        hit = g[g["reached"]]
        rows.append(
            {
                "task": task,
                "policy": policy,
                "batch_size": int(batch),
                "base_batch_size": _first_valid(g["base_batch_size"]),
                "k": _first_valid(g["k"]),
                "n_runs": len(g),
                "n_reached": len(hit),
                "steps_mean": hit["step"].mean() if len(hit) else np.nan,
                "steps_std": hit["step"].std(ddof=1) if len(hit) > 1 else np.nan,
                "time_s_mean": hit["time_s"].mean() if len(hit) else np.nan,
                "time_s_std": hit["time_s"].std(ddof=1) if len(hit) > 1 else np.nan,
                "epoch_mean": hit["epoch"].mean() if len(hit) else np.nan,
            }
        )
    agg = pd.DataFrame(rows)
    base = agg[agg["batch_size"] == agg["base_batch_size"]].set_index(["task", "policy"])
    base = base[~base.index.duplicated()]
    keys = list(zip(agg["task"], agg["policy"], strict=True))
    bt = np.array([base["time_s_mean"].get(k, np.nan) for k in keys], dtype=float)
    bs = np.array([base["steps_mean"].get(k, np.nan) for k in keys], dtype=float)
    agg["speedup_time"] = bt / agg["time_s_mean"].astype(float)
    agg["speedup_steps"] = bs / agg["steps_mean"].astype(float)
    agg = agg.sort_values(
        ["task", "policy", "batch_size"],
        key=lambda s: s.map(policy_sort_key) if s.name == "policy" else s,
    )
    return agg[cols].reset_index(drop=True)


# --------------------------------------------------------------------------- W&B

_WANDB_STATES = {
    "finished": "completed",
    "running": "running",
    "crashed": "failed",
    "failed": "failed",
    "killed": "failed",
}
_CONFIG_FIELDS = (
    "task",
    "policy",
    "batch_size",
    "base_batch_size",
    "seed",
    "scale",
    "epochs",
    "optimizer",
    "base_lr",
)


def _lookup(flat: Mapping[str, Any], field: str) -> Any:
    """``flat[field]``, else the shortest key ending in ``.field`` (or ``.field.name``)."""
    if field in flat and not isinstance(flat[field], Mapping):
        return flat[field]
    hits = [
        k
        for k in flat
        if k == f"{field}.name" or k.endswith(f".{field}") or k.endswith(f".{field}.name")
    ]
    return flat[min(hits, key=len)] if hits else None


def wandb_run_to_record(
    config: Mapping[str, Any],
    summary: Mapping[str, Any],
    *,
    state: str | None = None,
    path: str = "",
) -> dict[str, Any]:
    """Map one W&B run (its config and summary dicts) onto a flat run-table row.

    The trainer mirrors summary.json into the W&B summary (scalar fields as they are, ``final``
    entries as ``final/<key>``) and the resolved config into the run config; fields missing from
    the summary are looked up in the config (``task.name``, ``*.batch_size``, ...)."""
    rec: dict[str, Any] = {}
    for key, value in summary.items():
        if key.startswith("_") or isinstance(value, Mapping):
            continue
        if key.startswith("final/"):
            rec[key.split("/", 1)[1]] = value
        elif "/" not in key:
            rec[key] = value
    flat = _flatten(config)
    for field in _CONFIG_FIELDS:
        if _is_missing(rec.get(field)):
            v = _lookup(flat, field)
            if v is not None:
                rec[field] = v
    rec.setdefault("model_size", flat.get("task.model.size"))
    if _is_missing(rec.get("status")):
        rec["status"] = _WANDB_STATES.get(str(state), str(state) if state else "unknown")
    if _is_missing(rec.get("wall_time_s")) and "_runtime" in summary:
        rec["wall_time_s"] = summary["_runtime"]
    rec["run_dir"] = f"wandb:{path}" if path else "wandb:"
    return rec


def collect_wandb(project_path: str, *, timeout: int = 30) -> pd.DataFrame:
    """The run table read back from W&B (``ENTITY/PROJECT``) with the public API.

    Raises :class:`AnalysisError` when W&B is offline or disabled, no API key is configured or
    the API cannot be reached."""
    if project_path.count("/") != 1 or not all(project_path.split("/")):
        raise AnalysisError(f"--wandb expects ENTITY/PROJECT, got {project_path!r}")
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        raise AnalysisError(
            f"reading runs from W&B needs the online API but WANDB_MODE={mode}; "
            "unset WANDB_MODE (and `wandb sync` offline runs first) or analyse local run dirs"
        )
    import wandb  # lazily: slow to import and only needed here

    try:
        api = wandb.Api(timeout=timeout)
        if not getattr(api, "api_key", None):
            raise AnalysisError("no W&B API key: run `wandb login` or set WANDB_API_KEY")
        runs = list(api.runs(project_path))
    except AnalysisError:
        raise
    except Exception as e:  # noqa: BLE001 -- any API/network failure becomes one clear line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AnalysisError(f"cannot read runs from W&B project {project_path}: {msg}") from e
    records = []
    for run in runs:
        summary = getattr(run.summary, "_json_dict", None) or dict(run.summary)
        records.append(
            wandb_run_to_record(
                dict(run.config), summary, state=run.state, path=f"{project_path}/{run.id}"
            )
        )
    return runs_from_records(records)


def wandb_history_to_metrics(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """W&B history rows (``_step``, ``train/lr``, ``valid/ppl``, ...: how the trainer mirrors
    metrics.jsonl) back into :func:`load_metrics`'s layout: one train row and one eval row per
    split found in each history row."""
    out: list[dict[str, Any]] = []
    for row in rows:
        step = row.get("_step")
        groups: dict[str, dict[str, Any]] = {}
        for key, value in row.items():
            if "/" not in key or key.startswith("_") or _is_missing(value):
                continue
            prefix, name = key.split("/", 1)
            if prefix == "final":
                continue
            groups.setdefault(prefix, {})[name] = value
        for prefix, fields in groups.items():
            rec = {"kind": "train" if prefix == "train" else "eval", "step": step}
            if prefix != "train":
                rec["split"] = prefix
            rec.update(fields)
            out.append(rec)
    df = pd.DataFrame(out)
    for col in METRIC_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    cols = list(METRIC_COLUMNS) + [c for c in df.columns if c not in METRIC_COLUMNS]
    return df[cols].sort_values("step", kind="stable").reset_index(drop=True)


def wandb_metrics(
    project_path: str, runs: pd.DataFrame, *, timeout: int = 30
) -> dict[str, pd.DataFrame]:
    """``run_dir -> metrics`` for the W&B runs of ``runs`` (from :func:`collect_wandb`), read
    from each run's full history. Raises :class:`AnalysisError` on API failures."""
    import wandb  # lazily

    out: dict[str, pd.DataFrame] = {}
    try:
        api = wandb.Api(timeout=timeout)
        for run_dir in runs["run_dir"].dropna():
            if not str(run_dir).startswith("wandb:"):
                continue
            run = api.run(str(run_dir)[len("wandb:") :])
            out[run_dir] = wandb_history_to_metrics(run.scan_history())
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AnalysisError(f"cannot read run histories from W&B: {msg}") from e
    return out
