"""The tuned-LR oracle: search the peak LR per batch size on validation, then run all seeds.

    python scripts/oracle.py --task mnist --scale cpu --seeds 0,1,2
    python scripts/oracle.py --task mnist --scale cpu --batch-sizes 128,8192 --dry-run
    python scripts/oracle.py --task mnist --scale cpu --variant shifted    (a variant's recipe)

Stage 1, search (seed 0): at each batch size, ``policy=tuned`` (sqrt-LEGW's warmup, peak LR
times ``2**e``) for e = -2..2, widened by a factor of 2 while the best sits at an edge
(legw_repro/sweep/oracle.py). Runs go to ``<runs>/<task>/<scale>-oracle/x<mult>/b<B>-s0`` and the
grid to ``results/<task>/<scale>[-<variant>]-oracle/search.csv``. The choice reads the VALIDATION metric only.
Stage 2: the winner at every seed, as ``<runs>/<task>/<scale>/tuned/b<B>-s<seed>`` (seed 0 is
the search run itself, copied), so the task's analysis draws ``tuned`` beside the other
policies. Relaunching skips finished runs (resume=true). Runs are sequential: the search at a
batch size depends on its earlier results.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from legw_repro.run.records import read_summary
from legw_repro.run.status import FINISHED
from legw_repro.sweep.oracle import DEFAULT_EXPONENTS, Trial, best, multiplier, next_exponent

REPO = Path(__file__).resolve().parents[1]


def summary(run_dir: Path) -> dict:
    return read_summary(run_dir) or {}


def train(
    task: str, scale: str, batch: int, seed: int, mult: float, run_dir: Path, variant: str = ""
) -> None:
    """One run through the CLI (resume=true: a finished run is skipped, a killed one resumed)."""
    if summary(run_dir).get("status") in FINISHED:
        return
    cmd = [sys.executable, "-m", "legw_repro.train", f"task={task}", f"scale={scale}"]
    if variant:  # the variant's recipe; without -m its sweep grid is not used
        cmd += [f"+experiment={task}_{scale}/{variant}"]
    cmd += ["policy=tuned", f"policy.lr_multiplier={mult!r}", f"batch_size={batch}"]
    cmd += [f"seed={seed}", "resume=true", f"hydra.run.dir={run_dir}", "progress=false"]
    print(f"==> {task} batch={batch} seed={seed} lr x{mult:g}: {run_dir}", flush=True)
    rc = subprocess.call(cmd, cwd=REPO)
    if rc == 2:
        sys.exit(f"error: a config or data error stopped {run_dir} (see above)")


def search_dir(root: Path, batch: int, exponent: int) -> Path:
    return root / f"x{multiplier(exponent):g}" / f"b{batch}-s0"


def trials(root: Path, batch: int, metric: str | None) -> tuple[list[Trial], str, bool]:
    """The search runs of one batch size, with the task's metric and its direction."""
    out, hib = [], True
    for d in sorted(root.glob(f"x*/b{batch}-s0")):
        s = summary(d)
        if not s:
            continue
        metric, hib = s["metric"], bool(s["higher_is_better"])
        e = round(math.log2(float(s.get("lr_multiplier", 1.0))))
        out.append(Trial(e, s.get("status"), (s.get("final") or {}).get(f"valid_{metric}")))
    return out, metric or "", hib


def run(args: argparse.Namespace, batch: int, e: int, run_dir: Path) -> None:
    """A seed-0 search run at lr x 2**e."""
    train(args.task, args.scale, batch, 0, multiplier(e), run_dir, args.variant)


def search(args: argparse.Namespace, root: Path, batch: int) -> int | None:
    """Run the search at one batch size; the winning exponent (None if every run failed)."""
    found, _, hib = trials(root, batch, None)
    for t in found:  # a trial killed part-way (preempted, running) is resumed, not ignored
        if t.status not in (*FINISHED, "failed") and not args.dry_run:
            run(args, batch, t.exponent, search_dir(root, batch, t.exponent))
    found, _, hib = trials(root, batch, None)
    while (e := next_exponent(found, hib)) is not None:
        if args.dry_run:
            grid = ", ".join(f"x{multiplier(x):g}" for x in DEFAULT_EXPONENTS)
            print(f"    would search batch={batch} at lr {grid} (then widen at an edge)")
            return None
        run(args, batch, e, search_dir(root, batch, e))
        found, _, hib = trials(root, batch, None)
    top = best(found, hib)
    return None if top is None else top.exponent


def write_search_table(root: Path, batches: list[int], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["batch_size", "lr_multiplier", "peak_lr", "status", "valid", "test", "metric"])
        for batch in batches:
            for d in sorted(root.glob(f"x*/b{batch}-s0"), key=lambda p: float(p.parent.name[1:])):
                s = summary(d)
                fin, m = s.get("final") or {}, s.get("metric")
                w.writerow(
                    [batch, s.get("lr_multiplier"), s.get("peak_lr"), s.get("status")]
                    + [fin.get(f"valid_{m}"), fin.get(f"test_{m}"), m]
                )
    print(f"==> search grid: {out}")


def final_runs(args: argparse.Namespace, root: Path, batch: int, e: int, seeds: list[int]) -> None:
    final = Path(args.runs_dir) / args.task / scale_dir(args) / "tuned"
    for seed in seeds:
        run_dir = final / f"b{batch}-s{seed}"
        if args.dry_run:
            print(f"    would run batch={batch} seed={seed} lr x{multiplier(e):g}: {run_dir}")
            continue
        if seed == 0 and summary(run_dir).get("status") not in FINISHED:
            shutil.copytree(search_dir(root, batch, e), run_dir, dirs_exist_ok=True)
            continue
        train(args.task, args.scale, batch, seed, multiplier(e), run_dir, args.variant)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--scale", default="cpu")
    ap.add_argument("--batch-sizes", help="comma-separated (default: the task's sweep grid)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds of the final runs")
    ap.add_argument("--runs-dir", default=str(REPO / "runs"))
    ap.add_argument("--variant", default="", help="a configs/experiment/<task>_<scale>/ variant")
    ap.add_argument("--dry-run", action="store_true", help="print what would run; train nothing")
    args = ap.parse_args(argv)
    if args.variant:
        exp = REPO / "configs" / "experiment" / f"{args.task}_{args.scale}" / f"{args.variant}.yaml"
        if not exp.exists():
            ap.error(f"--variant {args.variant}: no {exp.relative_to(REPO)}")
    return args


def scale_dir(args: argparse.Namespace) -> str:
    """`cpu`, or `cpu-shifted` for a variant: the folder its runs share with the variant's grid."""
    return f"{args.scale}-{args.variant}" if args.variant else args.scale


def batch_sizes(args: argparse.Namespace) -> list[int]:
    """--batch-sizes, else the batch sizes of the task's sweep (configs/experiment/)."""
    if args.batch_sizes:
        return [int(b) for b in args.batch_sizes.split(",")]
    grid = REPO / "configs" / "experiment" / f"{args.task}_{args.scale}.yaml"
    if not grid.exists():
        sys.exit(f"error: no {grid.relative_to(REPO)}; give --batch-sizes")
    params = yaml.safe_load(grid.read_text())["hydra"]["sweeper"]["params"]
    return [int(b) for b in str(params["batch_size"]).split(",")]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    batches, seeds = batch_sizes(args), [int(s) for s in args.seeds.split(",")]
    root = Path(args.runs_dir) / args.task / f"{scale_dir(args)}-oracle"
    chosen: dict[int, int | None] = {b: search(args, root, b) for b in batches}
    if not args.dry_run:
        name = f"{args.scale}-{args.variant}-oracle" if args.variant else f"{args.scale}-oracle"
        write_search_table(root, batches, REPO / "results" / args.task / name / "search.csv")
    for batch, e in chosen.items():
        if e is None:
            if not args.dry_run:
                print(f"==> batch {batch}: no search run finished; no tuned runs")
            continue
        print(f"==> batch {batch}: best lr x{multiplier(e):g} on validation")
        final_runs(args, root, batch, e, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
