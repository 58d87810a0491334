"""Refusals on the command line, before Hydra builds the run: one line, exit status 2.

Why here and not in validate.py: these run before (or around) Hydra, which otherwise answers an
unwritable run directory and a mistyped key with its own traceback or without a suggestion.
`check_overrides` runs on `sys.argv` in `legw_repro.train.main` (`legw-train` and
`python -m legw_repro.train`); `WritableRunDir` is a Hydra callback (configs/train.yaml,
hydra.callbacks) that checks the run or sweep directory before Hydra creates it. `fail` is the
one way every refusal leaves: a line on stderr and an exit status, with the traceback only when
HYDRA_FULL_ERROR=1.

A wrong option of a config group (`policy=sqrt-legw`, `+experiment=ptb_smok`,
`hydra/launcher=slurm`, also inside a sweep) is refused here too, with the closest option:
Hydra's own answer is fifteen lines and exit status 1. So are an override its grammar refuses
(an unquoted non-ASCII `hydra.run.dir=/tmp/rün`: the fix is the quoted value) and an optional
key without its + (`wandb.run_id=abc`), where Hydra's answers were several lines and exit 1.
An error laid out on lines (missing data
files, one a line: `keep_lines`) keeps them, after a first line that says what is wrong.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from legw_repro.config.validate import (
    CONFIGS,
    GROUPS,
    ConfigError,
    file_keys,
    known_keys,
    unknown_key_error,
)
from legw_repro.run.status import first_line, one_line


def message(e: BaseException) -> str:
    """The refusal as printed: one line, unless the error is laid out on lines (`keep_lines`,
    e.g. a list of missing files with their URLs), which a single line would bury."""
    if getattr(e, "keep_lines", False):
        return "\n".join(line.rstrip() for line in str(e).strip().splitlines() if line.strip())
    return one_line(e)


def fail(e: BaseException, code: int) -> NoReturn:
    """`error: <message>` and `code`; the traceback only with HYDRA_FULL_ERROR=1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise e
    print(f"error: {message(e)}", file=sys.stderr, flush=True)
    sys.exit(code)


def check_writable(run_dir: Path) -> None:
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as e:
        raise ConfigError(
            f"hydra.run.dir={run_dir} is not writable ({e.strerror or e}); choose a directory you "
            "can write, e.g. hydra.run.dir=runs/my-run"
        ) from None


class WritableRunDir(Callback):
    """Hydra callback (configs/train.yaml): refuse an unwritable run or sweep directory in one
    line, before Hydra itself fails on it with a traceback."""

    def _check(self, config: DictConfig, key: str) -> None:
        try:
            path = OmegaConf.select(config, key)
        except Exception:  # noqa: BLE001 - an unresolvable dir: Hydra reports it itself
            return
        if path:
            try:
                check_writable(Path(str(path)))
            except ConfigError as e:
                fail(e, 2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")


def check_overrides(argv: list[str]) -> None:
    """Before Hydra: an override Hydra cannot parse (an unquoted non-ASCII path), a plain
    `key=value` override of a key no config has, with the closest one (Hydra's own refusal does
    not suggest one), or of an optional key no file has (`wandb.run_id`: it takes a +), and an
    option its group lacks (`check_group_options`). `+key=value` is checked after composing."""
    check_group_options(argv)
    if extra_search_path(argv):  # files we cannot see from here: check_config names the typo
        return
    known = known_keys(None)
    optional = known - file_keys(None)  # read with a default when absent: added with a +
    prefixes = {k.rsplit(".", i)[0] for k in known for i in range(1, k.count(".") + 1)}
    for arg in override_args(argv):
        key, _, value = arg.partition("=")
        if key[:1] in "+~" or "/" in key or "@" in key or key.startswith("hydra."):
            continue
        if key in optional:
            fail(
                ConfigError(
                    f"{arg}: {key} is optional and in no config file, so it is added with a +: "
                    f"+{arg}"
                ),
                2,
            )
        if key not in known and key not in prefixes and key not in GROUPS:
            fail(unknown_key_error(key, value, known), 2)


#: Hydra's flags whose value is the next argument (a path may hold a "="; it is no override)
_VALUE_FLAGS = ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name", "-p")


def override_args(argv: list[str]) -> list[str]:
    """The `key=value` overrides of a command line: not the flags, nor a flag's value."""
    out = []
    for i, arg in enumerate(argv):
        if arg.startswith("-") or "=" not in arg or (i and argv[i - 1] in _VALUE_FLAGS):
            continue
        out.append(arg)
    return out


def syntax_error(arg: str, e: Exception) -> ConfigError:
    """An override Hydra's grammar refuses, in one line with the fix: Hydra's own answer is a
    lexer error over several lines and exit status 1. Non-ASCII text (`hydra.run.dir=/tmp/rün`)
    is read only inside quotes."""
    key, _, value = arg.partition("=")
    quote = '"' if "'" in value else "'"
    quoted = f'"{key}={quote}{value}{quote}"' if quote == "'" else f"'{key}={quote}{value}{quote}'"
    if not value.isascii():
        return ConfigError(
            f"{arg}: Hydra reads non-ASCII characters in a value only inside quotes; quote the "
            f"value, as one shell word: {quoted}"
        )
    return ConfigError(
        f"{arg} is not a valid override ({first_line(e)}); fix its brackets, commas or quotes, or quote "
        f"the value if it is text: {quoted} (https://hydra.cc/docs/advanced/override_grammar/basic/)"
    )


# -- config group options (`policy=sqrt_legw`, `+experiment=ptb_cpu`, `hydra/launcher=joblib`) --
def extra_search_path(argv: list[str]) -> tuple[str, ...]:
    """Config dirs the command line adds to ours (`--config-dir DIR`, `-cd DIR`,
    `hydra.searchpath=[file:///DIR,...]`): a user's own task or policy files live there."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            out.append(f"file://{Path(argv[i + 1]).resolve()}")
        elif arg.startswith("--config-dir="):
            out.append(f"file://{Path(arg.split('=', 1)[1]).resolve()}")
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            value = arg.split("=", 1)[1].strip("[]")
            out += [v.strip().strip("'\"") for v in value.split(",") if v.strip()]
    return tuple(out)


@functools.cache
def _config_loader(extra: tuple[str, ...] = ()) -> Any | None:
    """Hydra's view of the config groups (ours, `extra` dirs, Hydra's own, the plugins'
    launchers and sweepers), or None where it cannot be built: then Hydra reports a wrong
    option itself."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.utils import create_config_search_path

        search_path = create_config_search_path(str(CONFIGS))
        for path in extra:
            search_path.append("command-line", path)
        return ConfigLoaderImpl(config_search_path=search_path)
    except Exception:  # noqa: BLE001 - another Hydra version: fall back to Hydra's own message
        return None


@functools.cache
def _subgroups(loader: Any, group: str) -> tuple[str, ...]:
    from hydra.core.object_type import ObjectType

    return tuple(loader.get_group_options(group, ObjectType.GROUP))


@functools.cache
def group_options(loader: Any, group: str) -> tuple[str, ...]:
    """Every option of `group`, those in its subfolders as `sub/name` (`mnist_cpu/long`)."""
    from hydra.core.object_type import ObjectType

    out = list(loader.get_group_options(group, ObjectType.CONFIG))
    for sub in _subgroups(loader, group):
        out += [f"{sub}/{name}" for name in group_options(loader, f"{group}/{sub}")]
    return tuple(sorted(out))


def _is_group(loader: Any, key: str) -> bool:
    parent, _, name = key.rpartition("/")
    return name in _subgroups(loader, parent)


def _all_groups(loader: Any, parent: str = "") -> list[str]:
    out = []
    for sub in _subgroups(loader, parent):
        path = f"{parent}/{sub}" if parent else sub
        out += [path, *_all_groups(loader, path)]
    return out


def _closest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest choice, ignoring case (`PTB` is `ptb`)."""
    lower = {c.lower(): c for c in choices}
    hit = difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.6)
    return lower[hit[0]] if hit else None


def _chosen(override: Any) -> list[str]:
    """The option names an override picks (each value of a sweep; none for `~group`,
    `group=null`, `glob(...)`, which picks among the options itself, or an interpolation)."""
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    value = override.value()
    if isinstance(value, ChoiceSweep):
        values = list(value.list)
    elif isinstance(value, RangeSweep):
        values = list(override.sweep_string_iterator())
    elif override.is_sweep_override() or override.is_delete():
        values = []
    else:
        values = [value]
    flat = [x for v in values for x in (v if isinstance(v, list) else [v])]
    return [str(v) for v in flat if v is not None and "${" not in str(v)]


def option_error(group: str, value: str, options: tuple[str, ...], prefix: str = "") -> ConfigError:
    """`prefix`: the override's `+` or `++`, to quote it as typed."""
    best = _closest(value, options)
    fix = f"did you mean {best}? " if best else ""
    listed = (
        f"options: {', '.join(options)}"
        if len(options) <= 12
        else f"{len(options)} options: see configs/{group}/"
    )
    return ConfigError(f"{prefix}{group}={value} is not an option of {group}; {fix}({listed})")


def _defaults_groups() -> set[str]:
    """The groups configs/train.yaml's defaults list chooses (`task`, `optional task_scale`)."""
    try:
        data = yaml.safe_load((CONFIGS / "train.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return set()
    entries = data.get("defaults", []) if isinstance(data, dict) else []
    keys = [k for e in entries if isinstance(e, dict) for k in e]
    return {k.split()[-1].lstrip("/") for k in keys}


def group_error(override: Any, adds: set[str], extra: tuple[str, ...] = ()) -> ConfigError | None:
    """What is wrong with a group override (`adds`: the groups added with `+group=`; `extra`:
    config dirs added on the command line), if any."""
    from hydra.core.override_parser.types import OverrideType

    loader, key = _config_loader(extra), override.key_or_group
    if loader is None:
        return None
    if not _is_group(loader, key):
        if "/" not in key:  # a config key: check_overrides' and check_config's business
            return None
        best = _closest(key, _all_groups(loader))
        fix = f"did you mean {best}?" if best else "see configs/ for the groups"
        return ConfigError(f"{key} is not a config group; {fix}")
    top = key.split("/")[0]
    plain = override.type == OverrideType.CHANGE
    if plain and top != "hydra" and top not in _defaults_groups() and key not in adds:
        value = override.get_value_element_as_str()
        return ConfigError(
            f"{key}={value}: {key} is not in the defaults list, so it is added, with a +: "
            f"+{key}={value}"
        )
    options = group_options(loader, key)
    prefix = {"ADD": "+", "FORCE_ADD": "++"}.get(override.type.name, "")
    for value in _chosen(override):
        if value not in options:
            return option_error(key, value, options, prefix)
    return None


def check_group_options(argv: list[str]) -> None:
    """Before Hydra: an option no file of its group has (`policy=sqrt-legw`, also inside a
    sweep), or an optional group without its +, in one line with the closest option. Hydra's
    own answer is fifteen lines and exit status 1 (for the optional `task_scale`, silence)."""
    if not CONFIGS.is_dir():
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    overrides = []
    for arg in override_args(argv):  # not a flag (-m, --cfg job) nor a deletion `~group`
        try:
            overrides.append(parser.parse_override(arg))
        except Exception as e:  # noqa: BLE001 - any of the grammar's errors
            fail(syntax_error(arg, e), 2)
    adds = {o.key_or_group for o in overrides if o.type.name in ("ADD", "FORCE_ADD")}
    extra = extra_search_path(argv)
    for override in overrides:
        err = group_error(override, adds, extra)
        if err is not None:
            fail(err, 2)
