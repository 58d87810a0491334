"""scripts/oracle.py's stages on a fake trainer: search until the best is interior, choose on
validation only, copy the seed-0 winner and run the other seeds under policy 'tuned'."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("oracle_script", REPO / "scripts" / "oracle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_summary(run_dir: Path, mult: float, valid, test, status: str = "completed") -> None:
    """A search run's summary.json, as the trainer writes it (the fields the oracle reads)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    final = {} if valid is None else {"valid_acc": valid, "test_acc": test}
    summary = {"status": status, "metric": "acc", "higher_is_better": True}
    summary |= {"lr_multiplier": mult, "final": final}
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_oracle_search_and_final_runs(tmp_path, monkeypatch):
    oracle = load_script()
    trained = []

    def fake_train(task, scale, batch, seed, mult, run_dir, variant=""):
        # validation peaks at x2 (interior after one widening step at batch 8192: x8 > x4)
        best = 2.0 if batch == 128 else 8.0
        valid = 0.99 - 0.01 * abs(math.log2(mult / best))
        test = 0.5 + 0.1 * math.log2(mult)  # test prefers the largest LR: must be ignored
        trained.append((batch, seed, mult))
        write_summary(run_dir, mult, valid, test)

    monkeypatch.setattr(oracle, "train", fake_train)
    monkeypatch.setattr(oracle, "REPO", tmp_path)
    argv = [
        "--task",
        "mnist",
        "--scale",
        "cpu",
        "--batch-sizes",
        "128,8192",
        "--seeds",
        "0,1",
        "--runs-dir",
    ]
    assert oracle.main([*argv, str(tmp_path / "runs")]) == 0
    searched = {b: sorted(m for bb, s, m in trained if bb == b and s == 0) for b in (128, 8192)}
    assert searched[128] == [0.25, 0.5, 1.0, 2.0, 4.0]  # best x2 is interior: no widening
    assert searched[8192] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]  # widened twice past x4
    final = tmp_path / "runs" / "mnist" / "cpu" / "tuned"
    for batch, mult in ((128, 2.0), (8192, 8.0)):
        s0 = json.loads((final / f"b{batch}-s0" / "summary.json").read_text())
        assert s0["lr_multiplier"] == mult  # copied from the search, not retrained
        assert (batch, 1, mult) in trained
    assert sum(1 for _, s, _ in trained if s == 0) == 12
    grid = (tmp_path / "results" / "mnist" / "cpu-oracle" / "search.csv").read_text().splitlines()
    assert len(grid) == 1 + 12 and grid[0].startswith("batch_size,lr_multiplier")


def test_oracle_variant_trains_under_the_variant_recipe(tmp_path, monkeypatch):
    """--variant shifted: every run gets +experiment=<task>_<scale>/shifted and the runs, the
    tuned finals and the search table go to the variant's own folders."""
    oracle = load_script()
    cmds = []

    def fake_call(cmd, cwd=None):
        cmds.append(cmd)
        run_dir = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        mult = float(next(a for a in cmd if a.startswith("policy.lr_multiplier=")).split("=")[1])
        write_summary(run_dir, mult, 0.9 - abs(math.log2(mult)) * 0.01, 0.5)
        return 0

    monkeypatch.setattr(oracle.subprocess, "call", fake_call)
    runs = tmp_path / "runs"
    argv = ["--task", "mnist", "--scale", "cpu", "--variant", "shifted", "--batch-sizes", "256"]
    monkeypatch.setattr(oracle, "REPO", REPO)  # the variant's config must exist
    tables = []  # not written: REPO is the real repository here
    monkeypatch.setattr(oracle, "write_search_table", lambda root, b, out: tables.append(out))
    assert oracle.main([*argv, "--seeds", "0,1", "--runs-dir", str(runs)]) == 0
    assert cmds and all("+experiment=mnist_cpu/shifted" in c for c in cmds)
    assert [t.relative_to(REPO / "results").parent.as_posix() for t in tables] == [
        "mnist/cpu-shifted-oracle"
    ]
    assert (runs / "mnist" / "cpu-shifted-oracle" / "x1" / "b256-s0" / "summary.json").exists()
    for seed in (0, 1):
        assert (
            runs / "mnist" / "cpu-shifted" / "tuned" / f"b256-s{seed}" / "summary.json"
        ).exists()


def test_oracle_unknown_variant_is_refused(capsys):
    oracle = load_script()
    try:
        oracle.parse_args(["--task", "mnist", "--variant", "nosuch"])
    except SystemExit as e:
        assert e.code == 2
    assert "nosuch" in capsys.readouterr().err


def test_a_search_run_killed_part_way_is_resumed_on_relaunch(tmp_path, monkeypatch):
    """A relaunch resumes a preempted trial instead of deciding without it."""
    oracle = load_script()
    trained = []

    def fake_train(task, scale, batch, seed, mult, run_dir, variant=""):
        trained.append(mult)
        valid = 0.99 if mult == 0.5 else 0.9  # the killed trial is the best one
        write_summary(run_dir, mult, valid, valid)

    runs = tmp_path / "runs"
    killed = runs / "mnist" / "cpu-oracle" / "x0.5" / "b128-s0"
    write_summary(killed, 0.5, None, None, status="preempted")
    monkeypatch.setattr(oracle, "train", fake_train)
    monkeypatch.setattr(oracle, "REPO", tmp_path)
    argv = ["--task", "mnist", "--scale", "cpu", "--batch-sizes", "128", "--runs-dir", str(runs)]
    assert oracle.main(argv) == 0
    assert trained[0] == 0.5 and sorted(trained) == [0.25, 0.5, 1.0, 2.0, 4.0]
    s0 = json.loads((runs / "mnist" / "cpu" / "tuned" / "b128-s0" / "summary.json").read_text())
    assert s0["lr_multiplier"] == 0.5  # the resumed trial won
