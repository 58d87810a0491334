"""The diagnostic-variants comparison: main grid vs longer budget vs no clipping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from legw_repro.analysis.cli import main
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.variants import compare_variants

REPO = Path(__file__).resolve().parents[1]


def record(root: Path, policy: str, batch: int, seed: int, *, acc=None, epochs=10, clip=5.0):
    d = root / policy / f"b{batch}-s{seed}"
    d.mkdir(parents=True)
    steps = (6000 // batch) * epochs
    summary = {
        "record_version": 2,
        "task": "mnist",
        "metric": "acc",
        "higher_is_better": True,
        "policy": policy,
        "optimizer": "adam" if policy == "adam" else "sgd",
        "batch_size": batch,
        "base_batch_size": 128,
        "k": batch / 128,
        "seed": seed,
        "scale": "cpu",
        "epochs": epochs,
        "total_steps": steps,
        "clip": clip or None,  # v2: None = no clipping
        "model": {"hidden": 128},
        "status": "completed" if acc is not None else "diverged",
        "final": {"test_acc": acc} if acc is not None else {},
    }
    (d / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def dirs(tmp_path):
    main_dir, long_dir, noclip_dir = tmp_path / "main", tmp_path / "long", tmp_path / "noclip"
    for seed in (0, 1):
        for policy in ("sqrt_legw", "adam"):
            record(main_dir, policy, 128, seed, acc=0.99)
            record(main_dir, policy, 1536, seed, acc=0.98 - 0.01 * seed)  # 30 steps
            record(main_dir, policy, 6000, seed, acc=0.80 + 0.02 * seed)  # 10 steps
            record(long_dir, policy, 6000, seed, acc=0.97, epochs=30)  # 30 steps
        record(noclip_dir, "sqrt_legw", 6000, seed, acc=None, clip=0)
        record(noclip_dir, "adam", 6000, seed, acc=0.81, clip=0)
    return main_dir, long_dir, noclip_dir


def test_compare_lines_up_settings_and_adds_the_same_steps_control(dirs):
    main_dir, long_dir, noclip_dir = dirs
    cmp = compare_variants(
        collect_runs([main_dir]),
        {"long": collect_runs([long_dir]), "noclip": collect_runs([noclip_dir])},
        "mnist",
    )
    got = {(r.setting, r.policy): r for r in cmp.itertuples()}
    assert set(cmp["setting"]) == {"main", "main, same steps", "long", "noclip"}
    main_legw = got[("main", "sqrt_legw")]
    assert main_legw.batch_size == 6000 and main_legw.mean == pytest.approx(0.81)
    assert main_legw.epochs == 10 and main_legw.clip == "5"
    # the long variant has 30 steps: the control is the main grid's batch 1536 (30 steps)
    control = got[("main, same steps", "sqrt_legw")]
    assert control.batch_size == 1536 and control.steps == 30
    assert got[("long", "adam")].epochs == 30 and got[("long", "adam")].mean == pytest.approx(0.97)
    nc = got[("noclip", "sqrt_legw")]
    assert nc.clip == "off" and nc.n_diverged == 2 and nc.n == 0


def test_cli_writes_variants_table_figure_and_report_section(dirs, tmp_path, capsys):
    main_dir, long_dir, noclip_dir = dirs
    out = tmp_path / "out"
    args = [str(main_dir), "--out", str(out), "--variant", f"long={long_dir}"]
    assert main([*args, "--variant", f"noclip={noclip_dir}"]) == 0
    report = (out / "report.md").read_text()
    assert "## Diagnostics: longer budget, no clipping" in report
    table = report.split("## Diagnostics")[1]
    assert "| noclip | 6000 | 10 | 10 | off | diverged (2/2) |" in table
    assert "| long | 6000 | 30 | 30 | 5 |" in table
    for name in ("variants.csv", "variants.svg"):
        assert (out / name).is_file()
    capsys.readouterr()
    assert main([*args, "--variant", "nonsense"]) == 2
    assert "expected NAME=RUNS_DIR" in capsys.readouterr().err


def test_a_variant_over_several_batch_sizes_gets_a_row_and_a_series_each(dirs, tmp_path):
    # a grid-wide variant (another hand-over, another base LR, a second seed) spans the batch
    # sizes; `make analyze-<task>` passes it with --variant like the one-batch diagnostics
    main_dir = dirs[0]
    wide = tmp_path / "wide"
    for batch, acc in ((128, 0.985), (1536, 0.97), (6000, 0.9)):
        record(wide, "sqrt_legw", batch, 0, acc=acc)
    out = tmp_path / "out"
    assert main([str(main_dir), "--out", str(out), "--variant", f"wide={wide}"]) == 0
    table = (out / "report.md").read_text().split("## Diagnostics")[1]
    for batch in (128, 1536, 6000):
        assert f"| wide | {batch} | 10 |" in table and f"| main | {batch} | 10 |" in table
    assert (out / "variants.svg").is_file()


def _series(ax) -> list[tuple[str, str]]:
    """(colour, marker) of each labelled series of a panel (an errorbar: its data line)."""
    from matplotlib.colors import to_hex

    out = []
    for h in ax.get_legend_handles_labels()[0]:
        line = h.lines[0] if hasattr(h, "lines") else h
        out.append((to_hex(line.get_color()), str(line.get_marker())))
    return out


def _assert_readable(fig, panels: int) -> None:
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == panels
    for ax in axes:
        series = _series(ax)
        assert 1 <= len(series) <= 8, (ax.get_title(), len(series))
        assert len(set(series)) == len(series), (ax.get_title(), series)


def test_variants_figure_has_a_readable_panel_per_variant(dirs, tmp_path):
    from legw_repro.analysis.variants import plot_variants

    main_dir, long_dir, noclip_dir = dirs
    wide = tmp_path / "wide"
    for policy in ("sqrt_legw", "sqrt", "linear", "adam", "none", "tuned"):
        for batch, acc in ((128, 0.985), (1536, 0.97), (6000, 0.9)):
            record(wide, policy, batch, 0, acc=acc)
    variants = {v: collect_runs([d]) for v, d in (("long", long_dir), ("noclip", noclip_dir))}
    variants["wide"] = collect_runs([wide])
    fig = plot_variants(compare_variants(collect_runs([main_dir]), variants, "mnist"), "mnist")
    # long, noclip, and wide's six policies in two panels (two series a policy: at most 8)
    _assert_readable(fig, panels=4)
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles[0] == "long: batch 6000" and titles[1] == "noclip: batch 6000"
    long_labels = fig.axes[0].get_legend_handles_labels()[1]
    assert [s.split(":")[0] for s in long_labels] == ["main", "main, same steps", "long"]


@pytest.mark.parametrize(
    ("task", "grid", "names", "panels"),
    [
        ("mnist", "mnist", ("absolute", "budget40", "long", "noclip", "shifted"), 6),
        ("gnmt", "gnmt", ("lr1", "seed1"), 2),
    ],
)
def test_committed_variants_figures_are_readable(task, grid, names, panels):
    # all of mnist's variants in one axes were 33 series with repeated colour/marker pairs
    from legw_repro.analysis.variants import plot_variants

    records = REPO / "results" / grid / "cpu" / "records"
    variants = {v: collect_runs([REPO / "results" / grid / f"cpu-{v}" / "records"]) for v in names}
    fig = plot_variants(compare_variants(collect_runs([records]), variants, task), task)
    _assert_readable(fig, panels)
