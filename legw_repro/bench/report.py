"""Measurements -> CSV rows (one per task, batch and loop) and the printed table.

Every row carries the machine (device type and name, threads, torch version) and the date, so
a CSV read on its own says where its numbers came from. `vs_bare_sync` is the median over
blocks of the trainer's speed relative to the neighbouring bare block on the same batches (> 1:
faster); `vs_bare_sync_cpu` the same from process CPU time, which a busy machine disturbs less
(meaningful with one thread on a CPU). Peak memory: CUDA's max allocated per loop; on a CPU the
process's peak RSS, which both loops (and the data) share.
"""

from __future__ import annotations

import csv
import math
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from legw_repro.bench.stats import Block, by_loop, figures, median_or_nan, paired_ratios

COLUMNS = [
    "date", "device", "device_name", "torch", "threads", "precision", "task", "scale",
    "batch", "item_unit", "items_per_step", "loop", "concurrent", "sharing", "blocks",
    "steps_per_block", "step_ms_median", "step_ms_min", "step_ms_max", "items_per_s",
    "vs_bare_sync", "vs_bare_sync_cpu", "vs_bare_nosync", "peak_mem_mib", "mem_kind", "mflop_per_item",
    "achieved_tflops", "peak_tflops", "overrides",
]  # fmt: skip


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model name (/proc/cpuinfo, as `lscpu` shows it)."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict[str, Any]:
    """The columns that say where and when (the same in every row of one bench run)."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _ratio(blocks: dict[str, list[Block]], a: str, b: str, cpu: bool = False) -> float:
    return median_or_nan(paired_ratios(blocks.get(a, []), blocks.get(b, []), cpu))


def rows_of(result: dict[str, Any], meta: dict[str, Any], peak_flops: float) -> list[dict]:
    """One measurement (measure.measure) -> a row per loop."""
    s = result["setting"]
    blocks = by_loop([Block(**b) for b in result["blocks"]])
    out = []
    for loop, group in blocks.items():
        f = figures(group, result["items_per_step"])
        mem = f.peak_bytes if f.peak_bytes is not None else result["peak_rss_bytes"]
        out.append(
            {
                **meta,
                **_common(s, result),
                "loop": loop,
                "concurrent": 1,
                "blocks": f.blocks,
                "steps_per_block": f.steps_per_block,
                "step_ms_median": round(f.step_ms_median, 3),
                "step_ms_min": round(f.step_ms_min, 3),
                "step_ms_max": round(f.step_ms_max, 3),
                "items_per_s": round(f.items_per_s, 1),
                "vs_bare_sync": round(_ratio(blocks, loop, "bare_sync"), 4),
                "vs_bare_sync_cpu": round(_ratio(blocks, loop, "bare_sync", cpu=True), 4),
                "vs_bare_nosync": round(_ratio(blocks, loop, "bare_nosync"), 4),
                "peak_mem_mib": round(mem / 2**20, 1),
                "mem_kind": "cuda_max_allocated" if f.peak_bytes is not None else "process_rss",
                **_flops(result["flops_per_item"], f.items_per_s, peak_flops),
            }
        )
    return out


def window_rows(results: list[dict[str, Any]], meta: dict[str, Any], peak_flops: float) -> dict:
    """N processes' windows (measure.measure_window) -> one row: the summed throughput."""
    first = results[0]
    blocks = [Block(**r["block"]) for r in results]
    per_step = [b.wall_s / b.steps for b in blocks]
    items = sum(first["items_per_step"] * b.steps / b.wall_s for b in blocks)
    peaks = [b.peak_bytes for b in blocks if b.peak_bytes is not None]
    mem = max(peaks) if peaks else max(r["peak_rss_bytes"] for r in results)
    return {
        **meta,
        **_common(first["setting"], first),
        "loop": "trainer",
        "concurrent": len(results),
        "blocks": len(blocks),
        "steps_per_block": min(b.steps for b in blocks),
        "step_ms_median": round(1e3 * sorted(per_step)[len(per_step) // 2], 3),
        "step_ms_min": round(1e3 * min(per_step), 3),
        "step_ms_max": round(1e3 * max(per_step), 3),
        "items_per_s": round(items, 1),
        "peak_mem_mib": round(mem / 2**20, 1),
        "mem_kind": "cuda_max_allocated (per process)" if peaks else "process_rss (per process)",
        **_flops(
            next((r["flops_per_item"] for r in results if r["rank"] == 0), math.nan),
            items,
            peak_flops,
        ),  # fmt: skip
    }


def _common(s: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    return {
        "precision": s["precision"],
        "task": s["task"],
        "scale": s["scale"],
        "batch": s["batch"],
        "item_unit": result.get("item_unit", ""),
        "items_per_step": result["items_per_step"],
        "overrides": " ".join(s.get("overrides") or ()),
    }


def _flops(per_item: float, items_per_s: float, peak: float) -> dict[str, Any]:
    return {
        "mflop_per_item": round(per_item / 1e6, 3),
        "achieved_tflops": round(per_item * items_per_s / 1e12, 4),
        "peak_tflops": round(peak / 1e12, 3),
    }


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _fmt(x: Any, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _loop(row: dict[str, Any]) -> str:
    """The loop's name, with `+mps` for runs that shared the GPU through CUDA MPS."""
    return row["loop"] + ("+mps" if row.get("sharing") == "mps" else "")


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (what `make bench` prints)."""
    head = (
        f"{'task':6} {'batch':>6} {'loop':12} {'N':>2} {'items/s':>10} {'step ms':>9} "
        f"{'(min-max)':>17} {'vs bare':>8} {'(cpu t)':>8} {'mem MiB':>8} {'TFLOP/s':>8} "
        f"{'%peak':>6}  overrides"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        spread = f"{_fmt(r['step_ms_min'], '.1f')}-{_fmt(r['step_ms_max'], '.1f')}"
        pct = 100 * r["achieved_tflops"] / r["peak_tflops"] if r["peak_tflops"] else math.nan
        lines.append(
            f"{r['task']:6} {r['batch']:>6} {_loop(r):12} {r['concurrent']:>2} "
            f"{_fmt(r['items_per_s'], ',.0f'):>10} {_fmt(r['step_ms_median'], '.2f'):>9} "
            f"{spread:>17} {_fmt(r.get('vs_bare_sync'), '.3f'):>8} "
            f"{_fmt(r.get('vs_bare_sync_cpu'), '.3f'):>8} {_fmt(r['peak_mem_mib'], '.0f'):>8} "
            f"{_fmt(r['achieved_tflops'], '.3f'):>8} {_fmt(pct, '.1f'):>6}  {r['overrides']}"
        )
    return "\n".join(lines)
