"""Each of the paper's claims decided at one batch multiple k, by a rule fixed before the
records are read (configs/verdicts.yaml; why each number: docs/verdicts.md).

Why code and not prose: a sentence such as "LEGW keeps accuracy up to 8x" hides how many
seeds it rests on and how far the seeds scatter. Here every verdict comes from one confidence
bound against one tolerance, names its method, and says "not settled" when the seeds cannot
decide -- so adding seeds can only move a cell, never its rule.

Conventions. A :class:`Point` holds one grid point's per-seed values already in the verdict's
unit and oriented so that **larger is worse** (a loss): perplexity in percent of a reference,
accuracy or BLEU in points with the sign flipped. ``None`` marks a seed that diverged (or ended
non-finite): it is a failure, never dropped. Every bound is one-sided at ``level`` (0.95); an
interval shown is the pair of them, i.e. a two-sided interval at 2 * level - 1 (90 %).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  # one-sided confidence of every bound (configs/verdicts.yaml: confidence)


@dataclass(frozen=True)
class Point:
    """One grid point: ``values[seed]`` is the seed's loss-oriented value, ``None`` where the
    run diverged. Runs that crashed or still run are not here (they say nothing about the
    method); the caller reports them."""

    values: Mapping[int, float | None]

    @property
    def finite(self) -> dict[int, float]:
        return {s: float(v) for s, v in self.values.items() if v is not None and math.isfinite(v)}

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def n_diverged(self) -> int:
        return self.n - len(self.finite)


@dataclass(frozen=True)
class Estimate:
    """``effect`` = mean(a) - mean(b) (positive: a worse), its one-sided ``level`` bounds
    ``lo`` <= effect <= ``hi`` (NaN when the seeds give no variance), the seed count as
    ``n`` ("3 vs 3", "3 pairs") and the ``method`` that made the bounds."""

    effect: float
    lo: float
    hi: float
    n: str
    method: str

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)


@dataclass(frozen=True)
class Verdict:
    """One claim at one k: ``word`` (holds, fails, beats, loses, matches, differs, not settled,
    both diverged, no base), the ``estimate`` behind it (None when divergence alone decided)
    a ``note`` (``diverged 2/3``, ``3 vs 3 seeds``...) and, for a difference, which side is
    better (``direction``: "sqrt_legw better")."""

    word: str
    estimate: Estimate | None = None
    note: str = ""
    direction: str = ""

    @property
    def label(self) -> str:
        """The word with its direction: how a summary groups verdicts."""
        return f"{self.word} ({self.direction})" if self.direction else self.word

    @property
    def settled(self) -> bool:
        return self.word not in ("not settled", "no base", "no data")


def _bounds(diff: float, se: float, df: float, level: float) -> tuple[float, float]:
    """One-sided ``level`` t bounds of ``diff``; with zero spread the bounds are the value."""
    if se == 0.0:
        return diff, diff
    q = float(stats.t.ppf(level, df))
    return diff - q * se, diff + q * se


def welch(a: list[float], b: list[float], level: float = LEVEL) -> Estimate:
    """Welch's t bounds of mean(a) - mean(b) for unpaired seeds (different batch sizes do not
    share a data order). When one side has a single seed its variance is unknown: the other
    side's (n >= 2) stands for both ("pooled σ", df of that side). One seed on each side:
    no bounds (NaN), so the verdict cannot be settled by spread."""
    na, nb = len(a), len(b)
    diff = float(np.mean(a) - np.mean(b))
    n = f"{na} vs {nb}"
    if na < 2 and nb < 2:
        return Estimate(diff, math.nan, math.nan, n, "1 seed each: no interval")
    if na < 2 or nb < 2:
        var = float(np.var(a if na >= 2 else b, ddof=1))
        df = max(na, nb) - 1
        se = math.sqrt(var * (1 / na + 1 / nb))
        lo, hi = _bounds(diff, se, df, level)
        return Estimate(diff, lo, hi, n, "Welch t, pooled σ")
    va, vb = float(np.var(a, ddof=1)) / na, float(np.var(b, ddof=1)) / nb
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se > 0 else math.inf
    lo, hi = _bounds(diff, se, df, level)
    return Estimate(diff, lo, hi, n, "Welch t")


def paired(a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL) -> Estimate:
    """Paired t bounds of mean(a_s - b_s) over the seeds both have (same seed and batch: the
    same initialisation and data order, so the pair removes their share of the noise)."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    if len(d) < 2:
        raise ValueError(f"a paired estimate needs two common seeds, got {seeds}")
    se = float(np.std(d, ddof=1)) / math.sqrt(len(d))
    lo, hi = _bounds(float(d.mean()), se, len(d) - 1, level)
    return Estimate(float(d.mean()), lo, hi, f"{len(d)} pairs", "paired t")


def compare(a: Point, b: Point, pair: bool, level: float = LEVEL) -> Estimate:
    """a - b over the finite seeds: paired by seed when ``pair`` and two or more seeds are
    common to both, else Welch (the method is named in the estimate)."""
    fa, fb = a.finite, b.finite
    if pair and len(set(fa) & set(fb)) >= 2:
        return paired(fa, fb, level)
    return welch(list(fa.values()), list(fb.values()), level)


def _not_settled(est: Estimate) -> Verdict:
    return Verdict("not settled", est, est.n if "pairs" in est.n else f"{est.n} seeds")


def decide_holds(k: Point, base: Point, delta: float, level: float = LEVEL) -> Verdict:
    """'Keeps accuracy at k': the loss Δ = k - base (Welch: different batches) is below the
    tolerance ``delta`` with ``level`` confidence (upper bound < δ) -> holds; above it (lower
    bound > δ) -> fails; else not settled. A diverged seed at k fails the point outright."""
    if not base.finite:
        return Verdict("no base", note="no completed run at the base batch")
    if k.n == 0:
        return Verdict("no data")
    if k.n_diverged:
        est = compare(k, base, pair=False, level=level) if k.finite else None
        return Verdict("fails", est, f"diverged {k.n_diverged}/{k.n}")
    est = compare(k, base, pair=False, level=level)
    if est.bounded and est.hi < delta:
        return Verdict("holds", est)
    if est.bounded and est.lo > delta:
        return Verdict("fails", est)
    return _not_settled(est)


def _divergence_split(a: Point, b: Point) -> tuple[int, int]:
    """How many seeds diverged under a but not b, and under b but not a (by count when the
    seeds differ: a divergence is the worst outcome a seed can have)."""
    common = set(a.values) & set(b.values)
    if common == set(a.values) == set(b.values):
        only_a = sum(1 for s in common if s not in a.finite and s in b.finite)
        only_b = sum(1 for s in common if s not in b.finite and s in a.finite)
        return only_a, only_b
    return max(a.n_diverged - b.n_diverged, 0), max(b.n_diverged - a.n_diverged, 0)


def _paired_start(
    a: Point, b: Point, level: float
) -> tuple[Verdict | None, int, int, Estimate | None]:
    """What 'beats' and 'matches' share: no data or both diverged decide at once; else the
    divergences one side has alone and the paired estimate of a - b (None if either side has
    a non-finite seed)."""
    if a.n == 0 or b.n == 0:
        return Verdict("no data"), 0, 0, None
    if not a.finite and not b.finite:
        note = f"{a.n_diverged}/{a.n} and {b.n_diverged}/{b.n}"
        return Verdict("both diverged", note=note), 0, 0, None
    only_a, only_b = _divergence_split(a, b)
    est = compare(a, b, pair=True, level=level) if a.finite and b.finite else None
    return None, only_a, only_b, est


def decide_beats(
    a: Point, b: Point, names: tuple[str, str] = ("a", "b"), level: float = LEVEL
) -> Verdict:
    """'a beats b at k' (same k): paired by seed, a better by more than 0 with ``level``
    confidence (upper bound of a - b < 0) -> beats; b better (lower bound > 0) -> loses.
    Divergence decides first: b diverged where a did not, and the completed seeds do not
    favour b -> beats (and symmetrically); divergences both ways -> not settled."""
    early, only_a, only_b, est = _paired_start(a, b, level)
    if early is not None:
        return early
    if only_a and only_b:
        return Verdict("not settled", est, "each diverged where the other did not")
    if only_b and (est is None or est.effect <= 0):
        return Verdict("beats", est, f"{names[1]} diverged {b.n_diverged}/{b.n}")
    if only_a and (est is None or est.effect >= 0):
        return Verdict("loses", est, f"{names[0]} diverged {a.n_diverged}/{a.n}")
    if est is None or only_a or only_b:
        return Verdict("not settled", est, "diverged runs pull against the completed ones")
    if est.bounded and est.hi < 0:
        return Verdict("beats", est)
    if est.bounded and est.lo > 0:
        return Verdict("loses", est)
    return _not_settled(est)


def decide_matches(
    a: Point, b: Point, delta: float, names: tuple[str, str] = ("a", "b"), level: float = LEVEL
) -> Verdict:
    """'a matches b at k': equivalence by two one-sided tests at ``level`` -- both bounds of
    a - b (paired by seed) inside (-δ, δ) -> matches; the interval wholly outside ±δ ->
    differs; else not settled. One side diverging where the other completed -> differs."""
    early, only_a, only_b, est = _paired_start(a, b, level)
    if early is not None:
        return early
    if only_a or only_b:
        who = [
            f"{x} diverged {p.n_diverged}/{p.n}"
            for x, p in zip(names, (a, b), strict=True)
            if p.n_diverged
        ]
        better = names[1] if only_a else names[0]
        return Verdict("differs", est, ", ".join(who), f"{better} better")
    assert est is not None  # both have finite seeds here
    if est.bounded and -delta < est.lo and est.hi < delta:
        return Verdict("matches", est)
    if est.bounded and (est.lo > delta or est.hi < -delta):
        return Verdict(
            "differs", est, direction=f"{names[0] if est.effect < 0 else names[1]} better"
        )
    return _not_settled(est)


def holds_up_to(verdicts: Mapping[float, Verdict]) -> float:
    """The largest k such that the claim holds at every k' <= k (k=1, the base, always does)."""
    best = 1.0
    for k in sorted(verdicts):
        if k <= 1:
            continue
        if verdicts[k].word != "holds":
            break
        best = k
    return best
