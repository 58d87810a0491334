"""Where the Hydra configs are, as an absolute path, for every way the package is installed.

Why a module of its own: a relative `config_path` in `@hydra.main` is resolved against the
calling *file* under `python -m legw_repro.train` but as a python *module* (`pkg://`) when the
function is imported, as the `legw-train` console script does, and `configs/` is no module. An
absolute directory works for both. A wheel carries the configs inside the package
(`legw_repro/configs`, pyproject.toml: force-include); a checkout or an editable install reads
them from the repository's `configs/`, next to the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # legw_repro/


def config_dir(package: Path = _PACKAGE) -> Path:
    """The packaged copy when the package holds one (a wheel install), else <repo>/configs."""
    packaged = package / "configs"
    return packaged if packaged.is_dir() else package.parent / "configs"


CONFIGS = config_dir()
