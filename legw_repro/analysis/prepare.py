"""The data behind the history figures, as plain tables: pure functions of the run table and
the runs' histories (``run_dir -> metrics.jsonl`` frame), so that they can be tested without
drawing and the figures only draw what they are given."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from legw_repro.analysis.frames import first, ordered_policies

History = Mapping[str, pd.DataFrame]
# which run of a (batch, policy) draws its schedule: a completed one first, then by seed
STATUS_RANK: dict[str, int] = {"completed": 0, "running": 1, "diverged": 2, "failed": 3}


def eval_curve(m: pd.DataFrame | None, metric: str, split: str = "valid") -> pd.Series:
    """``epoch -> metric`` of one run's ``split`` evaluations (finite values only; epochs
    rounded to 1e-4 so that the seeds' evaluations line up)."""
    if m is None or metric not in m.columns:
        return pd.Series(dtype=float)
    ev = m[(m["kind"] == "eval") & (m["split"] == split)][["epoch", metric]].dropna()
    ev = ev[np.isfinite(ev[metric].astype(float)) & (ev[metric].astype(float).abs() < 1e6)]
    ev = ev.assign(epoch=ev["epoch"].astype(float).round(4)).drop_duplicates("epoch", keep="last")
    return ev.set_index("epoch")[metric].astype(float).sort_index()


def eval_curves(runs: pd.DataFrame, metrics: History, metric: str) -> pd.DataFrame:
    """Per (batch_size, policy) and evaluation epoch: ``mean``, ``min`` and ``max`` over the
    seeds' validation ``metric``; ``n`` = the number of seeds with a curve."""
    out = []
    for (b, p), g in runs.groupby(["batch_size", "policy"], sort=False):
        curves = [c for c in (eval_curve(metrics.get(d), metric) for d in g["run_dir"]) if len(c)]
        if not curves:
            continue
        wide = pd.concat(curves, axis=1).sort_index()
        stats = {"mean": wide.mean(axis=1), "min": wide.min(axis=1), "max": wide.max(axis=1)}
        frame = pd.DataFrame({"batch_size": int(b), "policy": p, "epoch": wide.index} | stats)
        out.append(frame.assign(n=wide.shape[1]).reset_index(drop=True))
    cols = ["batch_size", "policy", "epoch", "mean", "min", "max", "n"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def run_ends(runs: pd.DataFrame, metrics: History) -> pd.DataFrame:
    """Per run: the last epoch its history reaches (``end``) and, for a diverged run, the epoch
    it stopped at (``stop``: ``epochs_done``, else ``end``)."""
    rows = []
    for _, run in runs.iterrows():
        m = metrics.get(run["run_dir"])
        end = float(np.nanmax(m["epoch"].to_numpy(float))) if m is not None and len(m) else np.nan
        stop = pd.to_numeric(pd.Series([run.get("epochs_done")]), errors="coerce")[0]
        rows.append({"end": end, "stop": stop if np.isfinite(stop) else end})
    keys = runs[["batch_size", "policy", "seed", "status", "run_dir"]].reset_index(drop=True)
    return pd.concat([keys, pd.DataFrame(rows, columns=["end", "stop"])], axis=1)


def curve_frames(
    runs: pd.DataFrame, metrics: History, metric: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`eval_curves` and :func:`run_ends` of the runs that did not fail (a crashed run's
    partial history says nothing about its policy)."""
    ok = runs[runs["status"] != "failed"]
    return eval_curves(ok, metrics, metric), run_ends(ok, metrics)


def _main_optimizer(runs: pd.DataFrame) -> str | None:
    """SGD when any run uses it, else the most common optimizer (its LR gets the left axis)."""
    opts = runs["optimizer"].dropna().astype(str) if "optimizer" in runs else pd.Series([])
    return "sgd" if "sgd" in set(opts) else (opts.mode().iloc[0] if len(opts) else None)


def _schedule_run(g: pd.DataFrame, metrics: History) -> tuple[pd.Series, pd.DataFrame] | None:
    """The run whose logged LRs stand for the group (the schedule does not depend on the seed)
    and its training rows (epoch_start, lr), or None when no run logged any."""
    order = g.assign(_rank=g["status"].map(STATUS_RANK).fillna(9)).sort_values(["_rank", "seed"])
    for _, run in order.iterrows():
        m = metrics.get(run["run_dir"])
        if m is None:
            continue
        tr = m.loc[m["kind"] == "train", ["epoch_start", "lr"]].dropna()
        if not tr.empty:
            return run, tr
    return None


def lr_curves(runs: pd.DataFrame, metrics: History, max_points: int = 1500) -> pd.DataFrame:
    """Per (batch_size, policy), one run's learning rate of every logged step against the epoch
    at which the step began (at most ``max_points`` evenly spaced rows), with the run's
    ``status``, its end of warmup (``warmup_end``, NaN when not inside the training) and
    whether its optimizer's LR lives on another scale than the main one (``secondary``)."""
    main, out = _main_optimizer(runs), []
    for p in ordered_policies(runs["policy"]):
        for b, g in runs[runs["policy"] == p].groupby("batch_size"):
            found = _schedule_run(g, metrics)
            if found is None:
                continue
            run, tr = found
            tr = tr.rename(columns={"epoch_start": "epoch"})  # a step's lr applies from its start
            if len(tr) > max_points:
                tr = tr.iloc[:: math.ceil(len(tr) / max_points)]
            w = pd.to_numeric(pd.Series([run.get("warmup_epochs")]), errors="coerce")[0]
            epochs = pd.to_numeric(pd.Series([run.get("epochs")]), errors="coerce")[0]
            end = epochs if np.isfinite(epochs) else float(tr["epoch"].max())
            opt = first(g, "optimizer")
            out.append(
                tr[["epoch", "lr"]].assign(
                    batch_size=int(b),
                    policy=p,
                    status=run["status"],
                    warmup_end=w if np.isfinite(w) and 0 < w < end else np.nan,
                    optimizer=opt,
                    secondary=main is not None and opt is not None and str(opt) != main,
                )
            )
    cols = ["epoch", "lr", "batch_size", "policy", "status", "warmup_end", "optimizer", "secondary"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def ideal_steps(tta: pd.DataFrame, batches: list[int]) -> pd.DataFrame:
    """Perfect scaling from each policy's own base-batch steps to target: steps x base / batch
    at every batch size (``policy``, ``batch_size``, ``steps``)."""
    base = tta[(tta["batch_size"] == tta["base_batch_size"]) & tta["steps_mean"].notna()]
    base = base.drop_duplicates("policy")
    rows = [
        (p, b, s0 * b0 / b)
        for p, s0, b0 in zip(base["policy"], base["steps_mean"], base["batch_size"], strict=True)
        for b in np.asarray(batches, float)
    ]
    return pd.DataFrame(rows, columns=["policy", "batch_size", "steps"])
