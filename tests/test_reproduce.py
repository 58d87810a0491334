"""`make reproduce-<task>` end to end at smoke scale: the Hydra sweep -> records -> table and
plots -> the comparison with the committed reference; resumable (a relaunch trains nothing),
restorable from committed records (RESTORE=1), and priced before it starts (make plan-<task>)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from legw_repro.analysis.archive import export_records, thin_rows
from tests.helpers import REPO


def test_thin_rows_keeps_evals_warmup_and_last_step():
    rows = [{"kind": "train", "step": s} for s in range(1, 5001)]
    rows += [{"kind": "eval", "step": 2500, "split": "valid"}]
    kept = thin_rows(rows, max_train_rows=300, dense_steps=100)
    steps = [r["step"] for r in kept if r["kind"] == "train"]
    assert steps[:100] == list(range(1, 101)) and steps[-1] == 5000
    assert len(steps) <= 300 + 1
    assert any(r["kind"] == "eval" for r in kept)


def test_export_records_keeps_translations_and_drops_checkpoints(tmp_path):
    run = tmp_path / "runs/gnmt/cpu/sqrt_legw/b128-s0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.pt").write_bytes(b"x" * 100)
    (run / "translations").mkdir()
    (run / "translations/test_2016_flickr.de.txt").write_text("Ein Hund .\n")
    (run / "summary.json").write_text('{"status": "completed"}')
    (run / "config.yaml").write_text("seed: 0\n")
    rows = [{"kind": "train", "step": s} for s in range(1, 1001)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    [dst] = export_records(tmp_path / "runs", tmp_path / "records")
    assert dst == tmp_path / "records/gnmt/cpu/sqrt_legw/b128-s0"
    assert (dst / "translations/test_2016_flickr.de.txt").read_text() == "Ein Hund .\n"
    assert not (dst / "checkpoints").exists()
    assert (dst / "summary.json").read_text() == '{"status": "completed"}'
    assert len((dst / "metrics.jsonl").read_text().splitlines()) <= 601


def _reproduce(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "scripts/reproduce.py", "--task=ptb", "--scale=smoke", *args]
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    env["WANDB_MODE"] = "disabled"
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_smoke_sweep_trains_compares_resumes_and_restores(tmp_path, shared_data_dir):
    out, runs = tmp_path / "out", tmp_path / "runs"
    common = ["--policies=sqrt_legw,linear", f"--runs-dir={runs}", f"--out={out}"]
    common += [f"data_dir={shared_data_dir}"]
    res = _reproduce(tmp_path, *common)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "REDUCED-SCALE" in res.stdout and "+experiment=ptb_smoke" in res.stdout
    report = (out / "report.md").read_text()
    assert "(smoke-test scale, not a result)" in report
    # k=1: linear is the same run as sqrt_legw, trained once and recorded under both names
    alias = json.loads((runs / "ptb/smoke/linear/b20-s0/summary.json").read_text())
    assert alias["policy"] == "linear" and alias["alias_of"].endswith("sqrt_legw/b20-s0")
    assert not (runs / "ptb/smoke/linear/b20-s0/checkpoints").exists()
    for name in ("summary.csv", "ppl_vs_batch.svg", "lr_schedules.svg"):
        assert (out / name).is_file(), name
    assert len(list((out / "records").rglob("summary.json"))) == 4
    assert not list((out / "records").rglob("*.pt"))
    # the variant: its own run dirs and results, set beside the main grid in its report
    noclip = json.loads((runs / "ptb/smoke-noclip/sqrt_legw/b80-s0/summary.json").read_text())
    assert noclip["status"] in ("completed", "diverged")
    assert (out.with_name("out-noclip") / "summary.csv").is_file()
    assert "| noclip | 80 |" in report
    # the comparison with the committed smoke reference: in the report and printed
    assert "## Fresh vs committed" in report and "results/ptb/smoke/records" in report
    assert "| sqrt_legw | 20 | 1 |" in report and "points agree** with" in res.stdout
    # again: nothing is trained, not even launched
    # (--train-only from here: the analysis was checked above and costs seconds a call)
    res = _reproduce(tmp_path, *common, "--no-variants", "--train-only")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "3 runs (3 finished, 0 to train)" in res.stdout + res.stderr
    assert "Launching" not in res.stdout + res.stderr
    assert "==> analysis" not in res.stdout and "run again without --train-only" in res.stdout
    # a fresh machine restores the finished runs from committed records (RESTORE=1)...
    shutil.rmtree(runs)
    res = _reproduce(
        tmp_path, *common, "--restore", f"--reference={out}", "--no-variants", "--train-only"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "restored 3 finished runs" in res.stdout and "Launching" not in res.stdout
    # ...but never one made with another recipe: that run is trained again
    shutil.rmtree(runs)
    rec = out / "records" / "linear" / "b80-s0" / "config.yaml"
    rec.write_text(rec.read_text().replace("max_eval_tokens: 4000", "max_eval_tokens: 3000"))
    res = _reproduce(
        tmp_path, *common, "--restore", f"--reference={out}", "--no-variants", "--train-only"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "restored 2 finished runs" in res.stdout and "(2 finished, 1 to train)" in res.stdout


@pytest.mark.slow
def test_plan_prices_the_sweep_and_writes_no_run(tmp_path, shared_data_dir):
    runs = tmp_path / "runs"
    res = _reproduce(
        tmp_path,
        "--dry-run",
        "--policies=sqrt_legw,adam",
        "--no-variants",
        f"--runs-dir={runs}",
        f"data_dir={shared_data_dir}",
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert any(line.split()[:5] == ["ptb_smoke", "sqrt_legw", "20", "0", "98"] for line in lines)
    assert any(line.split()[:5] == ["ptb_smoke", "adam", "80", "0", "24"] for line in lines)
    assert (
        "calibration here: batch 20:" in res.stdout and "calibration here: batch 80:" in res.stdout
    )
    assert "4 runs to train, 244 optimizer steps: about" in res.stdout
    assert not runs.exists()  # nothing written, not even the directory


def test_analyze_only_needs_committed_records(tmp_path):
    res = _reproduce(tmp_path, "--analyze-only", f"--reference={tmp_path / 'none'}")
    assert res.returncode == 2 and "no committed records in" in res.stderr


def test_train_only_refuses_a_flag_that_trains_nothing(tmp_path):
    res = _reproduce(tmp_path, "--train-only", "--dry-run")
    assert res.returncode == 2 and "--train-only trains, --dry-run does not" in res.stderr


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_script", REPO / "scripts/reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_variant_records_alone_are_a_reference():
    # results/gnmt/paper has no main-grid records, only its variants' (the GPU grids)
    script = _script()
    args = script.parse_args(["--task=gnmt", "--scale=paper"])
    assert script.reference_root(args, "paper", ["", "base256"]) == REPO / "results/gnmt/paper"
    assert script.has_records(REPO / "results/gnmt/paper", ["base256"])
    assert not script.has_records(REPO / "results/gnmt/paper", [""])


def test_analyze_only_analyses_variant_records_without_a_main_grid(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    shutil.copytree(REPO / "results/ptb/smoke/records", tmp_path / "ref-noclip/records")
    res = _reproduce(tmp_path, "--analyze-only", f"--reference={ref}", f"--out={out}")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out-noclip/report.md").is_file() and not out.exists()
    assert not (tmp_path / "ref-noclip/report.md").exists()  # the records' folder is left alone


def test_grids_picks_the_grids_to_analyse_and_names_the_known_ones(tmp_path):
    ref = tmp_path / "ref"
    for grid in ("ref", "ref-noclip"):
        shutil.copytree(REPO / "results/ptb/smoke/records", tmp_path / grid / "records")
    out = f"--out={tmp_path / 'out'}"
    res = _reproduce(tmp_path, "--analyze-only", "--grids=noclip", f"--reference={ref}", out)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out-noclip/report.md").is_file() and not (tmp_path / "out").exists()
    res = _reproduce(tmp_path, "--analyze-only", "--grids=main,nope", f"--reference={ref}")
    assert res.returncode == 2 and "--grids nope: no such grid" in res.stderr
    assert "known: ['main', 'noclip']" in res.stderr
    res = _reproduce(tmp_path, "--grids=main", "--no-variants")
    assert res.returncode == 2 and "give one of them" in res.stderr


def makefile_targets(text: str) -> set[str]:
    """Every target a user can type: the .PHONY ones and those of each rule (`a b: ...`,
    static pattern rules included), not the file targets named by a variable ($(STAMP))."""
    targets: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("\t", "#")) or ":" not in line or "=" in line.split(":", 1)[0]:
            continue
        head, _, rest = line.partition(":")
        if rest.startswith("="):  # NAME := value
            continue
        names = rest.split() if head == ".PHONY" else head.split()
        targets |= {n for n in names if not n.startswith(("$", "."))}
    return targets


def test_make_help_lists_every_target_of_the_makefile():
    targets = makefile_targets((REPO / "Makefile").read_text())
    assert {"help", "lint", "plan-gnmt", "analyze-mnist", "clean-runs", "reproduce-gnmt"} <= targets
    res = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    listed = {line.split()[1] for line in res.stdout.splitlines() if line.startswith("make ")}
    assert not targets - listed, f"make help does not list: {sorted(targets - listed)}"


def test_runs_dir_defaults_to_legw_runs_dir(monkeypatch):
    # the documented LEGW_RUNS_DIR moves the runs of `make reproduce-*` too
    script = _script()
    monkeypatch.setenv("LEGW_RUNS_DIR", "/scratch/legw-runs")
    assert script.parse_args(["--task=ptb"]).runs_dir == "/scratch/legw-runs"
    assert script.parse_args(["--task=ptb", "--runs-dir=elsewhere"]).runs_dir == "elsewhere"
    monkeypatch.delenv("LEGW_RUNS_DIR")
    assert script.parse_args(["--task=ptb"]).runs_dir == "runs"


def _analysis_commands(monkeypatch, *argv: str) -> list[list[str]]:
    """The `legw_repro.analysis` commands `reproduce.py --analyze-only` would run (none run)."""
    script, calls = _script(), []
    # main() sets LEGW_RUNS_DIR (absolute) for the sweeps it composes; setenv first, so that
    # monkeypatch restores the variable afterwards and no later test sees an absolute run dir
    monkeypatch.setenv("LEGW_RUNS_DIR", "runs")
    monkeypatch.setattr(script.subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    assert script.main(["--analyze-only", *argv]) == 0
    return calls


def _out_of(cmd: list[str]) -> Path:
    return REPO / cmd[cmd.index("--out") + 1]


@pytest.mark.parametrize(
    ("task", "scale", "n"),
    [("ptb", "cpu", 1), ("mnist", "cpu", 6), ("gnmt", "cpu", 3), ("gnmt", "paper", 2)],
)
def test_analyze_only_writes_to_reproduced_not_over_the_committed_results(
    monkeypatch, task, scale, n
):
    cmds = _analysis_commands(monkeypatch, f"--task={task}", f"--scale={scale}")
    assert len(cmds) == n  # the main grid and each committed variant
    for cmd in cmds:
        records = REPO / cmd[cmd.index("legw_repro.analysis") + 1]
        assert records.parts[-1] == "records" and REPO / "results" in records.parents
        out = _out_of(cmd)
        assert out.parent == REPO / "reproduced" / task, out
        # the same layout as the committed one: results/mnist/cpu-long -> reproduced/mnist/cpu-long
        assert out.name == records.parent.name
    # only an explicit --out rewrites the committed tables and figures
    cmds = _analysis_commands(
        monkeypatch, f"--task={task}", f"--scale={scale}", f"--out={REPO}/results/x"
    )
    assert {_out_of(c).parent for c in cmds} == {REPO / "results"}


@pytest.mark.slow
@pytest.mark.parametrize(("task", "scale"), [("ptb", "cpu"), ("mnist", "cpu"), ("gnmt", "paper")])
def test_analyze_only_leaves_the_committed_results_unchanged(tmp_path, task, scale):
    before = _git_status("results")
    res = _reproduce(
        tmp_path, f"--task={task}", f"--scale={scale}", "--analyze-only", f"--out={tmp_path / task}"
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert _git_status("results") == before
    assert (tmp_path / task / "report.md").is_file() or list(tmp_path.glob(f"{task}-*/report.md"))


def _git_status(path: str) -> str:
    res = subprocess.run(
        ["git", "status", "--porcelain", "--", path], cwd=REPO, capture_output=True, text=True
    )
    return res.stdout
