"""The gradient noise scale's prediction beside what the grids observed: where must any LR rule
fail, and did sqrt-LEGW (and the tuned-LR oracle) stop holding there?

Why on the findings page: the prediction is made from the base run alone (legw_repro/noise/,
B_simple along its epochs), before any large-batch run; set beside each grid's "holds up to k"
it says whether a failure is the rule's (enough steps, still worse: rule-limited) or the
budget's (too few steps for any rule: step-starved), and where the prediction misses.

- predicted k: the largest k of the grid whose batch needs no more epochs than the budget to
  make the progress "holds" asks for: the base run's, up to the epoch where its validation
  metric first comes within δ of its value at the end of the budget (the verdict's tolerance;
  the noise study's trajectory.csv), by `noise.predict.epochs_needed` over B_simple to there.
  Without the tolerance every k > 1 would be step-starved in the base's own budget: S = S_min
  (1 + B_noise / B) makes any larger batch need more epochs for the same end state;
- observed k: the study's "holds up to" of each policy (the verdict rule, docs/verdicts.md);
- reading: *agrees* when they are equal; below the predicted k, *rule-limited* when the next
  k fails (steps were enough, the rule was not) and *not settled* when it only could not be
  decided (too few seeds); *beyond the prediction* when it holds past it (the model is
  pessimistic there: B_simple is a proxy, and "holds" allows δ).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from legw_repro.noise.predict import epochs_needed, read_noise


@dataclass(frozen=True)
class Prediction:
    """One row of configs/verdicts.yaml `predictions`: a study, its base run's noise study
    (noise.csv beside trajectory.csv), the study's epoch budget, and the task's base batch, unit
    and tolerance δ (the verdict's)."""

    study: str
    noise: str
    budget: float
    base_batch: int
    unit: str
    delta: float


def reach_epoch(
    epochs: Sequence[float],
    values: Sequence[float],
    budget: float,
    unit: str,
    delta: float,
    lower_is_better: bool,
) -> float:
    """The first epoch (linear between measured ones) where the base run's validation metric is
    within δ of its value at the end of the budget (unit percent: of that value; points: the
    metric x 100, as accuracy points)."""
    pts = [(e, v) for e, v in zip(epochs, values, strict=True) if e <= budget + 1e-9]
    end = pts[-1][1]

    def loss(v: float) -> float:  # positive = worse than the end value, in the unit of δ
        d = (v - end) if lower_is_better else (end - v)
        return 100 * d / end if unit == "percent" else 100 * d

    for (e0, v0), (e1, v1) in zip(pts, pts[1:], strict=False):
        if loss(v1) <= delta:
            l0, l1 = loss(v0), loss(v1)
            return e1 if l0 == l1 else e0 + (e1 - e0) * (l0 - delta) / (l0 - l1)
    return pts[-1][0]


def truncate(
    at: Sequence[float], b_noise: Sequence[float], until: float
) -> tuple[list[float], list[float]]:
    """B_noise along the base run up to epoch `until` (the end point interpolated)."""
    xs: list[float] = []
    ys: list[float] = []
    for i, (x, y) in enumerate(zip(at, b_noise, strict=True)):
        if x < until:
            xs.append(x)
            ys.append(y)
            continue
        if x > until and i > 0:
            y = b_noise[i - 1] + (until - at[i - 1]) / (x - at[i - 1]) * (y - b_noise[i - 1])
        xs.append(until)
        ys.append(y)
        break
    return xs, ys


def predicted_k(
    b_noise: Sequence[float],
    at: Sequence[float],
    base_batch: int,
    budget: float,
    ks: Sequence[float],
) -> float | None:
    """The largest k of `ks` whose batch makes the progress of at[0]..at[-1] (B_noise along it)
    within `budget` epochs (None: not even 1)."""
    ok = [k for k in ks if epochs_needed(base_batch * k, base_batch, b_noise, at) <= budget + 1e-9]
    return max(ok) if ok else None


def _trajectory(path: Path) -> tuple[list[float], list[float], bool]:
    """The base run's validation metric by epoch, and whether lower is better (perplexity)."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    col = next(c for c in rows[0] if c.startswith("valid_"))
    return [float(r["epoch"]) for r in rows], [float(r[col]) for r in rows], "ppl" in col


def reading(predicted: float | None, observed: float | None, after: tuple[float, str]) -> str:
    """How an observed "holds up to" compares with the predicted largest k; `after`: the next k
    of the grid and its verdict (what ended the run of "holds")."""
    if predicted is None or observed is None or math.isnan(observed):
        return "—"
    if observed == predicted:
        return "agrees"
    if observed > predicted:
        return f"beyond the prediction by {observed / predicted:g}x"
    k, word = after
    if word == "fails":
        return f"rule-limited: fails at {k:g}x, steps enough to {predicted:g}x"
    return f"{word} at {k:g}x (steps enough to {predicted:g}x)"


def _k(x: float | None) -> str:
    return "none" if x is None else f"{x:g}x"


def rows(
    predictions: Sequence[Prediction],
    up_to: Mapping[str, Mapping[str, float]],
    ks: Mapping[str, Sequence[float]],
    after: Mapping[tuple[str, str], tuple[float, str]],
    policies: Sequence[str],
    root: Path,
) -> list[list[str]]:
    """One table row per (prediction, policy present in its study)."""
    out = []
    for p in predictions:
        at, bn = read_noise(root / p.noise)
        epochs, values, lower = _trajectory((root / p.noise).with_name("trajectory.csv"))
        until = reach_epoch(epochs, values, p.budget, p.unit, p.delta, lower)
        at, bn = truncate(at, bn, until)
        pred = predicted_k(bn, at, p.base_batch, p.budget, sorted(ks[p.study]))
        for policy in (q for q in policies if q in up_to[p.study]):
            seen = up_to[p.study][policy]
            why = reading(pred, seen, after.get((p.study, policy), (math.nan, "")))
            out.append([p.study, f"{p.budget:g}", _k(pred), policy, _k(seen), why])
    return out


def section(table_rows: list[list[str]]) -> str:
    """The findings page's section (Markdown)."""
    head = ["study", "budget (epochs)", "predicted: enough steps up to", "policy",
            "observed: holds up to", "reading"]  # fmt: skip
    lines = [
        "## Predicted by the gradient noise scale vs observed",
        "",
        "Before any large-batch run, the base run's gradient noise scale (B_simple along its "
        "epochs, `results/<task>/noise/`) predicts the largest k whose batch still has the "
        "steps, in the budget, for the progress the base run makes until its validation metric "
        "is within δ of its end value (`legw_repro/analysis/predicted.py`); beyond it no LR "
        'rule can hold. Set beside each policy\'s observed "holds up to" (the rule above): '
        "*agrees*; *rule-limited* (the next k fails although the steps were enough); *not "
        "settled* (the next k could not be decided: too few seeds); *beyond the prediction* "
        '(it holds where too few steps were predicted: B_simple is a proxy, and "holds" '
        "allows δ). The prediction is the base run's at the cpu scale; the 40-epoch budget "
        "reads the 10-epoch base run's curve.",
        "",
        "| " + " | ".join(head) + " |",
        "| --- | ---: | ---: | --- | ---: | --- |",
        *("| " + " | ".join(r) + " |" for r in table_rows),
    ]
    return "\n".join(lines)
