"""The gradient noise scale (legw_repro/noise/estimator.py): the unbiased two-batch algebra on a case
worked by hand, recovery of a known B_simple on a synthetic problem, the interval, the DDP
reduce hook, and the CLI end to end on a tiny MNIST run."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from legw_repro.noise import cli as noise_cli
from legw_repro.noise import estimator as noise
from legw_repro.noise.synthetic import LinearRegressionTask, true_b_simple
from tests.helpers import make_cfg


def test_unbiased_pair_by_hand():
    # |G|^2 = 1, tr(Sigma) = 64, B_small = 16, B_big = 64: E|G_16|^2 = 1 + 64/16 = 5 and
    # E|G_64|^2 = 1 + 64/64 = 2; the estimators must give back exactly 1 and 64
    g2, trace = noise.unbiased_pair(5.0, 2.0, 16, 64)
    assert g2 == pytest.approx(1.0) and trace == pytest.approx(64.0)


def test_draw_norms_by_hand():
    # one weight w = 0, loss_i(w) = (w - a_i)^2 / 2 on single items a = 1, 3 (B_small = 1):
    # gradients g_1 = -1, g_2 = -3; |G_small|^2 = (1 + 9) / 2 = 5; G_big = -2, |G_big|^2 = 4;
    # |G|^2_est = (2*4 - 1*5) / (2 - 1) = 3; tr(Sigma)_est = (5 - 4) / (1 - 1/2) = 2 -- the
    # sample variance of {-1, -3} (ddof=1) is 2, and mean^2 - var/2 = 4 - 1 = 3
    w = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(w.weight)

    def loss(a, carry):
        return 0.5 * (w.weight.sum() - a) ** 2

    small, big = noise.draw_norms(w, loss, [torch.tensor(1.0), torch.tensor(3.0)])
    assert (small, big) == (pytest.approx(5.0), pytest.approx(4.0))
    g2, trace = noise.unbiased_pair(small, big, 1, 2)
    assert (g2, trace) == (pytest.approx(3.0), pytest.approx(2.0))
    assert w.weight.grad is None  # no gradient left behind for an optimizer to apply


def test_reduce_sums_over_ranks():
    # two ranks holding the same micro-batches: the reduced draw equals one process with both
    w = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(w.weight)

    def loss(a, carry):
        return 0.5 * (w.weight.sum() - a) ** 2

    a = [torch.tensor(1.0), torch.tensor(3.0)]
    alone = noise.draw_norms(w, loss, a + a)
    reduced = noise.draw_norms(w, loss, a, reduce=lambda t: 2 * t)
    assert reduced == pytest.approx(alone)


def test_estimate_is_a_ratio_of_means():
    small, big = [5.0, 7.0, 3.0], [2.0, 2.5, 1.5]
    est = noise.estimate(small, big, 16, 64, n_boot=200)
    g2, trace = noise.unbiased_pair(torch.tensor(small), torch.tensor(big), 16, 64)
    assert est.b_simple == pytest.approx(float(trace.mean() / g2.mean()))
    assert est.ci_low <= est.b_simple <= est.ci_high and est.n_draws == 3


def test_estimate_without_signal_is_infinite():
    # |G_big|^2 no smaller than a noiseless |G_small|^2 would allow: no positive |G|^2
    est = noise.estimate([1.0, 1.0], [0.0, 0.0], 1, 2, n_boot=50)
    assert est.g2 < 0 and math.isinf(est.b_simple) and math.isinf(est.ci_high)


def test_bad_batch_sizes_are_refused():
    with pytest.raises(ValueError, match="b_big=100 must be a multiple of b_small=64"):
        noise.check_batches(64, 100)
    with pytest.raises(ValueError, match="b_big=64"):
        noise.check_batches(64, 64)


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_known_noise_scale_within_10_percent(seed):
    # B_simple = (20 (1 + 4) + 1) / 1 = 101, above B_big = 64 as on a real task late in training
    task = LinearRegressionTask(d=20, delta_sq=1.0, sigma_sq=4.0, b_small=8, m=8, seed=seed)
    assert task.b_simple == true_b_simple(20, 1.0, 4.0) == 101.0
    small, big = noise.measure_task(task, task.model(), 1000)
    est = noise.estimate(small, big, 8, 64, seed=seed, level=0.99)
    assert abs(est.b_simple / task.b_simple - 1) < 0.10
    # the 90 % interval covered the truth in 36 of 40 seeds (0.90); here the 99 % one must
    assert est.ci_low < task.b_simple < est.ci_high
    assert est.trace_sigma == pytest.approx(101.0, rel=0.1) and est.g2 == pytest.approx(1, rel=0.1)


def _run_dir(tmp_path, data_dir):
    """A run record directory holding only the config of a tiny MNIST run (2 epochs)."""
    cfg = make_cfg(
        "task=mnist",
        "scale=smoke",
        "task.max_train_items=256",
        "task.max_eval_items=100",
        "batch_size=64",
        f"data_dir={data_dir}",
        "wandb.mode=disabled",
    )
    run = tmp_path / "b64-s0"
    run.mkdir()
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return run


@pytest.mark.slow
def test_cli_measures_every_epoch_and_resumes(tmp_path, shared_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("LEGW_DATA_DIR", str(shared_data_dir))
    run, out, ckpt = _run_dir(tmp_path, shared_data_dir), tmp_path / "out", tmp_path / "ckpt"
    args = ["--run", str(run), "--out", str(out), "--checkpoints", str(ckpt)]
    args += ["--b-small", "16", "--b-big", "64", "--draws", "3", "--early", "2"]
    assert noise_cli.main(args) == 0
    # 256 // 64 = 4 steps an epoch; early points at 1/4 and 1/2 of the first: steps 1 and 2
    names = ["epoch-000.pt", "epoch-000.250.pt", "epoch-000.500.pt", "epoch-001.pt"]
    assert sorted(p.name for p in ckpt.iterdir()) == sorted([*names, "epoch-002.pt"])
    rows = list(csv.DictReader((out / "noise.csv").open()))
    assert [float(r["epoch"]) for r in rows] == [0, 0.25, 0.5, 1, 2]
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 4, 8]
    assert all(int(r["n_draws"]) == 3 and float(r["trace_sigma"]) > 0 for r in rows)
    assert "| 2 | 8 |" in (out / "table.md").read_text()
    # a second call keeps what is there: nothing re-trained, nothing re-measured
    mtimes = {p: p.stat().st_mtime_ns for p in ckpt.iterdir()}
    assert noise_cli.main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in ckpt.iterdir()} == mtimes
    assert list(csv.DictReader((out / "noise.csv").open())) == rows


def test_cli_refuses_bad_sizes_before_work(tmp_path, capsys):
    code = noise_cli.main(["--run", str(tmp_path), "--out", str(tmp_path), "--b-big", "100"])
    assert code == 2
    assert "b_big=100 must be a multiple of b_small=64" in capsys.readouterr().err


def test_cli_refuses_a_folder_without_config(tmp_path, capsys):
    assert noise_cli.main(["--run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "holds no config.yaml" in capsys.readouterr().err


def test_epochs_needed_by_hand():
    from legw_repro.noise.predict import epochs_needed, reading

    # the base batch itself needs exactly the base run's epochs, whatever B_noise is
    assert epochs_needed(128, 128, [100.0, 1000.0, 2000.0]) == pytest.approx(2.0)
    # B_noise = 128 throughout: batch 384 needs (1 + 3) / (1 + 1) = 2x the epochs
    assert epochs_needed(384, 128, [128.0, 128.0, 128.0, 128.0]) == pytest.approx(6.0)
    # one epoch, B_noise 100 then 300: (1+2)/(1+1) = 1.5 and (1+2/3)/(1+1/3) = 1.25 -> 1.375
    assert epochs_needed(200, 100, [100.0, 300.0]) == pytest.approx(1.375)
    # points inside an epoch weigh by their spacing: half an epoch at each end's ratio
    assert epochs_needed(200, 100, [100.0, 100.0, 300.0], at=[0, 0.5, 1]) == pytest.approx(
        0.5 * 1.5 + 0.5 * 1.375
    )
    assert reading(True, -1.0, 0.2) == "starved" and reading(False, -1.0, 0.2) == "rule-limited"
    assert reading(False, -0.1, 0.2) == "holds" and reading(True, 0.0, 0.2) == "model pessimistic"


def test_cli_task_defaults():
    run, out = noise_cli.task_defaults("mnist")
    assert (
        str(run) == "results/mnist/cpu/records/sqrt_legw/b128-s0"
        and str(out) == "results/mnist/noise"
    )
    assert noise_cli.task_defaults("ptb")[0].name == "b20-s0"
    with pytest.raises(noise_cli.NoiseError, match="--task 'mnsit' is unknown"):
        noise_cli.task_defaults("mnsit")


@pytest.mark.parametrize(("task_name", "b_small", "b_big"), [("ptb", 5, 20), ("gnmt", 16, 64)])
def test_every_task_goes_through_the_task_interface(task_name, b_small, b_big, shared_data_dir):
    # the smoke-scale models at initialisation: a finite, positive noise scale from 3 draws
    cfg = make_cfg(f"task={task_name}", "scale=smoke", f"data_dir={shared_data_dir}", "device=cpu")
    task = noise_cli.build_task(noise_cli.draw_config(cfg, b_small, b_big))
    assert (task.batch_size, task.accum_steps) == (b_big, b_big // b_small)
    torch.manual_seed(0)
    small, big = noise.measure_task(task, task.build_model(), 3)
    est = noise.estimate(small, big, b_small, b_big, n_boot=100)
    assert 0 < est.b_simple < float("inf") and est.trace_sigma > 0


def test_a_measured_fraction_of_an_epoch_matches_its_checkpoint(tmp_path):
    # the row holds the exact 27 / 429; the file name 0.063: both must name the same point
    exact = 27 / 429
    path = noise_cli.epoch_path(tmp_path, exact)
    assert (
        path.name == "epoch-000.063.pt" and noise_cli.epoch_path(tmp_path, 3).name == "epoch-003.pt"
    )
    assert noise_cli.epoch_key(str(exact)) == noise_cli.epoch_key(noise_cli.epoch_of(path))


def _rank(rank: int, world: int, init: str, out: str) -> None:
    """One DDP rank: its half of the micro-batches, the draw's norms summed over ranks."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    data = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    mine = [data[i : i + 2] for i in range(0, 8, 2)][rank * 2 : rank * 2 + 2]
    norms = noise.draw_norms(
        model, lambda x, c: model(x).square().mean(), mine, reduce=noise.all_reduce_sum
    )
    if rank == 0:
        torch.save(norms, out)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_all_reduce_gives_the_one_process_draw(tmp_path):
    # two gloo ranks of 2 micro-batches each = one process holding all 4
    import torch.multiprocessing as mp

    out = tmp_path / "norms.pt"
    mp.spawn(_rank, args=(2, f"file://{tmp_path / 'init'}", str(out)), nprocs=2, join=True)
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    data = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    alone = noise.draw_norms(
        model, lambda x, c: model(x).square().mean(), [data[i : i + 2] for i in range(0, 8, 2)]
    )
    assert torch.load(out) == pytest.approx(alone)


@pytest.mark.slow
def test_cli_under_torchrun_gives_the_one_process_b_simple(tmp_path, shared_data_dir, monkeypatch):
    # same checkpoints, same draws: 2 gloo processes (2 of the 4 micro-batches each, sums
    # all-reduced) against 1 process. Equal within float tolerance, not bit for bit: the
    # micro-batch gradients are float32 and summed in another order (per rank, then across).
    import os
    import subprocess
    import sys

    monkeypatch.setenv("LEGW_DATA_DIR", str(shared_data_dir))
    run, ckpt = _run_dir(tmp_path, shared_data_dir), tmp_path / "ckpt"
    common = ["--run-dir", str(run), "--checkpoints", str(ckpt), "--early", "0"]
    common += ["--b-small", "16", "--b-big", "64", "--draws", "3"]
    assert noise_cli.main([*common, "--stage", "trajectory", "--out", str(tmp_path / "a")]) == 0
    assert noise_cli.main([*common, "--stage", "measure", "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "legw_repro.noise.cli", *common, "--stage", "measure"]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "two")], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    one, two = (list(csv.DictReader((tmp_path / d / "noise.csv").open())) for d in ("one", "two"))
    assert [r["epoch"] for r in one] == [r["epoch"] for r in two] == ["0", "1", "2"]
    for a, b in zip(one, two, strict=True):
        for key in ("b_simple", "g2", "trace_sigma", "ci_low", "ci_high"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-4), key
    # a trajectory under torchrun is refused with one line
    bad = subprocess.run(
        [*cmd[:-2], "--stage", "trajectory", "--out", str(tmp_path / "x")],
        env=env,
        capture_output=True,
    )
    assert bad.returncode != 0 and b"only --stage measure" in bad.stderr
