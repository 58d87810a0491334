"""notebooks/results.ipynb runs top to bottom against a results directory holding only some
tasks (LEGW_RESULTS_DIR points it at a temporary one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from legw_repro.analysis.aggregate import aggregate
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.report import write_summary_csv
from tests.test_analysis import build_mnist, build_ptb

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "results.ipynb"


@pytest.mark.slow
def test_results_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager

    results = tmp_path / "results"
    # ptb: summary.csv and the run records it came from (curves etc. are drawn)
    build_ptb(results / "ptb" / "records")
    write_summary_csv(aggregate(collect_runs([results / "ptb"])), results / "ptb" / "summary.csv")
    # mnist: summary.csv only (curves skipped); gnmt: nothing at all (skipped)
    build_mnist(tmp_path / "mnist_runs")
    write_summary_csv(
        aggregate(collect_runs([tmp_path / "mnist_runs"])), results / "mnist" / "summary.csv"
    )

    # a diagnostic variant's folder holds task "mnist" under another name
    shutil.copytree(results / "mnist", results / "mnist-long")
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
    assert f"results in {results}: ['mnist', 'mnist-long', 'ptb']" in text
    assert "mnist: no run records" in text
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "| 1280 | 64 | 106.00 ± 2.00 (n=3) |" in markdown
    assert "| 800 | 8 | 97.70% ± 0.14 (n=2) | 96.80% ± 0.14 (n=2) |" in markdown
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert "### mnist-long: final " in markdown
    assert len(images) == 3 + 3  # metric-vs-batch for 3 folders; curves, LR, time for ptb
