"""The run spec: built once from the composed config, checked there with errors that name the
key, shared by the trainer, the task and the schedule, and written whole into summary.json."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

import legw_repro.config.spec as spec_module
from legw_repro.config.spec import RunSpec, build_spec
from legw_repro.config.validate import ConfigError
from legw_repro.run.lifecycle import run
from legw_repro.schedule import ScheduleSpec
from tests.helpers import make_cfg, summary
from tests.test_train import SMALL


@pytest.mark.parametrize("task", ["ptb", "mnist", "gnmt"])
def test_spec_reads_the_recipe_and_round_trips_through_json(task):
    cfg = make_cfg(f"task={task}", "policy=adam", "batch_size=256", "scale=smoke")
    spec = build_spec(cfg)
    assert spec.optimizer.name == "adam" and spec.optimizer.base_lr == cfg.task.adam.base_lr
    assert spec.schedule.base_lr == spec.optimizer.base_lr  # one recipe, read once
    assert spec.schedule.batch_size == 256 and spec.k == 256 / cfg.task.base_batch_size
    assert spec.schedule.handover == cfg.task.schedule.handover
    assert spec.optimizer.clip == cfg.task.adam.clip
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    hash(spec)  # frozen all the way down: no DictConfig or list inside


def test_multistep_milestones_and_clip_off():
    cfg = make_cfg(
        "task=mnist",
        "task.schedule.decay=multistep",
        "task.sgd.clip=0",
        "device=cpu",
    )
    spec = build_spec(cfg, world_size=2)
    assert spec.schedule.params() == {"milestones": [5, 8], "gamma": 0.1}
    assert spec.optimizer.clip is None and spec.world_size == 2
    assert (spec.device, spec.precision) == ("cpu", "fp32")  # bf16 is CUDA-only: refused on cpu
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("task.sgd.clip=-1", "task.sgd.clip"),
        ("task.sgd.momentum=fast", "task.sgd.momentum='fast'"),
        ("policy.optimizer=rmsprop", "policy.optimizer='rmsprop'"),
        ("diverge_factor=0", "diverge_factor=0"),
        ("eval_every_epochs=0", "eval_every_epochs=0"),
        ("checkpoint_every_min=-1", "checkpoint_every_min=-1"),
        ("task.schedule.handover=diagonal", "handover='diagonal'"),
        ("epochs=abc", "epochs='abc'"),
        ("task.cls=nowhere.Task", "task.cls='nowhere.Task'"),
    ],
)
def test_bad_values_name_the_key(override, needle):
    with pytest.raises(ConfigError) as e:
        build_spec(make_cfg(override))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_built_once_and_written_whole_into_the_summary(tmp_path, shared_data_dir, monkeypatch):
    built: list = []
    real = spec_module.check_recipe

    def counting(cfg):
        built.append(cfg)
        return real(cfg)

    monkeypatch.setattr(spec_module, "check_recipe", counting)
    cfg = make_cfg(*SMALL, f"data_dir={shared_data_dir}", "task.sgd.clip=0")
    assert run(cfg, tmp_path)["status"] == "completed"
    assert len(built) == 1  # the optimizer recipe is looked up once per run
    s = summary(tmp_path)
    assert s["record_version"] == 2
    spec = RunSpec.from_dict(s["spec"])
    assert spec == build_spec(cfg)
    assert s["clip"] is None and spec.optimizer.clip is None
    assert s["model"] == OmegaConf.to_container(cfg.task.model) and s["model"]["size"] == "tiny"
    flat = ("task", "policy", "batch_size", "base_batch_size", "seed", "scale", "epochs")
    assert all(s[k] == getattr(spec, k) for k in flat)
    assert (s["base_lr"], s["optimizer"]) == (spec.optimizer.base_lr, spec.optimizer.name)
    assert (s["rule"], s["warmup"], s["decay"]) == (
        spec.schedule.rule,
        spec.schedule.warmup,
        spec.schedule.decay,
    )
    assert isinstance(spec.schedule, ScheduleSpec)
