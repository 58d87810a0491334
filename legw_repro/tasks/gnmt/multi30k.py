"""Multi30k task 1 (English-German image-caption translation) and its sentencepiece vocabulary.

Files: ``<data_dir>/multi30k/raw/<split>.<lang>.gz`` -- the official, untokenized, true-cased
files of github.com/multi30k/dataset (``data/task1/raw``), one sentence per line, line i of
``.en`` aligned with line i of ``.de``; sha256-checked, downloaded from a pinned commit of that
repository when missing and online (see :mod:`legw_repro.tasks.common.download`).

Subwords: one joint sentencepiece model (BPE by default) for both languages, learned on the
*training* split only, so the same model serves en->de and de->en and embeddings can be shared.
It is cached outside the data directory (which is read-only in CI), under a name derived from
the training files' checksums and every training setting: change a setting and a new model is
built, and a cached file that does not load (cut, corrupt) is rebuilt with one warning; the build is deterministic (one thread, no sampling), so every rank and every machine
gets the same bytes. sentencepiece decodes to plain text, so BLEU is computed on detokenized
output against the raw references.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from legw_repro.run.filemode import chmod_like_new_file
from legw_repro.run.status import one_line
from legw_repro.tasks.common.download import DataError, FileSpec, ensure_files, resolve_data_dir
from legw_repro.tasks.gnmt.keys import KEYS

__all__ = [
    "LANGS",
    "MULTI30K_FILES",
    "SPLITS",
    "TEST_SETS",
    "ParallelText",
    "SubwordSettings",
    "cached_subword_model",
    "load_multi30k",
    "load_subword_model",
]

log = logging.getLogger(__name__)

# a pinned commit of github.com/multi30k/dataset: the files there can never change under us
_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
_URL = f"https://raw.githubusercontent.com/multi30k/dataset/{_COMMIT}/data/task1/raw/{{}}"

LANGS = ("en", "de")
#: task split name -> file stem (``test`` is the usual test set; 2017 is the second one)
SPLITS = {
    "train": "train",
    "valid": "val",
    "test": "test_2016_flickr",
    "test_2017_flickr": "test_2017_flickr",
}
#: the test sets decoded after training (task split -> official name)
TEST_SETS = {"test": "test_2016_flickr", "test_2017_flickr": "test_2017_flickr"}

_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
}
MULTI30K_FILES: tuple[FileSpec, ...] = tuple(
    FileSpec(name, sha, _URL.format(name)) for name, sha in _SHA256.items()
)
#: line counts of the official release (a mismatch means a wrong or truncated file)
N_LINES = {"train": 29_000, "val": 1_014, "test_2016_flickr": 1_000, "test_2017_flickr": 1_000}

# sentencepiece's special ids, fixed so that models and batches agree on them
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass(frozen=True)
class ParallelText:
    """Aligned sentences of one split: ``src[i]`` translates to ``tgt[i]`` (raw text)."""

    src: tuple[str, ...]
    tgt: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.src)


def _check_langs(src_lang: str, tgt_lang: str) -> None:
    if src_lang not in LANGS or tgt_lang not in LANGS or src_lang == tgt_lang:
        raise ValueError(
            f"task.data.src_lang={src_lang!r}, task.data.tgt_lang={tgt_lang!r}: Multi30k task 1 "
            "translates between 'en' and 'de'; use src_lang=en tgt_lang=de or the reverse"
        )


def read_lines(path: Path) -> list[str]:
    """The sentences of one gzip file, split on '\\n' only (not on Unicode line separators,
    which would break the alignment), surrounding whitespace stripped."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read it as gzip'd UTF-8 text ({e}); replace it") from e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def multi30k_dir(data_dir: str | os.PathLike | None) -> Path:
    return resolve_data_dir(data_dir) / "multi30k" / "raw"


def load_multi30k(
    data_dir: str | os.PathLike | None = None,
    src_lang: str = "en",
    tgt_lang: str = "de",
    *,
    allow_download: bool | None = None,
) -> dict[str, ParallelText]:
    """Every split of :data:`SPLITS` as aligned (source, target) sentences. Cached per process."""
    _check_langs(src_lang, tgt_lang)
    raw = multi30k_dir(data_dir)
    ensure_files(
        raw,
        MULTI30K_FILES,
        dataset="multi30k",
        allow_download=allow_download,
        data_root=resolve_data_dir(data_dir),
    )
    return _load_cached(raw.resolve(), src_lang, tgt_lang)


@functools.lru_cache(maxsize=4)
def _load_cached(raw: Path, src_lang: str, tgt_lang: str) -> dict[str, ParallelText]:
    out = {}
    for split, stem in SPLITS.items():
        src = read_lines(raw / f"{stem}.{src_lang}.gz")
        tgt = read_lines(raw / f"{stem}.{tgt_lang}.gz")
        if len(src) != len(tgt) or len(src) != N_LINES[stem]:
            raise DataError(
                f"{raw}/{stem}.{{{src_lang},{tgt_lang}}}.gz: {len(src)} and {len(tgt)} lines, "
                f"expected {N_LINES[stem]} each; the files are not the official release"
            )
        out[split] = ParallelText(tuple(src), tuple(tgt))
    return out


# ---------------------------------------------------------------------------------------------
# the subword model


@dataclass(frozen=True)
class SubwordSettings:
    """Everything that changes the learned subword model (and so its cache key)."""

    vocab_size: int = 8000
    model_type: str = "bpe"  # bpe | unigram
    character_coverage: float = 1.0

    def __post_init__(self) -> None:
        """Checked against the keys' declarations (tasks/gnmt/keys.py), the one home of their
        ranges: the settings are also built outside a run (tests, scripts)."""
        for name, value in asdict(self).items():
            err = KEYS[f"task.subword.{name}"].error(f"task.subword.{name}", value)
            if err:
                raise ValueError(err)


def cache_key(train_checksums: Iterable[str], settings: SubwordSettings) -> str:
    """A digest of the training files and the settings (and sentencepiece's version, whose
    trainer may change): a new value of any of them names a new model file."""
    import sentencepiece

    blob = json.dumps(
        {
            "data": sorted(train_checksums),
            "settings": asdict(settings),
            "sentencepiece": sentencepiece.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_subword_model(sentences: Iterable[str], settings: SubwordSettings) -> bytes:
    """Learn the model and return its serialized bytes. One thread and no input sampling or
    shuffling make it deterministic: the same sentences and settings give the same bytes."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([s for s in sentences if s]),
        model_writer=buf,
        vocab_size=settings.vocab_size,
        model_type=settings.model_type,
        character_coverage=settings.character_coverage,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return buf.getvalue()


def resolve_cache_dir(value: str | os.PathLike | None) -> Path:
    """``task.subword.cache_dir``, else ``$LEGW_CACHE_DIR``, else ``~/.cache/legw_repro``."""
    if value is None or str(value) == "":
        value = os.environ.get("LEGW_CACHE_DIR") or "~/.cache/legw_repro"
    return Path(value).expanduser()


def load_subword_model(
    data_dir: str | os.PathLike | None,
    settings: SubwordSettings,
    cache_dir: str | os.PathLike | None = None,
):
    """The joint en+de sentencepiece model of the Multi30k training split: read from the cache
    when present, else learned and written there atomically (ranks racing to build it write the
    same bytes). Returns a ``sentencepiece.SentencePieceProcessor``."""
    raw = multi30k_dir(data_dir)
    texts = load_multi30k(data_dir, "en", "de")["train"]
    sums = [_SHA256[f"train.{lang}.gz"] for lang in LANGS]
    return cached_subword_model(
        lambda: [*texts.src, *texts.tgt], sums, settings, cache_dir, "multi30k", str(raw)
    )


def cached_subword_model(
    sentences: Callable[[], Iterable[str]],
    data_key: Iterable[str],
    settings: SubwordSettings,
    cache_dir: str | os.PathLike | None,
    folder: str,
    what: str,
):
    """``<cache_dir>/<folder>/spm-<key>.model``, learned from ``sentences()`` only when absent
    or unusable (corrupt, cut, another model: rebuilt with one warning).
    ``data_key`` identifies the training text (file checksums, a text digest) and ``folder``
    the data set, so two data sets never share a model file."""
    path = resolve_cache_dir(cache_dir) / folder / f"spm-{cache_key(data_key, settings)}.model"
    if path.is_file():
        proc, why = _open_model(path, settings)
        if proc is not None:
            return proc
        # derived data: a cut or foreign file (a full disk, a copy) is rebuilt, not fatal for
        # every later run as it was (a sentencepiece RuntimeError without a hint)
        log.warning("subword model cache %s is unusable (%s); rebuilding it", path, why)
    _atomic_write_bytes(path, train_subword_model(sentences(), settings))
    proc, why = _open_model(path, settings)
    if proc is None:
        raise DataError(f"{path}: the subword model of {what} just built is unusable ({why})")
    return proc


def _open_model(path: Path, settings: SubwordSettings) -> tuple[object | None, str]:
    """(the loaded model, "") or (None, why it cannot serve `settings`)."""
    import sentencepiece as spm

    try:
        proc = spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as e:
        return None, one_line(e) or type(e).__name__
    if proc.get_piece_size() != settings.vocab_size or proc.pad_id() != PAD_ID:
        return None, f"{proc.get_piece_size()} pieces, pad id {proc.pad_id()}: not {settings}"
    return proc, ""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise DataError(
            f"cannot write the subword model cache in {path.parent} ({e}); set "
            "task.subword.cache_dir=... (or LEGW_CACHE_DIR) to a writable directory"
        ) from e
    try:
        chmod_like_new_file(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
