"""notebooks/results.ipynb: it draws every committed study (every results/**/records folder),
its stored outputs show them and stay small, and it runs top to bottom against a results
directory holding only some tasks (LEGW_RESULTS_DIR points it at a temporary one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.report import write_summary_csv
from legw_repro.analysis.studies import find_studies, is_search
from tests.test_analysis import build_mnist, build_ptb

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "results.ipynb"
RESULTS = REPO / "results"
MAX_BYTES = 2_500_000
RERUN = "run `jupyter execute --inplace notebooks/results.ipynb` (the outputs are stored)"


def test_every_committed_records_folder_is_a_study():
    folders = {p.parent.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("records")}
    studies = find_studies(RESULTS)
    assert {s.name for s in studies} >= folders
    assert {"gnmt/paper-base256", "ptb/smoke", "mnist/cpu-shifted-oracle"} <= folders
    names = [s.name for s in studies]
    assert names.index("ptb/cpu") < names.index("mnist/cpu") < names.index("gnmt/paper-base256")
    assert names.index("gnmt/paper-base256") < names.index("ptb/smoke")


def test_searches_are_told_from_grids():
    def search(name: str) -> bool:
        return is_search(collect_runs([RESULTS / name / "records"]))

    assert search("gnmt/tuning") and search("mnist/cpu-shifted-oracle")
    assert not search("mnist/cpu") and not search("gnmt/paper-base256")


def test_stored_notebook_shows_every_study_and_stays_small():
    nbformat = pytest.importorskip("nbformat")
    assert NOTEBOOK.stat().st_size < MAX_BYTES, f"{NOTEBOOK} is too large"
    nb = nbformat.read(NOTEBOOK, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    markdown = [o.get("data", {}).get("text/markdown", "") for o in outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    folders = sorted(p.parent.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("records"))
    missing = [f for f in folders if f"### {f}" not in markdown]
    assert not missing, f"no stored output for {missing}: {RERUN}"
    assert len(images) >= len(folders), RERUN
    intro = nb.cells[0].source
    assert "not reproduced" in intro and "README" in intro


@pytest.mark.slow
def test_results_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager

    results = tmp_path / "results"
    # ptb: summary.csv and the run records it came from (curves etc. are drawn)
    ptb = results / "ptb" / "cpu"
    build_ptb(ptb / "records")
    write_summary_csv(aggregate(collect_runs([ptb])), ptb / "summary.csv")
    # mnist: summary.csv only (curves skipped); gnmt: nothing at all (skipped)
    build_mnist(tmp_path / "mnist_runs")
    mnist = results / "mnist" / "cpu"
    write_summary_csv(aggregate(collect_runs([tmp_path / "mnist_runs"])), mnist / "summary.csv")
    # a diagnostic variant's folder holds task "mnist" under another name
    shutil.copytree(mnist, results / "mnist" / "cpu-long")
    # a smoke reference and a search (several LRs at one point)
    shutil.copytree(RESULTS / "mnist/smoke/records", results / "mnist/smoke/records")
    oracle = RESULTS / "mnist/cpu-shifted-oracle/records"
    for lr in ("x1", "x2"):
        shutil.copytree(oracle / lr / "b128-s0", results / f"mnist/cpu-oracle/records/{lr}/b128-s0")
    monkeypatch.setenv("LEGW_RESULTS_DIR", str(results))  # the kernel inherits the environment
    monkeypatch.delenv("MPLBACKEND", raising=False)
    kernels = KernelSpecManager().find_kernel_specs()
    kernel = "python3" if "python3" in kernels else next(iter(kernels), "python3")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name=kernel, resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "gnmt: no results yet" in text
    studies = ["ptb/cpu", "mnist/cpu", "mnist/cpu-long", "mnist/cpu-oracle", "mnist/smoke"]
    assert f"results in {results}: {studies}" in text
    assert "mnist/cpu: no run records" in text
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "| 1280 | 64 | 106.00 ± 2.00 (n=3) |" in markdown
    assert "| 800 | 8 | 97.70% ± 0.14 (n=2) | 96.80% ± 0.14 (n=2) |" in markdown
    assert "### mnist/cpu-long" in markdown and "### mnist/smoke" in markdown
    assert "| x2/b128-s0 | sgd | 128 | 0.2 | 10 | completed |" in markdown  # the search's runs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    # ptb: metric vs batch, curves, time to target; mnist, mnist/cpu-long: metric vs batch;
    # the search: metric vs LR; mnist/smoke: the three of a grid with records
    assert len(images) == 3 + 1 + 1 + 1 + 3
