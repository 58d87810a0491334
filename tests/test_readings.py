"""The numbers quoted in the study readings come from the studies' tables and records."""

from __future__ import annotations

import json
from pathlib import Path

from legw_repro.analysis import readings
from legw_repro.analysis.readings import is_supported, quoted_numbers, reading_text, unsupported


def test_every_number_in_a_committed_reading_is_in_its_evidence() -> None:
    bad = [u for r in readings.study_readmes() for u in readings.unsupported(r)]
    assert not bad, "\n".join(f"{u.readme}: {u.number} ({u.line})" for u in bad)


def test_reading_text_is_the_reading_only() -> None:
    readme = (
        "# Study\n\n**Grid.** batch 20.5 and 1,280\n\n**Reading.** loss 3.25 (`lr=0.7`)\n\n"
        "**Cost.** 12.5 minutes\n\n## Reading\n\nppl 271.5, see [x](../a/1.5.md)\n\n"
        "```sh\nmake 9.75\n```\n## Left\n\n4.5 to do\n"
    )
    assert sorted(quoted_numbers(reading_text(readme))) == ["271.5", "3.25"]


def test_quoted_numbers_are_decimals_separated_thousands_and_percents() -> None:
    text = "batch 1280 at 8x, seed 2: 98.12% (+56 %), 10,587 and 0.4; v2.1.3 and 3e-4 are not"
    assert quoted_numbers(text) == ["98.12", "56", "10,587", "0.4"]


def test_a_number_is_supported_at_its_own_rounding_and_as_a_percent_of_a_fraction() -> None:
    values = sorted([98.1234, 0.88688, 10587.3, 0.4])
    assert is_supported("98.12", values)
    assert is_supported("98.1", values)
    assert not is_supported("98.13", values)
    assert is_supported("88.7", values)  # accuracy 0.88688 quoted as a percentage
    assert not is_supported("87", values)  # the audit's "87%" for a run at 88.69 %
    assert is_supported("10,587", values)
    assert is_supported("0.40", values)


def _study(root: Path, name: str, reading: str, table: str, summary: dict | None = None) -> Path:
    folder = root / name
    (folder / "records" / "run").mkdir(parents=True)
    (folder / "README.md").write_text(f"# {name}\n\n**Reading.** {reading}\n")
    (folder / "report.md").write_text(table)
    if summary is not None:
        (folder / "records" / "run" / "summary.json").write_text(json.dumps(summary))
    return folder / "README.md"


def test_a_number_missing_from_the_tables_and_records_is_reported(tmp_path: Path) -> None:
    readme = _study(
        tmp_path,
        "ptb",
        "sqrt-LEGW reaches 144.6 at 1x and 271.5 at 8x; Adam 752.6.",
        "| 1 | 144.61 |\n",
        {"final_test_ppl": 271.53},
    )
    bad = unsupported(readme, tmp_path)
    assert [u.number for u in bad] == ["752.6"]
    assert "Adam 752.6" in bad[0].line
    assert readings.main(["--root", str(tmp_path)]) == 1


def test_a_linked_study_is_evidence_and_an_unlinked_one_is_not(tmp_path: Path) -> None:
    _study(tmp_path, "base", "nothing", "| 1 | 98.09 |\n")
    linked = _study(tmp_path, "long", "as [base](../base/README.md): 98.09", "")
    unlinked = _study(tmp_path, "other", "as base: 98.09", "")
    assert unsupported(linked, tmp_path) == []
    assert [u.number for u in unsupported(unlinked, tmp_path)] == ["98.09"]
