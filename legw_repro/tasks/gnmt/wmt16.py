"""WMT16 English-German, the data GNMT was trained on, for ``task.data.source=wmt16`` (GPU runs).

Read through Hugging Face ``datasets`` (an optional extra: ``pip install -e .[wmt16]``) into the
same :class:`~legw_repro.tasks.gnmt.multi30k.ParallelText` splits as Multi30k, so the task, the
subword model and the batching do not change. Where from, in order:

1. ``task.data.wmt16_path``: a directory written by ``DatasetDict.save_to_disk`` (see
   :data:`FETCH`), read with ``datasets.load_from_disk``;
2. else ``<data_dir>/wmt16`` when it exists;
3. else ``datasets.load_dataset("wmt/wmt16", "de-en")`` (the Hub's parquet copy, cached by
   ``datasets`` under ``~/.cache/huggingface``, never next to the data) when online; offline or
   without ``datasets``, :class:`DataError` names the path and the one-line fetch command.

Splits: ``train`` (4.5M pairs: Europarl, Common Crawl, News Commentary) -> train, ``validation``
(newstest2015) -> valid, ``test`` (newstest2016) -> test; WMT16 has no second test set, so
:data:`TEST_SETS` has one. Training pairs with an empty side are dropped (an empty source cannot
be encoded, and the pair teaches nothing); an empty evaluation sentence is refused, since
dropping it would change the test set.

Subwords: Multi30k's joint sentencepiece model, learned on an evenly spaced sample of at most
:data:`SPM_SAMPLE_PAIRS` training pairs (sentencepiece on all 9M sentences, single-threaded for
determinism, would take hours), cached under ``<cache_dir>/wmt16/`` and keyed by a sha256 of
exactly the sampled text: a Multi30k and a WMT16 model never share a file, and a changed corpus
names a new model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from legw_repro.tasks.common.download import DataError, _can_reach, _offline_env, resolve_data_dir
from legw_repro.tasks.gnmt import multi30k as m30k

__all__ = [
    "FETCH",
    "SPLITS",
    "TEST_SETS",
    "load_wmt16",
    "load_wmt16_subword_model",
    "parallel_from_rows",
    "text_digest",
]

HUB_ID, HUB_CONFIG = "wmt/wmt16", "de-en"
_HUB_URL = "https://huggingface.co"
#: task split -> the split's name in the Hugging Face data set
SPLITS = {"train": "train", "valid": "validation", "test": "test"}
#: the test sets decoded after training (task split -> official name)
TEST_SETS = {"test": "newstest2016"}
#: the one line that writes the local copy this module reads (``{path}``: where)
FETCH = (
    "pip install -e '.[wmt16]' && python -c \"import datasets; datasets.load_dataset("
    f"'{HUB_ID}', '{HUB_CONFIG}').save_to_disk('{{path}}')\""
)
#: at most this many training pairs (evenly spaced) teach the subword model
SPM_SAMPLE_PAIRS = 500_000
_ROW_BATCH = 10_000


# -- pure: rows -> aligned text ------------------------------------------------------------------


def parallel_from_rows(
    rows: Iterable[Mapping[str, Any]],
    src_lang: str,
    tgt_lang: str,
    *,
    drop_empty: bool,
    where: str = "wmt16",
) -> m30k.ParallelText:
    """Aligned sentences from rows of the Hub's schema, ``{"translation": {"de": .., "en": ..}}``,
    stripped. ``drop_empty``: skip pairs with an empty side (training); else refuse them."""
    src: list[str] = []
    tgt: list[str] = []
    for i, row in enumerate(rows):
        pair = row.get("translation") if isinstance(row, Mapping) else None
        if not isinstance(pair, Mapping) or src_lang not in pair or tgt_lang not in pair:
            raise DataError(
                f"{where}: row {i} is {str(row)[:120]!r}, not {{'translation': {{'{src_lang}': "
                f"..., '{tgt_lang}': ...}}}}; the data must be the de-en WMT16 of {HUB_ID}"
            )
        s, t = (str(pair[src_lang] or "").strip(), str(pair[tgt_lang] or "").strip())
        if not (s and t):
            if drop_empty:
                continue
            raise DataError(
                f"{where}: row {i} has an empty side ({src_lang}={s!r}, {tgt_lang}={t!r}); an "
                "evaluation set must not; re-fetch the data"
            )
        src.append(s)
        tgt.append(t)
    return m30k.ParallelText(tuple(src), tuple(tgt))


def sample_stride(n: int, at_most: int) -> int:
    """The step of an evenly spaced sample of at most ``at_most`` out of ``n`` items."""
    return max(1, math.ceil(n / max(1, at_most)))


def text_digest(sentences: Iterable[str]) -> str:
    """sha256 of the sentences, one per line: the identity of a subword model's training text."""
    h = hashlib.sha256()
    for s in sentences:
        h.update(s.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# -- where the data is ---------------------------------------------------------------------------


def wmt16_dir(data_dir: str | os.PathLike | None, path: str | os.PathLike | None) -> Path:
    """``task.data.wmt16_path`` if set, else ``<data_dir>/wmt16``."""
    if path is not None and str(path) != "":
        return Path(path).expanduser()
    return resolve_data_dir(data_dir) / "wmt16"


def fetch_hint(path: Path) -> str:
    return (
        f"fetch it once with: {FETCH.format(path=path)}  (or point task.data.wmt16_path at "
        "such a copy)"
    )


def _datasets(path: Path) -> Any:
    try:
        return importlib.import_module("datasets")
    except ImportError:
        raise DataError(
            "task.data.source=wmt16 reads WMT16 through Hugging Face `datasets`, which is not "
            f"installed; install the extra (pip install -e '.[wmt16]'), then {fetch_hint(path)}"
        ) from None


def _online(allow_download: bool | None) -> tuple[bool, str]:
    """(may we download, why not): as :func:`download.ensure_files` decides, plus the Hub's own
    offline switches."""
    if allow_download is not None:
        return allow_download, "downloads disabled"
    hf_offline = any(os.environ.get(v) == "1" for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    if _offline_env() or hf_offline:
        return False, "offline: LEGW_OFFLINE or HF_HUB_OFFLINE is set"
    if not _can_reach(_HUB_URL):
        return False, "offline: cannot reach huggingface.co"
    return True, ""


def _open(path: Path, explicit: bool, allow_download: bool | None) -> Any:
    """The ``DatasetDict``: from disk when ``path`` exists, else from the Hub when allowed."""
    if path.exists():
        ds = _datasets(path)
        try:
            return ds.load_from_disk(str(path))
        except Exception as e:  # datasets raises FileNotFoundError, ValueError, ...
            raise DataError(
                f"{path}: not a data set written by save_to_disk ({str(e)[:200]}); "
                f"{fetch_hint(path)}"
            ) from e
    if explicit:
        raise DataError(f"task.data.wmt16_path={str(path)!r} does not exist; {fetch_hint(path)}")
    ok, why = _online(allow_download)
    if not ok:
        raise DataError(f"wmt16: {path} does not exist ({why}); {fetch_hint(path)}")
    ds = _datasets(path)
    try:
        return ds.load_dataset(HUB_ID, HUB_CONFIG)
    except Exception as e:  # network, Hub and cache errors all end here
        raise DataError(
            f"wmt16: downloading {HUB_ID} ({HUB_CONFIG}) failed ({str(e)[:200]}); "
            f"{fetch_hint(path)}"
        ) from e


def _rows(split: Any) -> Iterator[Mapping[str, Any]]:
    """The rows of one split, read in Arrow batches (row by row is several times slower)."""
    for batch in split.iter(batch_size=_ROW_BATCH):
        for pair in batch["translation"]:
            yield {"translation": pair}


# -- entry points --------------------------------------------------------------------------------


def load_wmt16(
    data_dir: str | os.PathLike | None = None,
    src_lang: str = "en",
    tgt_lang: str = "de",
    path: str | os.PathLike | None = None,
    *,
    allow_download: bool | None = None,
) -> dict[str, m30k.ParallelText]:
    """Every split of :data:`SPLITS` as aligned (source, target) sentences. Cached per process."""
    m30k._check_langs(src_lang, tgt_lang)
    explicit = path is not None and str(path) != ""
    where = wmt16_dir(data_dir, path)
    key = str(where.resolve()) if where.exists() else ""
    en_de = _load_cached(key, str(where), explicit, allow_download)
    if (src_lang, tgt_lang) == ("en", "de"):
        return en_de
    return {k: m30k.ParallelText(v.tgt, v.src) for k, v in en_de.items()}


@functools.lru_cache(maxsize=2)
def _load_cached(
    key: str, where: str, explicit: bool, allow_download: bool | None
) -> dict[str, m30k.ParallelText]:
    ds = _open(Path(where), explicit, allow_download)
    missing = [name for name in SPLITS.values() if name not in ds]
    if missing:
        raise DataError(
            f"wmt16: {where} has no split {missing} (it has {sorted(ds)}); {fetch_hint(Path(where))}"
        )
    label = where if key else f"{HUB_ID} ({HUB_CONFIG})"
    return {
        task: parallel_from_rows(
            _rows(ds[name]), "en", "de", drop_empty=task == "train", where=f"{label}[{name}]"
        )
        for task, name in SPLITS.items()
    }


def load_wmt16_subword_model(
    data_dir: str | os.PathLike | None,
    settings: m30k.SubwordSettings,
    cache_dir: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
):
    """The joint en+de sentencepiece model of WMT16's training split (an evenly spaced sample):
    from the cache, else learned and cached (see :func:`multi30k.cached_subword_model`)."""
    train = load_wmt16(data_dir, "en", "de", path)["train"]
    step = sample_stride(len(train), SPM_SAMPLE_PAIRS)
    sample = [*train.src[::step], *train.tgt[::step]]
    key = [f"wmt16-text-sha256:{text_digest(sample)}"]
    what = f"WMT16 ({wmt16_dir(data_dir, path)}, every {step}th training pair)"
    return m30k.cached_subword_model(lambda: sample, key, settings, cache_dir, "wmt16", what)
