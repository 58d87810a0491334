"""A new task is one folder (a package with its Task) plus one config file, and nothing else.

The test writes both into a temporary directory, the way a user would add a task of their own
(the package on PYTHONPATH, its configs/task/<name>.yaml in a config dir given with
`--config-dir`), and trains it for a few steps through the normal command line: no file of
legw_repro or configs/ is edited. It also pins the other half of that promise: the generic
code (loop, run, config, schedule, sweep) names no task.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, read_rows

TASK_PY = '''
"""A toy regression task: y = x @ w on 64 fixed points, learned by a linear layer."""
from __future__ import annotations

import torch
from torch import nn

from legw_repro.config.keys import integer
from legw_repro.tasks.base import Task


class ToyTask(Task):
    metric = "mse"
    higher_is_better = False
    item_unit = "items"
    config_keys = {
        "task.n_items": integer(8, meaning="points to fit"),
        "task.model.features": integer(meaning="inputs of the linear layer"),
    }
    fixed_shapes = True

    def __init__(self, cfg, dist):
        super().__init__(cfg, dist)
        g = torch.Generator().manual_seed(0)
        n, f = int(cfg.task.n_items), int(cfg.task.model.features)
        self.x = torch.randn(n, f, generator=g)
        self.y = self.x @ torch.arange(1.0, f + 1.0)
        self.seed = int(cfg.seed)

    @property
    def steps_per_epoch(self):
        return len(self.x) // self.batch_size

    @property
    def items_per_step(self):
        return self.batch_size

    def build_model(self):
        torch.manual_seed(self.seed)
        return nn.Linear(self.x.shape[1], 1)

    def train_batches(self, epoch, start_step=0):
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        order = torch.randperm(len(self.x), generator=g)
        mb, rank = self.micro_batch_size, self.dist.rank
        for step in range(start_step, self.steps_per_epoch):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            mine = idx.view(-1, mb)[rank * self.accum_steps : (rank + 1) * self.accum_steps]
            yield [(self.x[i].to(self.device), self.y[i].to(self.device)) for i in mine]

    def loss(self, model, batch, carry):
        x, y = batch
        return nn.functional.mse_loss(model(x).squeeze(-1), y), carry

    @torch.no_grad()
    def evaluate(self, model, split):
        mse = float(nn.functional.mse_loss(model(self.x.to(self.device)).squeeze(-1), self.y))
        return {"loss": mse, "mse": mse}
'''

TASK_YAML = """\
name: toy
cls: legw_toy.ToyTask
base_batch_size: 8
epochs: 2
n_items: 64
model:
  features: 3
sgd: {base_lr: 0.05, momentum: 0.0, weight_decay: 0.0, clip: null}
adam: {base_lr: 0.01, clip: null}
schedule: {warmup_epochs: 0.25, handover: product, decay: constant}
"""


@pytest.fixture
def toy(tmp_path: Path) -> tuple[Path, Path]:
    """(a folder holding the task package legw_toy/, a config dir holding task/toy.yaml)."""
    package = tmp_path / "src" / "legw_toy"
    package.mkdir(parents=True)
    (package / "task.py").write_text(TASK_PY)
    (package / "__init__.py").write_text("from legw_toy.task import ToyTask\n")
    configs = tmp_path / "configs" / "task"
    configs.mkdir(parents=True)
    (configs / "toy.yaml").write_text(TASK_YAML)
    return package.parent, configs.parent


def _train(toy: tuple[Path, Path], *args: str) -> subprocess.CompletedProcess:
    src, configs = toy
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(REPO)])
    cmd = [sys.executable, "-m", "legw_repro.train", "--config-dir", str(configs), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_new_task_is_one_folder_and_one_config_file(toy, tmp_path):
    run = tmp_path / "run"
    common = ["task=toy", "policy=sqrt_legw", "progress=false", f"hydra.run.dir={run}"]
    res = _train(toy, *common, "batch_size=16")
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["task"] == "toy"
    assert summary["metric"] == "mse" and summary["k"] == 2.0
    rows = read_rows(run, "train")
    assert [r["step"] for r in rows] == list(range(1, 2 * 64 // 16 + 1))
    assert rows[-1]["loss"] < rows[0]["loss"]  # it learns
    # its own keys are checked like the shipped tasks' (declared on the class)
    bad = _train(toy, *common, f"hydra.run.dir={tmp_path / 'bad'}", "task.n_items=2")
    assert bad.returncode == 2 and "task.n_items=2" in bad.stderr


GENERIC = ("loop", "run", "config", "schedule", "sweep")


def test_the_generic_code_names_no_task():
    """A task's knowledge lives in its folder: the generic packages name none (their
    docstrings and comments may use one as an example; the code may not)."""
    import ast

    offenders = []
    for folder in GENERIC:
        for path in sorted((REPO / "legw_repro" / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            docs = {
                id(n.body[0].value)
                for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                and n.body
                and isinstance(n.body[0], ast.Expr)
                and isinstance(n.body[0].value, ast.Constant)
            }
            for node in ast.walk(tree):
                text = None
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = None if id(node) in docs else node.value
                elif isinstance(node, ast.Name | ast.alias):
                    text = getattr(node, "id", None) or getattr(node, "name", None)
                if text and re.search(r"\b(ptb|mnist|gnmt)\b", text, re.I):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {text[:60]!r}")
    assert not offenders, offenders
