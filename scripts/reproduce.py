#!/usr/bin/env python
"""Run a task's batch-size sweep (policies x batch sizes x seeds), then the analysis.

    python scripts/reproduce.py --task ptb --scale cpu     (what `make reproduce-ptb` runs)

Resumable: every run has a fixed directory, runs/<task>/<scale>/<policy>/b<batch>-s<seed>; a run
whose summary says completed or diverged is skipped, a killed one resumes from its checkpoint
(`resume=true`). Each run is its own process, so a crash is recorded and the sweep goes on.
The grid for each task and scale is in configs/sweep/<task>_<scale>.yaml; what is trained, what
is shared at k=1 and where each run lives is planned by legw_repro.sweep.plan_runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: the package is importable without installing

from legw_repro.sweep import (  # noqa: E402
    Grid,
    Job,
    grid_root,
    plan_runs,
    record_dir,
    results_dir,
    sweep_grids,
)

FINISHED = ("completed", "diverged")


class SweepError(Exception):
    """A sweep that cannot start (unknown task, scale or policy): one line, exit status 2."""


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def status_of(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, json.JSONDecodeError):
        return None


def alias_run(src: Path, dst: Path, policy: dict) -> None:
    """Record the shared base-batch run under another SGD policy's name."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "metrics.jsonl"):
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    s = json.loads((src / "summary.json").read_text())
    s.update(policy=policy["name"], rule=policy["rule"], warmup=policy["warmup"], alias_of=str(src))
    tmp = dst / "summary.json.tmp"
    tmp.write_text(json.dumps(s, indent=2) + "\n")
    tmp.replace(dst / "summary.json")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", required=True)
    ap.add_argument("--scale", default="auto", help="smoke | cpu | paper | auto (paper on CUDA)")
    ap.add_argument("--seeds", help="comma-separated seeds (default: the sweep file's)")
    ap.add_argument("--batch-sizes", help="comma-separated global batch sizes")
    ap.add_argument("--policies", help="comma-separated policies")
    ap.add_argument("--runs-dir", default="runs", help="root of the run directories")
    ap.add_argument("--out", help="where the table and plots go (default results/<task>)")
    ap.add_argument(
        "--jobs", type=int, default=1, help="runs side by side (e.g. 2 on a 2-core CPU, 1 per GPU)"
    )
    ap.add_argument(
        "--no-variants", action="store_true", help="only the main grid, not the sweep's variants"
    )
    ap.add_argument(
        "--no-restore",
        action="store_true",
        help="retrain runs even when their finished records are committed under results/",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    ap.add_argument(
        "--analyze-only",
        action="store_true",
        help="no training: tables and figures again from the committed records under "
        "results/<task>/records (and the sweep's variants', results/<task>-<variant>/records)",
    )
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    return ap.parse_args(argv)


def resolve_scale(task: str, scale: str) -> str:
    """`auto` -> paper on CUDA, else cpu; says whether the pair is a reduced reproduction."""
    if scale == "auto":
        import torch

        scale = "paper" if torch.cuda.is_available() else "cpu"
        why = "CUDA is available" if scale == "paper" else "no CUDA device"
        print(f"==> scale: {scale} ({why}; override with SCALE=smoke|cpu|paper)")
    else:
        print(f"==> scale: {scale}")
    from legw_repro.scales import is_reduced

    if is_reduced(task, scale):
        print(f"==> NOTE: '{scale}' is a REDUCED-SCALE reproduction; see configs/task_scale/.")
    elif scale != "paper":
        print(f"==> '{scale}' runs the full {task} protocol (configs/task_scale/).")
    return scale


def _ints(csv: str | None) -> list[int] | None:
    return [int(x) for x in csv.split(",")] if csv else None


def plan(args: argparse.Namespace, scale: str) -> tuple[dict[str, Grid], list[Job], dict]:
    """The sweep file's grids (with the command line's choices), their jobs, and the config of
    every policy they name; SweepError for an unknown sweep or policy."""
    sweep_file = REPO / "configs" / "sweep" / f"{args.task}_{scale}.yaml"
    if not sweep_file.exists():
        known = sorted(p.stem for p in (REPO / "configs" / "sweep").glob("*.yaml"))
        raise SweepError(f"no sweep {sweep_file.name}; known: {known}")
    grids = sweep_grids(
        load_yaml(sweep_file),
        batch_sizes=_ints(args.batch_sizes),
        policies=args.policies.split(",") if args.policies else None,
        seeds=_ints(args.seeds),
        variants=not args.no_variants,
    )
    pol_cfg = {}
    for p in dict.fromkeys(p for g in grids.values() for p in g.policies):
        f = REPO / "configs" / "policy" / f"{p}.yaml"
        if not f.exists():
            raise SweepError(f"unknown policy {p!r} (no {f})")
        pol_cfg[p] = load_yaml(f)
    base_batch = load_yaml(REPO / "configs" / "task" / f"{args.task}.yaml")["base_batch_size"]
    optimizers = {p: c["optimizer"] for p, c in pol_cfg.items()}
    jobs = plan_runs(
        Path(args.runs_dir), args.task, scale, grids, base_batch=base_batch, optimizers=optimizers
    )
    return grids, jobs, pol_cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scale = resolve_scale(args.task, args.scale)
    try:
        grids, jobs, pol_cfg = plan(args, scale)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = (
        Path(args.out)
        if args.out
        else REPO / "results" / (args.task if scale != "smoke" else f"smoke/{args.task}")
    )
    variant_records = {v: results_dir(out, v) / "records" for v in grids if v}
    if args.analyze_only:
        if not (out / "records").is_dir():
            print(f"error: no committed records in {out / 'records'}", file=sys.stderr)
            return 2
        return analyze_committed(out, args.task, variant_records)
    trained = [j for j in jobs if j.alias_of is None]
    if not args.no_restore:
        restored = restore_committed(trained, out, args.task, scale, args.overrides)
        if restored:
            print(f"==> restored {restored} finished runs from the committed records in {out}/")
    todo = [j for j in trained if status_of(j.run_dir) not in FINISHED]
    root = grid_root(Path(args.runs_dir), args.task, scale)
    print(
        f"==> {args.task}: {len(trained)} runs ({len(trained) - len(todo)} already finished), "
        f"batch sizes {list(grids[''].batch_sizes)}, policies {list(grids[''].policies)}, "
        f"seeds {list(grids[''].seeds)}; run dirs under {root}/"
    )
    if args.dry_run:
        for j in todo:
            print("   ", j.policy, j.batch, j.seed, j.run_dir, *j.overrides)
        return 0
    t0 = time.time()
    if launch_all(trained, args, scale):
        return 2
    for j in jobs:
        if j.alias_of is not None and status_of(j.alias_of) in FINISHED:
            alias_run(j.alias_of, j.run_dir, pol_cfg[j.policy])
    print(f"==> sweep done in {time.time() - t0:.0f}s")
    for variant in [*variant_records, ""]:
        grid = grid_root(Path(args.runs_dir), args.task, scale, variant)
        export(grid, results_dir(out, variant) / "records")
    return analyze_committed(out, args.task, variant_records)


def launch_all(jobs: list[Job], args: argparse.Namespace, scale: str) -> bool:
    """Train every job not yet finished, `args.jobs` side by side, each in its own process;
    True when one stopped on a config or data error (exit 2), which stops the others too."""
    env = {**os.environ}
    if args.jobs > 1:
        # runs side by side share the cores: one thread each instead of oversubscribing them
        env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    config_error = threading.Event()

    def launch(i: int, job: Job) -> None:
        run_dir, st = job.run_dir, status_of(job.run_dir)
        tag = (
            f"[{i}/{len(jobs)}] {args.task} {job.policy} batch={job.batch} seed={job.seed} "
            f"{' '.join(job.overrides)}"
        )
        if st in FINISHED:
            print(f"==> {tag}: already {st}, skipped", flush=True)
            return
        if config_error.is_set():
            return
        print(
            f"==> {tag}: {'resuming' if st else 'starting'} ({time.time() - t0:.0f}s elapsed)",
            flush=True,
        )
        cmd = [
            sys.executable,
            "-m",
            "legw_repro.train",
            f"task={args.task}",
            f"scale={scale}",
            f"policy={job.policy}",
            f"batch_size={job.batch}",
            f"seed={job.seed}",
            "resume=true",
            f"hydra.run.dir={run_dir}",
            *args.overrides,
            *job.overrides,
        ]
        if args.jobs > 1:  # interleaved progress bars are unreadable: each run logs to a file
            run_dir.mkdir(parents=True, exist_ok=True)
            cmd.append("progress=false")
            with (run_dir / "stdout.log").open("a") as log:
                rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            rc = subprocess.call(cmd, cwd=REPO, env=env)
        print(
            f"==> {tag}: {status_of(run_dir) or 'no record'} (exit {rc}, {time.time() - t0:.0f}s elapsed)",
            flush=True,
        )
        if rc == 2:  # a config or data error: the same for every run, stop here
            config_error.set()

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda a: launch(*a), enumerate(jobs, 1)))
    return config_error.is_set()


def restore_committed(
    jobs: list[Job], out: Path, task: str, scale: str, overrides: list[str]
) -> int:
    """A sweep started on another machine (or in an earlier session) goes on where it stopped:
    finished runs whose compact record is committed under <out>/records (or <out>-<variant>/
    records) are copied back instead of being trained again -- but only when the record's task
    recipe and epoch budget equal today's config, so a changed recipe is never mixed in."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    current: dict[tuple, dict] = {}
    n = 0
    for job in jobs:
        record = record_dir(out, job)
        if status_of(job.run_dir) is not None or status_of(record) not in FINISHED:
            continue
        if not (record / "config.yaml").exists():
            continue
        if job.overrides not in current:
            with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
                cfg = compose(
                    "train",
                    overrides=[f"task={task}", f"scale={scale}", *overrides, *job.overrides],
                )
            current[job.overrides] = OmegaConf.to_container(cfg, resolve=True)
        old = load_yaml(record / "config.yaml")
        # records from before `task.schedule.handover` existed used its default, `product`
        old.get("task", {}).get("schedule", {}).setdefault("handover", "product")
        want = current[job.overrides]
        if old.get("task") != want["task"] or old.get("epochs") != want["epochs"]:
            print(f"==> {record}: committed with another recipe or budget; it will be retrained")
            continue
        shutil.copytree(record, job.run_dir, dirs_exist_ok=True)
        n += 1
    return n


def export(root: Path, records: Path) -> None:
    """Compact copies of the records (thinned metrics, no checkpoints) next to the results, so
    the figures can be regenerated from the repository alone (make analyze-<task>)."""
    from legw_repro.analysis.archive import export_records

    shutil.rmtree(records, ignore_errors=True)
    export_records(root, records)


def analyze_committed(out: Path, task: str, variant_records: dict[str, Path]) -> int:
    """The analysis over the records next to the results: each variant's own folder first,
    then the main grid, whose report sets the variants beside it at the largest batch."""
    rc = 0
    for records in variant_records.values():
        if records.is_dir():
            rc |= run_analysis(records, records.parent, task)
    return rc | run_analysis(out / "records", out, task, variant_records)


def _rel(path: Path) -> str:
    """A path inside the repository as a relative one (the analysis runs from the repository
    root), so the committed reports name `results/...`, not this machine's checkout."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def run_analysis(
    records: Path, out: Path, task: str, variants: dict[str, Path] | None = None
) -> int:
    """``python -m legw_repro.analyze`` over ``records``, with each variant's records that
    exist passed as ``--variant NAME=DIR``."""
    cmd = [sys.executable, "-m", "legw_repro.analyze", _rel(records), "--out", _rel(out)]
    cmd += ["--task", task]
    for name, vrecords in (variants or {}).items():
        if vrecords.is_dir() and any(vrecords.rglob("summary.json")):
            cmd += ["--variant", f"{name}={_rel(vrecords)}"]
    print("==> analysis:", " ".join(cmd[1:]), flush=True)
    return subprocess.call(cmd, cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
