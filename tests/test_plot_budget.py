"""scripts/plot_budget.py on the committed MNIST records: one row per (setting, policy, batch)
with its step count, the base band from the seeds, the figure and table written; a missing
records directory is refused by name before anything is read."""

from __future__ import annotations

import importlib.util

import pytest

from tests.helpers import REPO


def load_script():
    spec = importlib.util.spec_from_file_location("plot_budget", REPO / "scripts/plot_budget.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_budget_table_band_and_files(tmp_path, capsys):
    pb = load_script()
    shifted, product = (
        REPO / "results/mnist/cpu-shifted/records",
        REPO / "results/mnist/cpu/records",
    )
    table = pb.budget_table({"shifted": shifted, "product": product}, "mnist")
    assert set(table["setting"]) == {"shifted", "product"}
    assert set(table["policy"]) == {"sqrt_legw", "sqrt", "linear"}
    row = table[(table["setting"] == "product") & (table["policy"] == "sqrt_legw")]
    row = row.set_index("batch_size")
    assert row.loc[8192, "steps"] == 60 and row.loc[128, "steps"] == 4290
    assert row.loc[8192, "n"] == 3 and table["epochs"].eq(10).all()
    mean, std, n = pb.base_band(product, "mnist")
    assert n == 3 and 0.985 < mean < 0.995 and 0 < std < 0.002
    argv = ["--setting", f"a={shifted}", "--setting", f"b={product}", "--out", str(tmp_path)]
    assert pb.main(argv) == 0
    assert (tmp_path / "budget.svg").is_file() and not (tmp_path / "budget.png").exists()
    md = (tmp_path / "budget.md").read_text()
    assert "| b | 8192 | 60 | 91.06% ± 2.84 (n=3) |" in md
    assert md in capsys.readouterr().out


def test_missing_records_dir_is_named(tmp_path, capsys):
    pb = load_script()
    with pytest.raises(SystemExit):
        pb.main(["--setting", f"x={tmp_path / 'nope'}", "--out", str(tmp_path)])
    assert f"--setting x={tmp_path / 'nope'}: no such records directory" in capsys.readouterr().err
