#!/usr/bin/env python
"""Throughput of the suite's trainer against a bare PyTorch loop, for every task (`make bench`).

    python scripts/bench.py                              # every task, the device's batch sizes
    python scripts/bench.py --tasks ptb --batches 20,1280 --device cuda
    python scripts/bench.py --tasks ptb --overrides cuda_graphs=true   # a trainer option
    python scripts/bench.py --tasks ptb --batches 20 --concurrent 1,2,4,8   # runs sharing a GPU
    python scripts/bench.py --tasks ptb --batches 20 --concurrent 1,4,8,16 --sharing time-slice,mps,fused
    python scripts/bench.py --smoke --out /tmp/bench     # the smoke models, seconds

Each task and batch size is measured in a process of its own (legw_repro/bench/measure.py):
the real trainer (`legw_repro.run.lifecycle.run`) and a bare loop written for the same model, data and
optimizer take turns in blocks of about --block-s seconds on the same batches, after a warm-up;
the trainer/bare ratio is the median of the per-block ratios, so it survives a busy machine.
On CUDA a second bare loop never reads the loss (no per-step sync: the upper bound). Reported:
items/s, step time (median and min-max over blocks), peak memory, FLOPs per item and achieved
FLOP/s against the measured matmul peak. Writes results/bench/<device>-<task>.csv (with
--concurrent: <device>-<task>-concurrent.csv) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from legw_repro.bench import measure as m  # noqa: E402
from legw_repro.bench import mps  # noqa: E402
from legw_repro.bench.flops import peak_flops  # noqa: E402
from legw_repro.bench.report import machine, rows_of, table, window_rows, write_csv  # noqa: E402
from legw_repro.config.config_dir import CONFIGS  # noqa: E402
from legw_repro.config.spec import resolve_device  # noqa: E402
from legw_repro.config.validate import task_class  # noqa: E402
from legw_repro.tasks.common.download import resolve_data_dir  # noqa: E402

RESULT = "BENCH-RESULT "
SHARING = ("time-slice", "mps", "fused")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--tasks", default="ptb,mnist,gnmt")
    ap.add_argument("--batches", default="", help="comma list (default: per task and device)")
    ap.add_argument("--threads", type=int, default=-1, help="torch threads (-1: 1 on a CPU)")
    ap.add_argument("--block-s", type=float, default=1.0, help="seconds per block (>= 1 step)")
    ap.add_argument("--budget-s", type=float, default=24.0, help="timed seconds per batch size")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per loop")
    ap.add_argument("--max-blocks", type=int, default=12, help="blocks per loop at most")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for the trainer")
    ap.add_argument(
        "--graphs-batches", default="", help="also measure cuda_graphs=true at these batches"
    )
    ap.add_argument("--concurrent", default="", help="e.g. 1,2,4,8: N trainer runs at once")
    ap.add_argument(
        "--sharing",
        default="time-slice",
        help="with --concurrent: time-slice (plain processes), mps (CUDA MPS), fused (one "
        "stacked model in one process), comma list",
    )
    ap.add_argument("--window-s", type=float, default=10.0, help="timed window per process")
    ap.add_argument("--smoke", action="store_true", help="smoke models and budgets (seconds)")
    ap.add_argument("--out", default=str(REPO / "results" / "bench"))
    ap.add_argument("--timeout-s", type=float, default=600.0, help="per measurement process")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.device = resolve_device(args.device).type
    args.sharing = [x for x in args.sharing.split(",") if x]
    bad = [x for x in args.sharing if x not in SHARING]
    if bad:
        ap.error(f"--sharing {','.join(bad)}: choose from {','.join(SHARING)}")
    if args.threads < 0:
        args.threads = 1 if args.device == "cpu" else 0
    if args.smoke:
        args.block_s, args.budget_s, args.warmup = 0.2, 1.0, 1
        args.window_s = min(args.window_s, 2.0)
    return args


def settings(args: argparse.Namespace, task: str) -> list[m.Setting]:
    """The measurements of `task`: each batch size, and with CUDA graphs where asked."""
    bench = (m.SMOKE if args.smoke else m.TASKS)[task]
    batches = [int(b) for b in args.batches.split(",") if b] or bench.batches[args.device]
    graphs = {int(b) for b in args.graphs_batches.split(",") if b}
    data_dir = str(resolve_data_dir(args.data_dir))
    out = []
    for b in batches:
        s = m.Setting(task, b, args.device, bench.scale, data_dir, bench.extra, args.precision,
                      tuple(args.overrides))  # fmt: skip
        out.append(s)
        if b in graphs and _fixed_shapes(task):
            out.append(replace(s, overrides=(*s.overrides, "cuda_graphs=true")))
    return out


def _fixed_shapes(task: str) -> bool:
    """Whether the task's batches have fixed shapes (`Task.fixed_shapes`): CUDA graphs apply."""
    from omegaconf import OmegaConf

    spec = OmegaConf.load(CONFIGS / "task" / f"{task}.yaml")
    return bool(task_class(OmegaConf.create({"task": spec})).fixed_shapes)


def _child_env(args: argparse.Namespace, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", **(extra or {})}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    return env


def _command(args: argparse.Namespace, job: dict) -> list[str]:
    return [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads),
            "--child", json.dumps(job)]  # fmt: skip


def _result(out: str) -> dict | None:
    lines = [x for x in out.splitlines() if x.startswith(RESULT)]
    return json.loads(lines[-1][len(RESULT) :]) if lines else None


def run_measure(args: argparse.Namespace, s: m.Setting) -> dict | None:
    """One measurement in its own process; None (and the error printed) if it failed."""
    job = {"kind": "measure", "setting": asdict(s), "block_s": args.block_s,
           "budget_s": args.budget_s, "warmup": args.warmup, "nosync": args.device == "cuda",
           "max_blocks": args.max_blocks}  # fmt: skip
    try:
        p = subprocess.run(_command(args, job), capture_output=True, text=True,
                           env=_child_env(args), timeout=args.timeout_s, cwd=REPO)  # fmt: skip
    except subprocess.TimeoutExpired:
        print(f"  {s.task} batch {s.batch}: no result within {args.timeout_s:.0f}s", flush=True)
        return None
    res = _result(p.stdout)
    if res is None or res.get("status") != "completed":
        why = (res or {}).get("reason") or p.stderr[-2000:]
        print(f"  {s.task} batch {s.batch}: failed (exit {p.returncode}): {why}", flush=True)
        return None
    return res


def run_concurrent(
    args: argparse.Namespace, s: m.Setting, n: int, env: dict[str, str] | None = None
) -> list[dict]:
    """`n` trainer runs at once on the device (`env`: more environment, e.g. MPS's); each
    reports its own window."""
    with tempfile.TemporaryDirectory() as barrier:
        procs = []
        for rank in range(n):
            job = {"kind": "window", "setting": asdict(s), "seconds": args.window_s,
                   "barrier": barrier, "rank": rank, "n": n}  # fmt: skip
            procs.append(subprocess.Popen(_command(args, job), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True,
                                          env=_child_env(args, env), cwd=REPO))  # fmt: skip
        results = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=args.timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            res = _result(out)
            if res is None:
                print(f"  {s.task} batch {s.batch} x{n}: a process failed: {err[-1500:]}")
            else:
                results.append(res)
    return results if len(results) == n else []


def run_fused(args: argparse.Namespace, s: m.Setting, n: int) -> list[dict]:
    """`n` runs as one fused group in one process (legw_repro/run/group.py)."""
    with tempfile.TemporaryDirectory() as barrier:
        job = {"kind": "fused", "setting": asdict(s), "seconds": args.window_s,
               "barrier": barrier, "n": n}  # fmt: skip
        res = subprocess.run(_command(args, job), capture_output=True, text=True,
                             env=_child_env(args, None), cwd=REPO, timeout=args.timeout_s)  # fmt: skip
    out = _result(res.stdout)
    if out is None:
        print(f"  {s.task} batch {s.batch} fused x{n}: failed: {res.stderr[-1500:]}")
    return [out] if out else []


def concurrent_rows(args: argparse.Namespace, s: m.Setting, meta: dict, peak: float) -> list[dict]:
    """N runs side by side for each N of --concurrent, for each --sharing; MPS is skipped with
    one line where it is unavailable (a CPU, no daemon binary)."""
    rows = []
    for sharing in args.sharing:
        why = mps.unavailable(args.device) if sharing == "mps" else None
        if why:
            print(f"  {s.task} batch {s.batch}: mps skipped: {why}", flush=True)
            continue
        with contextlib.ExitStack() as stack:
            env = None
            if sharing == "mps":
                env = stack.enter_context(
                    mps.daemon(Path(stack.enter_context(tempfile.TemporaryDirectory())))
                )
            for n in [int(x) for x in args.concurrent.split(",")]:
                res = (
                    run_fused(args, s, n) if sharing == "fused" else run_concurrent(args, s, n, env)
                )
                row = {**window_rows(res, meta, peak), "sharing": sharing} if res else None
                loop = {"loop": "fused"} if sharing == "fused" else {}
                rows += [{**row, "concurrent": n, **loop}] if row else []
    return rows


def child(args: argparse.Namespace) -> None:
    """The measurement process: one job, its result on stdout as one JSON line."""
    if args.threads:
        torch.set_num_threads(args.threads)
    job = json.loads(args.child)
    s = m.Setting(**{**job["setting"], "extra": tuple(job["setting"]["extra"]),
                     "overrides": tuple(job["setting"]["overrides"])})  # fmt: skip
    if job["kind"] == "measure":
        res = m.measure(s, job["block_s"], job["budget_s"], job["warmup"], job["nosync"],
                        job["max_blocks"])  # fmt: skip
    elif job["kind"] == "fused":
        res = m.measure_fused_window(s, job["seconds"], Path(job["barrier"]), job["n"])
    else:
        res = m.measure_window(s, job["seconds"], Path(job["barrier"]), job["rank"], job["n"])
    print(RESULT + json.dumps(res), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = peak_flops(torch.device(args.device), dtype)
    meta = machine(args.device)
    out, every, t0 = Path(args.out), [], time.monotonic()
    print(f"bench on {meta['device_name']} ({args.device}, {meta['threads']} threads), "
          f"torch {meta['torch']}; matmul peak {peak / 1e12:.3f} TFLOP/s", flush=True)  # fmt: skip
    for task in args.tasks.split(","):
        rows: list[dict] = []
        for s in settings(args, task):
            t = time.monotonic()
            if args.concurrent:
                rows += concurrent_rows(args, s, meta, peak)
            else:
                res = run_measure(args, s)
                rows += rows_of(res, meta, peak) if res else []
            print(f"  {task} batch {s.batch}: {time.monotonic() - t:.0f}s", flush=True)
            if rows:  # after every measurement: a bench stopped early keeps what it measured
                suffix = "-concurrent" if args.concurrent else ""
                write_csv(out / f"{args.device}-{task}{suffix}.csv", rows)
        every += rows
    print(table(every))
    print(f"({time.monotonic() - t0:.0f}s; CSVs in {out})")


if __name__ == "__main__":
    main()
