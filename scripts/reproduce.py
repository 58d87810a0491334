#!/usr/bin/env python
"""Reproduce a task's batch-size sweep: train it, analyse it, compare it with ours.

    python scripts/reproduce.py --task ptb --scale smoke      (make reproduce-ptb SCALE=smoke)

A thin wrapper. The grid is the Hydra experiment configs/experiment/<task>_<scale>.yaml (and its
variants, configs/experiment/<task>_<scale>/<variant>.yaml), launched as
`python -m legw_repro.train -m +experiment=...` -- the same command a user types, with any
Hydra launcher (--launcher, or joblib with --jobs > 1). A relaunch skips the finished runs and
resumes the interrupted ones (legw_repro/sweep/plan.py, hydra_plugins/legw_sweeper). Then the run
records are copied, thinned, to <out>/records, the analysis writes tables and figures to <out>
(default reproduced/<task>/<scale>), and its report ends with the comparison against the
committed reference records (results/<task>/<scale>/records), also printed.

    --dry-run       the plan: runs, steps each, wall time from a calibration (make plan-<task>)
    --restore       first copy the committed finished runs into the run dirs (RESTORE=1)
    --analyze-only  tables and figures again from the committed records (make analyze-<task>),
                    written to reproduced/<task>/<scale> unless --out says otherwise
                    (--out results/<task>/<scale> redraws the committed ones)
    --train-only    train and export the records, skip the analysis (a cluster's login node;
                    the same command without it then trains nothing and analyses)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the package is importable without installing

from legw_repro.run.status import EXIT_PREEMPTED  # noqa: E402
from legw_repro.sweep.grid import GridError, expand, experiments  # noqa: E402
from legw_repro.sweep.plan import Point, plan, recipe, record_dir, results_dir  # noqa: E402
from legw_repro.sweep.sweep_io import status_of, statuses  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", required=True)
    ap.add_argument("--scale", default="auto", help="smoke | cpu | paper | auto (paper on CUDA)")
    ap.add_argument("--seeds", help="comma-separated seeds (default: the experiment's)")
    ap.add_argument("--batch-sizes", help="only these of the grid's batch sizes")
    ap.add_argument("--policies", help="only these of the grid's policies")
    ap.add_argument(
        "--runs-dir",
        default=os.environ.get("LEGW_RUNS_DIR") or "runs",
        help="root of the run directories (default: $LEGW_RUNS_DIR, else runs)",
    )
    ap.add_argument(
        "--out",
        help="tables, figures, records (default reproduced/<task>/<scale>, also with "
        "--analyze-only: only an explicit --out results/<task>/<scale> rewrites the committed ones)",
    )
    ap.add_argument("--reference", help="committed results to compare with (default: results/)")
    ap.add_argument("--jobs", type=int, default=1, help="runs side by side (joblib launcher)")
    ap.add_argument(
        "--launcher", help="a configs/hydra/launcher preset (joblib, submitit_local, slurm_gpu...)"
    )
    ap.add_argument(
        "--fuse",
        type=int,
        help="train the runs of one batch size as fused groups of up to N (hydra.sweeper.fuse)",
    )
    ap.add_argument("--no-variants", action="store_true", help="the main grid only")
    ap.add_argument(
        "--grids", help="only these grids: 'main' and/or variant names, comma-separated"
    )
    ap.add_argument("--restore", action="store_true", help="restore committed runs first")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and its cost, exit")
    ap.add_argument("--analyze-only", action="store_true", help="analyse the committed records")
    ap.add_argument(
        "--train-only", action="store_true", help="train and export the records; no analysis"
    )
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = ap.parse_args(argv)
    if args.grids and args.no_variants:
        ap.error(
            "--grids names the grids to run, --no-variants keeps the main one: give one of them"
        )
    if args.train_only and (args.analyze_only or args.dry_run):
        other = "--analyze-only" if args.analyze_only else "--dry-run"
        ap.error(f"--train-only trains, {other} does not: give one of them")
    return args


def resolve_scale(task: str, scale: str) -> str:
    """`auto` -> paper on CUDA, else cpu; says whether the pair is a reduced reproduction."""
    if scale == "auto":
        import torch

        scale = "paper" if torch.cuda.is_available() else "cpu"
        why = "CUDA is available" if scale == "paper" else "no CUDA device"
        print(f"==> scale: {scale} ({why}; override with SCALE=smoke|cpu|paper)")
    else:
        print(f"==> scale: {scale}")
    from legw_repro.config.scales import is_reduced

    if is_reduced(task, scale):
        print(f"==> NOTE: '{scale}' is a REDUCED-SCALE reproduction; see configs/task_scale/.")
    elif scale != "paper":
        print(f"==> '{scale}' runs the full {task} protocol (configs/task_scale/).")
    return scale


def _only(points: list[Point], batches: str | None, policies: str | None) -> list[Point]:
    """The command line narrows a grid (a variant keeps its own batch sizes and policies)."""
    keep_b = {int(b) for b in batches.split(",")} if batches else None
    keep_p = set(policies.split(",")) if policies else None
    return [
        p
        for p in points
        if (keep_b is None or p.batch in keep_b) and (keep_p is None or p.policy in keep_p)
    ]


def grids(args: argparse.Namespace, scale: str) -> dict[str, tuple[str, list[Point]]]:
    """variant -> (experiment, its points with the command line's seeds and narrowing)."""
    seeds = [f"seed={args.seeds}"] if args.seeds else []
    found = experiments(args.task, scale)
    if args.no_variants:
        found = {"": found[""]}
    if args.grids:
        found = _named(found, args.grids.split(","), f"{args.task} at scale {scale}")
    # the launcher's settings (hydra.launcher.partition=...) are not the runs' own
    job_args = [o for o in args.overrides if not o.lstrip("+~").startswith("hydra")]
    out = {}
    for variant, name in found.items():
        points = _only(expand(name, [*seeds, *job_args]), args.batch_sizes, args.policies)
        if points:
            out[variant] = (name, points)
    return out


def has_records(root: Path, grids: list[str]) -> bool:
    """Whether any of these grids ("" the main one, else a variant) has run records in `root`."""
    return any((results_dir(root, v) / "records").is_dir() for v in grids)


def _named(found: dict[str, str], wanted: list[str], where: str) -> dict[str, str]:
    """The grids --grids names ('main' is the experiment itself), or GridError listing them."""
    known = [v or "main" for v in found]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise GridError(f"--grids {','.join(unknown)}: no such grid for {where}; known: {known}")
    return {v: name for v, name in found.items() if (v or "main") in wanted}


def reference_root(args: argparse.Namespace, scale: str, grids: list[str]) -> Path:
    """The committed results to compare with: results/<task>/<scale>, whose variants lie beside
    it as results/<task>/<scale>-<variant> (paper's committed GNMT grids are variants only)."""
    if args.reference:
        return Path(args.reference)
    return REPO / "results" / args.task / scale


def narrowing(points: list[Point]) -> list[str]:
    """The swept values of the points, as the Hydra overrides that launch exactly them."""
    pol = ",".join(dict.fromkeys(p.policy for p in points))
    batch = ",".join(dict.fromkeys(str(p.batch) for p in points))
    seed = ",".join(dict.fromkeys(str(p.seed) for p in points))
    return [f"seed={seed}", f"batch_size={batch}", f"policy={pol}"]


def launcher_overrides(args: argparse.Namespace) -> list[str]:
    if args.launcher:
        return [f"hydra/launcher={args.launcher}"]
    if args.jobs > 1:  # interleaved progress bars are unreadable
        return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}", "progress=false"]
    return []


def launch(name: str, points: list[Point], args: argparse.Namespace) -> int:
    """`python -m legw_repro.train -m +experiment=<name>` over exactly `points`."""
    cmd = [sys.executable, "-m", "legw_repro.train", "-m", f"+experiment={name}"]
    cmd += [*narrowing(points), *launcher_overrides(args), *args.overrides]
    if args.fuse:
        cmd.append(f"hydra.sweeper.fuse={args.fuse}")
    env = dict(os.environ)
    if args.jobs > 1:  # runs side by side share the cores: one thread each
        env.setdefault("OMP_NUM_THREADS", "1")
    print("==> sweep:", " ".join(cmd[2:]), flush=True)
    return subprocess.call(cmd, cwd=REPO, env=env)


def restore(points: list[Point], records: Path) -> int:
    """Copy committed finished records into the run dirs that have none, when the record's
    recipe (`sweep.recipe`: the task's, its epoch budget) equals the point's; a changed recipe
    is trained again."""
    import yaml

    n = 0
    for p in points:
        rec = records / p.policy / f"b{p.batch}-s{p.seed}"
        if status_of(p.run_dir) is not None or status_of(rec) not in ("completed", "diverged"):
            continue
        old = (
            yaml.safe_load((rec / "config.yaml").read_text())
            if (rec / "config.yaml").exists()
            else {}
        )
        if recipe(old) != recipe(p.config):
            print(f"==> {rec}: committed with another recipe or budget; it will be retrained")
            continue
        shutil.copytree(rec, p.run_dir, dirs_exist_ok=True)
        n += 1
    return n


def export(points: list[Point], out: Path, variant: str) -> None:
    """Compact copies of the records beside the results: thinned metrics, translations kept,
    no checkpoints."""
    from legw_repro.analysis.archive import export_records

    shutil.rmtree(results_dir(out, variant) / "records", ignore_errors=True)
    for p in points:
        if status_of(p.run_dir) is not None:
            export_records(p.run_dir, record_dir(out, variant, p))


def _rel(path: Path) -> str:
    """A path inside the repository as a relative one, so reports name `results/...`."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def analyze(src: Path, out: Path, task: str, grids: list[str], reference: Path | None) -> int:
    """The analysis of each variant's records, then (if "" is among the `grids`) of the main
    grid's, whose report sets the variants beside it; each compared with its reference records
    where those exist. The records are read from `src` (results_dir(src, variant)/records), the
    tables and figures written to results_dir(out, variant): the same folder after a sweep,
    reproduced/ when the committed records are analysed again."""
    rc = 0
    variants = [g for g in grids if g]
    if not has_records(src, grids):
        print(f"error: no run records in {src / 'records'} or its variants'", file=sys.stderr)
        return 2
    for variant in [*variants, ""] if "" in grids else variants:
        records = results_dir(src, variant) / "records"
        if not records.is_dir():
            continue
        cmd = [sys.executable, "-m", "legw_repro.analysis", _rel(records)]
        cmd += ["--out", _rel(results_dir(out, variant)), "--task", task]
        ref = results_dir(reference, variant) / "records" if reference else None
        if ref is not None and ref.is_dir() and ref.resolve() != records.resolve():
            cmd += ["--reference", _rel(ref)]
        for v in variants if not variant else []:
            vrec = results_dir(src, v) / "records"
            if vrec.is_dir() and any(vrec.rglob("summary.json")):
                cmd += ["--variant", f"{v}={_rel(vrec)}"]
        print("==> analysis:", " ".join(cmd[1:]), flush=True)
        rc |= subprocess.call(cmd, cwd=REPO)
    return rc


def analyze_committed(ref: Path, out: Path, task: str, grids: list[str]) -> int:
    """The committed records analysed again, into `out`: the committed tables and figures
    beside the records change only when `out` names them (--out results/<task>/<scale>)."""
    if not has_records(ref, grids):
        print(f"error: no committed records in {ref / 'records'}", file=sys.stderr)
        return 2
    same = out.resolve() == ref.resolve()
    where = "rewriting the committed ones" if same else f"--out {_rel(ref)} rewrites those"
    print(f"==> tables and figures to {_rel(out)} ({where})", flush=True)
    return analyze(ref, out, task, grids, None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # where the experiments put their run dirs (hydra.sweep.dir), here and in the sweeps
    os.environ["LEGW_RUNS_DIR"] = str(Path(args.runs_dir).resolve())
    scale = resolve_scale(args.task, args.scale)
    try:
        found = grids(args, scale)
    except GridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ref = reference_root(args, scale, list(found))
    out = Path(args.out) if args.out else REPO / "reproduced" / args.task / scale
    if args.analyze_only:
        return analyze_committed(ref, out, args.task, list(found))
    if args.dry_run:
        from legw_repro.sweep.plan_report import print_plan

        return print_plan(found, args.jobs)
    for variant, (name, points) in found.items():
        if args.restore:
            n = restore(plan(points, {}).train, results_dir(ref, variant) / "records")
            print(f"==> {name}: restored {n} finished runs from {results_dir(ref, variant)}")
        print(f"==> {name}: {plan(points, statuses(points)).describe()}", flush=True)
        rc = launch(name, points, args)
        if rc == EXIT_PREEMPTED:
            print("==> preempted: run the same command again to resume", file=sys.stderr)
            return rc
        if rc:
            print(f"error: the sweep {name} stopped (exit {rc})", file=sys.stderr)
            return rc
    for variant, (_, points) in found.items():
        export(points, out, variant)
    if args.train_only:
        print(
            f"==> records in {out / 'records'}; for the tables and figures, run again without --train-only"
        )
        return 0
    return analyze(out, out, args.task, list(found), ref)


if __name__ == "__main__":
    sys.exit(main())
