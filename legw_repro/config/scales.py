"""Whether a task at a scale is the full protocol or a reduced one.

A scale name alone does not say it: `cpu` shrinks the PTB model and budget, but MNIST at `cpu`
is the paper's whole protocol (a row LSTM fits a laptop). So the answer is a property of the
(task, scale) pair, written once in the configs that define the pair: `scale.reduced` in
`configs/task_scale/<task>_<scale>.yaml` when that file sets it, else `reduced` in
`configs/scale/<scale>.yaml`. The sweep's banner and every report title read it from here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from legw_repro.config.config_dir import CONFIGS


def _reduced_key(path: Path, *keys: str) -> bool | None:
    if not path.is_file():
        return None
    node = yaml.safe_load(path.read_text()) or {}
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return None if node is None else bool(node)


def is_reduced(task: str, scale: str, configs: Path = CONFIGS) -> bool | None:
    """True when ``task`` at ``scale`` departs from the paper's protocol (smaller model, shorter
    budget, a slice of the data), False when it is the full protocol, None for an unknown scale."""
    per_task = _reduced_key(configs / "task_scale" / f"{task}_{scale}.yaml", "scale", "reduced")
    if per_task is not None:
        return per_task
    return _reduced_key(configs / "scale" / f"{scale}.yaml", "reduced")
