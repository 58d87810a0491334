"""Compact copies of run records for committing next to the results.

Full run directories hold checkpoints and a metrics row per optimizer step (megabytes per run).
The figures need far less: this copies config.yaml and summary.json as they are and thins
metrics.jsonl to every evaluation row plus at most `max_train_rows` training rows (all of the
first `dense_steps` steps, so warmups stay visible, then evenly spaced ones), so that tables and
figures can be regenerated from the repository alone. A task's own outputs (GNMT's decoded
test translations, `translations/`) are copied whole: they are small, and they are what lets a
reader rescore a committed result.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from legw_repro.run.records import CONFIG, METRICS, SUMMARY, atomic_write_text, json_row, read_rows

#: run-record directories copied whole (docs/run-record.md); checkpoints never are
KEPT_DIRS = ("translations",)


def thin_rows(rows: list[dict], max_train_rows: int = 600, dense_steps: int = 200) -> list[dict]:
    train = [r for r in rows if r.get("kind") == "train"]
    keep: set[int] = set()
    if train:
        keep = {r["step"] for r in train if r["step"] <= dense_steps}
        rest = [r["step"] for r in train if r["step"] > dense_steps]
        budget = max(max_train_rows - len(keep), 2)
        stride = max(1, -(-len(rest) // budget))
        keep |= set(rest[::stride]) | ({rest[-1]} if rest else set())
    return [r for r in rows if r.get("kind") != "train" or r["step"] in keep]


def export_records(src_root: Path, dst_root: Path, max_train_rows: int = 600) -> list[Path]:
    """Copy every run under src_root (a directory with summary.json) to the same relative path
    under dst_root, thinned. Returns the run directories written."""
    written = []
    for summary in sorted(Path(src_root).rglob(SUMMARY)):
        run = summary.parent
        dst = Path(dst_root) / run.relative_to(src_root)
        dst.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG, SUMMARY):
            if (run / name).exists():
                shutil.copyfile(run / name, dst / name)
        for name in KEPT_DIRS:
            if (run / name).is_dir():
                shutil.copytree(run / name, dst / name, dirs_exist_ok=True)
        if (run / METRICS).exists():
            kept = thin_rows(read_rows(run / METRICS), max_train_rows)
            atomic_write_text(dst / METRICS, "".join(json_row(r) + "\n" for r in kept))
        written.append(dst)
    return written
