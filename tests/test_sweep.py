"""The sweep planner (legw_repro/sweep/plan.py) and the experiments it plans (legw_repro/sweep/grid.py):
what a sweep trains, what it shares at k=1, what a relaunch skips, and where every run and
record lives -- checked without training or touching a file."""

from __future__ import annotations

from pathlib import Path

from legw_repro.sweep.grid import expand, experiments, job_overrides
from legw_repro.sweep.plan import Point, duplicate_dirs, plan, recipe, record_dir, results_dir

POLICIES = {
    "sqrt_legw": ("sgd", "sqrt", "legw"),
    "linear": ("sgd", "linear", "fixed"),
    "sqrt": ("sgd", "sqrt", "fixed"),
    "adam": ("adam", "sqrt", "legw"),
}


def _point(policy: str, batch: int, seed: int = 0, **policy_extra) -> Point:
    opt, rule, warmup = POLICIES[policy]
    pol = {"name": policy, "optimizer": opt, "rule": rule, "warmup": warmup, **policy_extra}
    config = {"task": {"base_batch_size": 20}, "policy": pol, "batch_size": batch, "seed": seed}
    return Point((f"policy={policy}",), Path(f"runs/ptb/cpu/{policy}/b{batch}-s{seed}"), config)


def test_k1_points_of_one_schedule_share_one_run_and_adam_trains_its_own():
    points = [_point(p, b) for b in (20, 80) for p in ("sqrt_legw", "linear", "adam", "sqrt")]
    the_plan = plan(points, {})
    trained = {(p.policy, p.batch) for p in the_plan.train}
    assert trained == {("sqrt_legw", 20), ("adam", 20)} | {(p, 80) for p in POLICIES}
    assert {(a.policy, src.policy) for a, src in the_plan.aliases} == {
        ("linear", "sqrt_legw"),
        ("sqrt", "sqrt_legw"),
    }
    assert all(a.batch == src.batch == 20 for a, src in the_plan.aliases)
    # a policy that changes anything else at k=1 (the oracle's LR multiplier) trains its own
    tuned = _point("sqrt_legw", 20, lr_multiplier=2.0)
    assert plan([points[0], tuned], {}).aliases == ()


def test_a_relaunch_launches_only_what_is_not_finished():
    points = [_point(p, 80) for p in POLICIES]
    status = {points[0].run_dir: "completed", points[1].run_dir: "diverged"}
    status |= {points[2].run_dir: "preempted", points[3].run_dir: "running"}
    the_plan = plan(points, status)
    assert [p.policy for p in the_plan.done] == ["sqrt_legw", "linear"]
    assert [p.policy for p in the_plan.train] == ["sqrt", "adam"]  # resumed with resume=true
    assert (
        the_plan.describe() == "4 runs (2 finished, 2 to train), 0 recorded as the shared k=1 run"
    )


def test_two_points_in_one_directory_are_found():
    a, b = _point("sqrt_legw", 80), _point("sqrt_legw", 80, seed=1)
    assert duplicate_dirs([a, b]) == []
    assert duplicate_dirs([a, Point(("x",), a.run_dir, b.config)]) == [a.run_dir]


def test_the_command_line_replaces_a_swept_key_and_keeps_hydra_order():
    jobs = job_overrides({"seed": "0", "batch_size": "20,80"}, ["+experiment=x", "seed=3,4"])
    assert jobs[0] == ["seed=3", "batch_size=20", "+experiment=x"]
    assert [j[:2] for j in jobs] == [
        ["seed=3", "batch_size=20"],
        ["seed=3", "batch_size=80"],
        ["seed=4", "batch_size=20"],
        ["seed=4", "batch_size=80"],
    ]


def test_the_mnist_experiment_trains_96_runs_and_its_variants_their_own_grids():
    assert experiments("mnist", "cpu") == {
        "": "mnist_cpu",
        "absolute": "mnist_cpu/absolute",
        "budget40": "mnist_cpu/budget40",
        "long": "mnist_cpu/long",
        "noclip": "mnist_cpu/noclip",
        "shifted": "mnist_cpu/shifted",
    }
    main = plan(expand("mnist_cpu"), {})
    assert len(main.train) == 96  # as results/mnist/cpu/tuning.md says: 105 points, 9 shared at k=1
    assert all(a.batch == 128 and src.policy == "sqrt_legw" for a, src in main.aliases)
    absolute = expand("mnist_cpu/absolute", ["seed=0"])
    assert {p.policy for p in absolute} == {"sqrt_legw"} and len(absolute) == 7
    assert {p.config["task"]["schedule"]["handover"] for p in absolute} == {"absolute"}
    assert absolute[0].run_dir == Path("runs/mnist/cpu-absolute/sqrt_legw/b128-s0")
    long = expand("mnist_cpu/long", ["seed=0"])
    assert {(p.batch, p.config["epochs"]) for p in long} == {(8192, 40)}
    assert {p.run_dir.parent.parent for p in long} == {Path("runs/mnist/cpu-long")}
    # the equal longer budget: every batch size at 40 epochs, three policies, one seed, shifted
    b40 = expand("mnist_cpu/budget40")
    assert {p.config["epochs"] for p in b40} == {40} and {p.seed for p in b40} == {0}
    assert {p.batch for p in b40} == {128, 256, 512, 1024, 2048, 4096, 8192}
    assert {p.policy for p in b40} == {"sqrt_legw", "sqrt", "linear"}
    assert {p.config["task"]["schedule"]["handover"] for p in b40} == {"shifted"}
    assert len(plan(b40, {}).train) == 19  # 21 points, 2 shared at k=1


def test_the_gnmt_experiment_trains_18_runs_and_its_variants_their_own_grids():
    assert experiments("gnmt", "cpu") == {
        "": "gnmt_cpu",
        "lr1": "gnmt_cpu/lr1",
        "seed1": "gnmt_cpu/seed1",
    }
    main = plan(expand("gnmt_cpu"), {})
    assert len(main.train) == 18  # 5 batch sizes x 4 policies, sqrt and linear shared at k=1
    seed1 = expand("gnmt_cpu/seed1")
    assert {(p.seed, p.batch) for p in seed1} == {(1, 128), (1, 2048)} and len(
        plan(seed1, {}).train
    ) == 6
    lr1 = expand("gnmt_cpu/lr1")
    assert [(p.policy, p.batch) for p in lr1] == [("sqrt_legw", b) for b in (128, 256, 512)]
    assert {p.config["task"]["sgd"]["base_lr"] for p in lr1} == {1.0}
    assert {p.run_dir.parent.parent for p in lr1} == {Path("runs/gnmt/cpu-lr1")}


def test_record_paths_mirror_run_paths_beside_the_results():
    out, point = Path("results/ptb/cpu"), _point("linear", 80, seed=1)
    assert record_dir(out, "", point) == Path("results/ptb/cpu/records/linear/b80-s1")
    assert record_dir(out, "long", point) == Path("results/ptb/cpu-long/records/linear/b80-s1")
    assert results_dir(Path("results/ptb/smoke"), "noclip") == Path("results/ptb/smoke-noclip")


def test_a_record_stands_for_a_point_unless_the_recipe_it_used_changed():
    def cfg(optimizer: str, adam_lr: float, sgd_lr: float = 3.0, epochs: int = 5) -> dict:
        task = {"sgd": {"base_lr": sgd_lr}, "adam": {"base_lr": adam_lr}, "schedule": {}}
        return {"task": task, "policy": {"optimizer": optimizer}, "epochs": epochs}

    # Adam's rate was tuned after the SGD runs were committed: they still stand...
    assert recipe(cfg("sgd", 0.002)) == recipe(cfg("sgd", 0.016))
    # ...the Adam runs do not, nor does a run with another SGD rate or budget
    assert recipe(cfg("adam", 0.002)) != recipe(cfg("adam", 0.016))
    assert recipe(cfg("sgd", 0.002, sgd_lr=1.0)) != recipe(cfg("sgd", 0.002))
    assert recipe(cfg("sgd", 0.002, epochs=6)) != recipe(cfg("sgd", 0.002))
    # the task's default budget is not the run's: only the top-level epochs count
    other_default = cfg("sgd", 0.002)
    other_default["task"]["epochs"] = 20
    assert recipe(other_default) == recipe(cfg("sgd", 0.002))
    # a record from before the hand-over option used its default
    new = cfg("sgd", 0.002)
    new["task"]["schedule"]["handover"] = "product"
    assert recipe(cfg("sgd", 0.002)) == recipe(new)
