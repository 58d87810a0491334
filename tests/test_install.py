"""Installing the project as a new user does (README: Two commands, Installing torch): a lock
that installs on any machine, a torch that installing the project keeps, and entry points that
work from any directory, in an editable install and from a wheel."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.util import find_spec
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# `name==version` and nothing else: no path, URL, `-e`, pip option or local label (+cpu)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.!]*)$")
# what a CUDA build of torch adds; it pins them exactly itself, and the lock is its CPU closure
CUDA_ONLY = re.compile(r"^(nvidia-.*|triton)$")
# the smallest real training run: MNIST's full model on 256 images, one epoch
TRAIN = ["task=mnist", "scale=smoke", "epochs=1", "task.max_train_items=256", "progress=false"]


def _needs(what: str, ok: bool) -> None:
    """A piece of the set-up this environment lacks: a failure in CI, where `make venv` made the
    environment, and a skip elsewhere (another venv, PYTHONPATH tricks)."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what}; make venv provides it")
        pytest.skip(f"{what}; run make venv")


def lock_pins() -> dict[str, str]:
    """requirements.lock as {canonical name: version}; any line but a plain pin fails."""
    pins = {}
    for n, raw in enumerate((REPO / "requirements.lock").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.match(line)
        assert m, f"requirements.lock:{n}: {raw!r} is not a plain name==version pin; run make lock"
        pins[canonicalize_name(m[1])] = m[2]
    return pins


def _lock_extras() -> set[str]:
    """The extras `make lock` resolves (LOCK_EXTRAS in the Makefile)."""
    m = re.search(r"^LOCK_EXTRAS\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert m, "Makefile: no LOCK_EXTRAS"
    return set(m[1].split(","))


def _roots(monkeypatch: pytest.MonkeyPatch) -> list[Requirement]:
    """What pyproject.toml asks for: its dependencies, the locked extras, the build backend and
    what that backend asks for to build a wheel, an sdist or an editable install."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = list(meta["project"]["dependencies"]) + list(meta["build-system"]["requires"])
    for extra in sorted(_lock_extras()):
        reqs += meta["project"]["optional-dependencies"][extra]
    import hatchling.build as backend

    monkeypatch.chdir(REPO)
    for hook in ("wheel", "sdist", "editable"):
        reqs += getattr(backend, f"get_requires_for_build_{hook}")()
    return [Requirement(r) for r in reqs]


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def closure(roots: list[Requirement]) -> set[str]:
    """Every distribution the roots need, transitively, read from the installed metadata (a
    needed one that is not installed ends the walk there)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots if _applies(r, set())]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        for req in map(Requirement, requires):
            if _applies(req, extras):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def _installed(name: str) -> Version | None:
    try:
        return Version(md.version(name))
    except md.PackageNotFoundError:
        return None


def test_lock_holds_plain_pins_of_the_cpu_torch_only():
    pins = lock_pins()
    assert "legw-repro" not in pins
    assert not [n for n in pins if CUDA_ONLY.match(n)], "a CUDA torch's packages; see make lock"
    text = (REPO / "requirements.lock").read_text()
    assert "make lock" in text.split("\n", 6)[4]
    # not even a comment may read as a location (a checker of installs reads `file:` as one)
    assert not [ln for ln in text.splitlines() if re.search(r"file:|^\s*-e\b|^\s*/", ln)]
    torch_req = next(
        Requirement(r)
        for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
        if canonicalize_name(Requirement(r).name) == "torch"
    )
    assert not any(s.operator in ("==", "===") for s in torch_req.specifier), torch_req
    assert torch_req.specifier.contains(pins["torch"]), (torch_req, pins["torch"])


def test_lock_is_exactly_the_closure_of_pyproject(monkeypatch):
    """Nothing in the lock that pyproject.toml does not need (a pip freeze of one env holds
    such packages), and nothing needed left unpinned."""
    _needs("hatchling (the build backend) is not installed", find_spec("hatchling") is not None)
    pins = lock_pins()
    need = closure(_roots(monkeypatch))
    # the walk reads installed metadata: it stands for the lock where those are the lock's versions
    stale = [
        f"{name} {_installed(name) or 'absent'} (lock: {pins[name]})"
        for name in sorted(need & set(pins))
        if (_installed(name) or Version("0")).public != Version(pins[name]).public
    ]
    _needs(f"this environment does not hold the lock's versions: {stale[:5]}", not stale)
    extra = sorted(set(pins) - need)
    assert not extra, f"requirements.lock pins what pyproject.toml does not need: {extra}"
    missing = sorted(n for n in need - set(pins) if not CUDA_ONLY.match(n))
    assert not missing, f"requirements.lock leaves needed packages unpinned: {missing}"


def _pip_env(**extra: str) -> dict[str, str]:
    """pip without any configuration (no file, no PIP_* variable): the same on every machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _dry_run_install(tmp_path: Path, torch_version: str, editable: bool):
    """`pip install [-e] <repo>` into this environment as if it held torch `torch_version` (a
    stand-in dist-info first on the path), offline: what pip would install, from its --report."""
    site = tmp_path / "site"
    info = site / f"torch-{torch_version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: torch\nVersion: {torch_version}\n"
    )
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index"]
    cmd += ["--no-build-isolation", "--report", str(report)]
    cmd += ["-e", str(REPO)] if editable else [str(REPO)]
    env = _pip_env(PYTHONPATH=str(site))
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return res, report


@pytest.mark.parametrize("editable", [True, False], ids=["editable", "regular"])
def test_installing_the_project_keeps_a_torch_in_range(tmp_path, editable):
    _needs("hatchling (the build backend) is not installed", find_spec("hatchling") is not None)
    res, report = _dry_run_install(tmp_path, "2.11.0", editable)
    assert res.returncode == 0, res.stderr[-2000:]
    installs = {
        canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert installs == {"legw-repro": "0.1.0"}, installs


def test_a_torch_below_the_floor_is_not_kept(tmp_path):
    """The same install with torch 2.10 needs another torch (none offline): so the stand-in is
    the torch pip judged, and the test above is not passing vacuously."""
    _needs("hatchling (the build backend) is not installed", find_spec("hatchling") is not None)
    res, _ = _dry_run_install(tmp_path, "2.10.0", editable=True)
    assert res.returncode != 0 and "torch" in res.stderr, res.stderr[-2000:]


def _outside_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def _run(cmd: list, cwd: Path, env: dict[str, str] | None = None):
    env = env or _outside_env()
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _editable_here(cwd: Path) -> None:
    """The console scripts exist and `import legw_repro` from elsewhere finds this checkout."""
    _needs(f"no console script {BIN / 'legw-train'}", (BIN / "legw-train").exists())
    res = _run([sys.executable, "-c", "import legw_repro; print(legw_repro.__file__)"], cwd)
    found = Path(res.stdout.strip() or "/nowhere").resolve()
    _needs(f"legw_repro here is {found}, not {REPO}'s", found.is_relative_to(REPO))


ENTRY_POINTS = {
    "legw-train": [BIN / "legw-train"],
    "module": [sys.executable, "-m", "legw_repro.train"],
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_points_find_the_configs_and_check_keys_from_anywhere(tmp_path, entry):
    _editable_here(tmp_path)
    cmd = ENTRY_POINTS[entry]
    res = _run([*cmd, "task=mnist", "scale=smoke", "--cfg", "job"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "max_train_items: 2048" in res.stdout  # configs/task_scale/mnist_smoke.yaml
    res = _run([*cmd, "task=mnist", "epochz=1"], tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "error: epochz='1' is not a config key; did you mean epochs?" in res.stderr


def test_legw_analyze_help_from_anywhere(tmp_path):
    _editable_here(tmp_path)
    res = _run([BIN / "legw-analyze", "--help"], tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("usage: legw-analyze"), res.stderr


def _trains(cmd: list, tmp_path: Path, data: Path, name: str, env: dict | None = None) -> None:
    rd = tmp_path / name
    res = _run([*cmd, *TRAIN, f"data_dir={data}", f"hydra.run.dir={rd}"], tmp_path, env)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["task"] == "mnist", summary["status"]


@pytest.mark.slow
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_points_train_from_anywhere(tmp_path, shared_data_dir, entry):
    _editable_here(tmp_path)
    _trains(ENTRY_POINTS[entry], tmp_path, shared_data_dir, "run")


@pytest.mark.slow
def test_a_wheel_carries_the_configs_and_its_scripts_work(tmp_path, shared_data_dir):
    """The wheel, installed on its own (--target, first on the path): legw-train trains and
    checks keys, the sweeper plugin and the configs are the wheel's, legw-analyze analyses."""
    _needs("hatchling (the build backend) is not installed", find_spec("hatchling") is not None)
    pip = [sys.executable, "-m", "pip", "--quiet"]
    dist, site = tmp_path / "dist", tmp_path / "site"
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, REPO]
    res = _run(build, tmp_path, _pip_env())
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = dist.glob("legw_repro-*.whl")
    assert "legw_repro/configs/train.yaml" in zipfile.ZipFile(wheel).namelist()
    res = _run(
        [*pip, "install", "--no-deps", "--no-index", "--target", site, wheel], tmp_path, _pip_env()
    )
    assert res.returncode == 0, res.stderr[-2000:]
    env = {**_outside_env(), "PYTHONPATH": str(site)}
    where = "import legw_repro.config.config_dir as c, hydra_plugins.legw_sweeper as s; "
    where += "print(c.CONFIGS); print(s.__file__)"
    res = _run([sys.executable, "-c", where], tmp_path, env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert all(Path(p).is_relative_to(site) for p in res.stdout.split()), res.stdout
    _trains([site / "bin" / "legw-train"], tmp_path, shared_data_dir, "run", env)
    res = _run([site / "bin" / "legw-train", "epochz=1"], tmp_path, env)
    assert res.returncode == 2 and "did you mean epochs?" in res.stderr, res.stderr[-2000:]
    records = REPO / "results" / "mnist" / "smoke" / "records"
    res = _run([site / "bin" / "legw-analyze", records, "--out", tmp_path / "an"], tmp_path, env)
    assert res.returncode == 0 and (tmp_path / "an" / "report.md").exists(), res.stderr[-2000:]


def _make_venv(venv: Path, torch_version: str | None) -> tuple[subprocess.CompletedProcess, str]:
    """`make venv VENV=venv` with `venv` holding torch `torch_version` (a stand-in dist-info,
    or none) and its `pip` replaced by a stub that records its arguments: the Makefile's torch
    decision, offline. Returns make's result and the recorded pip calls."""
    site = next(venv.glob("lib/python*/site-packages"))
    for old in site.glob("torch-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    if torch_version:
        info = site / f"torch-{torch_version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: torch\nVersion: {torch_version}\n"
        )
    calls = venv / "pip-calls.txt"
    calls.write_text("")
    (venv / "bin" / "pip").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (venv / ".installed").unlink(missing_ok=True)
    res = subprocess.run(
        ["make", "--no-print-directory", "venv", f"VENV={venv}"],
        cwd=REPO,
        env=_pip_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return res, calls.read_text()


def test_make_venv_keeps_a_torch_in_range_and_refuses_an_older_one(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    lock_torch = f"torch=={lock_pins()['torch']}"

    res, calls = _make_venv(venv, "2.11.0")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "keeping torch 2.11.0" in res.stdout and lock_torch not in calls, calls
    installed = (venv / "torch-installed.txt").read_text().split()
    assert installed == ["torch==2.11.0"]
    rest = (venv / "requirements-without-torch.txt").read_text()
    assert "torch==" not in rest and set(lock_pins()) - {"torch"} <= {
        canonicalize_name(line.split("==")[0]) for line in rest.splitlines() if "==" in line
    }
    assert f"-r {venv}/requirements-without-torch.txt -c {venv}/torch-installed.txt" in calls
    assert "--no-deps --no-build-isolation -e ." in calls

    res, calls = _make_venv(venv, "2.10.0")
    assert res.returncode != 0 and calls == "", calls
    assert "holds torch 2.10.0, outside torch>=2.11" in res.stderr

    res, calls = _make_venv(venv, None)  # no torch: the lock's, under the lock's pins
    assert f"-c requirements.lock {lock_torch}" in calls.splitlines()[0], calls
