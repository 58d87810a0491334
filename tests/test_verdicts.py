"""The verdict rule (legw_repro/analysis/verdicts.py) on hand-made seeds, and results/FINDINGS.md
and the README's summary block in step with what the generator makes of the committed records."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from legw_repro.analysis import findings
from legw_repro.analysis.verdicts import (
    Point,
    Verdict,
    decide_beats,
    decide_holds,
    decide_matches,
    holds_up_to,
    welch,
)


def pt(*values: float | None) -> Point:
    return Point(dict(enumerate(values)))


BASE = pt(0.0, 0.1, -0.1)


def test_holds_when_the_upper_bound_is_below_delta():
    v = decide_holds(pt(0.2, 0.3, 0.1), BASE, delta=1.0)
    assert v.word == "holds" and v.estimate.method == "Welch t"
    assert v.estimate.hi < 1.0 and v.estimate.effect == pytest.approx(0.2)


def test_fails_when_the_lower_bound_is_above_delta():
    v = decide_holds(pt(5.0, 5.1, 4.9), BASE, delta=1.0)
    assert v.word == "fails" and v.estimate.lo > 1.0


def test_not_settled_when_the_interval_straddles_delta():
    v = decide_holds(pt(1.0, 3.0, -1.0), pt(0.0, 2.0, -2.0), delta=1.0)
    assert v.word == "not settled" and v.note == "3 vs 3 seeds" and not v.settled


def test_a_diverged_seed_fails_the_point_and_is_counted():
    v = decide_holds(pt(0.0, None, 0.1), BASE, delta=1.0)
    assert v.word == "fails" and v.note == "diverged 1/3"
    assert decide_holds(pt(None), BASE, 1.0).estimate is None


def test_one_seed_each_never_settles_by_spread():
    v = decide_holds(pt(50.0), pt(0.0), delta=1.0)
    assert v.word == "not settled" and math.isnan(v.estimate.lo)
    assert v.estimate.method == "1 seed each: no interval"


def test_pooled_sigma_takes_the_other_sides_variance():
    e = welch([0.1, 0.2, 0.3], [0.0])
    se = math.sqrt(0.01 * (1 / 3 + 1))
    q = stats.t.ppf(0.95, 2)
    assert e.method == "Welch t, pooled σ" and e.n == "3 vs 1"
    assert (e.lo, e.hi) == pytest.approx((0.2 - q * se, 0.2 + q * se))


def test_welch_bounds_are_scipys_90_percent_interval():
    a, b = [1.0, 1.4, 0.7, 1.1], [0.2, 0.9, 0.4]
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    e = welch(a, b)
    assert (e.lo, e.hi) == pytest.approx((ci.low, ci.high))


def test_pairing_by_seed_removes_the_seed_noise():
    a, b = pt(1.0, 2.0, 3.0), pt(1.5, 2.4, 3.6)  # a better by 0.4-0.6 at every seed
    v = decide_beats(a, b, ("sqrt_legw", "linear"))
    assert v.word == "beats" and v.estimate.method == "paired t" and v.estimate.n == "3 pairs"
    assert welch([1.0, 2.0, 3.0], [1.5, 2.4, 3.6]).hi > 0  # unpaired, it would not settle
    assert decide_beats(b, a).word == "loses"


def test_too_few_common_seeds_fall_back_to_welch():
    v = decide_beats(Point({0: 1.0, 1: 1.1, 2: 0.9}), Point({0: 3.0}))
    assert v.estimate.method == "Welch t, pooled σ" and v.word == "beats"


def test_divergence_decides_beats_and_both_diverged():
    v = decide_beats(pt(1.0, 2.0), pt(None, None), ("sqrt_legw", "linear"))
    assert v.word == "beats" and v.note == "linear diverged 2/2" and v.estimate is None
    assert decide_beats(pt(None), pt(None)).word == "both diverged"
    assert decide_beats(pt(None, 1.0), pt(1.0, None)).word == "not settled"
    # one linear seed diverged, but the completed pairs favour linear: not settled
    assert decide_beats(pt(5.0, 5.1, 5.2), pt(None, 1.0, 1.1)).word == "not settled"


def test_matches_is_an_equivalence_test():
    a, b = pt(1.0, 2.0, 3.0), pt(1.1, 2.05, 3.1)
    assert decide_matches(a, b, delta=0.5).word == "matches"
    far = decide_matches(pt(5.0, 6.0, 7.0), b, delta=0.5, names=("sqrt_legw", "adam"))
    assert far.word == "differs" and far.direction == "adam better"
    assert far.label == "differs (adam better)"
    wide = decide_matches(pt(1.0, 3.0, 2.0), pt(2.0, 1.0, 3.0), delta=0.5)
    assert wide.word == "not settled"
    div = decide_matches(pt(None, 1.0), pt(1.0, 1.0), 0.5, ("sqrt_legw", "adam"))
    assert div.word == "differs" and div.note == "sqrt_legw diverged 1/2"


def test_holds_up_to_stops_at_the_first_k_that_does_not_hold():
    v = {2.0: Verdict("holds"), 4.0: Verdict("holds"), 8.0: Verdict("not settled")}
    assert holds_up_to({**v, 16.0: Verdict("holds")}) == 4.0
    assert holds_up_to({2.0: Verdict("fails")}) == 1.0


def test_runs_of_words_groups_consecutive_k():
    pairs = [(2.0, Verdict("holds")), (4.0, Verdict("holds")), (8.0, Verdict("fails"))]
    assert findings.runs_of_words(pairs) == "holds 2-4x · fails 8x"


def test_readme_without_markers_is_refused():
    with pytest.raises(ValueError, match="findings:start"):
        findings.with_block("# no markers\n", "x")


def test_findings_and_readme_match_the_committed_records():
    page, block = findings.generate(findings.load_rule())
    assert findings.FINDINGS.read_text() == page, "run `python -m legw_repro.analysis.findings`"
    readme = findings.README.read_text()
    assert findings.with_block(readme, block) == readme, (
        "README's findings block is stale: run `python -m legw_repro.analysis.findings`"
    )
    assert findings.main(["--check"]) == 0
