"""Locating, verifying and (when possible) downloading the data files.

Layout: one *data root* (``data_dir``) with one folder per data set::

    <data_dir>/ptb/ptb.{train,valid,test}.txt
    <data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <data_dir>/multi30k/...

The root is ``data_dir=`` if given, else the environment variable ``LEGW_DATA_DIR``,
else ``./data``. Every file is checked against a pinned sha256; a file is hashed at most
once per process (cached by path, size and mtime). Missing files are downloaded from
their official source unless offline (``allow_download=False``, ``LEGW_OFFLINE=1``, or
the host cannot be reached); then :class:`DataError` says exactly where to put them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shlex
import socket
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from legw_repro.run.filemode import chmod_like_new_file
from legw_repro.run.status import Refused

__all__ = [
    "DEFAULT_DATA_DIR",
    "DataError",
    "FileSpec",
    "ensure_files",
    "file_sha256",
    "resolve_data_dir",
    "unreadable",
]

DEFAULT_DATA_DIR = "./data"
_CHUNK = 1 << 20
_CONNECT_TIMEOUT_S = 3.0
_DOWNLOAD_TIMEOUT_S = 60.0


class DataError(Refused):
    """A data file is missing, corrupt, or cannot be obtained. The message says how to fix it.

    `keep_lines`: the message is laid out on lines (one a missing file, the expected and actual
    checksums), its first saying what is wrong; the command line prints them as they are, where
    it joins any other message into one line."""

    def __init__(self, message: str = "", *, keep_lines: bool = False) -> None:
        super().__init__(message)
        self.keep_lines = keep_lines


@dataclass(frozen=True)
class FileSpec:
    """One file of a data set: its name inside the data set folder, pinned sha256, official URL."""

    name: str
    sha256: str
    url: str
    md5: str | None = None  # informational (matches published tables); sha256 is what is checked


def resolve_data_dir(value: str | os.PathLike | None = None) -> Path:
    """The data root: ``value`` if given, else ``$LEGW_DATA_DIR``, else ``./data``."""
    if value is None or str(value) == "":
        value = os.environ.get("LEGW_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(value).expanduser()


# ---------------------------------------------------------------------------------------------
# hashing (at most once per file version per process)

_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of ``path``, cached per process by (resolved path, size, mtime)."""
    path = Path(path)
    key = _stat_key(path)
    with _hash_lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = _sha256_of(path)
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


# ---------------------------------------------------------------------------------------------
# verification


def unreadable(path: str | os.PathLike, e: OSError) -> DataError:
    """A data file this process cannot read (mode 000, another user's file, a failing disk):
    one line naming the file and the fix. The reader's own answer was a 31-line traceback."""
    quoted = shlex.quote(str(path))
    if e.errno in (errno.EACCES, errno.EPERM):
        fix = f"make it readable by this user (chmod a+r {quoted})"
    else:
        fix = f"replace it (delete it, rm {quoted}, to download it again)"
    return DataError(
        f"{path}: cannot read this data file ({e.strerror or e}); {fix}, or choose another "
        "data root with data_dir=..."
    )


def _verify(path: Path, spec: FileSpec) -> None:
    try:
        actual = file_sha256(path)
    except OSError as e:
        raise unreadable(path, e) from e
    if actual != spec.sha256.lower():
        raise DataError(
            f"checksum mismatch for {path}:\n"
            f"  expected sha256 {spec.sha256}\n"
            f"  actual   sha256 {actual}\n"
            f"The file is corrupt, truncated or not the official version. Fix: delete it "
            f"(rm {str(path)!r}) so it is downloaded again from {spec.url}, or replace it with "
            f"the official file.",
            keep_lines=True,
        )


# ---------------------------------------------------------------------------------------------
# online detection and downloading


def _offline_env() -> bool:
    return os.environ.get("LEGW_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _can_reach(url: str, timeout: float = _CONNECT_TIMEOUT_S) -> bool:
    """Quick reachability check: a TCP connection to the URL's host (file:// is always reachable)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return True
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    # DNS lookup is not bounded by the socket timeout: run the probe in a thread and stop waiting.
    t = threading.Thread(target=probe, name="legw-net-probe", daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def _download(spec: FileSpec, dest: Path) -> None:
    """Download ``spec.url`` into a temp file next to ``dest``, verify, atomically rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{spec.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        chmod_like_new_file(fd)
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(spec.url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length") if resp.headers else None
                total = int(length) if length and length.isdigit() else None
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=f"downloading {spec.name}",
                    disable=None,  # no bar when not attached to a terminal (CI logs)
                ) as bar:
                    while chunk := resp.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if actual != spec.sha256.lower():
            raise DataError(
                f"downloaded {spec.name} from {spec.url} but its checksum is wrong:\n"
                f"  expected sha256 {spec.sha256}\n"
                f"  actual   sha256 {actual}\n"
                f"Nothing was written to {dest}. Get the official file and place it there by hand.",
                keep_lines=True,
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with _hash_lock:
        _hash_cache[_stat_key(dest)] = actual


# ---------------------------------------------------------------------------------------------
# main entry point


def _missing_error(
    dataset: str, dataset_dir: Path, data_root: Path, missing: list[FileSpec], why: str
) -> DataError:
    """What is missing (first line), where each file comes from (a line each), and the two fixes:
    put them there, or point the data root elsewhere."""
    where, root = dataset_dir.resolve(), data_root.resolve()
    rel = where.relative_to(root) if where.is_relative_to(root) else where.name
    width = max(len(s.name) for s in missing)
    lines = [
        f"{dataset}: {len(missing)} data file(s) missing from {where} ({why})",
        *[f"  {s.name:<{width}}  <- {s.url}" for s in missing],
        f"Put the file(s) in exactly this directory: {where}",
        "  (download them from the URLs above; their sha256 must match the pinned values),",
        f"or choose another data root than {root} with data_dir=... or the LEGW_DATA_DIR",
        f"  environment variable (the data set lives in <data_dir>/{rel}/).",
    ]
    return DataError("\n".join(lines), keep_lines=True)


def ensure_files(
    dataset_dir: str | os.PathLike,
    specs: Iterable[FileSpec],
    *,
    dataset: str,
    allow_download: bool | None = None,
    data_root: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Make sure every file of ``specs`` is in ``dataset_dir`` with the right sha256.

    Present files are verified (a mismatch raises :class:`DataError`; nothing is deleted or
    overwritten). Missing files are downloaded when allowed: ``allow_download=True`` always
    tries; ``None`` (default) tries unless ``LEGW_OFFLINE=1`` or the source host does not
    answer a quick connection attempt; ``False`` never downloads. Returns ``{name: path}``.
    ``data_root``: the ``data_dir`` the error names (default: the parent of ``dataset_dir``).
    """
    dataset_dir = Path(dataset_dir)
    root = Path(data_root) if data_root is not None else dataset_dir.parent
    specs = list(specs)
    paths = {s.name: dataset_dir / s.name for s in specs}

    missing: list[FileSpec] = []
    for s in specs:
        if paths[s.name].is_file():
            _verify(paths[s.name], s)
        else:
            missing.append(s)
    if not missing:
        return paths

    if allow_download is False:
        raise _missing_error(dataset, dataset_dir, root, missing, "downloads disabled")
    if allow_download is None:
        if _offline_env():
            raise _missing_error(dataset, dataset_dir, root, missing, "LEGW_OFFLINE is set")
        unreachable = sorted({s.url for s in missing if not _can_reach(s.url)})
        if unreachable:
            host = urllib.parse.urlsplit(unreachable[0]).netloc or unreachable[0]
            raise _missing_error(
                dataset, dataset_dir, root, missing, f"offline: cannot reach {host}"
            )

    for s in missing:
        try:
            _download(s, paths[s.name])
        except DataError:
            raise
        except (OSError, urllib.error.URLError, ValueError) as e:
            raise _missing_error(
                dataset, dataset_dir, root, missing, f"downloading {s.name} failed: {e}"
            ) from e
    return paths
