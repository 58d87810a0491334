"""GNMT-lite: attention LSTM translation on Multi30k or WMT16, scored by BLEU."""

from legw_repro.tasks.gnmt.task import GNMTTask

__all__ = ["GNMTTask"]
