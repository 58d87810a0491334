"""How the warmup hands over to the decay: product, absolute or shifted (formulas and why
three in the package docstring, legw_repro/schedule/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable

HANDOVERS: tuple[str, ...] = ("product", "absolute", "shifted")


def lr_at(
    e: float, peak: float, warmup_len: float, handover: str, decay_fn: Callable[[float], float]
) -> float:
    """The hand-over formulas (module docstring); ``decay_fn`` already has its horizon."""
    if e < warmup_len:
        w = e / warmup_len
        return peak * w * decay_fn(e) if handover == "product" else peak * w
    if handover == "shifted":
        return peak * decay_fn(e - warmup_len)
    return peak * decay_fn(e)
