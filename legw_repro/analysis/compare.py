"""Fresh results against the committed reference: does a reproduction agree with ours?

Why a tolerance and not equality: the same seed on another machine (another thread count,
another BLAS, another CPU) sums in another order, and after thousands of steps that acts like
a different seed. So a fresh point agrees when its difference to the reference lies within
what a change of seed moves it:

* the reference has n_ref >= 2 seeds at the point: with sigma their standard deviation (ddof=1)
  and n the seeds both sides have, the tolerance is 2 * sigma * sqrt(2 / n) -- two standard
  deviations of a difference of two n-seed means -- but never less than the run-to-run
  tolerance below;
* the reference has one seed: there is no spread to measure, so the stated run-to-run
  tolerance of the metric applies (`RUN_TO_RUN`): 2% of a perplexity, 0.5 accuracy points,
  1 BLEU. The data point behind the perplexity one: PTB at cpu scale, batch 20, seed 0 gave
  143.0 fresh (another thread count) against 144.6 committed, 1.1% apart; MNIST's three seeds
  spread by at most 0.14 points up to batch 2048, so two single runs differ by < 0.5 points.

Diverged runs count as a result: both diverged agrees, one side diverged does not. Points are
matched on policy, batch size and seed within one task and scale; a point only one side has
is listed, never judged. Pure: run tables in (legw_repro.analysis.collect), a table out.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from legw_repro.analysis.frames import first, sort_by_policy
from legw_repro.analysis.metrics import metric_info

#: metric -> (tolerance, relative to the reference value?) for a one-seed reference
RUN_TO_RUN: dict[str, tuple[float, bool]] = {
    "ppl": (0.02, True),
    "acc": (0.005, False),
    "bleu": (1.0, False),
}
KEYS = ["policy", "batch_size", "seed"]
COLUMNS = [
    "policy", "batch_size", "seeds", "fresh", "reference", "difference", "tolerance",
    "basis", "agrees", "note",
]  # fmt: skip


def run_to_run(metric: str, reference: float) -> float:
    tol, relative = RUN_TO_RUN.get(metric, (0.0, False))
    return tol * abs(reference) if relative else tol


def _values(rows: pd.DataFrame) -> tuple[list[float], int]:
    """Completed runs' headline values, and how many runs diverged."""
    done = rows[rows["status"] == "completed"]["metric_value"].dropna()
    return [float(v) for v in done], int((rows["status"] == "diverged").sum())


def _judge(metric: str, fresh: pd.DataFrame, ref: pd.DataFrame, ref_all: pd.DataFrame) -> dict:
    """One point: both means over the shared seeds, their difference, the tolerance, the
    verdict."""
    (f_vals, f_div), (r_vals, r_div) = _values(fresh), _values(ref)
    row = {"seeds": len(fresh), "fresh": np.nan, "reference": np.nan, "difference": np.nan}
    row |= {"tolerance": np.nan, "basis": "", "agrees": False, "note": ""}
    if f_div or r_div:
        same = f_div == r_div == len(fresh)
        row |= {"agrees": same, "note": f"diverged: fresh {f_div}/{len(fresh)}, reference {r_div}"}
        return row
    if len(f_vals) != len(fresh) or len(r_vals) != len(ref):
        return row | {"note": "not finished on both sides"}
    f_mean, r_mean = float(np.mean(f_vals)), float(np.mean(r_vals))
    floor = run_to_run(metric, r_mean)
    spread, _ = _values(ref_all)
    if len(spread) >= 2:
        sigma = float(np.std(spread, ddof=1))
        tol = max(2 * sigma * math.sqrt(2 / len(f_vals)), floor)
        basis = f"2σ·√(2/{len(f_vals)}), σ over {len(spread)} reference seeds"
    else:
        tol, basis = floor, "run-to-run (one reference seed)"
    diff = f_mean - r_mean
    return row | {
        "fresh": f_mean,
        "reference": r_mean,
        "difference": diff,
        "tolerance": tol,
        "basis": basis,
        "agrees": abs(diff) <= tol,
    }


def compare(fresh: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """One row per (policy, batch size) both sides have, over the seeds both have (COLUMNS).
    Both tables must hold one task; the reference's runs of another scale are left out."""
    metric = str(first(reference, "metric") or first(fresh, "metric"))
    scale = first(fresh, "scale")
    if scale is not None:
        reference = reference[reference["scale"] == scale]
    both = fresh[KEYS].merge(reference[KEYS], on=KEYS).drop_duplicates()
    rows = []
    for (policy, batch), seeds in both.groupby(["policy", "batch_size"]):
        pick = lambda df, s=seeds: df.merge(s, on=KEYS)  # noqa: E731
        at = (reference["policy"] == policy) & (reference["batch_size"] == batch)
        judged = _judge(metric, pick(fresh), pick(reference), reference[at])
        rows.append({"policy": policy, "batch_size": int(batch), **judged})
    table = pd.DataFrame(rows, columns=COLUMNS)
    return sort_by_policy(table, ["batch_size", "policy"]).reset_index(drop=True)


def unmatched(fresh: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The fresh runs that have no reference run (another scale, another seed, a new point)."""
    ref = reference[reference["scale"] == first(fresh, "scale")][KEYS]
    merged = fresh[KEYS].merge(ref, on=KEYS, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"][KEYS].reset_index(drop=True)


def scale_note(fresh: pd.DataFrame, reference: pd.DataFrame) -> str:
    """Why nothing matched, when the reference was made at another scale; else ""."""
    scale, theirs = first(fresh, "scale"), sorted(set(reference["scale"].dropna()))
    if scale is None or scale in theirs:
        return ""
    return f"The reference holds scale {', '.join(map(str, theirs))}, this sweep is {scale}."


def comparison_markdown(
    table: pd.DataFrame, metric: str, reference_dir: str, note: str = ""
) -> str:
    """The report section (and what is printed): a table and the verdict in one sentence."""
    m = metric_info(metric)
    head = [
        "## Fresh vs committed",
        "",
        f"This sweep's final {m.label} against the committed reference in `{reference_dir}`, "
        "per point (mean over the seeds both have). A point agrees when the difference lies "
        "within the seed spread: 2σ·√(2/n) with σ the reference's seed standard deviation, "
        f"at least the run-to-run tolerance; with one reference seed that tolerance alone "
        f"({_run_to_run_words(metric)}). See legw_repro/analysis/compare.py.",
        "",
    ]
    if table.empty:
        return "\n".join([*head, f"No point of this sweep is in the reference. {note}".strip(), ""])

    def cell(v: float) -> str:
        return "" if pd.isna(v) else m.format(v)

    def gap(v: float) -> str:
        return "" if pd.isna(v) else f"{m.display(v):+.2f}" + (" pt" if m.percent else "")

    lines = [
        "| policy | batch | seeds | fresh | committed | difference | tolerance | agrees |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in table.itertuples():
        tol = "" if pd.isna(r.tolerance) else f"±{m.display(r.tolerance):.2f}"
        verdict = ("yes" if r.agrees else "**no**") + (f" ({r.note})" if r.note else "")
        lines.append(
            f"| {r.policy} | {r.batch_size} | {r.seeds} | {cell(r.fresh)} | "
            f"{cell(r.reference)} | {gap(r.difference)} | {tol} | {verdict} |"
        )
    n_ok = int(table["agrees"].sum())
    verdict = f"**{n_ok} of {len(table)} points agree** with the committed reference."
    return "\n".join([*head, *lines, "", verdict, ""])


def _run_to_run_words(metric: str) -> str:
    tol, relative = RUN_TO_RUN.get(metric, (0.0, False))
    if relative:
        return f"{100 * tol:g}% of the value"
    m = metric_info(metric)
    return f"{m.display(tol):g}" + (" points" if m.percent else "")
