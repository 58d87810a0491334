"""Config checks that turn mistakes into one-line errors naming the key, before anything runs."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from omegaconf import DictConfig

from legw_repro.schedule import validate_schedule


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


def validate(cfg: DictConfig, world_size: int = 1) -> None:
    """Everything that can be checked without data or a model."""
    batch = _positive_int(cfg.batch_size, "batch_size")
    accum = _positive_int(cfg.accum_steps, "accum_steps")
    _positive_int(cfg.task.base_batch_size, "task.base_batch_size")
    if batch % (world_size * accum):
        raise ConfigError(
            f"batch_size={batch} is the global batch and must divide evenly over "
            f"world_size={world_size} processes x accum_steps={accum}; choose a multiple of "
            f"{world_size * accum}"
        )
    if not isinstance(cfg.epochs, (int, float)) or isinstance(cfg.epochs, bool) or cfg.epochs <= 0:
        raise ConfigError(f"epochs={cfg.epochs!r} must be a positive number")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed!r} must be a non-negative integer")
    if not isinstance(cfg.resume, bool):
        raise ConfigError(f"resume={cfg.resume!r} must be true or false")
    _choice(cfg, "device", ["auto", "cpu", "cuda"])
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA device is available; use device=cpu or auto")
    _choice(cfg, "precision", ["fp32", "bf16"])
    _choice(cfg, "policy.optimizer", ["sgd", "adam"])
    _choice(cfg, "wandb.mode", ["auto", "online", "offline", "disabled"])
    if cfg.task.get(str(cfg.policy.optimizer)) is None:
        raise ConfigError(
            f"task {cfg.task.name!r} has no recipe for optimizer {cfg.policy.optimizer!r}: "
            f"add a task.{cfg.policy.optimizer} section (base_lr, clip) to its config"
        )
    if float(cfg.eval_every_epochs) <= 0:
        raise ConfigError(f"eval_every_epochs={cfg.eval_every_epochs!r} must be positive")
    from legw_repro.trainer import schedule_kwargs

    try:
        validate_schedule(**schedule_kwargs(cfg))
    except ValueError as e:
        raise ConfigError(
            f"invalid LR schedule (policy={cfg.policy.name}, batch_size={batch}, "
            f"epochs={cfg.epochs}; recipe in task.schedule / task.{cfg.policy.optimizer}): {e}"
        ) from None
    task_class(cfg)
