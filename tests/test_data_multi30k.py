"""Multi30k reading, the cached sentencepiece model, and the sentence-pair batches (shared data,
no network; the subword cache always goes to tmp_path)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from legw_repro.tasks.common.download import DataError, file_sha256
from legw_repro.tasks.common.seq_batches import (
    bucketed_batches,
    make_batch,
    micro_batch_count,
    split_global,
)
from legw_repro.tasks.gnmt import multi30k as m30k

SMALL_VOCAB = m30k.SubwordSettings(vocab_size=1000)


def test_splits_align_and_match_the_release(shared_data_dir):
    d = m30k.load_multi30k(shared_data_dir, allow_download=False)
    assert {k: len(v) for k, v in d.items()} == {
        "train": 29_000,
        "valid": 1_014,
        "test": 1_000,
        "test_2017_flickr": 1_000,
    }
    assert d["train"].src[0].startswith("Two young, White males are outside near many bushes.")
    assert d["train"].tgt[0] == "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
    assert all(s and t for s, t in zip(d["test"].src, d["test"].tgt, strict=True))
    rev = m30k.load_multi30k(shared_data_dir, "de", "en")
    assert rev["valid"].src == d["valid"].tgt and rev["valid"].tgt == d["valid"].src
    for spec in m30k.MULTI30K_FILES:  # pinned checksums, official source at a pinned commit
        assert file_sha256(shared_data_dir / "multi30k" / "raw" / spec.name) == spec.sha256
        assert spec.url.startswith("https://raw.githubusercontent.com/multi30k/dataset/")
        assert spec.url.endswith("/data/task1/raw/" + spec.name)


def test_bad_language_pair_names_the_keys():
    with pytest.raises(ValueError, match="task.data.src_lang='fr'"):
        m30k.load_multi30k("/nowhere", "fr", "de")
    with pytest.raises(ValueError, match="tgt_lang='en'"):
        m30k.load_multi30k("/nowhere", "en", "en")


def test_missing_offline_names_the_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGW_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        m30k.load_multi30k(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "multi30k" / "raw") in msg and "train.en.gz" in msg
    assert "raw.githubusercontent.com/multi30k/dataset" in msg
    # the data root is the data_dir the user gave, not the folder above raw/
    assert f"another data root than {tmp_path.resolve()} " in msg
    assert "<data_dir>/multi30k/raw/" in msg


def test_corrupt_file_is_refused(tmp_path, shared_data_dir):
    raw = tmp_path / "multi30k" / "raw"
    shutil.copytree(shared_data_dir / "multi30k" / "raw", raw)
    (raw / "val.de.gz").write_bytes(b"not the file")
    with pytest.raises(DataError, match="checksum mismatch"):
        m30k.load_multi30k(tmp_path, allow_download=False)


def test_subword_model_is_deterministic_cached_and_keyed(tmp_path, shared_data_dir, monkeypatch):
    a = m30k.load_subword_model(shared_data_dir, SMALL_VOCAB, tmp_path / "a")
    m30k.load_subword_model(shared_data_dir, SMALL_VOCAB, tmp_path / "b")
    (fa,) = (tmp_path / "a" / "multi30k").glob("spm-*.model")
    (fb,) = (tmp_path / "b" / "multi30k").glob("spm-*.model")
    assert fa.name == fb.name and fa.read_bytes() == fb.read_bytes()  # same bytes, same key
    assert not list(shared_data_dir.rglob("spm-*.model"))  # nothing next to the data
    assert a.get_piece_size() == 1000 and (a.pad_id(), a.unk_id(), a.bos_id(), a.eos_id()) == (
        0,
        1,
        2,
        3,
    )
    # detokenization: decode(encode(x)) is the raw sentence
    d = m30k.load_multi30k(shared_data_dir)
    for s in (*d["valid"].src[:20], *d["valid"].tgt[:20]):
        assert a.decode(a.encode(s)) == s
    # cached: a second load does not learn again
    monkeypatch.setattr(m30k, "train_subword_model", lambda *a, **k: pytest.fail("rebuilt"))
    m30k.load_subword_model(shared_data_dir, SMALL_VOCAB, tmp_path / "a")
    # another setting is another model file
    monkeypatch.undo()
    m30k.load_subword_model(shared_data_dir, m30k.SubwordSettings(vocab_size=1200), tmp_path / "a")
    assert len(list((tmp_path / "a" / "multi30k").glob("spm-*.model"))) == 2


@pytest.mark.parametrize("damage", ["cut", "garbage", "another model"])
def test_unusable_cached_subword_model_is_rebuilt(tmp_path, shared_data_dir, caplog, damage):
    """A corrupt cache file was a sentencepiece RuntimeError in every later GNMT run."""
    m30k.load_subword_model(shared_data_dir, SMALL_VOCAB, tmp_path)
    (path,) = (tmp_path / "multi30k").glob("spm-*.model")
    good = path.read_bytes()
    if damage == "another model":  # a model of other settings under this key (a copy)
        m30k.load_subword_model(shared_data_dir, m30k.SubwordSettings(vocab_size=1200), tmp_path)
        (other,) = set((tmp_path / "multi30k").glob("spm-*.model")) - {path}
        path.write_bytes(other.read_bytes())
    else:
        path.write_bytes(good[:1000] if damage == "cut" else b"not a model")
    with caplog.at_level("WARNING", logger="legw_repro.tasks.gnmt.multi30k"):
        proc = m30k.load_subword_model(shared_data_dir, SMALL_VOCAB, tmp_path)
    assert proc.get_piece_size() == 1000 and path.read_bytes() == good
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(f"subword model cache {path} is unusable (")
    assert warning.endswith("); rebuilding it") and "\n" not in warning


def test_subword_model_learns_on_the_training_split_only(tmp_path, shared_data_dir, monkeypatch):
    seen = []
    real = m30k.train_subword_model

    def spy(sentences, settings):
        seen.extend(sentences)
        return real(seen, settings)

    monkeypatch.setattr(m30k, "train_subword_model", spy)
    m30k.load_subword_model(shared_data_dir, SMALL_VOCAB, tmp_path)
    train = m30k.load_multi30k(shared_data_dir)["train"]
    assert seen == [*train.src, *train.tgt]


def test_bad_subword_settings_and_unwritable_cache(tmp_path, shared_data_dir):
    with pytest.raises(ValueError, match="task.subword.model_type='wordpiece'"):
        m30k.SubwordSettings(model_type="wordpiece")
    with pytest.raises(ValueError, match="task.subword.vocab_size=10"):
        m30k.SubwordSettings(vocab_size=10)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match="task.subword.cache_dir"):
        m30k.load_subword_model(shared_data_dir, SMALL_VOCAB, blocker)


# -- batches ------------------------------------------------------------------------------------


def _lens(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, 40, n), rng.integers(1, 40, n)


def test_buckets_are_seeded_sorted_and_complete():
    src, tgt = _lens(1000)
    e0 = bucketed_batches(src, tgt, 64, seed=0, epoch=0, pool_batches=4)
    assert len(e0) == 1000 // 64 and all(len(b) == 64 for b in e0)
    flat = np.concatenate(e0)
    assert len(set(flat.tolist())) == len(flat)  # no pair twice in an epoch
    for b in e0:  # each batch sorted by (source, target) length
        keys = list(zip(src[b], tgt[b], strict=True))
        assert keys == sorted(keys)
    np.random.seed(1)
    torch.manual_seed(1)  # the global RNGs play no part
    again = bucketed_batches(src, tgt, 64, seed=0, epoch=0, pool_batches=4)
    assert all(np.array_equal(a, b) for a, b in zip(e0, again, strict=True))
    e1 = bucketed_batches(src, tgt, 64, seed=0, epoch=1, pool_batches=4)
    s1 = bucketed_batches(src, tgt, 64, seed=1, epoch=0, pool_batches=4)
    assert not np.array_equal(flat, np.concatenate(e1))
    assert not np.array_equal(flat, np.concatenate(s1))
    # bucketing keeps lengths close: far less spread within a batch than in a random batch
    spread = np.mean([src[b].max() - src[b].min() for b in e0])
    assert spread < 0.5 * (src.max() - src.min())
    with pytest.raises(ValueError, match="batch_size=2000"):
        bucketed_batches(src, tgt, 2000, seed=0, epoch=0, pool_batches=4)


def test_ranks_and_micro_batches_tile_the_global_batch():
    idx = np.arange(100, 116)
    parts = [split_global(idx, r, 2, 2) for r in range(2)]
    assert [len(m) for p in parts for m in p] == [4] * 4
    assert np.array_equal(np.concatenate([m for p in parts for m in p]), idx)


def test_micro_batch_count_caps_the_size():
    assert micro_batch_count(2048, 1, None) == 1
    assert micro_batch_count(2048, 2, None) == 2
    assert micro_batch_count(2048, 1, 128) == 16
    assert micro_batch_count(2048, 4, 128) == 16
    assert micro_batch_count(96, 1, 40) == 3  # the fewest equal pieces of at most 40
    assert micro_batch_count(7, 1, 3) == 7  # a prime share: single sentences


def test_make_batch_adds_specials_and_pads():
    b = make_batch(
        [np.array([10, 11, 12]), np.array([20])],
        [np.array([30]), np.array([40, 41])],
        norm=2.5,
        pad_id=0,
        bos_id=2,
        eos_id=3,
    )
    assert b.src.tolist() == [[10, 11, 12, 3], [20, 3, 0, 0]] and b.src_len.tolist() == [4, 2]
    assert b.tgt_in.tolist() == [[2, 30, 0], [2, 40, 41]]
    assert b.tgt_out.tolist() == [[30, 3, 0], [40, 41, 3]]
    assert b.norm == 2.5


def test_subword_model_cache_gets_the_umask_mode(tmp_path):
    """The cached subword model was written 0600 (mkstemp's mode), unreadable to others sharing
    the cache directory."""
    import os

    old = os.umask(0o022)
    try:
        m30k._atomic_write_bytes(tmp_path / "sp.model", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "sp.model").stat().st_mode & 0o777 == 0o644
