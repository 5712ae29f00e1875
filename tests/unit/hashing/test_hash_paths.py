"""Paths: pathlib by path string, ContentPath by the file's bytes with a stat fast path."""

from __future__ import annotations

import os
import pathlib
from pathlib import Path

import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.hashing import ContentPath, hash_value
from scaleforge.hashing import paths as paths_module


def test_pathlib_paths_hash_by_string(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    before = hash_value(f)
    f.write_text("two")
    assert hash_value(f) == before  # content is not read
    assert hash_value(tmp_path / "b.txt") != before
    assert hash_value(pathlib.PurePosixPath(str(f))) == before


def test_content_path_follows_file_content(tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"\x00" * 1000)
    first = hash_value(ContentPath(f))
    assert hash_value(ContentPath(str(f))) == first
    f.write_bytes(b"\x00" * 999 + b"\x01")  # same size, one byte differs
    second = hash_value(ContentPath(f))
    assert second != first
    f.write_bytes(b"\x00" * 1000)
    assert hash_value(ContentPath(f)) == first
    # the same bytes elsewhere hash alike: only content counts
    g = tmp_path / "copy.bin"
    g.write_bytes(b"\x00" * 1000)
    assert hash_value(ContentPath(g)) == first
    assert hash_value(ContentPath(g)) != hash_value(g)
    assert ContentPath(g).hexdigest() == ContentPath(f).hexdigest()


def test_content_path_same_size_same_mtime_rewrite_is_seen(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("aaaa")
    st = f.stat()
    first = hash_value(ContentPath(f))
    f.write_text("bbbb")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # forge the old mtime: ctime still moves
    assert hash_value(ContentPath(f)) != first


def test_content_path_memo_avoids_rereading(tmp_path: Path) -> None:
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(1 << 20))
    paths_module._MEMO.clear()
    digest = hash_value(ContentPath(f))
    assert len(paths_module._MEMO) == 1
    key = next(iter(paths_module._MEMO))
    # Prove the memo is used: poison it; an unchanged file must give the memoised value.
    paths_module._MEMO[key] = b"\x11" * 16
    assert hash_value(ContentPath(f)) != digest
    paths_module._MEMO.clear()
    assert hash_value(ContentPath(f)) == digest


def test_content_path_directories(tmp_path: Path) -> None:
    d = tmp_path / "ds"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.txt").write_text("b")
    first = hash_value(ContentPath(d))
    (d / "sub" / "b.txt").write_text("B")
    assert hash_value(ContentPath(d)) != first
    (d / "sub" / "b.txt").write_text("b")
    assert hash_value(ContentPath(d)) == first
    (d / "sub" / "b.txt").rename(d / "sub" / "c.txt")
    assert hash_value(ContentPath(d)) != first


def test_content_path_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(InvalidParameterError) as info:
        hash_value({"input": ContentPath(missing)}, name="source")
    message = str(info.value)
    assert "'source'" in message and "nope.txt" in message and "exists" in message
    with pytest.raises(InvalidParameterError, match="'path' parameter of ContentPath"):
        ContentPath(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="cannot be read"):
        ContentPath(missing).hexdigest()


def test_content_path_is_path_like(tmp_path: Path) -> None:
    p = ContentPath(tmp_path / "x")
    assert os.fspath(p) == str(tmp_path / "x")
    assert p.path == tmp_path / "x"
    assert p == ContentPath(str(tmp_path / "x"))
    assert len({p, ContentPath(str(tmp_path / "x"))}) == 1
    assert "ContentPath(" in repr(p)
