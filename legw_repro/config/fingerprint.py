"""The configuration fingerprint: which run a run directory holds.

Why: a run directory is resumed, skipped or retrained on the strength of its record alone. A
killed lr-20 run relaunched with lr 5 and `resume=true` once finished on the lr-20 schedule while
config.yaml said 5, and a finished batch-20 run was "skipped" for a batch-40 request. So the
record carries a digest of everything that can change the result, and a run directory is only
continued or skipped by a configuration with the same digest.

What is in it: every key of the resolved config (the user's own vocabulary, so a refusal can
list `task.sgd.base_lr: 20.0 -> 5.0`), which covers the whole RunSpec (built from those keys) and
the task's own keys (model size, data limits, decoding) that the spec does not hold. What is
left out cannot change a trained weight or a recorded metric, and says so in its declaration
(`fingerprint=False`, legw_repro/config/keys.py): where the data and the output live, progress
bars, W&B, the resume/overwrite switches, how often checkpoints are written (resume is bit-exact
from any of them), the DDP timeout, the subword cache location, and where tensors sit (`device`,
a task's CPU chunking; the world size is no key -- a checkpoint refuses another world size by
itself) and how the step is launched (`cuda_graphs`: the same kernels, replayed). A group whose
every declared key is left out (`wandb`) is left out whole, so a key it no longer declares does
not count either. Numbers are compared as floats, so `20` and `20.0` are one value.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from legw_repro.config.keys import Rule, rules_of
from legw_repro.run.records import CONFIG


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> leaf values; lists are leaves (a milestone list is one value)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def excluded(rules: dict[str, Rule]) -> tuple[str, ...]:
    """The keys (and whole groups) that do not change the result, from their declarations."""
    keys = {k for k, r in rules.items() if not r.fingerprint}
    groups = {k.split(".")[0] for k in rules if "." in k}
    whole = {g for g in groups if all(k in keys for k in rules if k.startswith(g + "."))}
    return tuple(sorted(whole | {k for k in keys if k.split(".")[0] not in whole}))


def _excluded(key: str, left_out: tuple[str, ...]) -> bool:
    return any(key == e or key.startswith(e + ".") for e in left_out)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def values_of(container: dict[str, Any]) -> dict[str, Any]:
    """The fingerprinted keys of a resolved config (a plain dict), canonical."""
    left_out = excluded(rules_of(container))
    return {k: _canonical(v) for k, v in flatten(container).items() if not _excluded(k, left_out)}


def config_values(cfg: DictConfig) -> dict[str, Any]:
    return values_of(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


def digest(values: dict[str, Any]) -> str:
    text = json.dumps(values, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_values(run_dir: Path) -> dict[str, Any] | None:
    """The fingerprinted keys of the config a run directory was started with (its config.yaml),
    or None when that file is missing or unreadable."""
    path = Path(run_dir) / CONFIG
    try:
        return values_of(OmegaConf.to_container(OmegaConf.load(path), resolve=False))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - missing, unreadable or not YAML: "unknown"
        return None


_ABSENT = object()


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value, default=str)


def differences(
    old: dict[str, Any], new: dict[str, Any], *, common_only: bool = False
) -> list[str]:
    """`key: old -> new` for every key whose value differs. `common_only`: compare the keys both
    hold (a record from before fingerprints has no values for keys added since)."""
    keys = sorted(old.keys() & new.keys() if common_only else old.keys() | new.keys())
    return [
        f"{k}: {_show(old.get(k, _ABSENT))} -> {_show(new.get(k, _ABSENT))}"
        for k in keys
        if old.get(k, _ABSENT) != new.get(k, _ABSENT)
    ]
