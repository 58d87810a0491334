"""results/FINDINGS.md and the README's summary: every claim of the paper, decided per study
(task and scale) and batch multiple by :mod:`legw_repro.analysis.verdicts`, under the rule in
configs/verdicts.yaml (docs/verdicts.md).

    python -m legw_repro.analysis.findings           # rewrite results/FINDINGS.md and the README block
    python -m legw_repro.analysis.findings --check   # exit 1 when either is out of date

Why generated: the page is the project's answer to "does LEGW hold?", so it must change when a
record changes and only then; a test regenerates it from the committed records and compares.
The headline value of a run is the analysis's own (``metric_value`` of
:func:`~legw_repro.analysis.collect.collect_runs`: the final test value of the task's metric).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from legw_repro.analysis import predicted
from legw_repro.analysis.collect import collect_runs
from legw_repro.analysis.frames import ordered_policies
from legw_repro.analysis.metrics import metric_info
from legw_repro.analysis.verdicts import (
    Point,
    Verdict,
    decide_beats,
    decide_holds,
    decide_matches,
    holds_up_to,
)

REPO = Path(__file__).resolve().parents[2]
RULE = REPO / "configs" / "verdicts.yaml"
FINDINGS = REPO / "results" / "FINDINGS.md"
README = REPO / "README.md"
START, END = "<!-- findings:start -->", "<!-- findings:end -->"
COMMAND = "python -m legw_repro.analysis.findings"
Raw = dict[tuple[str, float], dict[int, float | None]]  # (policy, k) -> seed -> value / diverged


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    task: str
    records: tuple[str, ...]
    adam_tuned: bool
    adam_note: str
    summary: bool


@dataclass(frozen=True)
class Rule:
    """configs/verdicts.yaml as read: the level, the policies and each task's unit and δ."""

    level: float
    method: str
    linear: str
    adam: str
    policies: tuple[str, ...]
    tasks: Mapping[str, Mapping[str, Any]]
    studies: tuple[Study, ...]
    predictions: tuple[predicted.Prediction, ...] = ()


@dataclass
class Result:
    """One study decided: ``rows`` (claim, k, verdict) in table order, ``up_to`` per policy,
    the base means and the runs left out (crashed or unfinished)."""

    study: Study
    unit: str
    delta: float
    rows: list[tuple[str, float, Verdict]] = field(default_factory=list)
    up_to: dict[str, float] = field(default_factory=dict)
    bases: dict[str, str] = field(default_factory=dict)
    left_out: int = 0
    seeds: str = ""


def load_rule(path: Path = RULE) -> Rule:
    """The rule file as a :class:`Rule` (a missing key is a KeyError naming it)."""
    cfg = yaml.safe_load(path.read_text())
    studies = tuple(
        Study(
            s["name"],
            s["title"],
            s["task"],
            tuple(s["records"]),
            bool(s["adam_tuned"]),
            s["adam_note"],
            bool(s["summary"]),
        )  # fmt: skip
        for s in cfg["studies"]
    )
    tasks = {s.name: s.task for s in studies}
    preds = tuple(
        predicted.Prediction(
            p["study"],
            p["noise"],
            float(p["budget"]),
            _base_batch(tasks[p["study"]]),
            cfg["tasks"][tasks[p["study"]]]["unit"],
            float(cfg["tasks"][tasks[p["study"]]]["delta"]),
        )  # fmt: skip
        for p in cfg.get("predictions", ())
    )
    return Rule(
        float(cfg["confidence"]), cfg["method_policy"], cfg["linear_policy"], cfg["adam_policy"],
        tuple(cfg["policies"]), cfg["tasks"], studies, preds,
    )  # fmt: skip


def _base_batch(task: str) -> int:
    """The task's base batch, from its config (the batch its noise scale was measured at)."""
    from legw_repro.config.config_dir import CONFIGS

    return int(yaml.safe_load((CONFIGS / "task" / f"{task}.yaml").read_text())["base_batch_size"])


def raw_points(runs: pd.DataFrame) -> tuple[Raw, int]:
    """Per (policy, k), each seed's headline value; ``None`` for a diverged run or one whose
    value is not finite. Runs that failed, still run or were preempted are left out and
    counted: they are no evidence about the policy."""
    raw: Raw = {}
    left_out = 0
    for row in runs.itertuples():
        value = float(row.metric_value) if pd.notna(row.metric_value) else math.nan
        if row.status == "diverged" or (row.status == "completed" and not math.isfinite(value)):
            kept: float | None = None
        elif row.status == "completed":
            kept = value
        else:
            left_out += 1
            continue
        raw.setdefault((str(row.policy), float(row.k)), {})[int(row.seed)] = kept
    return raw, left_out


def to_point(values: Mapping[int, float | None], metric: str, unit: str, ref: float) -> Point:
    """Seeds in the verdict's unit, oriented so that larger is worse: ``percent`` -> 100 v /
    ``ref`` (a lower-is-better metric), ``points`` -> the displayed value, negated when higher
    is better."""
    m = metric_info(metric)
    sign = -1.0 if m.higher_is_better else 1.0

    def conv(v: float) -> float:
        return sign * 100.0 * v / ref if unit == "percent" else sign * float(m.display(v))

    return Point({s: None if v is None else conv(v) for s, v in values.items()})


def _base_mean(raw: Raw, policy: str) -> float:
    vals = [v for v in raw.get((policy, 1.0), {}).values() if v is not None]
    return sum(vals) / len(vals) if vals else math.nan


def _holds_rows(res: Result, raw: Raw, metric: str, rule: Rule) -> None:
    """Claim (a) for every listed policy present: each k > 1 against the same policy's base."""
    present = [p for p in ordered_policies(p for p, _ in raw) if p in rule.policies]
    for policy in present:
        ref = _base_mean(raw, policy)
        base = to_point(raw.get((policy, 1.0), {}), metric, res.unit, ref)
        m = metric_info(metric)
        if base.finite:
            res.bases[policy] = f"{m.format_short(ref)} (n={len(base.finite)})"
        verdicts = {}
        for k in sorted(k for p, k in raw if p == policy and k > 1):
            point = to_point(raw[(policy, k)], metric, res.unit, ref)
            verdicts[k] = decide_holds(point, base, res.delta, rule.level)
            res.rows.append((f"{policy} keeps accuracy", k, verdicts[k]))
        res.up_to[policy] = holds_up_to(verdicts) if base.finite else math.nan


def _pair_rows(res: Result, raw: Raw, metric: str, rule: Rule) -> None:
    """Claims (b) and (c): the method against linear (k > 1) and Adam (every k) at the same k,
    Δ in percent of the method's base for a percent unit."""
    ref = _base_mean(raw, rule.method)
    ks = sorted(k for p, k in raw if p == rule.method)
    for other, claim in ((rule.linear, "beats linear"), (rule.adam, "matches Adam")):
        for k in ks:
            if (other, k) not in raw or (claim == "beats linear" and k <= 1):
                continue
            a = to_point(raw[(rule.method, k)], metric, res.unit, ref)
            b = to_point(raw[(other, k)], metric, res.unit, ref)
            names = (rule.method, other)
            if claim == "beats linear":
                verdict = decide_beats(a, b, names, rule.level)
            else:
                verdict = decide_matches(a, b, res.delta, names, rule.level)
                if not res.study.adam_tuned:
                    note = _join(verdict.note, "Adam untuned")
                    verdict = Verdict(verdict.word, verdict.estimate, note, verdict.direction)
            res.rows.append((claim, k, verdict))


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def decide_study(study: Study, rule: Rule, root: Path = REPO) -> Result:
    """Every claim of one study at every k its records hold."""
    task = rule.tasks[study.task]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = collect_runs([root / d for d in study.records])
    runs = runs[runs["task"] == study.task]
    metric = str(runs["metric"].dropna().iloc[0])
    raw, left_out = raw_points(runs)
    res = Result(study, str(task["unit"]), float(task["delta"]), left_out=left_out)
    ns = sorted({len(v) for (p, _), v in raw.items() if p == rule.method})
    res.seeds = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}" if ns else "0"
    _holds_rows(res, raw, metric, rule)
    _pair_rows(res, raw, metric, rule)
    return res


# ---------------------------------------------------------------- rendering


def _ks(ks: Sequence[float]) -> str:
    return f"{ks[0]:g}x" if len(ks) == 1 else f"{ks[0]:g}-{ks[-1]:g}x"


def runs_of_words(pairs: Sequence[tuple[float, Verdict]]) -> str:
    """Consecutive k with the same verdict as one group: ``holds 2-4x · fails 8-64x``."""
    groups: list[tuple[str, list[float]]] = []
    for k, v in sorted(pairs, key=lambda x: x[0]):
        if groups and groups[-1][0] == v.label:
            groups[-1][1].append(k)
        else:
            groups.append((v.label, [k]))
    return " · ".join(f"{w} {_ks(ks)}" for w, ks in groups) or "—"


def _unit_suffix(unit: str, task: str) -> str:
    return "%" if unit == "percent" else (" BLEU" if task == "gnmt" else " pt")


def _num(x: float, suffix: str) -> str:
    return "—" if not math.isfinite(x) else f"{x:+.2f}{suffix}"


def _cells(v: Verdict, suffix: str) -> list[str]:
    """verdict (note), effect, interval, n, method."""
    word = f"**{v.word}**" + (f" ({_join(v.direction, v.note)})" if v.direction or v.note else "")
    e = v.estimate
    if e is None:
        return [word, "—", "—", "—", "divergence"]
    interval = "—" if not e.bounded else f"[{e.lo:+.2f}, {e.hi:+.2f}]"
    return [word, _num(e.effect, suffix), interval, e.n, e.method]


def _up_to_text(res: Result, policies: Sequence[str]) -> str:
    return " · ".join(
        f"{p} {res.up_to[p]:g}x" if math.isfinite(res.up_to[p]) else f"{p} —"
        for p in policies
        if p in res.up_to
    )


def study_section(res: Result, rule: Rule) -> str:
    """One study's section of FINDINGS.md: what was compared, then claims x k."""
    s, suffix = res.study, _unit_suffix(res.unit, res.study.task)
    unit = {"%": "% of the base's mean", " pt": "accuracy points", " BLEU": "BLEU points"}[suffix]
    lines = [
        f"## {s.title}",
        "",
        f"Records: {', '.join(f'`{d}`' for d in s.records)}. Δ in {unit}, "
        f"positive = worse; δ = {res.delta:g}{suffix}. Base (k=1) means: "
        + ", ".join(f"{p} {b}" for p, b in res.bases.items())
        + f". Adam: {s.adam_note}."
        + (
            f" {res.left_out} run(s) that crashed or did not finish are left out."
            if res.left_out
            else ""
        ),
        "",
        f"Holds up to (every k' <= k holds): {_up_to_text(res, rule.policies)}.",
        "",
        "| claim | k | verdict | effect | 90% interval | n | method |",
        "| --- | ---: | --- | ---: | --- | --- | --- |",
    ]
    lines += [
        "| " + " | ".join([claim, f"{k:g}", *_cells(v, suffix)]) + " |" for claim, k, v in res.rows
    ]
    return "\n".join(lines)


def summary_table(results: Sequence[Result], rule: Rule) -> str:
    """The README's table: per main study the three claims as runs of verdicts over k."""
    header = (
        "| task, scale | seeds | (a) sqrt-LEGW keeps accuracy (δ; claimed to) | holds up to "
        "| (b) beats linear | (c) SGD+LEGW matches Adam |"
    )
    lines = [header, "| --- | ---: | --- | --- | --- | --- |"]
    for r in results:
        rows = {
            c: [(k, v) for cl, k, v in r.rows if cl == c] for c in ("beats linear", "matches Adam")
        }
        a = [(k, v) for cl, k, v in r.rows if cl == f"{rule.method} keeps accuracy"]
        claimed = rule.tasks[r.study.task]["claimed_k"]
        delta = f"δ {r.delta:g}{_unit_suffix(r.unit, r.study.task)}; to {claimed}x"
        adam = runs_of_words(rows["matches Adam"])
        if rows["matches Adam"] and not r.study.adam_tuned:
            adam = f"Adam untuned: {adam}"
        cells = [
            r.study.title.split(" (")[0], r.seeds, f"{runs_of_words(a)} ({delta})",
            _up_to_text(r, rule.policies), runs_of_words(rows["beats linear"]), adam,
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_block(results: Sequence[Result], rule: Rule) -> str:
    """What stands between the README's markers: a caption and the summary table."""
    main = [r for r in results if r.study.summary]
    return "\n".join(
        [
            START,
            "**The paper's claims, decided from the committed runs** (generated by "
            f"`{COMMAND}`; the rule: [docs/verdicts.md](docs/verdicts.md); every cell with its "
            "effect, interval and method: [results/FINDINGS.md](results/FINDINGS.md)):",
            "",
            summary_table(main, rule),
            END,
        ]
    )


def findings_page(results: Sequence[Result], rule: Rule) -> str:
    """The whole of results/FINDINGS.md."""
    lvl = rule.level
    parts = [
        "# Findings: the paper's claims, decided from the committed records",
        "",
        f"Generated by `{COMMAND}` from `configs/verdicts.yaml` (the rule, fixed before the "
        "records are read; why each number: `docs/verdicts.md`). Do not edit by hand.",
        "",
        f"Rule in short: Δ = metric at k − the same policy's base (k=1), positive = worse. "
        f"**holds** when the one-sided {lvl:.0%} upper bound of Δ is below δ, **fails** when "
        f"the lower bound is above δ or a seed diverged, else **not settled**. **beats linear**: "
        f"sqrt_legw − linear at the same k, bound below 0 (or linear diverged where sqrt_legw "
        f"did not). **matches Adam**: two one-sided tests, both bounds of sqrt_legw − adam "
        f"within ±δ; **differs** when the interval lies wholly outside. Intervals are the two "
        f"one-sided {lvl:.0%} bounds (90% two-sided); Welch t between batch sizes, paired t by "
        "seed at the same batch (Welch when fewer than two seeds pair); 'pooled σ': one side "
        "had one seed and the other side's variance stands for both.",
        "",
        "## Summary (main grids)",
        "",
        summary_table([r for r in results if r.study.summary], rule),
        "",
    ]
    if rule.predictions:
        parts += [prediction_section(results, rule), ""]
    parts += [x for r in results for x in (study_section(r, rule), "")]
    return "\n".join(parts).rstrip() + "\n"


def prediction_section(results: Sequence[Result], rule: Rule, root: Path = REPO) -> str:
    """The noise scale's predicted boundary beside each study's observed "holds up to"."""
    by_name = {r.study.name: r for r in results}
    up_to = {n: r.up_to for n, r in by_name.items()}
    ks = {n: sorted({1.0, *(k for _, k, _ in r.rows)}) for n, r in by_name.items()}
    after = {}
    for name, r in by_name.items():
        for policy, seen in r.up_to.items():
            claim = f"{policy} keeps accuracy"
            nxt = [(k, v.word) for c, k, v in r.rows if c == claim and k > seen]
            if nxt:
                after[(name, policy)] = min(nxt)
    table = predicted.rows(rule.predictions, up_to, ks, after, rule.policies, root)
    return predicted.section(table)


def with_block(readme: str, block: str) -> str:
    """``readme`` with the text between the markers (markers included) replaced by ``block``;
    ValueError when the markers are missing."""
    i, j = readme.find(START), readme.find(END)
    if i < 0 or j < i:
        raise ValueError(f"README.md lacks the markers {START} ... {END}; add them once")
    return readme[:i] + block + readme[j + len(END) :]


def generate(rule: Rule, root: Path = REPO) -> tuple[str, str]:
    """(FINDINGS.md, the README block) from the committed records under ``root``."""
    results = [decide_study(s, rule, root) for s in rule.studies]
    return findings_page(results, rule), readme_block(results, rule)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="legw-findings", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 when the files are out of date")
    args = p.parse_args(argv)
    page, block = generate(load_rule())
    readme = with_block(README.read_text(), block)
    stale = [
        f
        for f, text in ((FINDINGS, page), (README, readme))
        if not f.exists() or f.read_text() != text
    ]
    if args.check:
        for f in stale:
            print(f"{f.relative_to(REPO)} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1 if stale else 0
    FINDINGS.write_text(page)
    README.write_text(readme)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
