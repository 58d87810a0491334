"""A NaN/inf loss stops the run at that very step; the record names the step and the last
finite loss, and the run ends as "diverged" (a sweep goes on) rather than raising."""

from __future__ import annotations

import math

import pytest
import torch

from legw_repro.nonfinite import NonFiniteWatch
from legw_repro.train import run
from tests.faults import nan_at
from tests.helpers import make_cfg, read_rows, summary
from tests.test_train import SMALL


def test_watch_keeps_the_first_bad_step_and_the_last_finite_loss():
    w = NonFiniteWatch()
    for step, loss in enumerate([3.0, 2.5, math.nan, 1.0, math.inf], start=1):
        w.observe(torch.tensor(loss), step)
    bad = w.poll()  # polled once, after five steps: still the first bad one
    assert (bad.step, bad.last_finite_step, bad.last_finite_loss) == (3, 2, 2.5)
    assert math.isnan(bad.loss) and "at step 3 (last finite loss 2.5 at step 2)" in bad.reason()


def test_watch_clean_and_bad_from_the_start():
    w = NonFiniteWatch()
    w.observe(torch.tensor(1.0), 1)
    assert w.poll() is None
    w = NonFiniteWatch()
    w.observe(torch.tensor(-math.inf), 1)
    bad = w.poll()
    assert bad.step == 1 and bad.last_finite_loss is None and bad.loss == -math.inf


@pytest.mark.slow
def test_nan_loss_stops_the_run_at_that_step(tmp_path, shared_data_dir, monkeypatch):
    nan_at(monkeypatch, 7)
    s = run(make_cfg(*SMALL, f"data_dir={shared_data_dir}"), tmp_path)
    assert s["status"] == "diverged" and s["steps_done"] == 7
    rows = read_rows(tmp_path, "train")
    assert [r["step"] for r in rows] == list(range(1, 8))  # not a 20-step window later
    assert s["nonfinite_step"] == 7 and s["last_finite_loss"] == rows[5]["loss"]
    assert "loss is nan at step 7" in s["reason"]
    assert summary(tmp_path)["nonfinite_step"] == 7
