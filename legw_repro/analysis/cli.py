"""legw-analyze: tables, report and figures from run records.

    python -m legw_repro.analysis RUNS_DIR [RUNS_DIR...] --out results/<task>
        [--task ptb] [--target X] [--tolerance T] [--wandb ENTITY/PROJECT]
        [--upload-wandb [ENTITY/PROJECT]] [--variant NAME=RUNS_DIR ...]

Collects every ``summary.json`` under the RUNS_DIRs (and/or the runs of a W&B project), and for
each task writes ``summary.csv``, ``report.md`` and the figures (PNG + SVG) into the output
directory, then prints the Markdown results table and the paths written. Input problems (no
runs found, W&B unreachable, ...) are reported as one line on stderr with exit status 2.
See docs/analysis.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from legw_repro.analysis import AnalysisError
from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.collect import collect_runs, find_summaries
from legw_repro.analysis.compare import compare, comparison_markdown, scale_note
from legw_repro.analysis.frames import first
from legw_repro.analysis.history import load_all_metrics
from legw_repro.analysis.plots import make_figures
from legw_repro.analysis.report import results_table, write_report, write_summary_csv
from legw_repro.analysis.target import (
    Target,
    aggregate_time_to_target,
    default_target,
    time_to_target,
)
from legw_repro.analysis.variants import write_variants
from legw_repro.analysis.wandb_io import (
    collect_wandb,
    upload_wandb,
    wandb_metrics,
)

PROG = "legw-analyze"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Aggregate LEGW run records into summary.csv, report.md and figures.",
    )
    p.add_argument(
        "runs_dirs",
        nargs="*",
        metavar="RUNS_DIR",
        help="directories searched recursively for run records (summary.json)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output directory (default: reproduced/<task>/<scale>; the committed results/<task> "
        "only when named); with several tasks and no --task, one sub-directory per task",
    )
    p.add_argument("--task", default=None, help="analyse only this task (ptb, mnist, ...)")
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="time-to-target goal on the validation metric (an accuracy may be given in percent); "
        "default: the base batch's mean best valid metric under sqrt_legw, relaxed by --tolerance",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="relaxation of the default target: relative for ppl/bleu (default 0.01 = 1%%), "
        "absolute for accuracy (default 0.005 = 0.5 points)",
    )
    p.add_argument(
        "--wandb",
        metavar="ENTITY/PROJECT",
        default=None,
        help="also read runs back from this W&B project with the public API (needs to be online)",
    )
    p.add_argument(
        "--upload-wandb",
        metavar="ENTITY/PROJECT",
        nargs="?",
        const="",
        default=None,
        help="log the figures and tables to a W&B run named 'analysis' (project: this value, "
        "else --wandb's, else legw-repro); WANDB_MODE=offline "
        "writes the run files only",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=RUNS_DIR",
        help="runs of a diagnostic variant (e.g. long=results/mnist/cpu-long/records) to set beside "
        "the main grid at the same batch size: variants.csv, variants.svg and a report section",
    )
    p.add_argument(
        "--reference",
        metavar="RUNS_DIR",
        default=None,
        help="committed reference records (e.g. results/ptb/cpu/records): report.md gets a 'Fresh vs "
        "committed' section -- per point both values, the difference, and whether it lies "
        "within the seed spread (legw_repro/analysis/compare.py) -- which is also printed",
    )
    return p


def _parse_variants(specs: Sequence[str]) -> dict[str, pd.DataFrame]:
    variants = {}
    for spec in specs:
        name, sep, d = spec.partition("=")
        if not sep or not name or not d:
            raise AnalysisError(f"--variant {spec!r}: expected NAME=RUNS_DIR, e.g. long=runs/x")
        if not find_summaries([d]):
            raise AnalysisError(f"--variant {spec!r}: no summary.json found under {d}")
        variants[name] = collect_runs([d])
    return variants


def _warning_line(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
    return f"{PROG}: warning: {message}\n"


def _target(
    r: pd.DataFrame,
    task: str,
    metrics: dict[str, pd.DataFrame],
    value: float | None,
    tolerance: float | None,
) -> tuple[Target | None, pd.DataFrame | None]:
    """The time-to-target goal and the table of steps and time to it (None without
    histories, or without a completed base-batch run to derive the goal from)."""
    if not any(len(m) for m in metrics.values()):
        if value is not None:
            warnings.warn(f"{task}: no metrics.jsonl found, --target is unused", stacklevel=3)
        return None, None
    try:
        target = default_target(r, task, value=value, tolerance=tolerance)
    except AnalysisError as e:
        warnings.warn(f"{task}: no time-to-target analysis: {e}", stacklevel=3)
        return None, None
    return target, aggregate_time_to_target(time_to_target(r, target, metrics))


def analyze_task(
    runs: pd.DataFrame,
    task: str,
    out_dir: Path,
    *,
    target_value: float | None = None,
    tolerance: float | None = None,
    metrics: dict[str, pd.DataFrame] | None = None,
    command: str | None = None,
    variants: dict[str, pd.DataFrame] | None = None,
    reference: tuple[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Write summary.csv, the figures and report.md for one task; return what was made:
    ``{"agg", "target", "tta", "table", "paths", "comparison"}`` (the comparison with the
    ``(label, runs)`` of ``reference``, "" without one)."""
    r = runs[runs["task"] == task].reset_index(drop=True)
    agg = aggregate(r)
    paths = [write_summary_csv(agg, out_dir / "summary.csv")]
    if metrics is None:
        metrics = load_all_metrics(r)
    else:
        metrics = {k: v for k, v in metrics.items() if k in set(r["run_dir"])}
    target, tta = _target(r, task, metrics, target_value, tolerance)
    figures = make_figures(r, out_dir, task, agg=agg, target=target, tta=tta, metrics=metrics)
    paths += figures
    sections = []
    if variants:
        section, vpaths = write_variants(r, variants, out_dir, task)
        sections.append(section)
        paths += vpaths
    comparison = ""
    if reference is not None:
        label, ref = reference
        ref = ref[ref["task"] == task]
        note = scale_note(r, ref)
        comparison = comparison_markdown(compare(r, ref), str(first(r, "metric")), label, note)
        sections.append(comparison)
    kw = {"target": target, "tta": tta, "figures": figures, "command": command}
    report = write_report(r, agg, out_dir, task, sections=sections, **kw)
    table = results_table(agg, task)
    made = {"agg": agg, "target": target, "tta": tta, "table": table, "paths": [*paths, report]}
    return made | {"comparison": comparison}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _warning_line
    command = "python -m legw_repro.analysis " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    try:
        return _run(args, command)
    except AnalysisError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2


def _collect(args: argparse.Namespace) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The run table of the RUNS_DIRs and/or the W&B project, and the runs' histories."""
    frames, metrics = [], {}
    if args.runs_dirs:
        for d in args.runs_dirs:
            if not Path(d).exists():
                warnings.warn(f"{d} does not exist", stacklevel=1)
        if not find_summaries(args.runs_dirs):
            raise AnalysisError("no summary.json found under " + ", ".join(args.runs_dirs))
        frames.append(collect_runs(args.runs_dirs))
    if args.wandb:
        remote = collect_wandb(args.wandb)
        if remote.empty:
            raise AnalysisError(f"no runs in W&B project {args.wandb}")
        try:
            metrics.update(wandb_metrics(args.wandb, remote))
        except AnalysisError as e:
            warnings.warn(f"{e}; drawing the summary figures only", stacklevel=1)
        frames.append(remote)
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise AnalysisError("no readable run records found")
    runs = pd.concat(frames, ignore_index=True)
    return runs, metrics | load_all_metrics(runs)  # the local runs' metrics.jsonl


def _tasks(args: argparse.Namespace, runs: pd.DataFrame, variants: dict) -> list[str]:
    tasks = sorted(runs["task"].dropna().unique().tolist())
    if args.task is not None:
        if args.task not in tasks:
            raise AnalysisError(f"no runs of task {args.task!r}; tasks found: {', '.join(tasks)}")
        tasks = [args.task]
    for flag, given in (("--target", args.target is not None), ("--variant", bool(variants))):
        if given and len(tasks) > 1:
            raise AnalysisError(
                f"{flag} needs a single task; pass --task (found: {', '.join(tasks)})"
            )
    return tasks


def _print(task: str, res: dict[str, Any]) -> None:
    agg = res["agg"]
    split, metric = agg["split"].dropna().iloc[0], agg["metric"].dropna().iloc[0]
    print(f"## {task}: final {split} {metric} (mean ± std over seeds)\n")
    print(res["table"])
    if res["target"] is not None:
        print(f"\ntime-to-target goal: {res['target'].label} ({res['target'].description})")
    if res.get("comparison"):
        print("\n" + res["comparison"])
    print("\nwrote:", *(f"  {p}" for p in res["paths"]), "", sep="\n")


def _out_dir(out: str | None, runs: pd.DataFrame, task: str) -> Path:
    """A task's output directory: <out>/<task>, by default reproduced/<task>/<scale> (the
    layout of `make reproduce-*`), never the committed results/ unless --out names it."""
    if out is not None:
        return Path(out) / task
    scales = runs.loc[runs["task"] == task, "scale"].dropna().astype(str).unique()
    return Path("reproduced", *scales[:1] if len(scales) == 1 else [], task)


def _run(args: argparse.Namespace, command: str) -> int:
    if not args.runs_dirs and not args.wandb:
        raise AnalysisError("give at least one RUNS_DIR or --wandb ENTITY/PROJECT")
    runs, metrics = _collect(args)
    variants = _parse_variants(args.variant)
    tasks = _tasks(args, runs, variants)
    one = args.out is not None and len(tasks) == 1
    outs = {t: Path(args.out) if one else _out_dir(args.out, runs, t) for t in tasks}
    kw = {"target_value": args.target, "tolerance": args.tolerance, "command": command}
    if args.reference:
        if not find_summaries([args.reference]):
            raise AnalysisError(f"--reference {args.reference}: no summary.json found there")
        kw["reference"] = (args.reference, collect_runs([args.reference]))
    results = {}
    for task in tasks:
        results[task] = analyze_task(
            runs, task, outs[task], metrics=metrics, variants=variants, **kw
        )
        _print(task, results[task])
    if args.upload_wandb is not None:
        project = args.upload_wandb or args.wandb or "legw-repro"
        upload_wandb(results, runs, project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
