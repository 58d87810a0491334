"""scripts/slurm_local.sh and scripts/slurm_check.sh (run before a release on a real single-node
cluster, docs/running.md): they parse, and without SLURM they stop with one line saying what
to install instead of failing half-way."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [REPO / "scripts" / "slurm_local.sh", REPO / "scripts" / "slurm_check.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_script_parses(script: Path) -> None:
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_without_slurm_each_script_says_what_to_install(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # the basic tools only: no slurmctld, slurmd, munged, sbatch
    bin_dir.mkdir()
    for tool in ("dirname", "mktemp", "hostname", "nproc", "awk", "id", "cat"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    for script in SCRIPTS:
        res = subprocess.run(
            ["/bin/bash", str(script), *(["start"] if "local" in script.name else [])],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 2, (script.name, res.stderr)
        assert "slurm_local.sh start" in res.stderr or "apt-get install" in res.stderr
