"""Every number a study's reading quotes must come from the study's data.

Why: a reading is prose written by a person from generated tables, and prose drifts (an audit of
the readings found values that differ from the records, and numbers with no record behind them).
This check makes the drift a test failure. The rule, stated before any reading is checked:

- a *reading* is the text under a ``## Reading`` heading (to the next ``## ``) or after a
  ``**Reading.**`` lead-in (to the next bold lead-in or heading) of ``results/**/README.md``;
  code, inline code and link targets are left out;
- a *quoted number* is one with a decimal point (``98.12``, ``0.82``), a thousands separator
  (``10,587``) or a percent sign (``87%``, ``+56 %``); other integers are counts, batch sizes,
  seeds or epochs, which the grid states;
- it is *supported* when some value of the evidence, rounded to the quoted number's decimals,
  equals it (sign ignored: "a loss of 0.4" and "-0.4" quote the same difference), or when the
  value is a fraction that does so as a percentage (accuracy 0.8869 supports "88.7%");
- the *evidence* of a study is every generated file in its folder (tables, csv, reports), its
  records (summary.json, metrics.jsonl), the findings page, and the same of every study folder
  its README links to.

``python -m legw_repro.analysis.readings`` lists the unsupported numbers (exit 1 if any).
"""

from __future__ import annotations

import argparse
import bisect
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"
FINDINGS_NAME = "FINDINGS.md"

#: generated files whose numbers count as evidence (README.md is the prose being checked)
EVIDENCE_SUFFIXES = (".md", ".csv", ".txt", ".json", ".jsonl")

_SECTION = re.compile(r"^## Reading[^\n]*\n(.*?)(?=^## |\Z)", re.S | re.M)
_LEAD_IN = re.compile(r"\*\*Reading\.\*\*(.*?)(?=\n\*\*[A-Z][^*\n]*\.\*\*|\n## |\Z)", re.S)
_QUOTED = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?= ?%))(?![\w]|\.\d)")
_VALUE = re.compile(r"\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")


@dataclass(frozen=True)
class Unsupported:
    """A quoted number with no value in the study's evidence."""

    readme: Path
    number: str
    line: str


def reading_text(readme: str) -> str:
    """The reading sections of a study README, without code and link targets."""
    parts = [m.group(1) for m in _SECTION.finditer(readme)]
    parts += [m.group(1) for m in _LEAD_IN.finditer(readme)]
    text = "\n".join(parts)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def quoted_numbers(text: str) -> list[str]:
    """The numbers of a reading that state a measurement (see the module docstring)."""
    return _QUOTED.findall(text)


def _decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def values_in(text: str) -> list[float]:
    """Every number written in a file's text, as absolute values (signs are not compared)."""
    out = []
    for m in _VALUE.finditer(text):
        try:
            out.append(abs(float(m.group(0).replace(",", ""))))
        except ValueError:  # a run of digits and commas that is not a number ("1,,2")
            continue
    return out


def is_supported(token: str, values: Sequence[float]) -> bool:
    """Whether a sorted list of evidence values holds the quoted number at its rounding."""
    target = float(token.replace(",", ""))
    digits = _decimals(token)
    half = 0.5 * 10.0**-digits
    for scale in (1.0, 100.0):
        lo = bisect.bisect_left(values, (target - half) / scale - 1e-12)
        hi = bisect.bisect_right(values, (target + half) / scale + 1e-12)
        if any(round(v * scale, digits) == target for v in values[lo:hi]):
            return True
    return False


def _evidence_files(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in EVIDENCE_SUFFIXES and path.name != "README.md":
            yield path


def linked_studies(readme: Path, root: Path) -> list[Path]:
    """The study folders under root that a README links to (relative links only)."""
    out = []
    for target in _LINK.findall(readme.read_text()):
        if "://" in target:
            continue
        path = (readme.parent / target).resolve()
        folder = path if path.is_dir() else path.parent
        if folder.is_dir() and folder.is_relative_to(root.resolve()):
            out.append(folder)
    return out


def evidence(readme: Path, root: Path) -> list[float]:
    """The sorted values a study's reading may quote (module docstring: the evidence)."""
    folders = {readme.parent.resolve(), *linked_studies(readme, root)}
    files = {p for folder in folders for p in _evidence_files(folder)}
    findings = root / FINDINGS_NAME
    if findings.is_file():
        files.add(findings)
    values = [v for path in sorted(files) for v in values_in(path.read_text(errors="replace"))]
    return sorted(values)


def unsupported(readme: Path, root: Path = RESULTS) -> list[Unsupported]:
    """The quoted numbers of one study's reading that its evidence does not hold."""
    text = reading_text(readme.read_text())
    tokens = quoted_numbers(text)
    if not tokens:
        return []
    values = evidence(readme, root)
    lines = text.splitlines()
    out = []
    for token in tokens:
        if not is_supported(token, values):
            line = next((ln.strip() for ln in lines if token in ln), "")
            out.append(Unsupported(readme, token, line))
    return out


def study_readmes(root: Path = RESULTS) -> list[Path]:
    """Every study README under root (records hold no READMEs of studies)."""
    return [p for p in sorted(root.rglob("README.md")) if "records" not in p.parts]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=RESULTS, help="the results folder")
    args = ap.parse_args(argv)
    bad = [u for readme in study_readmes(args.root) for u in unsupported(readme, args.root)]
    for u in bad:
        print(f"{u.readme.relative_to(args.root)}: {u.number} is in no table or record: {u.line}")
    checked = len(study_readmes(args.root))
    print(f"readings: {checked} study READMEs, {len(bad)} unsupported numbers")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
