"""WMT16 (task.data.source=wmt16): rows of the Hub's schema -> aligned splits, the on-disk copy
(real `datasets` when installed, else a stand-in module with the same two calls), the errors that
name the path and the fetch command, the subword model's own cache key, and the task's data path
(vocabulary, a batch, the one test set). No network: downloads are refused or faked."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from legw_repro.config.spec import build_spec
from legw_repro.config.validate import ConfigError
from legw_repro.loop.distributed import DistInfo
from legw_repro.tasks.common.download import DataError
from legw_repro.tasks.gnmt import multi30k as m30k
from legw_repro.tasks.gnmt import wmt16
from tests.helpers import make_cfg

try:  # the optional extra: the on-disk copies are real ones when it is installed
    import datasets as hf
except ImportError:
    hf = None


def _rows(pairs: list[tuple[str, str]]) -> list[dict]:
    return [{"translation": {"en": en, "de": de}} for en, de in pairs]


TINY = {  # Hub split name -> (en, de) pairs; the task calls them train / valid / test
    "train": [("A cat sits.", "Eine Katze sitzt."), ("", "leer"), ("Two dogs.", " Zwei Hunde. ")],
    "validation": [("Good morning.", "Guten Morgen.")],
    "test": [("Thank you.", "Danke."), ("Yes.", "Ja.")],
}


class _FakeSplit:
    """What the reader uses of a `datasets.Dataset`: batched iteration over columns."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def iter(self, batch_size: int):
        for i in range(0, len(self.rows), batch_size):
            yield {"translation": [r["translation"] for r in self.rows[i : i + batch_size]]}


def _fake_datasets(copies: dict[str, dict], calls: list | None = None):
    """A stand-in `datasets` module: `load_from_disk(path)` answers with ``copies[path]``,
    `load_dataset(...)` with ``copies["hub"]`` (each call logged in ``calls``)."""
    calls = [] if calls is None else calls

    def split_dict(splits: dict[str, list[tuple[str, str]]]) -> dict[str, _FakeSplit]:
        return {name: _FakeSplit(_rows(pairs)) for name, pairs in splits.items()}

    def load_dataset(*args):
        calls.append(args)
        return split_dict(copies["hub"])

    return types.SimpleNamespace(
        load_from_disk=lambda path: split_dict(copies[str(path)]), load_dataset=load_dataset
    )


_COPIES: dict[str, dict] = {}  # the stand-in's copies on disk, by path


def _save(splits: dict[str, list[tuple[str, str]]], path: Path, monkeypatch) -> Path:
    """An on-disk copy: `save_to_disk` when `datasets` is installed, else a directory that a
    stand-in `load_from_disk` answers for."""
    if hf is None:
        path.mkdir(parents=True)
        _COPIES[str(path)] = splits
        monkeypatch.setitem(sys.modules, "datasets", _fake_datasets(_COPIES))
        return path
    dd = hf.DatasetDict(
        {name: hf.Dataset.from_list(_rows(pairs)) for name, pairs in splits.items()}
    )
    dd.save_to_disk(str(path))
    return path


# -- the pure reader -------------------------------------------------------------------------------


def test_rows_become_aligned_stripped_pairs_in_either_direction():
    rows = _rows(TINY["train"])
    en_de = wmt16.parallel_from_rows(rows, "en", "de", drop_empty=True)
    assert en_de.src == ("A cat sits.", "Two dogs.") and en_de.tgt == (
        "Eine Katze sitzt.",
        "Zwei Hunde.",
    )
    de_en = wmt16.parallel_from_rows(rows, "de", "en", drop_empty=True)
    assert de_en.src == en_de.tgt and de_en.tgt == en_de.src
    with pytest.raises(DataError, match=r"test\[x\]: row 1 has an empty side"):
        wmt16.parallel_from_rows(rows, "en", "de", drop_empty=False, where="test[x]")
    with pytest.raises(DataError, match="row 0 is .*'fr'.*not"):
        wmt16.parallel_from_rows(
            [{"translation": {"fr": "x", "en": "y"}}], "en", "de", drop_empty=True
        )


def test_sample_stride_and_text_digest():
    assert [wmt16.sample_stride(n, 500_000) for n in (10, 500_000, 500_001, 4_548_885)] == [
        1,
        1,
        2,
        10,
    ]
    assert len(range(4_548_885)[:: wmt16.sample_stride(4_548_885, 500_000)]) <= 500_000
    assert wmt16.text_digest(["a", "b"]) != wmt16.text_digest(["ab"])  # one sentence per line
    assert wmt16.text_digest(["a", "b"]) == wmt16.text_digest(iter(["a", "b"]))


# -- the on-disk copy and the errors ---------------------------------------------------------------


def test_saved_copy_maps_the_splits_and_the_direction(tmp_path, monkeypatch):
    _save(TINY, tmp_path / "wmt16", monkeypatch)  # the default place: <data_dir>/wmt16
    d = wmt16.load_wmt16(tmp_path, "en", "de", allow_download=False)
    assert set(d) == {"train", "valid", "test"}
    assert d["train"].src == ("A cat sits.", "Two dogs.")  # the empty pair is dropped
    assert d["valid"].src == ("Good morning.",) and d["valid"].tgt == ("Guten Morgen.",)
    assert d["test"].tgt == ("Danke.", "Ja.")
    rev = wmt16.load_wmt16(tmp_path, "de", "en", allow_download=False)
    assert rev["test"].src == d["test"].tgt and rev["test"].tgt == d["test"].src
    # task.data.wmt16_path: anywhere, whatever data_dir says
    other = _save(TINY, tmp_path / "elsewhere", monkeypatch)
    e = wmt16.load_wmt16("/nowhere", "en", "de", other, allow_download=False)
    assert e["valid"] == d["valid"]


def test_copy_without_a_split_is_refused(tmp_path, monkeypatch):
    path = _save(
        {"train": TINY["train"], "validation": TINY["validation"]}, tmp_path / "w", monkeypatch
    )
    with pytest.raises(DataError, match=r"has no split \['test'\].*save_to_disk"):
        wmt16.load_wmt16(None, "en", "de", path)


def test_missing_copy_offline_names_the_path_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LEGW_OFFLINE", "1")
    with pytest.raises(DataError) as e:
        wmt16.load_wmt16(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "wmt16") in msg and "offline" in msg
    assert "pip install -e '.[wmt16]'" in msg
    assert f"load_dataset('wmt/wmt16', 'de-en').save_to_disk('{tmp_path / 'wmt16'}')" in msg
    with pytest.raises(DataError, match=r"task.data.wmt16_path='/no/such/copy' does not exist"):
        wmt16.load_wmt16(tmp_path, "en", "de", "/no/such/copy", allow_download=True)


def test_without_datasets_the_error_says_how_to_install(tmp_path, monkeypatch):
    (tmp_path / "wmt16").mkdir()
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(DataError, match=r"`datasets`, which is not installed.*\.\[wmt16\]"):
        wmt16.load_wmt16(tmp_path, allow_download=False)


def test_no_local_copy_online_loads_from_the_hub(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "datasets", _fake_datasets({"hub": TINY}, calls))
    monkeypatch.delenv("LEGW_OFFLINE", raising=False)
    monkeypatch.setattr(wmt16, "_can_reach", lambda url: url == "https://huggingface.co")
    d = wmt16.load_wmt16(tmp_path / "empty-root")
    assert calls == [("wmt/wmt16", "de-en")] and d["test"].src == ("Thank you.", "Yes.")


def test_config_refuses_an_unknown_source_before_training():
    with pytest.raises(
        ConfigError,
        match=r"task.data.source='bogus' is not allowed; choose one of \['multi30k', 'wmt16'\]",
    ):
        build_spec(make_cfg("task=gnmt", "task.data.source=bogus"))
    assert build_spec(make_cfg("task=gnmt", "scale=paper", "task.data.source=wmt16")).task == "gnmt"


# -- the subword model and the task ----------------------------------------------------------------


@pytest.fixture(scope="module")
def m30k_pairs(shared_data_dir) -> dict[str, list[tuple[str, str]]]:
    """Real sentences for a small vocabulary: Multi30k's, dressed as WMT16's splits."""
    d = m30k.load_multi30k(shared_data_dir, "en", "de", allow_download=False)
    take = {"train": ("train", 600), "validation": ("valid", 20), "test": ("test", 12)}
    return {
        name: list(zip(d[split].src[:n], d[split].tgt[:n], strict=True))
        for name, (split, n) in take.items()
    }


def test_subword_model_is_keyed_by_the_wmt16_training_text(tmp_path, monkeypatch, m30k_pairs):
    settings = m30k.SubwordSettings(vocab_size=300)
    seen: list[str] = []
    real = m30k.train_subword_model
    monkeypatch.setattr(m30k, "train_subword_model", lambda s, st: real(seen.extend(s) or seen, st))
    a = _save(m30k_pairs, tmp_path / "a", monkeypatch)
    sp = wmt16.load_wmt16_subword_model(None, settings, tmp_path / "cache", a)
    train = wmt16.load_wmt16(None, "en", "de", a)["train"]
    assert seen == [*train.src, *train.tgt]  # the training split only (600 pairs: no sampling)
    assert sp.get_piece_size() == 300 and sp.decode(sp.encode(train.src[0])) == train.src[0]
    (fa,) = (tmp_path / "cache" / "wmt16").glob("spm-*.model")  # its own folder: never Multi30k's
    changed = {
        **m30k_pairs,
        "train": [("A new first sentence.", "Ein neuer erster Satz."), *m30k_pairs["train"][1:]],
    }
    b = _save(changed, tmp_path / "b", monkeypatch)
    wmt16.load_wmt16_subword_model(None, settings, tmp_path / "cache", b)
    assert len(list((tmp_path / "cache" / "wmt16").glob("spm-*.model"))) == 2  # new text, new key
    monkeypatch.setattr(m30k, "train_subword_model", lambda *a, **k: pytest.fail("rebuilt"))
    wmt16.load_wmt16_subword_model(None, settings, tmp_path / "cache", a)  # cached
    assert fa.is_file()


def test_task_data_path_with_wmt16(tmp_path, monkeypatch, m30k_pairs):
    from legw_repro.tasks.gnmt.task import GNMTTask

    path = _save(m30k_pairs, tmp_path / "wmt16", monkeypatch)
    cfg = make_cfg(
        "task=gnmt", "scale=smoke", "task.data.source=wmt16", f"task.data.wmt16_path={path}",
        "task.data.src_lang=de", "task.data.tgt_lang=en", "task.data.max_train_items=64",
        "task.data.max_eval_items=8", "batch_size=16", "task.subword.vocab_size=300",
        f"task.subword.cache_dir={tmp_path / 'cache'}", "device=cpu",
    )  # fmt: skip
    task = GNMTTask(cfg, DistInfo())
    task.check_data()
    assert task.test_sets == {"test": "newstest2016"}
    assert len(task.pairs("train")) == 64 and len(task.pairs("test")) == 8
    assert task.pairs("valid").src[0] == m30k_pairs["validation"][0][1]  # de -> en
    assert task.steps_per_epoch == 4 and task.sp.get_piece_size() == 300
    (batch,) = next(task.train_batches(0))
    assert batch.src.shape[0] == 16 and int((batch.tgt_out == m30k.EOS_ID).sum()) == 16
    model = task.build_model()
    out = task.write_outputs(model, tmp_path / "run")
    assert set(out["test_sets"]) == {"newstest2016"}  # no Flickr test set for WMT16
    lines = (tmp_path / "run" / "translations" / "newstest2016.en.txt").read_text().splitlines()
    assert len(lines) == 8
    assert torch.isfinite(task.loss(model, batch.to(task.device), None)[0])
