"""A run directory is bound to its configuration: resumed or skipped only by the configuration
that started it, never retrained over by accident."""

from __future__ import annotations

import json
import shutil

import pytest

from legw_repro.config.fingerprint import config_values, differences, digest
from legw_repro.run import rundir
from legw_repro.run.lifecycle import run
from legw_repro.run.records import RecordError
from legw_repro.run.runlock import RunLock
from tests.helpers import make_cfg, read_rows, run_cli, summary
from tests.test_train import SMALL

SAME = ["same"]  # a stand-in difference list


@pytest.mark.parametrize(
    ("status", "has", "diff", "resume", "overwrite", "expected"),
    [
        (None, False, [], False, False, ("start", False)),
        (None, False, [], True, False, ("start", False)),
        ("completed", True, [], True, False, ("skip", False)),
        ("diverged", True, [], True, False, ("skip", False)),
        ("preempted", True, [], True, False, ("resume", False)),
        ("running", True, [], True, False, ("resume", False)),
        ("failed", True, [], True, False, ("resume", False)),
        ("completed", True, SAME, True, True, ("start", True)),
        ("completed", True, [], False, True, ("start", True)),
        ("completed", True, [], False, False, "already holds a completed run"),
        ("preempted", True, [], False, False, "already holds a preempted run"),
        ("completed", True, ["batch_size: 20.0 -> 40.0"], True, False, "batch_size: 20.0 -> 40.0"),
        ("running", True, ["x: 1 -> 2"], True, False, "another configuration"),
    ],
)
def test_decide(tmp_path, status, has, diff, resume, overwrite, expected):
    if isinstance(expected, str):
        with pytest.raises(RecordError) as e:
            rundir.decide(tmp_path, status, has, diff, resume=resume, overwrite=overwrite)
        assert expected in str(e.value) and "overwrite=true" in str(e.value)
        assert "\n" not in str(e.value)
    else:
        d = rundir.decide(tmp_path, status, has, diff, resume=resume, overwrite=overwrite)
        assert (d.action, d.discard) == expected


def test_fingerprint_holds_what_changes_the_result_and_nothing_else():
    base = config_values(make_cfg())
    same = [
        "progress=false",
        "wandb.mode=disabled",
        "resume=true",
        "overwrite=true",
        "data_dir=/elsewhere",
        "device=cpu",
        "checkpoint_every_steps=7",
        "checkpoint_every_min=1",
        "dist_timeout_s=30",
        "task.sgd.base_lr=20",  # an int is the same number as 20.0
    ]
    for override in same:
        assert digest(config_values(make_cfg(override))) == digest(base), override
    for override in ["task.sgd.base_lr=5", "batch_size=40", "task.model.size=medium", "seed=1"]:
        other = config_values(make_cfg(override))
        assert digest(other) != digest(base), override
        assert len(differences(base, other)) >= 1


def test_a_key_added_since_the_run_started_is_not_a_difference(tmp_path):
    cfg = make_cfg()
    values = config_values(cfg)
    old = {k: v for k, v in values.items() if k != "task.schedule.handover"}  # an older schema
    from omegaconf import OmegaConf

    legacy = OmegaConf.to_container(cfg, resolve=True)
    del legacy["task"]["schedule"]["handover"]
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(legacy))
    summary_v2 = {"status": "completed"}  # no "fingerprint"
    assert rundir.config_difference(tmp_path, summary_v2, values) == []
    older_code = {"status": "completed", "fingerprint": digest(old)}  # before the key existed
    assert rundir.config_difference(tmp_path, older_code, values) == []
    assert differences(old, values, common_only=True) == []
    changed = config_values(make_cfg("task.sgd.base_lr=5"))
    assert rundir.config_difference(tmp_path, summary_v2, changed) == [
        "task.sgd.base_lr: 20.0 -> 5.0"
    ]


# -- one finished run, then everything a relaunch may try on it ----------------------------------
@pytest.fixture(scope="module")
def finished_dir(tmp_path_factory, shared_data_dir):
    rd = tmp_path_factory.mktemp("done")
    assert run(make_cfg(*SMALL, f"data_dir={shared_data_dir}"), rd)["status"] == "completed"
    return rd


@pytest.fixture
def finished(finished_dir, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(finished_dir, rd)
    return rd


def _cfg(data_dir, *extra):
    return make_cfg(*SMALL, f"data_dir={data_dir}", *extra)


@pytest.mark.slow
def test_finished_run_is_skipped_only_with_the_same_fingerprint(finished, shared_data_dir):
    before = summary(finished)
    s = run(
        _cfg(shared_data_dir, "resume=true", "progress=true", "checkpoint_every_steps=3"), finished
    )
    assert s["finished_at"] == before["finished_at"] == summary(finished)["finished_at"]
    # the second case: a finished batch-8 run asked for as batch 16 returned batch 8
    with pytest.raises(RecordError) as e:
        run(_cfg(shared_data_dir, "resume=true", "batch_size=16"), finished)
    msg = str(e.value)
    assert "batch_size: 8.0 -> 16.0" in msg and "hydra.run.dir" in msg and "overwrite=true" in msg
    assert summary(finished) == before


@pytest.mark.slow
def test_a_finished_run_keeps_only_last_pt_by_default(finished_dir, shared_data_dir, tmp_path):
    """checkpoint_keep=last (the default): prev.pt only guards a write that no longer comes."""
    assert sorted(p.name for p in (finished_dir / "checkpoints").iterdir()) == ["last.pt"]
    s = run(_cfg(shared_data_dir, "checkpoint_keep=none"), tmp_path / "none")
    assert s["status"] == "completed" and not list((tmp_path / "none" / "checkpoints").iterdir())


@pytest.mark.slow
def test_a_finished_result_is_not_retrained_by_accident(finished, shared_data_dir):
    before = summary(finished)
    with pytest.raises(RecordError, match="already holds a completed run"):
        run(_cfg(shared_data_dir), finished)
    assert summary(finished) == before


@pytest.mark.slow
def test_overwrite_discards_the_old_record_and_starts_over(finished, shared_data_dir):
    old = summary(finished)
    s = run(_cfg(shared_data_dir, "batch_size=16", "overwrite=true"), finished)
    assert s["status"] == "completed" and s["batch_size"] == 16
    assert s["fingerprint"] != old["fingerprint"] and s["started_at"] >= old["started_at"]
    steps = [r["step"] for r in read_rows(finished, "train")]
    assert steps == list(range(1, s["total_steps"] + 1))  # no batch-8 rows left behind


@pytest.mark.slow
@pytest.mark.parametrize("how", ["missing", "cut", "empty"])
def test_resume_with_another_config_is_refused_without_a_summary(finished, shared_data_dir, how):
    """The comparison ran only when summary.json could be read: with it missing, cut or empty,
    resume=true with a changed config continued the checkpoint. config.yaml is compared too."""
    assert (finished / "checkpoints" / "last.pt").is_file() and (finished / "config.yaml").is_file()
    path = finished / "summary.json"
    if how == "missing":
        path.unlink()
    else:
        path.write_text(path.read_text()[:40] if how == "cut" else "")
    with pytest.raises(RecordError) as e:
        run(_cfg(shared_data_dir, "resume=true", "task.sgd.base_lr=0.5"), finished)
    assert "task.sgd.base_lr" in str(e.value) and "overwrite=true" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_refused_launch_leaves_the_hydra_files_of_the_run(tmp_path, shared_data_dir):
    """A relaunch refused (another config: 2, locked: 73) rewrote .hydra/, so overrides.yaml
    named settings that never ran."""
    rd = tmp_path / "run"
    args = [*SMALL, f"data_dir={shared_data_dir}", f"hydra.run.dir={rd}"]
    assert run_cli(*args).returncode == 0
    before = {p.name: p.read_text() for p in (rd / ".hydra").iterdir()}
    assert sorted(before) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert "batch_size=8" in before["overrides.yaml"]
    res = run_cli(*args, "batch_size=16", "resume=true")
    assert res.returncode == 2 and "batch_size" in res.stderr, res.stderr[-2000:]
    with RunLock(rd):
        res = run_cli(*args, "seed=1", "resume=true")
    assert res.returncode == 73, res.stderr[-2000:]
    assert {p.name: p.read_text() for p in (rd / ".hydra").iterdir()} == before


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_write_gets_the_umask_mode(tmp_path, mask):
    """summary.json and config.yaml were written 0600 (mkstemp's mode survived the rename) while
    metrics.jsonl was 0644: others sharing a runs directory could not read the record."""
    import os

    from legw_repro.run.records import atomic_write_text

    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
        (tmp_path / "metrics.jsonl").write_text("")
    finally:
        os.umask(old)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "metrics.jsonl").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("text", [None, '{"task": "mnist", "sta', "{}", "[]"])
def test_read_summary_is_lenient_for_a_run_and_strict_for_the_analysis(tmp_path, text):
    # lenient (a run starting, a sweep): no summary or a cut one is a run never started;
    # strict (collect_runs): refused in one line naming the file, not skipped
    from legw_repro.run.records import SUMMARY, read_summary

    if text is not None:
        (tmp_path / SUMMARY).write_text(text)
    readable = text in ("{}", "[]")
    assert read_summary(tmp_path) == (json.loads(text) if readable else None)
    with pytest.raises(RecordError) as e:
        read_summary(tmp_path, strict=True)
    msg = str(e.value)
    assert str(tmp_path / SUMMARY) in msg and "remove that run directory" in msg and "\n" not in msg
    (tmp_path / SUMMARY).write_text('{"status": "completed"}')
    assert read_summary(tmp_path, strict=True) == read_summary(tmp_path) == {"status": "completed"}
