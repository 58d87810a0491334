"""Weights & Biases, both ways: the run table and histories read back with the public API
(the same tables as from local records), and the analysis's figures and tables logged to one
run named "analysis". ``wandb`` is imported lazily: it is slow and needed only here."""

from __future__ import annotations

import netrc
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.collect import flatten, runs_from_records
from legw_repro.analysis.frames import is_missing
from legw_repro.analysis.history import metrics_frame
from legw_repro.run.status import first_line

_WANDB_STATES = {
    "finished": "completed",
    "running": "running",
    "crashed": "failed",
    "failed": "failed",
    "killed": "failed",
}
# fmt: off
_CONFIG_FIELDS = (
    "task", "policy", "batch_size", "base_batch_size", "seed", "scale", "epochs", "optimizer",
    "base_lr",
)
# fmt: on
_CAPTIONS = {
    "curves": "validation metric vs epoch, one panel per batch size",
    "lr_schedules": "learning rate actually applied vs epoch, one panel per batch size",
    "time_to_target": "optimizer steps and wall time to the validation target; speedup",
}


def _api_error(what: str, e: Exception) -> AnalysisError:
    """Any API or network failure as one clear line."""
    return AnalysisError(f"{what}: {first_line(e)}")


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
    flat = flatten(config)
    for field in _CONFIG_FIELDS:
        if is_missing(rec.get(field)):
            v = _lookup(flat, field)
            if v is not None:
                rec[field] = v
    rec.setdefault("model_size", flat.get("task.model.size"))
    if is_missing(rec.get("status")):
        rec["status"] = _WANDB_STATES.get(str(state), str(state) if state else "unknown")
    if is_missing(rec.get("wall_time_s")) and "_runtime" in summary:
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
    import wandb

    try:
        api = wandb.Api(timeout=timeout)
        if not getattr(api, "api_key", None):
            raise AnalysisError("no W&B API key: run `wandb login` or set WANDB_API_KEY")
        runs = list(api.runs(project_path))
    except AnalysisError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _api_error(f"cannot read runs from W&B project {project_path}", e) from e
    records = []
    for run in runs:
        summary = getattr(run.summary, "_json_dict", None) or dict(run.summary)
        path = f"{project_path}/{run.id}"
        records.append(wandb_run_to_record(dict(run.config), summary, state=run.state, path=path))
    return runs_from_records(records)


def wandb_history_to_metrics(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """W&B history rows (``_step``, ``train/lr``, ``valid/ppl``, ...: how the trainer mirrors
    metrics.jsonl) back into :func:`~legw_repro.analysis.history.load_metrics`'s layout: one
    train row and one eval row per split found in each history row."""
    out: list[dict[str, Any]] = []
    for row in rows:
        groups: dict[str, dict[str, Any]] = {}
        for key, value in row.items():
            if "/" not in key or key.startswith("_") or is_missing(value):
                continue
            prefix, name = key.split("/", 1)
            if prefix != "final":
                groups.setdefault(prefix, {})[name] = value
        for prefix, fields in groups.items():
            rec = {"kind": "train" if prefix == "train" else "eval", "step": row.get("_step")}
            out.append(rec | ({} if prefix == "train" else {"split": prefix}) | fields)
    df = metrics_frame(out, dedupe=False)
    return df.sort_values("step", kind="stable").reset_index(drop=True)


def wandb_metrics(
    project_path: str, runs: pd.DataFrame, *, timeout: int = 30
) -> dict[str, pd.DataFrame]:
    """``run_dir -> metrics`` for the W&B runs of ``runs`` (from :func:`collect_wandb`), read
    from each run's full history. Raises :class:`AnalysisError` on API failures."""
    import wandb

    out: dict[str, pd.DataFrame] = {}
    try:
        api = wandb.Api(timeout=timeout)
        for run_dir in runs["run_dir"].dropna():
            if str(run_dir).startswith("wandb:"):
                run = api.run(str(run_dir)[len("wandb:") :])
                out[run_dir] = wandb_history_to_metrics(run.scan_history())
    except Exception as e:  # noqa: BLE001
        raise _api_error("cannot read run histories from W&B", e) from e
    return out


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _caption(task: str, stem: str) -> str:
    what = _CAPTIONS.get(stem)
    if what is None and stem.endswith("_vs_batch"):
        what = f"final {stem.removesuffix('_vs_batch')} vs batch size (mean ± std over seeds)"
    return f"{task}: {what or stem}"


def _table(df: pd.DataFrame) -> Any:
    import wandb

    return wandb.Table(dataframe=df.astype(object).where(df.notna(), None))


def _payload(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every task's SVG figures as ``wandb.Html`` (W&B's images are raster only) and its
    tables as ``wandb.Table``."""
    import wandb

    payload: dict[str, Any] = {}
    for task, res in results.items():
        for p in map(Path, res["paths"]):
            if p.suffix == ".svg":
                caption = f"<p>{_caption(task, p.stem)}</p>"
                payload[f"{task}/{p.stem}"] = wandb.Html(caption + p.read_text(), inject=False)
        payload[f"{task}/table_summary"] = _table(res["agg"])
        if res["tta"] is not None:
            payload[f"{task}/table_time_to_target"] = _table(res["tta"])
    return payload


def upload_wandb(
    results: dict[str, dict[str, Any]], runs: pd.DataFrame, project_path: str
) -> str | None:
    """Log every task's PNG figures and tables to one W&B run named "analysis" (job_type
    "analysis", tags ``analysis``, ``task=<task>``, ``scale=<scale>``). The mode is WANDB_MODE
    when set, else online with an API key and offline without one. Returns the local run
    directory (None when W&B is disabled)."""
    mode = os.environ.get("WANDB_MODE") or ("online" if _has_wandb_key() else "offline")
    if mode == "disabled":
        print(f"W&B is disabled (WANDB_MODE={mode}); nothing uploaded")
        return None
    import wandb

    entity, _, project = project_path.rpartition("/")
    tasks = sorted(results)
    scales = sorted({str(s) for s in runs[runs["task"].isin(tasks)]["scale"].dropna()})
    tags = ["analysis", *(f"task={t}" for t in tasks), *(f"scale={s}" for s in scales)]
    group = f"{tasks[0]}-{scales[0]}" if len(tasks) == 1 and len(scales) == 1 else None
    config = {
        "tasks": tasks,
        "scales": scales,
        "n_runs": int(runs["task"].isin(tasks).sum()),
        "targets": {t: r["target"].label if r["target"] else None for t, r in results.items()},
    }
    run = wandb.init(
        project=project,
        entity=entity or None,
        name="analysis",
        job_type="analysis",
        group=group,
        tags=tags,
        config=config,
        mode=mode,
    )
    try:
        run.log(_payload(results))
        run_dir = str(Path(run.dir).parent)
    finally:
        run.finish()
    if mode == "offline":
        print(f"W&B offline run written to {run_dir}; upload it with: wandb sync {run_dir}")
    else:
        print(f"W&B run: {getattr(run, 'url', None) or run_dir}")
    return run_dir
