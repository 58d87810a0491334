"""The sweep's price (legw_repro/sweep/cost.py): steps and seconds per run from two calibration
samples, and the wall time of runs side by side."""

from __future__ import annotations

import pytest

from legw_repro.sweep.cost import Sample, human, makespan, run_seconds, run_steps, step_seconds

# MNIST-like: 55k images; 0.02 s per step at 128, 1.4 s at 8192 (about 6k images/s)
SAMPLES = [Sample(128, 429, 0.02, 10.0), Sample(8192, 6, 1.4, 12.0)]


def test_a_step_costs_a_line_through_the_samples_in_the_batch():
    assert step_seconds(SAMPLES, 128) == pytest.approx(0.02)
    assert step_seconds(SAMPLES, 8192) == pytest.approx(1.4)
    assert step_seconds(SAMPLES, 4160) == pytest.approx(0.71)  # half way
    assert step_seconds(SAMPLES, 1) == pytest.approx(0.02)  # never below the fastest sample
    assert step_seconds(SAMPLES[:1], 256) == pytest.approx(0.04)  # one sample: per item


def test_steps_keep_the_items_of_an_epoch_at_every_batch():
    assert run_steps(SAMPLES, 128, 10) == 4290
    assert run_steps(SAMPLES, 8192, 10) == 60  # 54912 // 8192 = 6 steps per epoch
    assert run_steps(SAMPLES, 8192, 40) == 240
    assert run_seconds(SAMPLES, 8192, 10) == pytest.approx(60 * 1.4)


def test_runs_side_by_side_go_longest_first_to_the_first_free_worker():
    assert makespan([5, 4, 3, 3, 3], 2) == 10  # 5+3 / 4+3+3
    assert makespan([5, 4, 3, 3, 3], 1) == 18
    assert makespan([1.0], 4, startup_s=30.0) == 31.0
    assert [human(s) for s in (45, 720, 5400 * 2)] == ["45s", "12 min", "3.0 h"]
