"""`make plan-<task>` / `scripts/reproduce.py --dry-run`: what a sweep would run and what it
would cost here, printed, with nothing written into the runs directory.

Every point of every grid with its status (read from the run records), the optimizer steps of
each run, and the wall time: two calibration runs (the main grid's smallest and largest batch,
a few steps each, in a temporary directory: legw_repro/sweep/calibrate.py) priced by
legw_repro/sweep/cost.py, with `jobs` runs side by side (one thread each on a CPU, as the sweep runs
them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from legw_repro.sweep import cost
from legw_repro.sweep.calibrate import CalibrationError, measure
from legw_repro.sweep.plan import Plan, Point, plan
from legw_repro.sweep.sweep_io import statuses

Grids = Mapping[str, tuple[str, list[Point]]]


def calibrate(points: Sequence[Point], jobs: int) -> list[cost.Sample]:
    """The smallest and the largest batch of `points`, a few steps each, on this machine."""
    by_batch = {p.batch: p for p in reversed(points)}  # the first point of each batch
    picks = sorted({min(by_batch), max(by_batch)})
    env = {"OMP_NUM_THREADS": "1"} if jobs > 1 else {}
    samples = []
    for batch in picks:
        print(f"==> calibrating: batch {batch}, a few steps ...", flush=True)
        samples.append(measure(by_batch[batch], env=env))
    return samples


def _rows(name: str, the_plan: Plan, samples: Sequence[cost.Sample]) -> list[tuple]:
    rows = []
    for p in the_plan.train:
        steps = cost.run_steps(samples, p.batch, float(p.config["epochs"]))
        secs = cost.run_seconds(samples, p.batch, float(p.config["epochs"]))
        rows.append((name, p.policy, p.batch, p.seed, steps, secs, "to train"))
    rows += [(name, p.policy, p.batch, p.seed, 0, 0.0, "finished") for p in the_plan.done]
    rows += [
        (name, a.policy, a.batch, a.seed, 0, 0.0, f"= {s.policy}") for a, s in the_plan.aliases
    ]
    return rows


def print_plan(grids: Grids, jobs: int = 1) -> int:
    """Print the plan and its cost; 0, or 2 when the calibration run fails (its last line)."""
    plans = {v: plan(points, statuses(points)) for v, (_, points) in grids.items()}
    main = next(iter(grids.values()))[1]
    try:
        samples = calibrate(main, jobs)
    except CalibrationError as e:
        print(f"error: {e}", flush=True)
        return 2
    rows = [r for v, (name, _) in grids.items() for r in _rows(name, plans[v], samples)]
    print(f"{'grid':<22} {'policy':<10} {'batch':>6} {'seed':>4} {'steps':>7} {'est.':>7}  status")
    for name, policy, batch, seed, steps, secs, status in rows:
        est = cost.human(secs) if secs else ""
        print(f"{name:<22} {policy:<10} {batch:>6} {seed:>4} {steps or '':>7} {est:>7}  {status}")
    todo = [r[5] for r in rows if r[6] == "to train"]
    for s in samples:
        print(
            f"==> calibration here: batch {s.batch}: {s.sec_per_step:.3g} s/step, "
            f"{s.steps_per_epoch} steps/epoch, start-up {s.startup_s:.0f}s"
        )
    where = "one run at a time" if jobs == 1 else f"{jobs} runs side by side, one thread each"
    print(
        f"==> {len(todo)} runs to train, {sum(r[4] for r in rows)} optimizer steps: "
        f"about {cost.human(cost.makespan(todo, jobs, max(s.startup_s for s in samples)))} "
        f"of wall time ({where}; "
        "evaluation passes not included). Nothing was written into the runs directory."
    )
    return 0
