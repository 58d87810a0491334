"""Every committed table and figure, made again from the committed records, byte for byte.

Why: a results folder holds what the analysis made of its records when it was committed. Code
changes since (a legend moved, a column renamed) leave it stale without a word, and a reader
cannot tell a committed figure from what today's code draws. This runs every generator that
owns a committed file into a scratch directory laid out like ``results/`` and compares:

- the grids (``scripts/reproduce.py --analyze-only``, per task and scale with their variants):
  report.md, summary.csv, the figures, variants.*;
- MNIST's budget figure (``scripts/plot_budget.py``), the hand-over figure
  (``scripts/plot_handover.py``), the oracle's search.csv, the noise studies' table.md;
- results/FINDINGS.md and the README's summary block (``analysis/findings.py``).

The one difference allowed is where a file was written: a report names its ``--out``, which is
the scratch directory here, so that path is read as the committed one before comparing.
Measured inputs (noise.csv, trajectory.csv, bench CSVs), the records and the READMEs are not
generated and are not compared.

    python -m legw_repro.analysis.regenerate            # check (make check-results): exit 1 on a difference
    python -m legw_repro.analysis.regenerate --write    # refresh the committed files instead
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"

#: (task, scale) of every committed grid; the variants of each come with it
GRIDS: tuple[tuple[str, str], ...] = (
    ("ptb", "cpu"),
    ("ptb", "paper"),
    ("mnist", "cpu"),
    ("gnmt", "cpu"),
    ("gnmt", "paper"),
)
#: noise study -> the trajectory its table is drawn along (None: a check without one)
NOISE_TABLES = {
    "mnist/noise": "mnist/noise/trajectory.csv",
    "mnist/noise/check-b128x16": None,
    "ptb/noise": "ptb/noise/trajectory.csv",
}
#: noise study -> `python -m legw_repro.noise.predict` arguments of its prediction.md (PTB's
#: is assembled by the snippet in its README and is not regenerated here)
PREDICTIONS = {
    "mnist/noise": [
        "--noise", str(RESULTS / "mnist/noise/noise.csv"),
        "--budget", f"10={RESULTS / 'mnist/cpu/summary.csv'}",
        "--budget", f"40={RESULTS / 'mnist/cpu-budget40/summary.csv'}",
    ],
}  # fmt: skip
#: the committed LR-oracle searches (scripts/oracle.py writes their search.csv)
ORACLES = ("mnist/cpu-shifted-oracle",)


@dataclass(frozen=True)
class Job:
    """One generator: ``run(root)`` writes its files under ``root`` (a results/ look-alike)."""

    name: str
    run: Callable[[Path], None]


def _script(*argv: str | Path) -> None:
    cmd = [sys.executable, *map(str, argv)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[1:3])} failed ({res.returncode}): {' | '.join(tail)}")


def _grid(task: str, scale: str) -> Job:
    def run(root: Path) -> None:
        out = root / task / scale
        _script("scripts/reproduce.py", "--task", task, "--scale", scale, "--analyze-only",
                "--out", out)  # fmt: skip

    return Job(f"{task}/{scale} (and its variants)", run)


def _budget(root: Path) -> None:
    _script("scripts/plot_budget.py", "--out", root / "mnist" / "cpu-budget40")


def _handover(root: Path) -> None:
    _script("scripts/plot_handover.py", "--out", root / "schedules" / "handover.svg")


def _noise(root: Path) -> None:
    import contextlib
    import io

    from legw_repro.noise import predict
    from legw_repro.noise.cli import _read_csv, render_table

    for study, traj in NOISE_TABLES.items():
        src, out = RESULTS / study, root / study
        out.mkdir(parents=True, exist_ok=True)
        rows = _read_csv(RESULTS / traj) if traj else []
        (out / "table.md").write_text(render_table(_read_csv(src / "noise.csv"), rows))
    for study, argv in PREDICTIONS.items():
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            predict.main(argv)
        (root / study / "prediction.md").write_text(text.getvalue())


def _oracles(root: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("oracle_script", REPO / "scripts" / "oracle.py")
    oracle = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(oracle)  # type: ignore[union-attr]
    for study in ORACLES:
        records = RESULTS / study / "records"
        batches = {int(d.name[1:].split("-")[0]) for d in records.glob("x*/b*-s0")}
        oracle.write_search_table(records, sorted(batches), root / study / "search.csv")


def _findings(root: Path) -> None:
    from legw_repro.analysis.findings import generate, load_rule

    page, _ = generate(load_rule())
    (root / "FINDINGS.md").write_text(page)


def jobs() -> list[Job]:
    """Every generator of a committed file, in a fixed order."""
    return [
        *(_grid(t, s) for t, s in GRIDS),
        Job("mnist/cpu-budget40 budget figure", _budget),
        Job("schedules/handover.svg", _handover),
        Job("noise tables", _noise),
        Job("oracle search tables", _oracles),
        Job("FINDINGS.md", _findings),
    ]


def _same(new: Path, old: Path, scratch: Path) -> bool:
    """Byte for byte, after reading the scratch root in a text file as the committed one."""
    if not old.is_file():
        return False
    if filecmp.cmp(new, old, shallow=False):
        return True
    try:
        text = new.read_text()
    except UnicodeDecodeError:
        return False
    for where in (
        str(scratch),
        str(scratch.relative_to(REPO)) if scratch.is_relative_to(REPO) else None,
    ):
        if where:
            text = text.replace(where, "results")
    return text.encode() == old.read_bytes()


def differences(scratch: Path) -> list[str]:
    """The files under ``scratch`` that differ from (or are missing in) results/."""
    out = []
    for new in sorted(p for p in scratch.rglob("*") if p.is_file()):
        rel = new.relative_to(scratch)
        if "records" in rel.parts:
            continue
        if not _same(new, RESULTS / rel, scratch):
            state = "differs" if (RESULTS / rel).is_file() else "is not committed"
            out.append(f"results/{rel.as_posix()} {state}")
    return out


def regenerate(scratch: Path, log: Callable[[str], None] = print) -> None:
    """Run every job into ``scratch`` (a results/ look-alike)."""
    for job in jobs():
        log(f"regenerating {job.name}")
        job.run(scratch)


def _write_back(scratch: Path) -> None:
    for new in sorted(p for p in scratch.rglob("*") if p.is_file()):
        rel = new.relative_to(scratch)
        if "records" in rel.parts:
            continue
        dst = RESULTS / rel
        if not _same(new, dst, scratch):
            dst.parent.mkdir(parents=True, exist_ok=True)
            text = new.read_bytes()
            try:
                dst.write_text(text.decode().replace(str(scratch), "results"))
            except UnicodeDecodeError:
                shutil.copyfile(new, dst)
            print(f"wrote results/{rel.as_posix()}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="refresh the committed files instead")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="legw-regen-") as tmp:
        scratch = Path(tmp) / "results"
        regenerate(scratch)
        if args.write:
            _write_back(scratch)
            return 0
        diff = differences(scratch)
    for line in diff:
        print(line)
    print(f"check-results: {'ok' if not diff else f'{len(diff)} files differ'}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
