"""PTB loading, batchify layout and BPTT windows (on the shared data; no network)."""

from __future__ import annotations

import pytest
import torch

from legw_repro.tasks.ptb.data import (
    EOS,
    PTBCorpus,
    Vocab,
    batchify,
    eval_windows,
    load_ptb,
    num_eval_windows,
    num_windows,
    window,
)


@pytest.fixture(scope="module")
def ptb(shared_data_dir) -> PTBCorpus:
    return load_ptb(shared_data_dir, allow_download=False)


def test_counts_match_readme(ptb):
    assert ptb.train.numel() == 929_589
    assert ptb.valid.numel() == 73_760
    assert ptb.test.numel() == 82_430
    assert len(ptb.vocab) == ptb.vocab_size == 10_000
    for s in (ptb.train, ptb.valid, ptb.test):
        assert s.dtype == torch.long and s.dim() == 1
        assert int(s.min()) >= 0 and int(s.max()) < 10_000
    # one <eos> per line: 42,068 / 3,370 / 3,761 lines
    eos = ptb.vocab.eos_id
    assert [(s == eos).sum().item() for s in (ptb.train, ptb.valid, ptb.test)] == [
        42_068,
        3_370,
        3_761,
    ]
    unk = ptb.vocab.unk_id
    assert [(s == unk).sum().item() for s in (ptb.train, ptb.valid, ptb.test)] == [
        45_020,
        3_485,
        4_794,
    ]


def test_vocab_order_of_first_appearance(ptb, shared_data_dir):
    with open(shared_data_dir / "ptb" / "ptb.train.txt") as f:
        first = f.readline().split() + [EOS]
    # ids of the first line are increasing first appearances (no repeats in line 1)
    seen: list[str] = []
    for w in first:
        if w not in seen:
            seen.append(w)
    assert ptb.vocab.itos[: len(seen)] == seen
    assert ptb.vocab.decode(ptb.train[: len(first)]) == first
    assert all(ptb.vocab.stoi[w] == i for i, w in enumerate(ptb.vocab.itos))


def test_cached_per_process(shared_data_dir, ptb):
    assert load_ptb(shared_data_dir) is ptb
    assert load_ptb(str(shared_data_dir) + "/") is ptb


def test_vocab_basics():
    v = Vocab(["a", "b", "a", EOS, "c"])
    assert v.itos == ["a", "b", EOS, "c"]
    assert v.encode(["c", "a"]) == [3, 0]
    assert v.eos_id == 2 and v.unk_id is None
    with pytest.raises(KeyError):
        v.encode(["zzz"])


def test_batchify_layout():
    stream = torch.arange(103)
    src = batchify(stream, 4)
    assert src.shape == (25, 4) and src.is_contiguous()
    for j in range(4):
        assert torch.equal(src[:, j], stream[j * 25 : (j + 1) * 25])
    assert src.max().item() == 99  # remainder 100..102 trimmed
    assert torch.equal(batchify(stream, 1)[:, 0], stream)
    with pytest.raises(ValueError):
        batchify(torch.arange(5), 4)
    with pytest.raises(ValueError):
        batchify(stream.view(1, -1), 2)


def test_batchify_real(ptb):
    src = batchify(ptb.train, 20)
    n_rows = 929_589 // 20
    assert src.shape == (n_rows, 20)
    assert torch.equal(src[:, 7], ptb.train[7 * n_rows : 8 * n_rows])


@pytest.mark.parametrize(
    "n_rows,bptt", [(25, 5), (26, 5), (27, 5), (2, 1), (2, 3), (10, 35), (36, 35)]
)
def test_windows(n_rows, bptt):
    src = batchify(torch.arange(n_rows * 3), 3)
    assert src.shape[0] == n_rows
    n = num_windows(n_rows, bptt)
    assert n == max(n_rows - 1, 0) // bptt
    for i in range(n):
        x, y = window(src, i, bptt)
        assert x.shape == y.shape == (bptt, 3)
        assert torch.equal(x, src[i * bptt : (i + 1) * bptt])
        assert torch.equal(y, x + 1)  # next token in each (contiguous) column
        assert (i + 1) * bptt + 1 <= n_rows  # never runs past the end
    with pytest.raises(IndexError):
        window(src, n, bptt)
    with pytest.raises(IndexError):
        window(src, -1, bptt)

    # eval windows: every target row 1..n_rows-1 exactly once, in order
    wins = list(eval_windows(src, bptt))
    assert len(wins) == num_eval_windows(n_rows, bptt)
    targets = [y for _, y in wins]
    covered = torch.cat(targets) if targets else src[:0]
    assert torch.equal(covered, src[1:])
    for x, y in wins:
        assert 1 <= x.size(0) <= bptt and torch.equal(y, x + 1)
    # full windows are a prefix of the eval windows
    for i in range(n):
        assert torch.equal(wins[i][0], window(src, i, bptt)[0])


def test_num_windows_edge_cases():
    assert num_windows(1, 3) == num_windows(0, 3) == 0
    assert num_eval_windows(1, 3) == 0
    assert num_windows(36, 35) == 1 and num_windows(37, 35) == 1 and num_eval_windows(37, 35) == 2
    with pytest.raises(ValueError):
        num_windows(10, 0)


def test_eval_windows_cover_real_valid(ptb):
    src = batchify(ptb.valid, 10)
    scored = sum(y.numel() for _, y in eval_windows(src, 35))
    assert scored == (src.size(0) - 1) * 10


def test_perplexity_is_the_true_value_never_a_capped_one():
    # it was exp(min(loss, 50)): a loss of 60 was recorded as 5.2e21
    import math

    from legw_repro.tasks.ptb.task import perplexity

    assert perplexity(math.log(150.0)) == pytest.approx(150.0)
    assert perplexity(60.0) == math.exp(60.0) > math.exp(50.0)
    assert perplexity(800.0) == math.inf  # past a float's range: inf, written as null
