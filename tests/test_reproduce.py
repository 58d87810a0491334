"""`make reproduce-<task>` end to end at smoke scale: sweep -> records -> table and plots,
resumable (a second invocation skips finished runs), and compact committed records."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from legw_repro.analysis.archive import thin_rows
from tests.helpers import REPO


def test_thin_rows_keeps_evals_warmup_and_last_step():
    rows = [{"kind": "train", "step": s} for s in range(1, 5001)]
    rows += [{"kind": "eval", "step": 2500, "split": "valid"}]
    kept = thin_rows(rows, max_train_rows=300, dense_steps=100)
    steps = [r["step"] for r in kept if r["kind"] == "train"]
    assert steps[:100] == list(range(1, 101)) and steps[-1] == 5000
    assert len(steps) <= 300 + 1
    assert any(r["kind"] == "eval" for r in kept)


@pytest.mark.slow
def test_smoke_sweep_writes_table_and_plot_and_resumes(tmp_path, shared_data_dir):
    out, runs = tmp_path / "out", tmp_path / "runs"
    cmd = [
        sys.executable,
        "scripts/reproduce.py",
        "--task=ptb",
        "--scale=smoke",
        "--policies=sqrt_legw,linear,adam",
        f"--runs-dir={runs}",
        f"--out={out}",
        f"data_dir={shared_data_dir}",
        "wandb.mode=disabled",
    ]
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "REDUCED-SCALE" in res.stdout
    assert "(smoke-test scale, not a result)" in (out / "report.md").read_text()
    # k=1: linear is the same run as sqrt_legw, trained once and recorded under both names
    alias = json.loads((runs / "ptb/smoke/linear/b20-s0/summary.json").read_text())
    assert alias["policy"] == "linear" and alias["alias_of"].endswith("sqrt_legw/b20-s0")
    assert not (runs / "ptb/smoke/linear/b20-s0/checkpoints").exists()
    for name in ("summary.csv", "report.md", "ppl_vs_batch.png", "lr_schedules.png"):
        assert (out / name).is_file(), name
    csv = (out / "summary.csv").read_text()
    assert "sqrt_legw" in csv and "adam" in csv
    assert len(list((out / "records").rglob("summary.json"))) == 6
    assert not list((out / "records").rglob("*.pt"))
    # the variant: its own run dirs and results, never mixed into the main grid's table
    noclip = json.loads((runs / "ptb/smoke-noclip/sqrt_legw/b80-s0/summary.json").read_text())
    assert noclip["status"] in ("completed", "diverged")
    assert (out.with_name("out-noclip") / "summary.csv").is_file()
    assert "smoke-noclip" not in (out / "summary.csv").read_text()
    # ...but set beside it in the main report, at the variant's batch size
    report = (out / "report.md").read_text()
    assert "## Diagnostics: longer budget, no clipping" in report and "| noclip | 80 |" in report
    assert (out / "variants.png").is_file()
    # the figures again from the committed records alone (make analyze-<task>): no training
    (out / "report.md").unlink()
    res = subprocess.run(
        [*cmd, "--analyze-only"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "starting" not in res.stdout and "--variant noclip=" in res.stdout
    assert "| noclip | 80 |" in (out / "report.md").read_text()
    # again: nothing is retrained
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0
    assert res.stdout.count("already completed, skipped") == 6
    assert "starting" not in res.stdout
    # a fresh machine (no run dirs) goes on from the committed compact records...
    shutil.rmtree(runs)
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "restored 6 finished runs" in res.stdout and "starting" not in res.stdout
    # ...but never restores a record made with another recipe: that run is trained again
    shutil.rmtree(runs)
    rec = out / "records" / "adam" / "b80-s0" / "config.yaml"
    rec.write_text(rec.read_text().replace("max_eval_tokens: 4000", "max_eval_tokens: 3000"))
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "restored 5 finished runs" in res.stdout
    assert res.stdout.count(": starting") == 1 and "adam batch=80" in res.stdout
