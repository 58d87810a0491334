#!/usr/bin/env python
"""Run a task's batch-size sweep (policies x batch sizes x seeds), then the analysis.

    python scripts/reproduce.py --task ptb --scale cpu     (what `make reproduce-ptb` runs)

Resumable: every run has a fixed directory, runs/<task>/<scale>/<policy>/b<batch>-s<seed>; a run
whose summary says completed or diverged is skipped, a killed one resumes from its checkpoint
(`resume=true`). Each run is its own process, so a crash is recorded and the sweep goes on.
The grid for each task and scale is in configs/sweep/<task>_<scale>.yaml.
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
FINISHED = ("completed", "diverged")


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


def plan_grid(
    root: Path,
    batches: list[int],
    policies: list[str],
    seeds: list[int],
    base_batch: int,
    pol_cfg: dict[str, dict],
    overrides: list[str],
) -> tuple[list[tuple], list[tuple]]:
    """(jobs, aliases) of one grid: a job per (seed, batch, policy) under ``root``, except that
    at k=1 every SGD policy has the same schedule (peak = base_lr, warmup = the base warmup),
    so they share one run, recorded under each policy's name (an alias)."""
    jobs, aliases = [], []
    for seed in seeds:
        for batch in batches:
            shared = None
            for p in policies:
                run_dir = root / p / f"b{batch}-s{seed}"
                if batch == base_batch and pol_cfg[p]["optimizer"] == "sgd":
                    if shared is None:
                        shared = run_dir
                    else:
                        aliases.append((shared, run_dir, pol_cfg[p]))
                        continue
                jobs.append((p, batch, seed, run_dir, list(overrides)))
    return jobs, aliases


def main(argv: list[str] | None = None) -> int:
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
    args = ap.parse_args(argv)

    scale = args.scale
    if scale == "auto":
        import torch

        scale = "paper" if torch.cuda.is_available() else "cpu"
        why = "CUDA is available" if scale == "paper" else "no CUDA device"
        print(f"==> scale: {scale} ({why}; override with SCALE=smoke|cpu|paper)")
    else:
        print(f"==> scale: {scale}")
    from legw_repro.scales import is_reduced

    if is_reduced(args.task, scale):
        print(f"==> NOTE: '{scale}' is a REDUCED-SCALE reproduction; see configs/task_scale/.")
    elif scale != "paper":
        print(f"==> '{scale}' runs the full {args.task} protocol (configs/task_scale/).")
    sweep_file = REPO / "configs" / "sweep" / f"{args.task}_{scale}.yaml"
    if not sweep_file.exists():
        known = sorted(p.stem for p in (REPO / "configs" / "sweep").glob("*.yaml"))
        print(f"error: no sweep {sweep_file.name}; known: {known}", file=sys.stderr)
        return 2
    sweep = load_yaml(sweep_file)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else sweep["seeds"]
    batches = (
        [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else sweep["batch_sizes"]
    )
    policies = args.policies.split(",") if args.policies else sweep["policies"]
    base_batch = load_yaml(REPO / "configs" / "task" / f"{args.task}.yaml")["base_batch_size"]
    pol_cfg = {}
    for p in policies:
        f = REPO / "configs" / "policy" / f"{p}.yaml"
        if not f.exists():
            print(f"error: unknown policy {p!r} (no {f})", file=sys.stderr)
            return 2
        pol_cfg[p] = load_yaml(f)

    root = Path(args.runs_dir) / args.task / scale
    jobs, aliases = plan_grid(root, batches, policies, seeds, base_batch, pol_cfg, [])
    # variants: extra runs with overrides (e.g. a longer budget, clipping off) in their own
    # directories and result folders, so they never mix with the main grid's aggregates
    variants = {} if args.no_variants else (sweep.get("variants") or {})
    for name, v in variants.items():
        v_jobs, v_aliases = plan_grid(
            root.with_name(f"{scale}-{name}"),
            v.get("batch_sizes", batches),
            v.get("policies", policies),
            v.get("seeds", seeds),
            base_batch,
            pol_cfg,
            list(v.get("overrides", [])),
        )
        jobs += v_jobs
        aliases += v_aliases
    out = (
        Path(args.out)
        if args.out
        else REPO / "results" / (args.task if scale != "smoke" else f"smoke/{args.task}")
    )
    variant_records = {name: out.with_name(f"{out.name}-{name}") / "records" for name in variants}
    if args.analyze_only:
        if not (out / "records").is_dir():
            print(f"error: no committed records in {out / 'records'}", file=sys.stderr)
            return 2
        return analyze_committed(out, args.task, variant_records)
    if not args.no_restore:
        restored = restore_committed(jobs, root, out, args.task, scale, args.overrides)
        if restored:
            print(f"==> restored {restored} finished runs from the committed records in {out}/")
    todo = [j for j in jobs if status_of(j[3]) not in FINISHED]
    print(
        f"==> {args.task}: {len(jobs)} runs ({len(jobs) - len(todo)} already finished), "
        f"batch sizes {batches}, policies {policies}, seeds {seeds}; run dirs under {root}/"
    )
    if args.dry_run:
        for p, batch, seed, run_dir, extra in todo:
            print("   ", p, batch, seed, run_dir, *extra)
        return 0

    env = {**os.environ}
    if args.jobs > 1:
        # runs side by side share the cores: one thread each instead of oversubscribing them
        env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    config_error = threading.Event()

    def launch(i: int, p: str, batch: int, seed: int, run_dir: Path, extra: list[str]) -> None:
        st = status_of(run_dir)
        tag = f"[{i}/{len(jobs)}] {args.task} {p} batch={batch} seed={seed} {' '.join(extra)}"
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
            f"policy={p}",
            f"batch_size={batch}",
            f"seed={seed}",
            "resume=true",
            f"hydra.run.dir={run_dir}",
            *args.overrides,
            *extra,
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
        list(pool.map(lambda a: launch(*a), [(i, *j) for i, j in enumerate(jobs, 1)]))
    if config_error.is_set():
        return 2
    for src, dst, pol in aliases:
        if status_of(src) in FINISHED:
            alias_run(src, dst, pol)
    print(f"==> sweep done in {time.time() - t0:.0f}s")

    for name, records in variant_records.items():
        export(root.with_name(f"{scale}-{name}"), records)
    export(root, out / "records")
    return analyze_committed(out, args.task, variant_records)


def restore_committed(
    jobs: list, root: Path, out: Path, task: str, scale: str, overrides: list[str]
) -> int:
    """A sweep started on another machine (or in an earlier session) goes on where it stopped:
    finished runs whose compact record is committed under <out>/records (or <out>-<variant>/
    records) are copied back instead of being trained again -- but only when the record's task
    recipe and epoch budget equal today's config, so a changed recipe is never mixed in."""
    import yaml
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    current: dict[tuple, dict] = {}
    n = 0
    for _p, _batch, _seed, run_dir, extra in jobs:
        if status_of(run_dir) is not None:
            continue
        rel = run_dir.relative_to(root.parent)  # <scale>[-<variant>]/<policy>/b<B>-s<seed>
        variant = rel.parts[0][len(scale) :]  # "" or "-<variant>"
        record = out.with_name(out.name + variant) / "records" / Path(*rel.parts[1:])
        if status_of(record) not in FINISHED or not (record / "config.yaml").exists():
            continue
        key = tuple(extra)
        if key not in current:
            with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
                cfg = compose(
                    "train", overrides=[f"task={task}", f"scale={scale}", *overrides, *extra]
                )
            current[key] = OmegaConf.to_container(cfg, resolve=True)
        old = yaml.safe_load((record / "config.yaml").read_text())
        # records from before `task.schedule.handover` existed used its default, `product`
        old.get("task", {}).get("schedule", {}).setdefault("handover", "product")
        want = current[key]
        if old.get("task") != want["task"] or old.get("epochs") != want["epochs"]:
            print(f"==> {record}: committed with another recipe or budget; it will be retrained")
            continue
        shutil.copytree(record, run_dir, dirs_exist_ok=True)
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
