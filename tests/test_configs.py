"""Every shipped config composes and validates, at every point of every sweep grid, before
anyone spends an hour finding out that a LEGW warmup does not fit the largest batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from legw_repro.grid import EXPERIMENTS as EXPERIMENTS_DIR
from legw_repro.grid import expand
from legw_repro.schedule import POLICIES
from legw_repro.spec import build_spec
from tests.helpers import REPO

# every grid: configs/experiment/<task>_<scale>.yaml and its variants <task>_<scale>/<variant>.yaml
EXPERIMENTS = sorted(
    p.relative_to(EXPERIMENTS_DIR).with_suffix("").as_posix()
    for p in EXPERIMENTS_DIR.rglob("*.yaml")
    if not p.name.startswith("_")
)


@pytest.mark.parametrize("policy_file", sorted((REPO / "configs" / "policy").glob("*.yaml")))
def test_policy_configs_match_the_schedule_library(policy_file: Path):
    p = yaml.safe_load(policy_file.read_text())
    assert p["name"] == policy_file.stem
    if p["name"] in POLICIES:
        assert (p["rule"], p["warmup"]) == (POLICIES[p["name"]].rule, POLICIES[p["name"]].warmup)
        assert p["optimizer"] == "sgd"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_sweep_point_validates(experiment: str):
    task, scale = experiment.split("/")[0].rsplit("_", 1)
    points = expand(experiment)
    assert points  # runs/<task>/<scale>[-<variant>]/<policy>/b<batch>-s<seed>
    assert {(p.run_dir.parts[-4], p.run_dir.parts[-3].split("-")[0]) for p in points} == {
        (task, scale)
    }
    for point in (p for p in points if p.seed == points[0].seed):  # a seed changes no check
        spec = build_spec(OmegaConf.create(dict(point.config)))
        assert spec.scale == point.config["scale"]["name"] == scale
