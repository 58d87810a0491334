"""Refusals on the command line, before Hydra builds the run: one line, exit status 2.

Why here and not in validate.py: these run before (or around) Hydra, which otherwise answers an
unwritable run directory and a mistyped key with its own traceback or without a suggestion.
`check_overrides` runs on `sys.argv` in `legw_repro.train.main` (`legw-train` and
`python -m legw_repro.train`); `WritableRunDir` is a Hydra callback (configs/train.yaml,
hydra.callbacks) that checks the run or sweep directory before Hydra creates it. `fail` is the
one way every refusal leaves: a line on stderr and an exit status, with the traceback only when
HYDRA_FULL_ERROR=1.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from legw_repro.validate import GROUPS, ConfigError, known_keys, unknown_key_error


def fail(e: BaseException, code: int) -> NoReturn:
    """One line and `code`; the traceback only with HYDRA_FULL_ERROR=1."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise e
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
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
    """Before Hydra: a plain `key=value` override of a key no config has, with the closest one
    (Hydra's own refusal does not suggest one). `+key=value` is checked after composing."""
    known = known_keys(None)
    prefixes = {k.rsplit(".", i)[0] for k in known for i in range(1, k.count(".") + 1)}
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq or key[:1] in "-+~" or "/" in key or "@" in key or key.startswith("hydra."):
            continue
        if key not in known and key not in prefixes and key not in GROUPS:
            fail(unknown_key_error(key, value, known), 2)
