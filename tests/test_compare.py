"""Fresh vs committed (legw_repro/analysis/compare.py) on fabricated run tables: which points
agree, by which tolerance, and what the report section says."""

from __future__ import annotations

import pytest

from legw_repro.analysis.collect import runs_from_records
from legw_repro.analysis.compare import compare, comparison_markdown, scale_note, unmatched


def _runs(metric: str, rows: list[tuple]):
    """(policy, batch, seed, value or "diverged"[, scale]) -> a run table as collect_runs
    builds it (scale cpu unless given)."""
    task = {"ppl": "ptb", "acc": "mnist"}[metric]
    records = []
    for policy, batch, seed, value, *scale in rows:
        diverged = value == "diverged"
        records.append(
            {
                "task": task, "metric": metric, "policy": policy, "batch_size": batch,
                "seed": seed, "scale": scale[0] if scale else "cpu", "status": "diverged" if diverged else "completed",
                f"test_{metric}": None if diverged else value,
                "run_dir": f"runs/{policy}/b{batch}-s{seed}",
            }
        )  # fmt: skip
    return runs_from_records(records)


def test_one_seed_perplexity_within_the_stated_run_to_run_tolerance():
    # the data point: a fresh PTB cpu run at batch 20 (another thread count)
    ref = _runs("ppl", [("sqrt_legw", 20, 0, 144.6), ("sqrt_legw", 1280, 0, 300.0)])
    fresh = _runs("ppl", [("sqrt_legw", 20, 0, 143.0), ("sqrt_legw", 1280, 0, 320.0)])
    table = compare(fresh, ref).set_index("batch_size")
    assert table.loc[20, "difference"] == pytest.approx(-1.6)
    assert table.loc[20, "tolerance"] == pytest.approx(0.02 * 144.6)
    assert table.loc[20, "agrees"] and "one reference seed" in table.loc[20, "basis"]
    assert not table.loc[1280, "agrees"]  # 6.7% apart
    text = comparison_markdown(compare(fresh, ref), "ppl", "results/ptb/cpu/records")
    assert "| sqrt_legw | 20 | 1 | 143.00 | 144.60 | -1.60 | ±2.89 | yes |" in text
    assert "| **no** |" in text and "**1 of 2 points agree**" in text


def test_several_reference_seeds_set_the_tolerance_from_their_spread():
    ref = _runs(
        "acc",
        [("sqrt", 8192, s, v) for s, v in enumerate((0.90, 0.95, 0.85))]
        + [("adam", 128, s, 0.990 + 0.001 * s) for s in range(3)],
    )
    fresh = _runs(
        "acc",
        [
            (p, b, s, v)
            for p, b, v in (("sqrt", 8192, 0.93), ("adam", 128, 0.975))
            for s in range(3)
        ],
    )
    table = compare(fresh, ref).set_index("policy")
    # sigma 0.05 over 3 seeds: 2 * 0.05 * sqrt(2/3) = 0.082 > |0.93 - 0.90|
    assert table.loc["sqrt", "tolerance"] == pytest.approx(2 * 0.05 * (2 / 3) ** 0.5)
    assert table.loc["sqrt", "agrees"] and "3 reference seeds" in table.loc["sqrt", "basis"]
    # sigma 0.001 is below the 0.5-point floor; 1.6 points off is outside it
    assert table.loc["adam", "tolerance"] == pytest.approx(0.005)
    assert not table.loc["adam", "agrees"]
    text = comparison_markdown(compare(fresh, ref), "acc", "results/mnist/cpu/records")
    assert "| adam | 128 | 3 | 97.50% | 99.10% | -1.60 pt | ±0.50 | **no** |" in text


def test_divergence_agrees_only_with_divergence_and_unshared_points_are_not_judged():
    ref = _runs(
        "acc",
        [("linear", 8192, 0, "diverged"), ("linear", 4096, 0, "diverged")]
        + [("linear", 8192, 1, 0.5, "smoke")],
    )
    fresh = _runs(
        "acc",
        [("linear", 8192, 0, "diverged"), ("linear", 4096, 0, 0.9)]
        + [("linear", 8192, 1, 0.5), ("sqrt", 128, 0, 0.9)],
    )
    table = compare(fresh, ref).set_index("batch_size")
    assert list(table.index) == [4096, 8192] and set(table["seeds"]) == {1}
    assert table.loc[8192, "agrees"] and not table.loc[4096, "agrees"]
    assert "diverged: fresh 0/1, reference 1" in table.loc[4096, "note"]
    # seed 1 is in the reference only at another scale; sqrt is not in it at all
    left = unmatched(fresh, ref)
    assert {(r.policy, r.seed) for r in left.itertuples()} == {("linear", 1), ("sqrt", 0)}
    sqrt = fresh[fresh["policy"] == "sqrt"]
    assert "No point" in comparison_markdown(compare(sqrt, ref), "acc", "x")
    smoke = ref[ref["scale"] == "smoke"]
    assert scale_note(fresh, smoke) == "The reference holds scale smoke, this sweep is cpu."
    assert scale_note(fresh, ref) == ""
