"""MNIST from the original IDX files, with a seeded validation split held out of the 60k train set."""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from legw_repro.tasks.common.download import DataError, FileSpec, ensure_files, resolve_data_dir

__all__ = ["MNIST_FILES", "MNISTData", "load_mnist", "read_idx"]

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/{}"

MNIST_FILES: tuple[FileSpec, ...] = (
    FileSpec(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        _MNIST_URL.format("train-images-idx3-ubyte.gz"),
        md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    FileSpec(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        _MNIST_URL.format("train-labels-idx1-ubyte.gz"),
        md5="d53e105ee54ea40749a09fcbcd1e9432",
    ),
    FileSpec(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        _MNIST_URL.format("t10k-images-idx3-ubyte.gz"),
        md5="9fb629c4189551a2d022fa330f9573f3",
    ),
    FileSpec(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        _MNIST_URL.format("t10k-labels-idx1-ubyte.gz"),
        md5="ec29112dd5afa0611ce80d1b7f02629c",
    ),
)

N_TRAIN_FULL = 60_000
N_TEST = 10_000

# IDX type codes -> big-endian numpy dtypes
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain; detected from the content) into an array.

    Validates the magic number (two zero bytes, a known type code, the number of dimensions)
    and that the payload size equals the product of the dimensions. Raises :class:`DataError`
    naming the file if it is truncated, corrupt or not IDX. Returns a writable native-endian array.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise DataError(
            f"{path}: cannot read/decompress IDX file ({e}); the file is corrupt"
        ) from e

    def bad(msg: str) -> DataError:
        return DataError(
            f"{path}: not a valid IDX file: {msg}. The file is corrupt; delete it and "
            f"re-download it or replace it with the official file."
        )

    if len(raw) < 4:
        raise bad(f"only {len(raw)} bytes")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES:
        raise bad(f"bad magic number 0x{raw[:4].hex()}")
    if ndim < 1:
        raise bad("zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise bad(f"header truncated ({len(raw)} < {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise bad(f"size {len(raw)} bytes, expected {expected} for shape {dims} of {dtype}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


@dataclass(frozen=True)
class MNISTData:
    """MNIST tensors. Images are uint8 ``[N, 28, 28]`` (0..255), labels int64 ``[N]``.

    ``train_*`` is the 60k training set minus the ``val_*`` hold-out; ``train_index`` and
    ``val_index`` are the (sorted) positions in the original 60k set. ``test_*`` is t10k.
    Cached per process and shared between callers: do not modify the tensors in place.
    """

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    train_index: Tensor
    val_index: Tensor


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    val_size: int = 5000,
    split_seed: int = 0,
    *,
    allow_download: bool | None = None,
) -> MNISTData:
    """Load MNIST from ``<data_dir>/mnist/`` with ``val_size`` training images held out.

    The hold-out is chosen by a permutation from ``numpy.random.default_rng(split_seed)``,
    independent of any training seed or global RNG state. Cached per process.
    """
    if not 0 <= val_size < N_TRAIN_FULL:
        raise ValueError(f"val_size must be in [0, {N_TRAIN_FULL}), got {val_size}")
    root = resolve_data_dir(data_dir)
    ensure_files(root / "mnist", MNIST_FILES, dataset="mnist", allow_download=allow_download)
    return _split_cached(root.resolve(), int(val_size), int(split_seed))


def _check(path: Path, arr: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if arr.shape != shape or arr.dtype != np.uint8:
        raise DataError(
            f"{path}: expected {what} of shape {shape} uint8, got {arr.shape} {arr.dtype}"
        )


@functools.lru_cache(maxsize=2)
def _raw_cached(root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    d = root / "mnist"
    out = []
    for split, n in (("train", N_TRAIN_FULL), ("t10k", N_TEST)):
        p_img = d / f"{split}-images-idx3-ubyte.gz"
        p_lbl = d / f"{split}-labels-idx1-ubyte.gz"
        img, lbl = read_idx(p_img), read_idx(p_lbl)
        _check(p_img, img, (n, 28, 28), "images")
        _check(p_lbl, lbl, (n,), "labels")
        if lbl.max() > 9:
            raise DataError(f"{p_lbl}: label {int(lbl.max())} out of range 0..9")
        out += [torch.from_numpy(img), torch.from_numpy(lbl.astype(np.int64))]
    return tuple(out)  # type: ignore[return-value]


@functools.lru_cache(maxsize=8)
def _split_cached(root: Path, val_size: int, split_seed: int) -> MNISTData:
    train_x, train_y, test_x, test_y = _raw_cached(root)
    perm = np.random.default_rng(split_seed).permutation(N_TRAIN_FULL)
    val_index = torch.from_numpy(np.sort(perm[:val_size])).long()
    train_index = torch.from_numpy(np.sort(perm[val_size:])).long()
    return MNISTData(
        train_x=train_x[train_index],
        train_y=train_y[train_index],
        val_x=train_x[val_index],
        val_y=train_y[val_index],
        test_x=test_x,
        test_y=test_y,
        train_index=train_index,
        val_index=val_index,
    )
