"""Config checks that turn mistakes into one-line errors naming the key, before anything runs.

These look at the composed config's keys one by one; `legw_repro.spec.build_spec` calls them
before it reads the values into a `RunSpec`, and then checks the LR schedule as a whole.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from omegaconf import DictConfig


class ConfigError(ValueError):
    """A bad config value. The message names the key, the value, and the fix."""


def _choice(cfg: DictConfig, key: str, allowed: list[str]) -> None:
    value = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, DictConfig) else None
    if str(value) not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {allowed}")


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value!r} must be a positive integer")
    return value


def _number(value: Any, key: str, *, strict: bool = False, hint: str = "") -> None:
    """A real number >= 0 (> 0 when strict); bools and strings are refused."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (strict and value == 0):
        raise ConfigError(f"{key}={value!r} must be a number {'> 0' if strict else '>= 0'}{hint}")


def task_class(cfg: DictConfig) -> type:
    path = str(cfg.task.get("cls", ""))
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(
            f"task.cls={path!r} cannot be imported ({e}); it must name a Task class, "
            "e.g. legw_repro.tasks.ptb.PTBTask"
        ) from None


def check_recipe(cfg: DictConfig) -> DictConfig:
    """The task's recipe for the policy's optimizer (task.sgd / task.adam), checked."""
    _choice(cfg, "policy.optimizer", ["sgd", "adam"])
    name = str(cfg.policy.optimizer)
    recipe = cfg.task.get(name)
    if recipe is None:
        raise ConfigError(
            f"task {cfg.task.name!r} has no recipe for optimizer {name!r}: "
            f"add a task.{name} section (base_lr, clip) to its config"
        )
    for key in ("momentum", "weight_decay", "eps"):
        if recipe.get(key) is not None:
            _number(recipe[key], f"task.{name}.{key}")
    if recipe.get("clip") is not None:
        _number(recipe.clip, f"task.{name}.clip", hint=" (0 or null: no clipping)")
    return recipe


def check_config(cfg: DictConfig, world_size: int = 1) -> None:
    """Everything that can be checked key by key, without data or a model (the optimizer recipe
    is checked where it is read: `check_recipe`)."""
    batch = _positive_int(cfg.batch_size, "batch_size")
    accum = _positive_int(cfg.accum_steps, "accum_steps")
    _positive_int(cfg.task.base_batch_size, "task.base_batch_size")
    if batch % (world_size * accum):
        raise ConfigError(
            f"batch_size={batch} is the global batch and must divide evenly over "
            f"world_size={world_size} processes x accum_steps={accum}; choose a multiple of "
            f"{world_size * accum}"
        )
    _number(cfg.epochs, "epochs", strict=True)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed!r} must be a non-negative integer")
    if not isinstance(cfg.resume, bool):
        raise ConfigError(f"resume={cfg.resume!r} must be true or false")
    _choice(cfg, "device", ["auto", "cpu", "cuda"])
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available; use device=cpu or auto")
    _choice(cfg, "precision", ["fp32", "bf16"])
    _choice(cfg, "wandb.mode", ["auto", "online", "offline", "disabled"])
    _number(cfg.eval_every_epochs, "eval_every_epochs", strict=True)
    _number(cfg.diverge_factor, "diverge_factor", strict=True)
    _number(cfg.checkpoint_every_min, "checkpoint_every_min", hint=" (0: only at epoch ends)")
    _number(cfg.checkpoint_every_steps or 0, "checkpoint_every_steps", hint=" (0: off)")
    task_class(cfg)
