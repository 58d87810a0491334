"""The sweep planner (legw_repro/sweep.py): what a sweep trains, what it shares at k=1, and
where every run and record lives -- checked without training or touching a file."""

from __future__ import annotations

from pathlib import Path

import yaml

from legw_repro.sweep import Grid, Job, plan_runs, record_dir, results_dir, sweep_grids
from tests.helpers import REPO

OPTIMIZERS = {"sqrt_legw": "sgd", "linear": "sgd", "sqrt": "sgd", "adam": "adam"}


def _plan(grids: dict[str, Grid]) -> list[Job]:
    return plan_runs(Path("runs"), "ptb", "cpu", grids, base_batch=20, optimizers=OPTIMIZERS)


def test_k1_sgd_policies_share_one_run_and_adam_trains_its_own():
    grid = Grid(batch_sizes=(20, 80), policies=("sqrt_legw", "linear", "adam", "sqrt"), seeds=(0,))
    jobs = _plan({"": grid})
    assert [(j.policy, j.batch) for j in jobs] == [
        (p, b) for b in (20, 80) for p in ("sqrt_legw", "linear", "adam", "sqrt")
    ]
    by = {(j.policy, j.batch): j for j in jobs}
    shared = Path("runs/ptb/cpu/sqrt_legw/b20-s0")
    assert by["sqrt_legw", 20].run_dir == shared and by["sqrt_legw", 20].alias_of is None
    assert by["linear", 20].alias_of == by["sqrt", 20].alias_of == shared
    assert by["linear", 20].run_dir == Path("runs/ptb/cpu/linear/b20-s0")
    assert by["adam", 20].alias_of is None  # another optimizer: another schedule at k=1
    assert all(j.alias_of is None for j in jobs if j.batch == 80)


def test_variants_get_their_own_folders_overrides_and_k1_sharing():
    sweep = {
        "batch_sizes": [20, 80],
        "policies": ["sqrt_legw", "linear"],
        "seeds": [0, 1],
        "variants": {
            "noclip": {"batch_sizes": [80], "overrides": ["task.sgd.clip=0"]},
            "shifted": {"overrides": ["task.schedule.handover=shifted"]},
        },
    }
    grids = sweep_grids(sweep, seeds=[3])  # the command line's seeds replace the file's
    assert list(grids) == ["", "noclip", "shifted"]
    assert grids["noclip"] == Grid((80,), ("sqrt_legw", "linear"), (3,), ("task.sgd.clip=0",))
    jobs = _plan(grids)
    noclip = [j for j in jobs if j.variant == "noclip"]
    assert {j.run_dir.parent.parent for j in noclip} == {Path("runs/ptb/cpu-noclip")}
    assert all(j.overrides == ("task.sgd.clip=0",) and j.seed == 3 for j in noclip)
    shifted = {j.policy: j for j in jobs if j.variant == "shifted" and j.batch == 20}
    assert shifted["linear"].alias_of == Path("runs/ptb/cpu-shifted/sqrt_legw/b20-s3")
    assert all(not j.overrides for j in jobs if j.variant == "")
    assert list(sweep_grids(sweep, variants=False)) == [""]


def test_record_paths_mirror_run_paths_beside_the_results():
    out = Path("results/ptb")
    main = Job("linear", 80, 1, Path("runs/ptb/cpu/linear/b80-s1"))
    variant = Job("adam", 80, 0, Path("runs/ptb/cpu-long/adam/b80-s0"), variant="long")
    assert record_dir(out, main) == Path("results/ptb/records/linear/b80-s1")
    assert record_dir(out, variant) == Path("results/ptb-long/records/adam/b80-s0")
    assert results_dir(Path("results/smoke/mnist"), "noclip") == Path("results/smoke/mnist-noclip")


def test_the_committed_mnist_sweep_trains_96_runs_in_its_main_grid():
    sweep = yaml.safe_load((REPO / "configs" / "sweep" / "mnist_cpu.yaml").read_text())
    optimizers = {
        p: yaml.safe_load((REPO / "configs" / "policy" / f"{p}.yaml").read_text())["optimizer"]
        for p in sweep["policies"]
    }
    jobs = plan_runs(
        Path("runs"), "mnist", "cpu", sweep_grids(sweep), base_batch=128, optimizers=optimizers
    )
    trained = [j for j in jobs if j.alias_of is None]
    assert len([j for j in trained if j.variant == ""]) == 96  # as docs/mnist-tuning.md says
    assert len({j.run_dir for j in jobs}) == len(jobs)  # no two jobs share a directory
    aliases = [j for j in jobs if j.alias_of is not None]
    assert all(j.batch == 128 and optimizers[j.policy] == "sgd" for j in aliases)
    assert all(j.alias_of in {t.run_dir for t in trained} for j in aliases)
