"""The config schema has one home: each key is declared once (legw_repro/config/keys.py and each
task's keys.py), with its meaning; validation, the run spec's fallbacks, the fingerprint and the
generated reference (docs/config.md) derive from the declarations, and nothing declares a key's
type or range a second time."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest

from legw_repro.config import reference
from legw_repro.config.fingerprint import digest, recorded_values
from legw_repro.config.keys import COMMON, Rule, integer
from legw_repro.schedule.decays import DECAY_PARAMS
from legw_repro.tasks.base import Task
from tests.helpers import REPO


def test_docs_config_md_is_up_to_date(tmp_path):
    """make config-docs rewrites it; --check says when a declaration or a config changed."""
    assert (REPO / "docs" / "config.md").read_text() == reference.render(), (
        "docs/config.md is out of date: run make config-docs"
    )
    assert reference.main(["--check"]) == 0
    stale = tmp_path / "config.md"
    stale.write_text("old\n")
    assert reference.main(["--check", "--out", str(stale)]) == 1


def test_every_key_in_configs_is_declared_and_every_declaration_is_in_configs():
    undeclared, unused = reference.coverage()
    assert not undeclared, f"declare each (type, range, meaning): {undeclared}"
    assert not unused, f"in no config and no default of their own: {unused}"


def test_coverage_names_an_undeclared_and_an_unused_key(monkeypatch):
    monkeypatch.setitem(COMMON, "made_up", integer(meaning="a key no config has"))
    monkeypatch.delitem(COMMON, "seed")
    undeclared, unused = reference.coverage()
    assert "made_up" in unused and any(k.startswith("seed ") for k in undeclared)
    assert reference.coverage_error().startswith("seed (task=")


def _all_rules() -> dict[str, Rule]:
    out = dict(COMMON)
    for task in reference.options("task"):
        out |= {f"{k} (task={task})": r for k, r in reference.task_rules(task).items()}
    return out


def test_every_declaration_has_a_one_line_meaning():
    for key, rule in _all_rules().items():
        assert rule.meaning.strip() and "\n" not in rule.meaning, key
    with pytest.raises(TypeError):
        Rule("int")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="needs its meaning"):
        integer(meaning=" ")


def test_the_decay_blocks_are_the_schedule_librarys_parameters():
    declared = {k for k in COMMON if k.count(".") == 3 and k.startswith("task.schedule.")}
    assert declared == {f"task.schedule.{d}.{p}" for d, ps in DECAY_PARAMS.items() for p in ps}
    assert all(COMMON[k].by_schedule for k in declared)


def test_committed_fingerprints_regenerate_from_the_declarations():
    """The fingerprint's exclusions come from the declarations (`fingerprint=False`): every
    committed record's config.yaml still gives the digest its summary.json holds."""
    checked = 0
    for path in sorted((REPO / "results").rglob("summary.json")):
        fp = json.loads(path.read_text()).get("fingerprint")
        values = recorded_values(path.parent) if fp else None
        if values is not None:
            assert digest(values) == fp, path
            checked += 1
    assert checked >= 100


# -- no second declaration ------------------------------------------------------------------------
KEYS_MODULES = {REPO / "legw_repro" / "config" / "keys.py"} | set(
    (REPO / "legw_repro" / "tasks").glob("*/keys.py")
)
HELPERS = {
    "Rule",
    "integer",
    "number",
    "positive",
    "fraction",
    "below_a_million",
    "choice",
    "boolean",
    "text",
    "texts",
    "numbers",
}


def _sources() -> list[Path]:
    return sorted((REPO / "legw_repro").rglob("*.py"))


def test_only_the_keys_modules_declare_keys():
    offenders = []
    for path in _sources():
        if path in KEYS_MODULES:
            continue
        tree = ast.parse(path.read_text())
        imported = {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "legw_repro.config.keys"
            for a in n.names
            if a.name in HELPERS
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in imported:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.func.id}(...)")
    assert not offenders, offenders


def test_no_task_constructor_rechecks_a_key():
    """A task's keys are checked by their declarations before the task is built; its
    constructor raising on one would be a second declaration of its range."""
    import legw_repro.tasks.gnmt
    import legw_repro.tasks.mnist
    import legw_repro.tasks.ptb  # noqa: F401

    for cls in Task.__subclasses__():
        init = ast.parse(Path(inspect.getfile(cls)).read_text())
        for node in ast.walk(init):
            if isinstance(node, ast.FunctionDef) and node.name == "__init__":
                raises = [n for n in ast.walk(node) if isinstance(n, ast.Raise)]
                assert not raises, f"{cls.__name__}.__init__ raises: fold it into its keys.py"


def test_the_config_layer_states_no_range_outside_the_declarations():
    """validate.py and spec.py check combinations of keys, never one key's type or range."""
    single = re.compile(r"must be (a |an |in |positive|one of)|is not allowed; choose")
    for name in ("validate.py", "spec.py", "cli.py", "fingerprint.py"):
        text = (REPO / "legw_repro" / "config" / name).read_text()
        assert not single.findall(text), name
