"""A NaN/inf loss stops the run at that very step; the record names the step and the last
finite loss, and the run ends as "diverged" (a sweep goes on) rather than raising."""

from __future__ import annotations

import math

import pytest

from legw_repro.loop.nonfinite import NonFinite
from legw_repro.run.lifecycle import run
from tests.faults import nan_at
from tests.helpers import make_cfg, read_rows, summary
from tests.test_train import SMALL


def test_the_reason_names_the_step_and_the_last_finite_loss():
    bad = NonFinite(step=3, loss=math.nan, last_finite_step=2, last_finite_loss=2.5)
    assert bad.reason() == "loss is nan at step 3 (last finite loss 2.5 at step 2)"
    first = NonFinite(step=1, loss=-math.inf, last_finite_step=0, last_finite_loss=None)
    assert first.reason() == "loss is -inf at step 1 (no finite loss before it)"


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
