"""scripts/gpu_session.sh, the one script a GPU slot runs: valid shell, unknown stages refused,
and its first stage at smoke scale on a CPU (GPU_SESSION_SMOKE=1) logs, times and packs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import tarfile

import pytest

from tests.helpers import REPO

SCRIPT = REPO / "scripts" / "gpu_session.sh"


def _run(tmp_path, *stages: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "OUT": str(tmp_path / "out"), "GPU_SESSION_WORK": str(tmp_path / "work"),
            "GPU_SESSION_SMOKE": "1", "OMP_NUM_THREADS": "1", **env}  # fmt: skip
    return subprocess.run(
        ["bash", str(SCRIPT), *stages], env=full, capture_output=True, text=True, timeout=timeout
    )


def _ok_stage(tmp_path, stage: str, data_dir) -> str:
    """Run one stage at smoke scale on the CPU; its session log, the stage having exited 0."""
    res = _run(tmp_path, stage, LEGW_DATA_DIR=str(data_dir))
    log = (tmp_path / "out" / "session.log").read_text()
    assert f"=== {stage}: exit 0" in log, res.stdout[-3000:] + res.stderr[-2000:]
    return log


def test_script_is_valid_shell_and_refuses_unknown_stages(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    res = _run(tmp_path, "nonsense")
    assert "unknown stage nonsense" in res.stdout
    assert (tmp_path / "out" / "results.tgz").is_file()  # packed on exit even so


def test_a_stage_without_time_left_is_skipped(tmp_path):
    res = _run(tmp_path, "tests", GPU_SESSION_DEADLINE_S="20")
    assert "tests: skipped" in res.stdout


@pytest.mark.slow
def test_checks_stage_runs_on_a_cpu_at_smoke_scale(tmp_path, shared_data_dir):
    _ok_stage(tmp_path, "checks", shared_data_dir)
    with tarfile.open(tmp_path / "out" / "results.tgz") as tar:
        names = tar.getnames()
    assert any(n.endswith("check-run/summary.json") for n in names)
    assert not any(n.endswith(".pt") for n in names)  # checkpoints stay behind


@pytest.mark.slow
def test_gnmt_base_stage_sweeps_the_rates_and_budgets_it_names(tmp_path, shared_data_dir):
    res = _run(
        tmp_path,
        "gnmt-base",
        LEGW_DATA_DIR=str(shared_data_dir),
        LEGW_CACHE_DIR=str(tmp_path / "c"),
        GNMT_BASE_SWEEP="seed=0 task.adam.base_lr=0.002,0.004 epochs=1",  # not the default rates
    )
    log = (tmp_path / "out" / "session.log").read_text()
    assert "=== gnmt-base: exit 0" in log, res.stdout[-3000:] + res.stderr[-2000:]
    with tarfile.open(tmp_path / "out" / "results.tgz") as tar:
        names = tar.getnames()
    for lr in ("0.002", "0.004"):  # one run dir per swept rate, named by it
        run = f"gnmt-base/adam-{lr}-e1-v1000-h32-d0.0-s0"  # the smoke model's sizes
        assert any(n.endswith(f"{run}/summary.json") for n in names)
        assert f"{run} completed {{'test_2016_flickr'" in log


@pytest.mark.slow
def test_sweep_rate_stage_measures_runs_side_by_side_and_skips_mps_on_a_cpu(
    tmp_path, shared_data_dir
):
    res = _run(tmp_path, "sweep-rate", LEGW_DATA_DIR=str(shared_data_dir))
    log = (tmp_path / "out" / "session.log").read_text()
    assert "=== sweep-rate: exit 0" in log, res.stdout[-3000:] + res.stderr[-2000:]
    assert "mps skipped: MPS needs device=cuda" in res.stdout + log
    with tarfile.open(tmp_path / "out" / "results.tgz") as tar:
        assert any(n.endswith("cpu-ptb-concurrent.csv") for n in tar.getnames())


@pytest.mark.slow
def test_fused_stage_measures_a_fused_group_beside_separate_runs(tmp_path, shared_data_dir):
    _ok_stage(tmp_path, "fused", shared_data_dir)
    with tarfile.open(tmp_path / "out" / "results.tgz") as tar:
        name = next(n for n in tar.getnames() if n.endswith("cpu-ptb-concurrent.csv"))
        rows = list(csv.DictReader(io.TextIOWrapper(tar.extractfile(name))))
    got = {(r["sharing"], r["concurrent"]) for r in rows if float(r["items_per_s"]) > 0}
    assert got == {(s, n) for s in ("time-slice", "fused") for n in ("1", "2")}


@pytest.mark.slow
def test_signals_stage_preempts_runs_side_by_side_within_the_bound(tmp_path, shared_data_dir):
    log = _ok_stage(tmp_path, "signals", shared_data_dir)
    assert "2 runs side by side: signal to checkpoint at most" in log
    with tarfile.open(tmp_path / "out" / "results.tgz") as tar:
        name = next(n for n in tar.getnames() if n.endswith("signals.json"))
        got = json.load(tar.extractfile(name))
    assert got["ok"] and [r["status"] for r in got["rows"]] == ["preempted"] * 2
