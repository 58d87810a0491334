"""MNIST as a sequence (rows or pixels) classified by an LSTM."""

from legw_repro.tasks.mnist.task import MNISTTask

__all__ = ["MNISTTask"]
