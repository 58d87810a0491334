"""MNIST IDX reading and the seeded validation split (on the shared data; no network)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from legw_repro.tasks.common.download import DataError
from legw_repro.tasks.mnist.data import MNISTData, load_mnist, read_idx

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist(shared_data_dir) -> MNISTData:
    return load_mnist(shared_data_dir, allow_download=False)


def test_shapes_and_dtypes(mnist):
    assert mnist.train_x.shape == (55_000, 28, 28) and mnist.train_x.dtype == torch.uint8
    assert mnist.val_x.shape == (5_000, 28, 28) and mnist.val_x.dtype == torch.uint8
    assert mnist.test_x.shape == (10_000, 28, 28) and mnist.test_x.dtype == torch.uint8
    assert mnist.train_y.shape == (55_000,) and mnist.train_y.dtype == torch.int64
    assert mnist.val_y.shape == (5_000,) and mnist.val_y.dtype == torch.int64
    assert mnist.test_y.shape == (10_000,) and mnist.test_y.dtype == torch.int64
    assert int(mnist.train_x.max()) == 255 and int(mnist.train_x.min()) == 0


def test_label_counts_match_readme(mnist):
    full = torch.cat([mnist.train_y, mnist.val_y])
    assert torch.bincount(full, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(mnist.test_y, minlength=10).tolist() == TEST_COUNTS


def test_val_split_disjoint_and_complete(mnist, shared_data_dir):
    tr, va = mnist.train_index, mnist.val_index
    assert len(set(tr.tolist()) & set(va.tolist())) == 0
    assert torch.equal(torch.sort(torch.cat([tr, va])).values, torch.arange(60_000))
    # rows really are the indexed rows of the original training set
    x0 = torch.from_numpy(read_idx(shared_data_dir / "mnist" / "train-images-idx3-ubyte.gz"))
    assert torch.equal(x0[va], mnist.val_x) and torch.equal(x0[tr], mnist.train_x)


def test_split_deterministic_and_seeded(shared_data_dir, mnist):
    assert load_mnist(shared_data_dir) is mnist  # cached per process
    torch.manual_seed(123)
    np.random.seed(123)
    again = load_mnist(shared_data_dir, val_size=5000, split_seed=0)
    assert torch.equal(again.val_index, mnist.val_index)  # independent of global RNG state
    other = load_mnist(shared_data_dir, split_seed=1)
    assert not torch.equal(other.val_index, mnist.val_index)
    assert torch.equal(other.test_y, mnist.test_y)
    small = load_mnist(shared_data_dir, val_size=0)
    assert small.train_x.shape[0] == 60_000 and small.val_x.shape[0] == 0
    with pytest.raises(ValueError):
        load_mnist(shared_data_dir, val_size=60_000)


def test_original_first_images(shared_data_dir):
    lbl = read_idx(shared_data_dir / "mnist" / "train-labels-idx1-ubyte.gz")
    assert lbl.dtype == np.uint8 and lbl.shape == (60_000,)
    assert lbl[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training labels


def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    return (
        struct.pack(">HBB", 0, code, arr.ndim)
        + struct.pack(f">{arr.ndim}I", *arr.shape)
        + (arr.astype(arr.dtype.newbyteorder(">")).tobytes())
    )


def test_read_idx_plain_and_gzip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(a))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(_idx_bytes(a)))
    for name in ("a.idx", "a.idx.gz"):
        out = read_idx(tmp_path / name)
        assert out.shape == (2, 3, 4) and np.array_equal(out, a) and out.flags.writeable
    b = np.array([-1, 70000, 3], dtype=np.int32)
    (tmp_path / "b.idx").write_bytes(_idx_bytes(b, code=0x0C))
    assert read_idx(tmp_path / "b.idx").tolist() == [-1, 70000, 3]


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda good: good[:-1],  # truncated payload
        lambda good: good + b"\x00",  # trailing bytes
        lambda good: b"\x01\x02" + good[2:],  # bad magic
        lambda good: good[:2] + b"\x07" + good[3:],  # unknown type code
        lambda good: good[:6],  # truncated header
        lambda good: b"",
        lambda good: gzip.compress(good)[:-10],  # truncated gzip stream
        lambda good: b"\x1f\x8bnot really gzip",
    ],
)
def test_read_idx_rejects_corrupt(tmp_path, corrupt):
    good = _idx_bytes(np.zeros((3, 2, 2), dtype=np.uint8))
    p = tmp_path / "bad-idx3-ubyte.gz"
    p.write_bytes(corrupt(good))
    with pytest.raises(DataError, match="bad-idx3-ubyte.gz"):
        read_idx(p)
