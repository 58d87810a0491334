"""Published reference results, kept as data so figures and reports can draw them.

Only numbers that come from a cited source go here; each carries the source to put in a
caption or legend.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One published number: ``value`` of ``split``-``metric`` for ``task`` at ``batch_size``."""

    task: str
    metric: str
    split: str
    value: float
    batch_size: int
    model_size: str | None
    label: str
    source: str


ZAREMBA_2014 = (
    "Zaremba, Sutskever & Vinyals 2014, 'Recurrent Neural Network Regularization', Table 1"
)

REFERENCES: tuple[Reference, ...] = (
    # Non-regularised small LSTM (2x200, 13 epochs) and the regularised (dropout) medium
    # (2x650, 39 epochs) and large (2x1500, 55 epochs) LSTMs; batch 20, 35-step BPTT.
    Reference("ptb", "ppl", "test", 114.5, 20, "small", "Zaremba et al. 2014, small", ZAREMBA_2014),
    Reference(
        "ptb", "ppl", "test", 82.7, 20, "medium", "Zaremba et al. 2014, medium", ZAREMBA_2014
    ),
    Reference("ptb", "ppl", "test", 78.4, 20, "large", "Zaremba et al. 2014, large", ZAREMBA_2014),
)


def references_for(
    task: str, metric: str | None = None, model_size: str | None = None
) -> list[Reference]:
    """References for ``task`` (and ``metric``). With a ``model_size`` (config
    ``task.model.size``) only the reference for that size -- none for an unpublished size such
    as a reduced "tiny" model; without one, all of the task's references."""
    refs = [r for r in REFERENCES if r.task == task and (metric is None or r.metric == metric)]
    if model_size is not None and str(model_size) not in ("", "nan"):
        return [r for r in refs if r.model_size == str(model_size)]
    return refs
