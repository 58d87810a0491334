"""The trainer and CLI end to end on PTB (smoke scale): run record, exactness of DDP /
accumulation / resume, divergence, and clear errors for bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import yaml

from legw_repro.config.validate import ConfigError
from legw_repro.run.lifecycle import run
from legw_repro.tasks.common.download import DataError
from tests.faults import fault_cli
from tests.helpers import (
    REPO,
    check_train_rows,
    checkpoint_params,
    make_cfg,
    read_rows,
    run_cli,
    summary,
)

# a few dozen steps of the tiny LM on a slice of PTB: seconds per run
SMALL = [
    "scale=smoke",
    "task.max_train_tokens=4000",
    "task.max_eval_tokens=1000",
    "batch_size=8",
    "epochs=1",
    "wandb.mode=disabled",
    "progress=false",
]


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.slow
def test_cli_smoke_run_record(tmp_path, shared_data_dir):
    rd = tmp_path / "run"
    res = run_cli("scale=smoke", f"data_dir={shared_data_dir}", f"hydra.run.dir={rd}")
    assert res.returncode == 0, res.stderr[-3000:]
    s = summary(rd)
    assert s["status"] == "completed" and s["task"] == "ptb" and s["policy"] == "sqrt_legw"
    for key in ("batch_size", "base_batch_size", "world_size", "seed", "wall_time_s", "throughput"):
        assert key in s
    assert s["final"]["test_ppl"] < 10000  # learned something over uniform (10k)
    cfg = yaml.safe_load((rd / "config.yaml").read_text())
    assert cfg["task"]["name"] == "ptb" and cfg["batch_size"] == 20
    check_train_rows(rd)
    evals = read_rows(rd, "eval")
    assert {r["split"] for r in evals} == {"valid", "test"} and all("ppl" in r for r in evals)


def test_accumulation_equals_full_batch(tmp_path, shared_data_dir):
    a = run(make_cfg(*SMALL, f"data_dir={shared_data_dir}"), tmp_path / "full")
    b = run(make_cfg(*SMALL, f"data_dir={shared_data_dir}", "accum_steps=4"), tmp_path / "acc")
    assert a["status"] == b["status"] == "completed"
    assert (
        _max_diff(checkpoint_params(tmp_path / "full"), checkpoint_params(tmp_path / "acc")) < 1e-5
    )
    la = [r["loss"] for r in read_rows(tmp_path / "full", "train")]
    lb = [r["loss"] for r in read_rows(tmp_path / "acc", "train")]
    assert la == pytest.approx(lb, rel=1e-5)


@pytest.mark.slow
def test_ddp_two_processes_equal_one(tmp_path, shared_data_dir):
    one, two = tmp_path / "one", tmp_path / "two"
    common = [*SMALL, f"data_dir={shared_data_dir}"]
    r1 = run_cli(*common, f"hydra.run.dir={one}")
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = run_cli(*common, f"hydra.run.dir={two}", torchrun=2)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert summary(two)["world_size"] == 2
    assert _max_diff(checkpoint_params(one), checkpoint_params(two)) < 1e-5
    l1 = [r["loss"] for r in read_rows(one, "train")]
    l2 = [r["loss"] for r in read_rows(two, "train")]
    assert l1 == pytest.approx(l2, rel=1e-5)


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted(tmp_path, shared_data_dir):
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    common = [*SMALL, f"data_dir={shared_data_dir}", "epochs=2", "checkpoint_every_steps=5"]
    assert run_cli(*common, f"hydra.run.dir={ref}").returncode == 0
    # killed (SIGKILL) in step 32: the last checkpoint is at step 30, two steps are lost and redone
    res = fault_cli(*common, f"hydra.run.dir={crashed}", step=32, action="SIGKILL")
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert summary(crashed)["status"] == "running"
    res = run_cli(*common, f"hydra.run.dir={crashed}", "resume=true")
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = summary(ref), summary(crashed)
    assert b["status"] == "completed"
    assert a["final"] == b["final"]
    assert _max_diff(checkpoint_params(ref), checkpoint_params(crashed)) == 0.0
    steps = [r["step"] for r in read_rows(crashed, "train")]
    assert steps == list(range(1, a["total_steps"] + 1))  # no duplicated or missing rows
    # a second resume of a finished run is skipped and changes nothing
    res = run_cli(*common, f"hydra.run.dir={crashed}", "resume=true")
    assert res.returncode == 0 and summary(crashed)["finished_at"] == b["finished_at"]


def test_divergence_is_recorded_not_raised(tmp_path, shared_data_dir):
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", "task.sgd.base_lr=1e4", "task.sgd.clip=0")
    s = run(cfg, tmp_path / "div")
    assert s["status"] == "diverged"
    assert s["reason"]
    assert summary(tmp_path / "div")["status"] == "diverged"


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("batch_size=0", "batch_size=0"),
        ("batch_size=-8", "batch_size=-8"),
        ("accum_steps=3", "accum_steps=3"),
        ("epochs=0", "epochs=0"),
        ("task.schedule.warmup_epochs=0.5", "warmup"),
        ("device=tpu", "device='tpu'"),
        ("precision=fp8", "precision='fp8'"),
        ("task.schedule.decay=linear", "decay"),
        ("task.model.size=huge", "task.model.size"),
    ],
)
def test_bad_values_fail_fast_naming_the_key(tmp_path, shared_data_dir, override, needle):
    # batch 8 is k=0.4 of base 20: warmup 0.5 x 0.4 = 0.2 epochs < 1 is fine, so use batch 80
    extra = ["batch_size=80"] if "warmup" in override else []
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", *extra, override)
    with pytest.raises((ConfigError, ValueError)) as e:
        run(cfg, tmp_path / "bad")
    assert needle in str(e.value)
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()  # nothing trained


def test_missing_data_names_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGW_OFFLINE", "1")
    cfg = make_cfg(*SMALL, f"data_dir={tmp_path / 'nowhere'}")
    with pytest.raises(DataError) as e:
        run(cfg, tmp_path / "bad")
    assert str(tmp_path / "nowhere" / "ptb") in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ptb", "mnist", "gnmt"])
def test_cli_missing_data_is_laid_out_on_lines(tmp_path, task):
    where = tmp_path / "nowhere"
    res = run_cli(
        f"task={task}",
        "scale=smoke",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"LEGW_DATA_DIR": str(where), "LEGW_OFFLINE": "1"},
        timeout=120,
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    first = [i for i, ln in enumerate(lines) if ln.startswith("error: ")]
    assert len(first) == 1 and "data file(s) missing from" in lines[first[0]]
    assert str(where.resolve()) in lines[first[0]] and "(LEGW_OFFLINE is set)" in lines[first[0]]
    files = [ln for ln in lines[first[0] :] if "  <- https://" in ln]
    assert len(files) == {"ptb": 3, "mnist": 4, "gnmt": 8}[task]
    assert any(f"another data root than {where.resolve()} " in ln for ln in lines)


# the training CLI with one file unreadable: as root, chmod 000 stops nothing, so open() refuses
UNREADABLE_WRAPPER = """
import builtins, errno, io, os, runpy, sys
bad, real = os.environ["UNREADABLE"], builtins.open
def denying(file, *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == bad:
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
    return real(file, *args, **kwargs)
builtins.open = io.open = denying
sys.argv = ["legw_repro.train", *sys.argv[1:]]
runpy.run_module("legw_repro.train", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_cli_unreadable_data_file_is_one_line_before_training(tmp_path, shared_data_dir):
    bad = shared_data_dir / "mnist" / "train-images-idx3-ubyte.gz"
    env = {**os.environ, "WANDB_MODE": "disabled", "UNREADABLE": os.path.abspath(bad)}
    args = ["task=mnist", "scale=smoke", f"data_dir={shared_data_dir}", f"hydra.run.dir={tmp_path}"]
    cmd = [sys.executable, "-c", UNREADABLE_WRAPPER, *args]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert "cannot read this data file (Permission denied)" in line and "chmod a+r" in line
    assert "train-images-idx3-ubyte.gz" in line
    assert not (tmp_path / "metrics.jsonl").exists()  # refused before training


@pytest.mark.slow
def test_cli_errors_exit_2_with_one_line(tmp_path, shared_data_dir):
    res = run_cli(
        *SMALL, f"data_dir={shared_data_dir}", "batch_size=0", f"hydra.run.dir={tmp_path}"
    )
    assert res.returncode == 2
    assert "error: batch_size=0 must be a positive integer" in res.stderr
    res = run_cli(*SMALL, "policy=bogus", f"hydra.run.dir={tmp_path}")
    assert res.returncode == 2 and "is not an option of policy" in res.stderr
    assert "sqrt_legw" in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_wandb_offline_mirror_writes_files_and_tags(tmp_path, shared_data_dir, monkeypatch):
    import wandb

    seen = {}
    real_init = wandb.init

    def spy(**kwargs):
        seen.update(kwargs)
        return real_init(**kwargs)

    monkeypatch.setattr(wandb, "init", spy)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", "wandb.mode=offline")
    s = run(cfg, tmp_path / "run")
    assert s["status"] == "completed"
    assert seen["mode"] == "offline" and seen["group"] == "ptb-smoke"
    assert {"task=ptb", "policy=sqrt_legw", "batch_size=8", "k=0.4", "seed=0"} <= set(seen["tags"])
    offline = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert offline and list(offline[0].glob("*.wandb"))


def test_wandb_is_off_unless_asked_for(monkeypatch):
    from legw_repro.run.records import resolve_wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_wandb_mode("auto") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key alone (another project's) is no request
    assert resolve_wandb_mode("auto") == "disabled"
    assert resolve_wandb_mode("online") == "online" and resolve_wandb_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_wandb_mode("auto") == "offline"
    assert resolve_wandb_mode("disabled") == "disabled"  # the config's explicit word wins


# SMALL without its wandb.mode=disabled: the default a new user gets
UNASKED = [a for a in SMALL if not a.startswith("wandb.")]


def test_a_default_run_does_not_touch_wandb(tmp_path, shared_data_dir, monkeypatch):
    import sys

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    s = run(make_cfg(*UNASKED, f"data_dir={shared_data_dir}"), tmp_path / "run")
    assert s["status"] == "completed"
    assert not (tmp_path / "run" / "wandb").exists()


@pytest.mark.slow
def test_a_default_cli_run_prints_no_wandb_line(tmp_path, shared_data_dir):
    rd = tmp_path / "run"
    res = run_cli(
        *UNASKED, f"data_dir={shared_data_dir}", f"hydra.run.dir={rd}", env={"WANDB_MODE": None}
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "wandb" not in (res.stdout + res.stderr).lower()
    assert summary(rd)["status"] == "completed" and not (rd / "wandb").exists()


@pytest.mark.slow
def test_hydra_multirun_sweep(tmp_path, shared_data_dir):
    res = run_cli(
        "-m",
        *SMALL,
        f"data_dir={shared_data_dir}",
        "policy=sqrt_legw,linear",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    runs = {p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("summary.json")}
    assert runs == {"sqrt_legw/b8-s0", "linear/b8-s0"}
    assert all(summary(tmp_path / r)["status"] == "completed" for r in runs)
