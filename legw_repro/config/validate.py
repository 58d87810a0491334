"""Config checks that turn mistakes into one-line errors naming the key, before anything runs.

`check_config` looks at the composed config as a whole: keys nobody reads (a typo such as
`+batchsize=20`, answered with the closest known key), keys removed from it, every value against
its declaration (`legw_repro/config/keys.py`, the one home of a key's type and range), then the
combinations no single declaration sees (a batch that does not split over the processes, bf16
without CUDA, a policy contradicting its own file; a task's own in `Task.check_config`, e.g.
GNMT's tied embeddings). `legw_repro.config.spec.build_spec` calls it before reading the values
into a `RunSpec`, and then checks the LR schedule as a whole. Data-dependent limits (a batch
larger than the data set) are checked when the data is loaded, still before the first step
(`check_task_data`, from legw_repro/run/lifecycle.py).
"""

from __future__ import annotations

import difflib
import functools
import importlib
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from legw_repro.config.config_dir import CONFIGS
from legw_repro.config.fingerprint import flatten
from legw_repro.config.keys import rules_for, show
from legw_repro.run.status import Refused, one_line

#: groups whose options are chosen by name on the command line (`task=ptb`)
GROUPS = ("task", "policy", "scale", "task_scale", "experiment")


class ConfigError(Refused):
    """A bad config value. The message names the key, the value, and the fix, on one line."""


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain Python with every interpolation resolved; a broken one names its key."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "a key"
        msg = one_line(str(e).split("full_key:")[0])
        raise ConfigError(f"{key} cannot be resolved ({msg}); fix or remove that value") from None


# -- which keys exist ----------------------------------------------------------------------
def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    tree = {k: v for k, v in tree.items() if k not in ("defaults", "hydra")}
    return set(flatten({prefix: tree} if prefix else tree))


@functools.cache
def _group_keys(group: str, stem: str | None) -> frozenset[str]:
    """Keys the files of a group put in the config (`stem`: that option only, if it exists)."""
    folder = CONFIGS / group
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if stem is not None:  # that option only (none here: a task from another config dir)
        files = [f for f in files if f.stem == stem]
    out: set[str] = set()
    for f in files:
        data = _yaml(f)
        is_global = f.read_text().lstrip().startswith("# @package _global_") or group in (
            "task_scale",
            "experiment",
        )
        out |= _keys(data, "" if is_global else group)
    return frozenset(out)


@functools.cache
def file_keys(task_name: str | None = None, policy_name: str | None = None) -> frozenset[str]:
    """Every key the shipped config files define (`task_name`'s and `policy_name`'s files when
    given: a key only one policy file has, e.g. `policy.lr_multiplier`, is not missing from the
    others)."""
    keys = set(_keys(_yaml(CONFIGS / "train.yaml")))
    keys |= _group_keys("task", task_name) | _group_keys("policy", policy_name)
    keys |= _group_keys("scale", None) | _group_keys("experiment", None)
    scale_files = CONFIGS / "task_scale"
    for f in sorted(scale_files.glob(f"{task_name}_*.yaml" if task_name else "*.yaml")):
        keys |= _keys(_yaml(f))
    return frozenset(keys)


def known_keys(task_name: str | None = None) -> frozenset[str]:
    """The keys a user may set: the files' keys (every task's when `task_name` is None) and the
    optional ones the code reads with a default (`wandb.run_id`). A task's own keys are also
    those its class declares (`Task.config_keys`, added by `check_keys`)."""
    from legw_repro.config.keys import COMMON

    return frozenset(file_keys(task_name) | set(COMMON))


def closest_key(key: str, known: frozenset[str]) -> str | None:
    hit = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    if hit:
        return hit[0]
    leaf = key.rsplit(".", 1)[-1]
    by_leaf = {k.rsplit(".", 1)[-1]: k for k in sorted(known)}
    hit = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.7)
    return by_leaf[hit[0]] if hit else None


def unknown_key_error(key: str, value: Any, known: frozenset[str]) -> ConfigError:
    best = closest_key(key, known)
    fix = (
        f"did you mean {best}?" if best else "see configs/train.yaml and configs/task/ for the keys"
    )
    return ConfigError(f"{key}={show(value)} is not a config key; {fix}")


def check_keys(flat: dict[str, Any], task_name: str | None, task_cls: type | None = None) -> None:
    """No key the code never reads (a typo), and none of the shipped ones removed."""
    if not CONFIGS.is_dir():  # an installed copy without the configs: nothing to compare with
        return
    known = known_keys(task_name) | set(getattr(task_cls, "config_keys", {}))
    for key, value in flat.items():
        if key not in known and not (value == {} and any(k.startswith(key + ".") for k in known)):
            raise unknown_key_error(key, value, known)


# -- values and combinations ---------------------------------------------------------------
def task_class(cfg: DictConfig) -> type:
    path = str(cfg.task.get("cls", ""))
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            f"task.cls={path!r} cannot be imported ({one_line(e)}); it must name a Task "
            "class (a subclass of legw_repro.tasks.base.Task), as configs/task/*.yaml do"
        ) from None


def check_recipe(cfg: DictConfig) -> DictConfig:
    """The task's recipe for the policy's optimizer (task.sgd / task.adam; the name is checked
    by its declaration, in `check_values`)."""
    name = str(cfg.policy.optimizer)
    recipe = cfg.task.get(name)
    if recipe is None:
        raise ConfigError(
            f"task {cfg.task.name!r} has no recipe for optimizer {name!r}: "
            f"add a task.{name} section (base_lr, clip) to its config"
        )
    return recipe


def check_values(flat: dict[str, Any], task_cls: type, task_name: str | None) -> None:
    rules = rules_for(task_cls)
    policy = flat.get("policy.name")
    policy = policy if isinstance(policy, str) else None
    shipped = file_keys(task_name, policy) if CONFIGS.is_dir() else frozenset()
    for key, rule in rules.items():
        if key in flat:
            err = rule.error(key, flat[key])
            if err:
                raise ConfigError(err)
        elif key in shipped:
            raise ConfigError(f"{key} is missing from the config; restore it (see configs/)")


def _check_policy(flat: dict[str, Any]) -> None:
    """policy=adam policy.optimizer=sgd once trained SGD and recorded it as adam."""
    name = flat.get("policy.name")
    shipped = _yaml(CONFIGS / "policy" / f"{name}.yaml")
    for field in ("optimizer", "rule", "warmup"):
        if field in shipped and flat.get(f"policy.{field}") != shipped[field]:
            raise ConfigError(
                f"policy.{field}={show(flat.get(f'policy.{field}'))} contradicts policy={name} "
                f"(configs/policy/{name}.yaml: {field}: {shipped[field]}); pick the policy "
                "whose recipe you want, or give yours a new policy.name"
            )


def check_combinations(flat: dict[str, Any], world_size: int) -> None:
    batch, accum = flat["batch_size"], flat["accum_steps"]
    if batch % (world_size * accum):
        raise ConfigError(
            f"batch_size={batch} is the global batch and must divide evenly over "
            f"world_size={world_size} processes x accum_steps={accum}; choose a multiple of "
            f"{world_size * accum}"
        )
    device = flat["device"]
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ConfigError("device='cuda' but no CUDA device is available; use device=cpu or auto")
    if flat["precision"] == "bf16" and (device == "cpu" or not cuda):
        raise ConfigError(
            f"precision='bf16' is bf16 autocast on CUDA, but this run is on the CPU "
            f"(device={device!r}); use precision=fp32 (or a CUDA device)"
        )
    if CONFIGS.is_dir():
        _check_policy(flat)


def check_config(cfg: DictConfig, world_size: int = 1) -> None:
    """Everything that can be checked without data or a model: ConfigError on the first fault."""
    flat = flatten(resolved(cfg))
    task_name = flat.get("task.name")
    task_name = task_name if isinstance(task_name, str) else None
    cls = task_class(cfg)
    check_keys(flat, task_name, cls)
    check_values(flat, cls, task_name)
    check_combinations(flat, world_size)
    cls.check_config(flat)


def check_task_data(task: Any, epochs: float | None = None) -> None:
    """Limits that need the data (after `task.check_data()`, before the model is built): the
    batch must fit the training split (each task's `steps_per_epoch` refuses it), the epoch
    budget must give at least one optimizer step (`check_epoch_budget`), and the task's own
    (`Task.check_limits`, e.g. PTB's evaluation windows)."""
    spe = task.steps_per_epoch
    if epochs is not None:
        check_epoch_budget(epochs, spe)
    task.check_limits()


def check_epoch_budget(epochs: float, steps_per_epoch: int) -> None:
    """`epochs=1e-9` trained one step (the step count is rounded up to 1) and recorded
    "completed": a budget under one optimizer step is refused instead, naming the least epochs
    that give one at this batch size."""
    if epochs * steps_per_epoch < 1:
        raise ConfigError(
            f"epochs={show(epochs)} gives {epochs * steps_per_epoch:.3g} optimizer steps at "
            f"{steps_per_epoch} steps per epoch; an epoch budget must give at least one step: "
            f"epochs >= {1 / steps_per_epoch:.3g}"
        )
