"""make check-results: every committed table and figure is what today's code makes of the
committed records, byte for byte (legw_repro/analysis/regenerate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from legw_repro.analysis import regenerate


@pytest.mark.slow
def test_every_committed_table_and_figure_regenerates_byte_for_byte() -> None:
    assert regenerate.main([]) == 0


def test_a_changed_or_uncommitted_file_is_reported(tmp_path: Path, monkeypatch) -> None:
    committed = tmp_path / "committed"
    (committed / "t" / "s").mkdir(parents=True)
    (committed / "t" / "s" / "same.md").write_text("a\n")
    (committed / "t" / "s" / "report.md").write_text("--out results/t/s\n")
    (committed / "t" / "s" / "old.svg").write_text("<svg/>\n")
    monkeypatch.setattr(regenerate, "RESULTS", committed)
    scratch = tmp_path / "scratch" / "results"
    (scratch / "t" / "s" / "records").mkdir(parents=True)
    (scratch / "t" / "s" / "same.md").write_text("a\n")
    # a report names where it was written: the scratch root reads as results/
    (scratch / "t" / "s" / "report.md").write_text(f"--out {scratch}/t/s\n")
    (scratch / "t" / "s" / "old.svg").write_text("<svg width='2'/>\n")
    (scratch / "t" / "s" / "new.csv").write_text("x\n")
    (scratch / "t" / "s" / "records" / "summary.json").write_text("{}")  # records: not compared
    assert regenerate.differences(scratch) == [
        "results/t/s/new.csv is not committed",
        "results/t/s/old.svg differs",
    ]


def test_every_committed_grid_has_a_generator() -> None:
    grids = {(t, s) for t, s in regenerate.GRIDS}
    results = regenerate.RESULTS
    for report in results.glob("*/*/report.md"):
        task, study = report.parent.relative_to(results).parts
        scale = study.split("-")[0]
        assert (task, scale) in grids, f"{report} is made by no job of regenerate.GRIDS"
