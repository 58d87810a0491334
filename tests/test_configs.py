"""Every shipped config composes and validates, at every point of every sweep grid, before
anyone spends an hour finding out that a LEGW warmup does not fit the largest batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from legw_repro.schedule import POLICIES
from legw_repro.spec import build_spec
from tests.helpers import REPO, make_cfg

SWEEPS = sorted((REPO / "configs" / "sweep").glob("*.yaml"))


@pytest.mark.parametrize("policy_file", sorted((REPO / "configs" / "policy").glob("*.yaml")))
def test_policy_configs_match_the_schedule_library(policy_file: Path):
    p = yaml.safe_load(policy_file.read_text())
    assert p["name"] == policy_file.stem
    if p["name"] in POLICIES:
        assert (p["rule"], p["warmup"]) == (POLICIES[p["name"]].rule, POLICIES[p["name"]].warmup)
        assert p["optimizer"] == "sgd"


@pytest.mark.parametrize("sweep_file", SWEEPS, ids=[s.stem for s in SWEEPS])
def test_every_sweep_point_validates(sweep_file: Path):
    task, scale = sweep_file.stem.rsplit("_", 1)
    sweep = yaml.safe_load(sweep_file.read_text())
    grids = [sweep, *(sweep.get("variants") or {}).values()]
    for grid in grids:
        for policy in grid.get("policies", sweep["policies"]):
            for batch in grid.get("batch_sizes", sweep["batch_sizes"]):
                cfg = make_cfg(
                    f"task={task}",
                    f"scale={scale}",
                    f"policy={policy}",
                    f"batch_size={batch}",
                    *grid.get("overrides", []),
                )
                spec = build_spec(cfg)
                assert spec.scale == cfg.scale.name == scale
