"""One sweep definition on every launcher: a real 2 x 2 multirun of `+experiment=ptb_smoke`
(tiny step counts), relaunched (nothing trained again), killed mid-way and relaunched (the run
resumes and ends as if never interrupted), through joblib (local parallel runs) and through
submitit's local executor standing in for SLURM -- each giving the same numbers. And DDP across
"nodes": two torchrun agents over loopback equal one node with two processes, and the two
tasks of one submitit job become the two ranks of one run (legw_repro/run/launch_env.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults import fault_cli
from tests.helpers import REPO, checkpoint_params, summary

pytestmark = pytest.mark.slow

# a few steps of the tiny LM: batch 20 -> 10 steps, batch 80 -> 2 steps
SMALL = ["task.max_train_tokens=4000", "task.max_eval_tokens=1000", "epochs=1", "progress=false"]
GRID = ["+experiment=ptb_smoke", "batch_size=20,80", "policy=sqrt_legw,adam", *SMALL]
RUNS = {f"{p}/b{b}-s0" for p in ("sqrt_legw", "adam") for b in (20, 80)}


def _env(runs: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return env | {"LEGW_RUNS_DIR": str(runs), **extra}


def _train(runs: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "legw_repro.train", *args]
    return subprocess.run(
        cmd, cwd=REPO, env=_env(runs), capture_output=True, text=True, timeout=600, **kw
    )


def _finals(root: Path) -> dict[str, dict]:
    return {
        p.parent.relative_to(root).as_posix(): json.loads(p.read_text())["final"]
        for p in root.rglob("summary.json")
    }


@pytest.fixture(scope="module")
def basic(tmp_path_factory, shared_data_dir) -> Path:
    """The 2 x 2 grid through Hydra's basic launcher (one run after another)."""
    runs = tmp_path_factory.mktemp("basic")
    res = _train(runs, "-m", *GRID, f"data_dir={shared_data_dir}")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return runs / "ptb" / "smoke"


def test_multirun_of_the_experiment_then_a_relaunch_trains_nothing(basic, shared_data_dir):
    assert set(_finals(basic)) == RUNS
    assert all(summary(basic / r)["status"] == "completed" for r in RUNS)
    finished = {r: summary(basic / r)["finished_at"] for r in RUNS}
    res = _train(basic.parent.parent, "-m", *GRID, f"data_dir={shared_data_dir}")
    assert res.returncode == 0, res.stderr[-3000:]
    log = res.stdout + res.stderr
    assert "4 runs (4 finished, 0 to train)" in log and "Launching" not in log
    assert {r: summary(basic / r)["finished_at"] for r in RUNS} == finished


def test_a_run_killed_mid_way_is_resumed_by_the_relaunch(basic, tmp_path, shared_data_dir):
    one = ["+experiment=ptb_smoke", "batch_size=20", "policy=sqrt_legw", *SMALL]
    one += [f"data_dir={shared_data_dir}", "checkpoint_every_steps=2"]
    # killed (SIGKILL) in step 5 (the last checkpoint is at step 4): the sweep process dies with it
    res = fault_cli("-m", *one, step=5, action="SIGKILL", LEGW_RUNS_DIR=str(tmp_path))
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    run = tmp_path / "ptb" / "smoke" / "sqrt_legw" / "b20-s0"
    assert summary(run)["status"] == "running"
    res = _train(tmp_path, "-m", *one)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "1 runs (0 finished, 1 to train)" in res.stdout + res.stderr
    assert summary(run)["status"] == "completed"
    assert summary(run)["final"] == summary(basic / "sqrt_legw/b20-s0")["final"]
    ref, resumed = checkpoint_params(basic / "sqrt_legw/b20-s0"), checkpoint_params(run)
    assert all((ref[k] - resumed[k]).abs().max().item() == 0.0 for k in ref)


def test_the_same_sweep_through_joblib_gives_the_same_results(basic, tmp_path, shared_data_dir):
    res = _train(
        tmp_path,
        "-m",
        *GRID,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"data_dir={shared_data_dir}",
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Joblib.Parallel" in res.stdout + res.stderr
    assert _finals(tmp_path / "ptb" / "smoke") == _finals(basic)


def test_submitit_local_executor_stands_in_for_slurm(basic, tmp_path, shared_data_dir):
    res = _train(
        tmp_path,
        "-m",
        *GRID[:1],
        "batch_size=80",
        "policy=adam",
        *SMALL,
        "hydra/launcher=local_submitit",
        f"data_dir={shared_data_dir}",
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    root = tmp_path / "ptb" / "smoke"
    assert (root / ".submitit").is_dir()  # the job went through submitit
    assert _finals(root) == {"adam/b80-s0": _finals(basic)["adam/b80-s0"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(run_dir: Path, data: Path, *launch: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "legw_repro.train"]
    cmd += ["scale=smoke", "batch_size=8", *SMALL, f"data_dir={data}", f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=_env(run_dir.parent),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(*procs: subprocess.Popen) -> None:
    for p in procs:
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, out[-3000:]


def test_two_nodes_over_loopback_equal_one_node_with_two_processes(tmp_path, shared_data_dir):
    one_node, two_nodes = tmp_path / "one-node", tmp_path / "two-nodes"
    _wait(_torchrun(one_node, shared_data_dir, "--standalone", "--nproc_per_node=2"))
    rdzv = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", "--rdzv_id=legw"]
    rdzv += [f"--rdzv_endpoint=127.0.0.1:{_free_port()}"]
    _wait(*[_torchrun(two_nodes, shared_data_dir, *rdzv) for _ in range(2)])
    a, b = summary(one_node), summary(two_nodes)
    assert a["world_size"] == b["world_size"] == 2 and b["status"] == "completed"
    assert b["final"] == pytest.approx(a["final"], rel=1e-6)
    pa, pb = checkpoint_params(one_node), checkpoint_params(two_nodes)
    assert max((pa[k] - pb[k]).abs().max().item() for k in pa) < 1e-6
    # one run directory for the run, whatever the number of nodes
    assert [p.parent for p in tmp_path.rglob("summary.json")].count(two_nodes) == 1


def test_the_tasks_of_a_submitit_job_are_the_ranks_of_one_run(basic, tmp_path, shared_data_dir):
    """slurm_multigpu's path on one machine: 2 tasks -> one DDP run (world 2) in one run dir,
    equal to the single-process run of the same global batch."""
    res = _train(
        tmp_path,
        "-m",
        *GRID[:1],
        "batch_size=20",
        "policy=sqrt_legw",
        *SMALL,
        "hydra/launcher=local_submitit",
        "hydra.launcher.tasks_per_node=2",
        f"data_dir={shared_data_dir}",
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    root = tmp_path / "ptb" / "smoke"
    assert [p.parent for p in root.rglob("summary.json")] == [root / "sqrt_legw" / "b20-s0"]
    s, ref = summary(root / "sqrt_legw/b20-s0"), summary(basic / "sqrt_legw/b20-s0")
    assert s["world_size"] == 2 and s["status"] == "completed"
    assert s["final"] == pytest.approx(ref["final"], rel=1e-5)
    a, b = (
        checkpoint_params(root / "sqrt_legw/b20-s0"),
        checkpoint_params(basic / "sqrt_legw/b20-s0"),
    )
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_a_preempted_submitit_job_is_requeued_and_resumes(tmp_path, shared_data_dir):
    """USR1 mid-run: the run checkpoints and hands over to submitit's handler, which requeues
    the job; the requeued job resumes the run (resume=true) and the sweep gets its result."""
    import psutil

    cmd = [sys.executable, "-m", "legw_repro.train", "-m", *GRID[:1], "batch_size=20"]
    cmd += ["policy=sqrt_legw", "progress=false", "checkpoint_every_steps=5"]
    cmd += ["hydra/launcher=local_submitit", f"data_dir={shared_data_dir}"]
    env = _env(tmp_path, SUBMITIT_PREEMPT_SIGNAL="USR1")
    sweep = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    run = tmp_path / "ptb" / "smoke" / "sqrt_legw" / "b20-s0"
    task = None
    for _ in range(1200):  # the job's task process, once it has trained a few steps
        metrics = run / "metrics.jsonl"
        rows = metrics.read_text().count('"train"') if metrics.exists() else 0
        procs = psutil.process_iter(["cmdline"])
        tasks = [p for p in procs if "submitit.core._submit" in " ".join(p.info["cmdline"] or [])]
        task = next((p for p in tasks if str(tmp_path) in " ".join(p.info["cmdline"])), None)
        if task is not None and rows >= 3:
            break
        sweep.poll()
        assert sweep.returncode is None, sweep.communicate()[0][-3000:]
        time.sleep(0.1)
    assert task is not None
    task.send_signal(signal.SIGUSR1)
    out = sweep.communicate(timeout=600)[0]
    assert sweep.returncode == 0, out[-3000:]
    logs = "".join(p.read_text() for p in (tmp_path / "ptb/smoke/.submitit").rglob("*_log.*"))
    assert "Requeued job" in logs
    s = summary(run)
    assert s["status"] == "completed" and s["steps_done"] == s["total_steps"]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r["step"] for r in rows if r["kind"] == "train"]
    assert train == list(range(1, s["total_steps"] + 1))  # every step once, none lost


def test_a_sweep_never_reports_success_for_a_run_another_process_holds(tmp_path, shared_data_dir):
    # a requeued job still running a point while the sweep is relaunched: the sweep trains the
    # other point, then exits 73 naming the held one (it returned 0 with the run unfinished)
    from legw_repro.run.runlock import RunLock

    grid = ["+experiment=ptb_smoke", "batch_size=20,80", "policy=sqrt_legw", *SMALL]
    held = tmp_path / "ptb" / "smoke" / "sqrt_legw" / "b80-s0"
    held.mkdir(parents=True)
    with RunLock(held):
        res = _train(tmp_path, "-m", *grid, f"data_dir={shared_data_dir}")
    log = res.stdout + res.stderr
    assert res.returncode == 73, log[-3000:]
    assert f"not finished by this sweep: {held} is being written by pid {os.getpid()}" in log
    assert summary(held.parent / "b20-s0")["status"] == "completed"
    assert not (held / "summary.json").exists()


def _sigterm_once_two_train(runs, sweep: list[str]) -> tuple[int, str, float]:
    """The sweep launched into `runs`, SIGTERMed (its process alone) a second after two of its
    runs began training; its exit status, output, and the monotonic time of the signal."""
    cmd = [sys.executable, "-m", "legw_repro.train", *sweep]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=_env(runs), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    while sum("run dir" in x for x in lines) < 2:  # both runs are training
        line = proc.stdout.readline()
        assert line, "".join(lines)[-3000:]
        lines.append(line)
    time.sleep(1)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    return proc.returncode, out, t0


def test_sigterm_to_a_joblib_sweep_preempts_every_run_in_flight(tmp_path, shared_data_dir):
    """SIGTERM to the sweep process alone reaches the runs in loky's workers (it used to end
    the sweep at once, its runs left `running`): all checkpoint within a bound, and resume bit
    for bit."""
    one = ["+experiment=ptb_smoke", "batch_size=20", "policy=sqrt_legw", "progress=false"]
    one += [f"data_dir={shared_data_dir}", "checkpoint_every_min=0"]
    # three runs on two workers: the third is queued when the signal comes, and must not begin
    sweep = ["-m", *one, "seed=0,1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    runs = tmp_path / "j"
    returncode, err, t0 = _sigterm_once_two_train(runs, sweep)
    assert returncode == 75, err[-3000:]
    root = runs / "ptb" / "smoke" / "sqrt_legw"
    for seed in (0, 1):
        s = summary(root / f"b20-s{seed}")
        assert s["status"] == "preempted" and 0 < s["steps_done"] < 98, s
    assert not (root / "b20-s2" / "summary.json").exists()  # not begun: nothing written
    assert "Traceback" not in err, err[-3000:]
    assert time.monotonic() - t0 < 30  # the whole sweep down, pool included
    res = _train(runs, *sweep)
    assert res.returncode == 0, res.stderr[-3000:]
    assert all(summary(root / f"b20-s{k}")["status"] == "completed" for k in range(3))
    ref = tmp_path / "ref"
    res = _train(ref, "-m", *one, "seed=0")
    assert res.returncode == 0, res.stderr[-3000:]
    a = checkpoint_params(root / "b20-s0")
    b = checkpoint_params(ref / "ptb" / "smoke" / "sqrt_legw" / "b20-s0")
    assert all((a[k] - b[k]).abs().max().item() == 0.0 for k in a)


def test_sigterm_to_a_joblib_sweep_spares_its_idle_workers(tmp_path, shared_data_dir):
    """More workers than runs (a sweep's tail, or a fused group): the forwarded signal went to
    every loky worker, the idle ones had no handler and died of it, and joblib ended the sweep
    with TerminatedWorkerError, a traceback and exit 1. Only the workers running a run get it."""
    one = ["+experiment=ptb_smoke", "batch_size=20", "policy=sqrt_legw", "progress=false"]
    one += [f"data_dir={shared_data_dir}", "task.max_train_tokens=1000000"]
    sweep = ["-m", *one, "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=3"]
    runs = tmp_path / "j"
    returncode, out, _ = _sigterm_once_two_train(runs, sweep)
    assert returncode == 75, out[-3000:]
    assert "TerminatedWorkerError" not in out and "Traceback" not in out, out[-3000:]
    root = runs / "ptb" / "smoke" / "sqrt_legw"
    assert [summary(root / f"b20-s{k}")["status"] for k in (0, 1)] == ["preempted"] * 2
