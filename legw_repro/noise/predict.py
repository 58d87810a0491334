"""Where must any LR rule fail? The noise scale's prediction set against an epoch budget.

McCandlish et al. (2018): to make a given amount of progress, a batch B needs
S = S_min (1 + B_noise / B) steps, i.e. E = E_min (1 + B / B_noise) training items, with the
best learning rate at every step. B_noise changes along training, so the base run's trajectory
is cut into its epochs: epoch e of the base run (batch b0, one epoch of items) holds
E_min = 1 / (1 + b0 / B_noise(e)) epochs' worth of minimal progress, which batch B covers in
(1 + B / B_noise(e)) / (1 + b0 / B_noise(e)) epochs (trapezoid over the epoch's two ends).
Summed over the base run's budget, that is the epochs batch B needs to reach the state the base
run ends in; more than the budget means *step-starved*: no LR rule gets there in the budget.

Each grid point is then read against what sqrt-LEGW measured (gap to the target, the base run's
mean at the base budget): enough epochs and a gap -> *rule-limited*; enough and no gap ->
*holds*; starved and a gap -> *starved* (the shortfall is the steps'); starved and no gap ->
*model pessimistic* (B_simple, a proxy for the critical batch, overstates the cost there).

`python -m legw_repro.noise.predict --noise results/mnist/noise/noise.csv --budget
10=results/mnist/cpu/summary.csv --budget 40=results/mnist/cpu-budget40/summary.csv` prints the table.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def epochs_needed(
    b: float, b0: float, b_noise: Sequence[float], at: Sequence[float] | None = None
) -> float:
    """Epochs batch `b` needs for the progress the base run (batch `b0`) makes from at[0] to
    at[-1], B_noise measured at the base run's epochs `at` (default 0, 1, 2, ...)."""
    at = list(range(len(b_noise))) if at is None else list(at)
    if len(b_noise) < 2 or len(at) != len(b_noise):
        raise ValueError("need B_noise at two epochs at least, one value per epoch")

    def ratio(bn: float) -> float:
        return (1 + b / bn) / (1 + b0 / bn)

    return sum(
        (at[i + 1] - at[i]) * (ratio(b_noise[i]) + ratio(b_noise[i + 1])) / 2
        for i in range(len(b_noise) - 1)
    )


def reading(starved: bool, gap_pt: float | None, tol_pt: float) -> str:
    """The grid point's label from the prediction and sqrt-LEGW's measured gap (points)."""
    if gap_pt is None:
        return "no run"
    short = gap_pt < -tol_pt
    if starved:
        return "starved" if short else "model pessimistic"
    return "rule-limited" if short else "holds"


def read_noise(path: Path, column: str = "b_simple") -> tuple[list[float], list[float]]:
    """(epochs, B_simple or its interval's `column`: ci_low / ci_high) from noise.csv; every
    whole epoch from 0 on must be there (fractions of one are welcome)."""
    with path.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: float(r["epoch"]))
    epochs = [float(r["epoch"]) for r in rows]
    whole = [e for e in epochs if e.is_integer()]
    if whole != list(range(len(whole))) or len(whole) < 2:
        raise ValueError(f"{path} lacks epochs: has {epochs}; measure every epoch first")
    return epochs, [float(r[column]) for r in rows]


def read_policy(path: Path, policy: str) -> dict[int, float]:
    """Mean final metric by batch size for `policy` from an analysis summary.csv."""
    with path.open() as f:
        return {
            int(r["batch_size"]): float(r["mean"])
            for r in csv.DictReader(f)
            if r["policy"] == policy and r["mean"] not in ("", "nan")
        }


def predict(
    b_noise: Sequence[float] | dict[str, Sequence[float]],
    at: Sequence[float] | None,
    b0: int,
    budgets: dict[float, dict[int, float]],
    target: float,
    tol_pt: float,
) -> list[dict[str, Any]]:
    """One row per (budget, batch): epochs needed, starvation, sqrt-LEGW's gap, the reading.
    `b_noise`: B_simple by epoch, or {"b_simple": ..., "ci_low": ..., "ci_high": ...} to give
    the epochs needed at the interval's ends too (a low B_noise needs more epochs)."""
    curves = b_noise if isinstance(b_noise, dict) else {"b_simple": b_noise}
    rows = []
    for budget, measured in budgets.items():
        for b in sorted(measured):
            # to the base run's end state, whatever the budget
            need = epochs_needed(b, b0, curves["b_simple"], at)
            lo, hi = (
                (
                    epochs_needed(b, b0, curves["ci_high"], at),
                    epochs_needed(b, b0, curves["ci_low"], at),
                )
                if "ci_low" in curves
                else (need, need)
            )
            gap = (measured[b] - target) * 100
            starved = need > budget
            rows.append(
                {
                    "budget": budget,
                    "batch": b,
                    "epochs_needed": need,
                    "epochs_low": lo,
                    "epochs_high": hi,
                    "starved": starved,
                    "sqrt_legw": measured.get(b),
                    "gap_pt": gap,
                    "reading": reading(starved, gap, tol_pt),
                }
            )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| budget (epochs) | batch | epochs needed (predicted) | 90% range | step-starved | "
        "sqrt-LEGW | gap to target (pt) | reading |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        acc = "-" if r["sqrt_legw"] is None else f"{100 * r['sqrt_legw']:.2f}%"
        gap = "-" if r["gap_pt"] is None else f"{r['gap_pt']:+.2f}"
        lines.append(
            f"| {r['budget']:g} | {r['batch']} | {r['epochs_needed']:.1f} | "
            f"{r['epochs_low']:.1f}-{r['epochs_high']:.1f} | "
            f"{'yes' if r['starved'] else 'no'} | {acc} | {gap} | {r['reading']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m legw_repro.noise.predict", description=__doc__)
    p.add_argument("--noise", type=Path, required=True, help="noise.csv (B_simple by epoch)")
    p.add_argument(
        "--budget",
        action="append",
        required=True,
        metavar="EPOCHS=SUMMARY_CSV",
        help="an epoch budget and the summary.csv of its grid (repeatable)",
    )
    p.add_argument("--base-batch", type=int, default=128)
    p.add_argument("--policy", default="sqrt_legw")
    p.add_argument(
        "--tol-pt",
        type=float,
        default=0.2,
        help="a gap larger than this (points) counts as a shortfall",
    )
    args = p.parse_args(argv)  # fmt: skip
    try:
        at = read_noise(args.noise)[0]
        b_noise = {c: read_noise(args.noise, c)[1] for c in ("b_simple", "ci_low", "ci_high")}
        budgets = {}
        for item in args.budget:
            epochs, sep, path = item.partition("=")
            if not sep:
                raise ValueError(f"--budget {item!r} must be EPOCHS=SUMMARY_CSV, e.g. 10=a.csv")
            budgets[float(epochs)] = read_policy(Path(path), args.policy)
        first = budgets[next(iter(budgets))]
        if args.base_batch not in first:
            raise ValueError(f"the first --budget grid has no batch {args.base_batch} (the target)")
        target = first[args.base_batch]
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"target: the base run's {target:.4f} at batch {args.base_batch}, first budget\n")
    print(render(predict(b_noise, at, args.base_batch, budgets, target, args.tol_pt)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
