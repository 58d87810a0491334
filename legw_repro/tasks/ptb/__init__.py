"""PTB word-level language modelling (Zaremba et al. LSTM)."""

from legw_repro.tasks.ptb.task import PTBTask

__all__ = ["PTBTask"]
