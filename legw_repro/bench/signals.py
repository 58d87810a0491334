"""How long a sweep's runs take from a preemption signal to their checkpoint, N side by side.

Why: a scheduler sends SIGTERM, then SIGKILL after a grace time (SLURM's KillWait/GraceTime,
`timeout --kill-after`); a run that has not written its checkpoint by then loses every step
since the last one. The bound the trainer promises (docs/faults.md): one step, plus the
checkpoint write, from the moment the signal reaches the run (a joblib sweep forwards it to its
workers, legw_repro/sweep/forward.py). This measures it where it is hardest: N runs sharing the
device, the signal sent to the sweep process only, as `timeout` does.

    python -m legw_repro.bench.signals --runs 3 +experiment=ptb_smoke batch_size=20
    python -m legw_repro.bench.signals --runs 6 --bound-s 10 +experiment=ptb_paper \\
        batch_size=20,40,80,160,320,640 policy=sqrt_legw seed=0 device=cuda cuda_graphs=true

The overrides must sweep exactly N points (e.g. seed=0,1,2 or six batch sizes). Per run: its
status, the step it stopped at, and the seconds from the signal to its last checkpoint's write;
exit 0 when every run reached `preempted` within --bound-s, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from legw_repro.run.records import METRICS, read_summary


def _runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(METRICS))


def _steps(run: Path) -> int:
    try:
        return (run / METRICS).read_text().count('"kind": "train"')
    except OSError:
        return 0


def wait_training(root: Path, n: int, steps: int, timeout_s: float, proc: subprocess.Popen) -> None:
    """Until `n` runs under `root` have each logged `steps` training rows."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"signals: the sweep ended (exit {proc.returncode}) before the signal")
        runs = _runs(root)
        if len(runs) >= n and all(_steps(r) >= steps for r in runs):
            return
        time.sleep(0.2)
    raise SystemExit(f"signals: {n} runs did not each reach {steps} steps in {timeout_s:.0f}s")


def measure(args: argparse.Namespace, root: Path) -> list[dict]:
    """Launch the sweep, signal it once every run trains, and read what each run recorded."""
    cmd = [sys.executable, "-m", "legw_repro.train", "-m", *args.overrides, "progress=false"]
    cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.runs}", "checkpoint_every_min=0"]
    env = {**os.environ, "LEGW_RUNS_DIR": str(root), "WANDB_MODE": "disabled"}
    env.setdefault("OMP_NUM_THREADS", "1")
    log = open(root / "sweep.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_training(root, args.runs, args.after_steps, args.start_timeout_s, proc)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=args.grace_s)
        except subprocess.TimeoutExpired:  # what the scheduler does after its grace time
            proc.kill()
            proc.wait()
    finally:
        log.close()
    rows = []
    for run in _runs(root):
        s = read_summary(run) or {}
        ckpt = run / "checkpoints" / "last.pt"
        after = ckpt.stat().st_mtime - t0 if ckpt.is_file() else None
        rows.append(
            {
                "run": str(run.relative_to(root)),
                "status": s.get("status"),
                "step": s.get("steps_done"),
                "signal_to_checkpoint_s": None if after is None or after < 0 else round(after, 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="N: the runs the overrides sweep")
    p.add_argument("--after-steps", type=int, default=5, help="signal once each run has these")
    p.add_argument("--bound-s", type=float, default=10.0, help="the promise checked")
    p.add_argument("--grace-s", type=float, default=60.0, help="SIGKILL after this (a scheduler)")
    p.add_argument("--start-timeout-s", type=float, default=900.0)
    p.add_argument("--out", help="also write the rows here as JSON")
    p.add_argument("overrides", nargs="+", help="Hydra overrides sweeping N points")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="legw-signals-") as tmp:
        rows = measure(args, Path(tmp))
    ok = len(rows) == args.runs and all(
        r["status"] == "preempted"
        and r["signal_to_checkpoint_s"] is not None
        and r["signal_to_checkpoint_s"] <= args.bound_s
        for r in rows
    )
    for r in rows:
        print(f"{r['run']:<40} {r['status']!s:<10} step {r['step']!s:>6}  "
              f"{r['signal_to_checkpoint_s']!s:>6} s")  # fmt: skip
    worst = max((r["signal_to_checkpoint_s"] or float("inf") for r in rows), default=float("inf"))
    verdict = "within" if ok else "NOT within"
    print(f"{len(rows)} runs side by side: signal to checkpoint at most {worst} s, {verdict} "
          f"the bound of {args.bound_s:g} s")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "ok": ok}, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
