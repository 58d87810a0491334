"""The package's shape, as docs/architecture.md states it: small modules and functions, no import
cycle, one refusal type that every layer's bad-input error extends."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "legw_repro"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_no_module_is_over_500_lines() -> None:
    long = {_name(p): n for p in _modules() if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_no_function_is_over_80_lines() -> None:
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{_name(path)}.{node.name}"] = n
    assert not long, long


def _imports(path: Path, known: set[str]) -> set[str]:
    """The package modules a module imports at its top level (function-level imports are
    deliberate late bindings and cannot make an import-time cycle)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        out |= {n for n in names if n in known}
    return out


def test_no_import_cycle() -> None:
    known = {_name(p) for p in _modules()}
    graph = {_name(p): _imports(p, known) - {_name(p)} for p in _modules()}
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            pytest.fail("import cycle: " + " -> ".join(stack[stack.index(node) :] + [node]))
        if node in done:
            return
        for dep in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodule is not a cycle through it
            if not dep.startswith(node + "."):
                visit(dep, stack + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_the_package_has_few_top_level_entries() -> None:
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 11, entries


def test_every_bad_input_error_is_one_refusal_type() -> None:
    from legw_repro.config.validate import ConfigError
    from legw_repro.loop.checkpoint import CheckpointError
    from legw_repro.run.records import RecordError
    from legw_repro.run.status import Refused
    from legw_repro.tasks.common.download import DataError

    for cls in (ConfigError, CheckpointError, RecordError, DataError):
        assert issubclass(cls, Refused), cls
    for cls in (CheckpointError, RecordError, DataError):
        assert not issubclass(cls, ConfigError), f"{cls.__name__} couples its layer to config/"


def test_the_run_record_files_are_named_in_one_module():
    # the record format's one home is run/records.py (CONFIG, METRICS, SUMMARY, read_summary,
    # read_rows): a file name spelled elsewhere is a second reader or writer of the format
    names = {"summary.json", "metrics.jsonl", "config.yaml"}
    home = PACKAGE / "run" / "records.py"
    spelled = []
    for path in _modules():
        if path == home:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                spelled.append(f"{_name(path)}:{node.lineno} {node.value}")
    assert not spelled, spelled


def test_an_error_is_made_one_line_in_one_module():
    # `first_line` and `one_line` (run/status.py, standard library only, so the sweeper plugin
    # shares them) are the one home of an error's one-line form; copies were found in twelve
    # modules, each free to drift (the type name fallback, the "Type: " prefix). A message
    # kept on its lines (config/cli.py's `keep_lines`) is another form and not matched here.
    home = PACKAGE / "run" / "status.py"
    copies = re.compile(
        r"""str\(\w+\)\.strip\(\)\.splitlines\(\)(\[0\]|$)|["'] ["']\.join\(str\(\w+\)\.split\(\)\)""",
        re.MULTILINE,
    )
    plugin = PACKAGE.parent / "hydra_plugins"
    found = []
    for path in _modules() + sorted(plugin.rglob("*.py")):
        if path != home:
            found += [f"{path.name}:{m.group()}" for m in copies.finditer(path.read_text())]
    assert not found, found


def test_first_line_and_one_line_keep_the_gist_of_an_error():
    from legw_repro.run.status import first_line, one_line

    err = RuntimeError("  Error(s) in loading state_dict for LSTM:\n\tMissing key(s): w  ")
    assert first_line(err) == "Error(s) in loading state_dict for LSTM:"
    assert first_line(err, typed=True) == "RuntimeError: Error(s) in loading state_dict for LSTM"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError(""), typed=True) == "OSError"
    assert one_line(err) == "Error(s) in loading state_dict for LSTM: Missing key(s): w"


def test_summary_json_is_read_in_one_module():
    # analysis/collect.py had its own strict read_summary beside run/records.py's lenient one:
    # two readers of one record, free to disagree on what a bad summary.json is
    home = PACKAGE / "run" / "records.py"
    others = [
        f"{_name(path)}:{node.lineno}"
        for path in _modules()
        if path != home
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "read_summary"
    ]
    assert not others, others
