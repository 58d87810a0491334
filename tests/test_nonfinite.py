"""A NaN/inf loss stops the run at that very step; the record names the step and the last
finite loss, and the run ends as "diverged" (a sweep goes on) rather than raising."""

from __future__ import annotations

import json
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
    assert rows[6]["loss"] is None  # the nan loss, as null: the file is strict JSON
    _strict_json_lines(tmp_path / "metrics.jsonl")


def _strict_json_lines(path) -> list:
    """The lines of `path`, parsed refusing bare NaN/Infinity (what jq and strict parsers do)."""

    def refuse(name):
        raise ValueError(f"{path}: {name} is not JSON")

    return [json.loads(x, parse_constant=refuse) for x in path.read_text().splitlines()]


def test_nonfinite_values_are_written_as_null_and_old_records_still_read(tmp_path):
    """A diverged run's metrics.jsonl held bare Infinity/NaN, which is not JSON (jq read it as
    1.797e308): the writer writes null; the reader reads both that and an old record."""
    from legw_repro.analysis.history import load_metrics
    from legw_repro.run.records import RunRecord

    rec = RunRecord(tmp_path / "new", make_cfg(*SMALL))
    rec.open_metrics()
    rec.log({"kind": "train", "step": 1, "loss": 2.5, "lr": 0.1})
    rec.log({"kind": "train", "step": 2, "loss": math.inf, "lr": 0.1, "x": [math.nan]})
    rec.log({"kind": "eval", "step": 2, "split": "valid", "ppl": -math.inf, "loss": math.nan})
    rec.close()
    rows = _strict_json_lines(tmp_path / "new" / "metrics.jsonl")
    assert rows[1]["loss"] is None and rows[1]["x"] == [None] and rows[2]["ppl"] is None
    new = load_metrics(tmp_path / "new")
    assert new["loss"].iloc[0] == 2.5 and math.isnan(new["loss"].iloc[1])
    old = tmp_path / "old"
    old.mkdir()
    (old / "metrics.jsonl").write_text(
        '{"kind": "train", "step": 1, "loss": 2.5}\n{"kind": "train", "step": 2, "loss": Infinity}\n'
        '{"kind": "eval", "step": 2, "split": "valid", "ppl": NaN, "loss": NaN}\n'
    )
    frame = load_metrics(old)
    assert (
        len(frame) == 3 and math.isinf(frame["loss"].iloc[1]) and math.isnan(frame["ppl"].iloc[2])
    )
