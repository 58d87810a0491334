"""The tuned-LR oracle's search logic: validation only, widening at the edges, divergence."""

from __future__ import annotations

from legw_repro.sweep.oracle import (
    DEFAULT_EXPONENTS,
    MAX_WIDEN,
    Trial,
    best,
    multiplier,
    next_exponent,
    trials_from_summaries,
)


def summary(batch, mult, valid, test, status="completed"):
    return {
        "batch_size": batch,
        "lr_multiplier": mult,
        "status": status,
        "final": {"valid_acc": valid, "test_acc": test},
    }


def test_selection_reads_validation_never_test():
    # test and validation disagree: x0.5 is best on test, x2 on validation
    runs = [
        summary(1024, 0.25, 0.90, 0.90),
        summary(1024, 0.5, 0.95, 0.99),
        summary(1024, 1.0, 0.96, 0.95),
        summary(1024, 2.0, 0.97, 0.94),
        summary(1024, 4.0, 0.93, 0.93),
        summary(2048, 16.0, 0.99, 0.99),  # another batch size: ignored
    ]
    trials = trials_from_summaries(runs, "acc", 1024)
    assert len(trials) == 5
    assert best(trials, higher_is_better=True).exponent == 1
    assert next_exponent(trials, higher_is_better=True) is None  # interior: search over


def test_lower_is_better_metric():
    trials = [
        Trial(e, "completed", v)
        for e, v in zip(DEFAULT_EXPONENTS, [130, 120, 110, 115, 140], strict=True)
    ]
    assert best(trials, higher_is_better=False).exponent == 0


def test_grid_first_then_widen_at_the_edge():
    assert next_exponent([], True) == DEFAULT_EXPONENTS[0]
    trials = [Trial(e, "completed", 0.5 + 0.1 * e) for e in DEFAULT_EXPONENTS]  # best at +2
    assert next_exponent(trials, True) == 3
    trials.append(Trial(3, "completed", 0.9))  # still improving
    assert next_exponent(trials, True) == 4
    trials.append(Trial(4, "completed", 0.95))  # the cap: at most MAX_WIDEN past the grid
    assert max(DEFAULT_EXPONENTS) + MAX_WIDEN == 4
    assert next_exponent(trials, True) is None
    low = [Trial(e, "completed", 0.5 - 0.1 * e) for e in DEFAULT_EXPONENTS]  # best at -2
    assert next_exponent(low, True) == -3


def test_diverged_runs_rank_last_and_all_diverged_tries_smaller():
    trials = [
        Trial(e, "diverged" if e > 0 else "completed", 0.99 if e > 0 else 0.5)
        for e in DEFAULT_EXPONENTS
    ]
    assert best(trials, True).exponent == -2  # ties at 0.5: the smaller LR
    gone = [Trial(e, "diverged", None) for e in DEFAULT_EXPONENTS]
    assert best(gone, True) is None
    assert next_exponent(gone, True) == -3


def test_waits_for_unfinished_trials():
    trials = [Trial(e, "completed", 0.9) for e in DEFAULT_EXPONENTS[:-1]]
    trials.append(Trial(2, "running", None))
    assert next_exponent(trials, True) is None


def test_multiplier():
    assert [multiplier(e) for e in DEFAULT_EXPONENTS] == [0.25, 0.5, 1.0, 2.0, 4.0]
