"""The noise scale's predicted boundary beside the observed "holds up to"
(legw_repro/analysis/predicted.py), on hand-made cases."""

from __future__ import annotations

import math

import pytest

from legw_repro.analysis.predicted import predicted_k, reach_epoch, reading, truncate
from legw_repro.noise.predict import epochs_needed


def test_reach_epoch_is_where_the_base_comes_within_delta_of_its_end_value():
    # accuracy points: ends at 0.99; within 0.5 pt (>= 0.985) between epochs 2 (0.98) and 3 (0.99)
    epochs, acc = [0, 1, 2, 3, 4], [0.1, 0.9, 0.98, 0.99, 0.99]
    assert reach_epoch(epochs, acc, 4, "points", 0.5, False) == pytest.approx(2.5)
    # perplexity in percent of the end value: 100 at the end, within 2 % (<= 102) at epoch 2
    ppl = [1000, 150, 102, 101, 100]
    assert reach_epoch(epochs, ppl, 4, "percent", 2.0, True) == pytest.approx(2.0)
    # the budget cuts the curve: the end value is the budget's (102), 2 % of it reached between
    # epoch 1 (150: 47.1 % worse) and epoch 2 (0 %)
    worse = 100 * 48 / 102
    assert reach_epoch(epochs, ppl, 2, "percent", 2.0, True) == pytest.approx(
        1 + (worse - 2) / worse
    )


def test_truncate_interpolates_the_end_point():
    assert truncate([0, 1, 2], [10.0, 20.0, 40.0], 1.5) == ([0, 1, 1.5], [10.0, 20.0, 30.0])
    assert truncate([0, 1, 2], [10.0, 20.0, 40.0], 2) == ([0, 1, 2], [10.0, 20.0, 40.0])


def test_predicted_k_is_the_largest_batch_with_enough_epochs():
    at, bn = [0, 1], [100.0, 100.0]  # one epoch of the base's progress, B_noise 100, b0 10
    need = {k: epochs_needed(10 * k, 10, bn, at) for k in (1, 2, 4, 8)}
    assert need[1] == pytest.approx(1.0) and need[8] == pytest.approx(180 / 110)
    assert predicted_k(bn, at, 10, 1.3, [1, 2, 4, 8]) == 4  # 4x needs 140/110 = 1.27; 8x 1.64
    assert predicted_k(bn, at, 10, 1.0, [1, 2, 4, 8]) == 1
    assert predicted_k(bn, at, 10, 0.5, [1, 2]) is None


def test_reading_names_the_miss():
    assert reading(8, 8, (16, "fails")) == "agrees"
    assert reading(8, 4, (8, "fails")) == "rule-limited: fails at 8x, steps enough to 8x"
    assert reading(8, 1, (2, "not settled")) == "not settled at 2x (steps enough to 8x)"
    assert reading(2, 8, (16, "fails")) == "beyond the prediction by 4x"
    assert reading(None, 4, (8, "fails")) == reading(4, math.nan, (2, "")) == "—"
