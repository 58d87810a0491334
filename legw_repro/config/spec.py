"""The run spec: every value that defines one training run, read from the composed config once.

Why a typed value instead of the DictConfig: the optimizer recipe (`task.<optimizer>`), the batch
geometry and the schedule's arguments were looked up wherever they were needed, each lookup a
chance to read them differently. `build_spec` reads them in one place, checks them there (one
line naming the key, before anything is built) and returns a frozen `RunSpec` that the trainer,
the run record and the schedule (`spec.schedule`) share. `to_dict` is what summary.json
stores under "spec", so a record says exactly what ran without re-reading config.yaml.

Task-specific keys (model size, data limits) stay in the config: each task reads its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from legw_repro.config.keys import default
from legw_repro.config.validate import ConfigError, check_config, check_recipe
from legw_repro.run.status import one_line
from legw_repro.schedule import ScheduleSpec


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """The device `device=auto|cpu|cuda` names (auto: CUDA when there is one)."""
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(pref)


@dataclass(frozen=True)
class OptimizerSpec:
    """The task's recipe for one optimizer, tuned at the base batch (`task.sgd`, `task.adam`)."""

    name: str  # sgd | adam
    base_lr: float
    # where a recipe omits a field: adam's keys' declared defaults (config/keys.py)
    momentum: float = 0.0  # sgd only
    weight_decay: float = default("task.adam.weight_decay")
    clip: float | None = None  # gradient-norm clip; None: off (0 or null in the config)
    betas: tuple[float, float] = default("task.adam.betas")
    eps: float = default("task.adam.eps")


@dataclass(frozen=True)
class LoopSpec:
    """When the loop evaluates, checkpoints and gives up (not the optimisation itself)."""

    eval_every_epochs: float = 1.0
    diverge_factor: float = 2.0  # diverged: mean loss of 20 steps > this x the first loss
    checkpoint_every_min: float = 10.0  # 0: only at epoch ends
    checkpoint_every_steps: int = 0  # 0: off


@dataclass(frozen=True)
class RunSpec:
    task: str
    policy: str
    scale: str
    seed: int
    batch_size: int  # the global batch of one optimizer step
    base_batch_size: int  # the batch the recipe was tuned at (k = batch_size / base_batch_size)
    accum_steps: int  # micro-batches per rank per step
    world_size: int  # processes (ranks); batch_size divides by world_size x accum_steps
    epochs: float  # as configured (an int stays an int in the record)
    device: str  # cpu | cuda (resolved from device=auto)
    precision: str  # fp32 | bf16
    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    loop: LoopSpec = field(default_factory=LoopSpec)
    #: the tuned-LR oracle's factor on the recipe's rate (already in optimizer.base_lr)
    lr_multiplier: float = 1.0

    @property
    def k(self) -> float:
        return self.batch_size / self.base_batch_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: plain numbers, strings and lists; the schedule in its flat keyword form."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["optimizer"] = dataclasses.asdict(self.optimizer)
        out["optimizer"]["betas"] = list(self.optimizer.betas)
        out["loop"] = dataclasses.asdict(self.loop)
        out["schedule"] = self.schedule.kwargs()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """The inverse of `to_dict` (e.g. from a summary.json's "spec")."""
        opt = {**d["optimizer"], "betas": tuple(d["optimizer"]["betas"])}
        return cls(
            **{k: v for k, v in d.items() if k not in ("optimizer", "schedule", "loop")},
            optimizer=OptimizerSpec(**opt),
            schedule=ScheduleSpec.of(**d["schedule"]),
            loop=LoopSpec(**d["loop"]),
        )


def _plain(node: Any) -> Any:
    """A config node as plain Python (lists, dicts), so a spec is hashable and JSON-able."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def lr_multiplier(cfg: DictConfig) -> float:
    """``policy.lr_multiplier`` (checked by its declaration; its default where a policy file
    omits it: every policy but the tuned-LR oracle's)."""
    return float(cfg.policy.get("lr_multiplier", default("policy.lr_multiplier")))


def _optimizer(cfg: DictConfig) -> OptimizerSpec:
    """The recipe's values; a field the recipe omits keeps its default (the declaration's for
    an optional key such as `task.adam.eps`; a field the optimizer has no key for, such as
    SGD's betas, is recorded as OptimizerSpec's default and not used)."""
    recipe = check_recipe(cfg)
    name = str(cfg.policy.optimizer)
    clip = float(recipe.get("clip") or 0.0)
    given: dict[str, Any] = {
        f: float(recipe[f]) for f in ("momentum", "weight_decay", "eps") if f in recipe
    }
    if "betas" in recipe:
        given["betas"] = tuple(float(b) for b in _plain(recipe.betas))
    return OptimizerSpec(
        name=name,
        # the tuned-LR oracle's policy scales the recipe's rate (legw_repro/sweep/oracle.py)
        base_lr=float(recipe.base_lr) * lr_multiplier(cfg),
        clip=clip if clip > 0 else None,
        **given,
    )


def _schedule(cfg: DictConfig, opt: OptimizerSpec) -> ScheduleSpec:
    sched = cfg.task.schedule
    decay = str(sched.decay)
    return ScheduleSpec.of(
        base_lr=opt.base_lr,
        base_batch_size=int(cfg.task.base_batch_size),
        batch_size=int(cfg.batch_size),
        warmup_epochs=float(sched.warmup_epochs),
        epochs=float(cfg.epochs),
        rule=str(cfg.policy.rule),
        warmup=str(cfg.policy.warmup),
        decay=decay,
        handover=str(sched.get("handover", default("task.schedule.handover"))),
        **(_plain(sched.get(decay)) or {}),
    )


def build_spec(cfg: DictConfig, world_size: int = 1) -> RunSpec:
    """The run spec of a composed config, checked: raises ConfigError naming the bad key."""
    check_config(cfg, world_size)
    opt = _optimizer(cfg)
    spec = RunSpec(
        task=str(cfg.task.name),
        policy=str(cfg.policy.name),
        scale=str(cfg.scale.name),
        seed=int(cfg.seed),
        batch_size=int(cfg.batch_size),
        base_batch_size=int(cfg.task.base_batch_size),
        accum_steps=int(cfg.accum_steps),
        world_size=int(world_size),
        epochs=cfg.epochs,
        device=resolve_device(str(cfg.device)).type,
        precision=str(cfg.precision),
        optimizer=opt,
        schedule=_checked_schedule(cfg, opt),
        lr_multiplier=lr_multiplier(cfg),
        loop=LoopSpec(
            eval_every_epochs=float(cfg.eval_every_epochs),
            diverge_factor=float(cfg.diverge_factor),
            checkpoint_every_min=float(cfg.checkpoint_every_min),
            checkpoint_every_steps=int(cfg.checkpoint_every_steps or 0),
        ),
    )
    return spec


def _checked_schedule(cfg: DictConfig, opt: OptimizerSpec) -> ScheduleSpec:
    """The schedule, validated as a whole (e.g. a LEGW warmup longer than training)."""
    try:
        schedule = _schedule(cfg, opt)
        schedule.validate()
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"invalid LR schedule (policy={cfg.policy.name}, batch_size={cfg.batch_size}, "
            f"epochs={cfg.epochs}; recipe in task.schedule / task.{opt.name}): "
            f"{one_line(e)}"
        ) from None
    return schedule


def record_fields(spec: RunSpec) -> dict[str, Any]:
    """The flat summary.json keys that the spec decides (the analysis reads these), and the
    whole spec under "spec"."""
    s = spec.schedule
    return {
        "task": spec.task,
        "policy": spec.policy,
        "optimizer": spec.optimizer.name,
        "rule": s.rule,
        "warmup": s.warmup,
        "decay": s.decay,
        "batch_size": spec.batch_size,
        "base_batch_size": spec.base_batch_size,
        "world_size": spec.world_size,
        "accum_steps": spec.accum_steps,
        "seed": spec.seed,
        "scale": spec.scale,
        "epochs": spec.epochs,
        "base_lr": spec.optimizer.base_lr,
        "lr_multiplier": spec.lr_multiplier,
        "clip": spec.optimizer.clip,
        "spec": spec.to_dict(),
    }
