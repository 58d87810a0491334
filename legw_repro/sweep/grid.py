"""An experiment -- configs/experiment/<task>_<scale>.yaml and its variants in
configs/experiment/<task>_<scale>/<variant>.yaml -- expanded into its grid of points.

Why here: the grid is Hydra's own (`hydra.sweeper.params`, expanded as Hydra's basic sweeper
does: the product of the swept values, the command line's winning over the file's), and two
callers need it: the LEGW grid sweeper inside `python -m legw_repro.train -m`, which composes
each job with Hydra's config loader, and scripts/reproduce.py (plans, cost estimates, restoring
and exporting records), which composes with Hydra's compose API and so never creates a run or
sweep directory. `point_of` is the one place a composed job becomes a `Point`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from legw_repro.config.config_dir import CONFIGS
from legw_repro.sweep.plan import Point

EXPERIMENTS = CONFIGS / "experiment"


class GridError(ValueError):
    """An experiment that does not exist or does not expand: one line, naming the fix."""


def job_overrides(params: Mapping[str, str] | None, arguments: Sequence[str]) -> list[list[str]]:
    """Every job's overrides: the product of `params` (hydra.sweeper.params) and `arguments`
    (the command line), in Hydra's order (the last key varies fastest)."""
    given = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    parsed = OverridesParser.create().parse_overrides(given)
    return BasicSweeper.split_arguments(parsed, None)[0]


def point_of(cfg: DictConfig, overrides: Sequence[str]) -> Point:
    """A composed job as a Point: its run directory is where Hydra's launchers put it,
    hydra.sweep.dir / hydra.sweep.subdir. `cfg` holds the job's keys and, of the hydra node,
    `sweep` and `sweeper` (what `cached` keeps)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    hydra = plain.pop("hydra")  # type: ignore[union-attr]
    run_dir = Path(str(hydra["sweep"]["dir"])) / str(hydra["sweep"]["subdir"])
    return Point(tuple(overrides), run_dir, plain)  # type: ignore[arg-type]


def experiments(task: str, scale: str) -> dict[str, str]:
    """The experiments of a task and scale: {"": "<task>_<scale>", variant: "<task>_<scale>/
    <variant>", ...}; GridError naming the known ones when there is none."""
    main = f"{task}_{scale}"
    if not (EXPERIMENTS / f"{main}.yaml").is_file():
        known = sorted(p.stem for p in EXPERIMENTS.glob("*_*.yaml") if p.stem[0] != "_")
        raise GridError(f"no experiment {main!r} (configs/experiment/{main}.yaml); known: {known}")
    variants = sorted(p.stem for p in (EXPERIMENTS / main).glob("*.yaml"))
    return {"": main, **{v: f"{main}/{v}" for v in variants}}


def _is_value(override: Override) -> bool:
    """A plain `key=value` (or `+key=value`) on a job key, not a config-group choice."""
    key = override.key_or_group
    return not (
        override.is_delete()
        or override.package is not None
        or "/" in key
        or key.startswith("hydra")
        or (CONFIGS / key).is_dir()
    )


def cached(compose: Callable[[list[str]], DictConfig]) -> Callable[[list[str]], DictConfig]:
    """`compose`, called once per distinct set of config-group choices; a job's plain values
    (batch_size=80, seed=1) are then set on that composition, as Hydra's own merge of a value
    override does, and resolved with it by `point_of`. A grid of 105 points composes 5 times.
    The returned config is reused by the next job of the same shape: read it before that."""
    parser = OverridesParser.create()
    memo: dict[tuple[tuple[str, ...], tuple[str, ...]], DictConfig] = {}

    def compose_job(overrides: list[str]) -> DictConfig:
        parsed = parser.parse_overrides(list(overrides))
        values = [o for o in parsed if _is_value(o)]
        groups = tuple(o.input_line for o in parsed if not _is_value(o))
        shape = (groups, tuple(o.key_or_group for o in values))
        if shape not in memo:  # the job's keys, and what a Point reads of the hydra node
            full = compose(list(groups))
            slim = {k: v for k, v in full.items() if k != "hydra"}
            slim["hydra"] = {"sweep": full.hydra.sweep, "sweeper": full.hydra.sweeper}
            memo[shape] = OmegaConf.merge(slim)
        cfg = memo[shape]  # every job of this shape sets the same keys: updated in place
        for o in values:
            OmegaConf.update(cfg, o.key_or_group, o.value(), force_add=o.is_add())
        return cfg

    return compose_job


def expand(
    experiment: str,
    overrides: Sequence[str] = (),
    compose: Callable[[list[str]], DictConfig] | None = None,
) -> list[Point]:
    """The points of `+experiment=<experiment>` with the command line's `overrides` (a swept
    `seed=0,1` replaces the file's seeds). `compose(overrides)` returns a job's config with its
    hydra node; by default Hydra's compose API over configs/."""
    if compose is None:
        with _hydra():
            return expand(experiment, overrides, cached(_compose))
    arguments = [f"+experiment={experiment}", *overrides]
    params = compose([f"+experiment={experiment}"]).hydra.sweeper.get("params")
    return [point_of(compose(job), job) for job in job_overrides(params, arguments)]


def _hydra() -> Any:
    from hydra import initialize_config_dir

    return initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS))


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose

    return compose("train", overrides=overrides, return_hydra_config=True)
