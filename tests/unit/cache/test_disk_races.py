"""DiskTier: interleavings of two processes (two tiers on one directory), replayed step by step.

A ``set`` publishes its entry file first and indexes it in a second step; these
tests stop a writer between the two steps (``_prepare`` / ``_commit``) while the
other one deletes, overwrites or reads the same key, which is what concurrent
processes do at random (``tests/integration/test_cache_faults.py`` hammers it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from scaleforge.cache.disk import SMALL_ENTRY_BYTES, DiskTier

KEY = bytes(range(32))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[DiskTier, DiskTier]]:
    a = DiskTier(tmp_path, max_bytes="100MB", key=KEY)
    b = DiskTier(tmp_path, max_bytes="100MB", key=KEY)
    yield a, b
    a.close()
    b.close()


def _big(seed: int, n: int = SMALL_ENTRY_BYTES) -> np.ndarray:
    return np.random.default_rng(seed).random(n)  # 8 bytes per element: stored in a file


def _file_bytes(tier: DiskTier) -> int:
    return sum(p.stat().st_size for p in (tier.path / "data").rglob("*.sfc"))


def test_a_delete_does_not_remove_an_entry_published_meanwhile(pair: tuple[DiskTier, DiskTier]) -> None:
    a, b = pair
    assert a.set("k", _big(1))
    prepared = b._prepare("k", _big(2))  # B has written its file, not yet indexed it
    assert prepared is not None
    assert a.delete("k")  # A removes the old entry (and its file)
    assert b._commit([prepared], None)  # B's set reports success ...
    np.testing.assert_array_equal(a.get("k"), _big(2))  # ... so B's value must be there
    assert _file_bytes(a) == a.stats().bytes


def test_eviction_does_not_remove_an_entry_published_meanwhile(tmp_path: Path) -> None:
    budget = 3 * 8 * SMALL_ENTRY_BYTES
    a = DiskTier(tmp_path, max_bytes=budget, key=KEY)
    b = DiskTier(tmp_path, max_bytes=budget, key=KEY)
    assert a.set("k", _big(1))
    prepared = b._prepare("k", _big(2))
    assert prepared is not None
    for i in range(3):  # evicts the oldest entry, "k"
        assert a.set(f"other{i}", _big(10 + i))
    assert "k" not in set(a.keys())
    assert b._commit([prepared], None)
    np.testing.assert_array_equal(b.get("k"), _big(2))
    assert _file_bytes(a) == a.stats().bytes


def test_two_writers_of_one_key_keep_the_byte_count_exact(pair: tuple[DiskTier, DiskTier]) -> None:
    a, b = pair
    small, large = _big(1), _big(2, 4 * SMALL_ENTRY_BYTES)
    pa = a._prepare("k", small)
    pb = b._prepare("k", large)  # published after A's file, indexed before it
    assert pa is not None and pb is not None
    assert b._commit([pb], None)
    assert a._commit([pa], None)
    # The index is what the budget counts: it must match the bytes on disk and the value read.
    assert _file_bytes(a) == a.stats().bytes
    np.testing.assert_array_equal(a.get("k"), small)


def test_a_reader_that_lost_the_file_does_not_unindex_a_newer_entry(pair: tuple[DiskTier, DiskTier]) -> None:
    a, b = pair
    assert a.set("k", _big(1))
    row = a._conn().execute("SELECT blob, fname, expires FROM entries WHERE key = 'k'").fetchone()
    for p in (a.path / "data").rglob("*.sfc"):
        p.unlink()  # the file vanished under the reader (evicted by another process)
    assert b.set("k", _big(2))  # ... and another process wrote the key again
    # The reader now opens the file named in the row it read before: a miss, nothing more.
    from scaleforge.cache.base import MISSING

    value = a._decode_row("k", row, False, 0.0)
    if value is not MISSING:  # the new file has the old name: it is the new value, intact
        np.testing.assert_array_equal(value, _big(2))
    np.testing.assert_array_equal(b.get("k"), _big(2))
    assert _file_bytes(a) == a.stats().bytes


def test_sweep_removes_files_of_writers_killed_before_indexing(pair: tuple[DiskTier, DiskTier]) -> None:
    a, b = pair
    assert a.set("kept", _big(1))
    assert b._prepare("lost", _big(2)) is not None  # B dies here: a published file, no index row
    (a.path / "data" / "zz").mkdir()
    (a.path / "data" / "zz" / ".x.sfc.tmp").write_bytes(b"partial")  # and one killed mid-write
    assert a.sweep_temp_files(max_age_s=3600.0) == 0  # too recent: may be a write in progress
    assert a.sweep_temp_files(max_age_s=0.0) == 2
    assert "lost" not in set(a.keys())
    np.testing.assert_array_equal(a.get("kept"), _big(1))
    assert _file_bytes(a) == a.stats().bytes


def test_mmap_get_of_a_pickled_value_is_not_backed_by_the_shared_file(tmp_path: Path) -> None:
    # A memory map shows later in-place writes to the file. A pickled entry is verified, then
    # unpickled: if both read the shared mapping, bytes changed in between (by anyone who can
    # write the cache directory) would be unpickled unverified. Only raw arrays may be mapped.
    tier = DiskTier(tmp_path, compression="none", key=KEY)
    value = {"field": _big(3)}
    assert tier.set("k", value)
    got = tier.get("k", mmap=True)
    np.testing.assert_array_equal(got["field"], value["field"])
    (path,) = (tmp_path / "data").rglob("*.sfc")
    with open(path, "r+b") as f:  # scribble over the payload in place
        f.seek(path.stat().st_size // 2)
        f.write(b"\xff" * 4096)
    np.testing.assert_array_equal(got["field"], value["field"])
    assert tier.get("k", mmap=True) is None  # and the tampered entry is now a miss
    tier.close()


def test_an_expired_large_entry_leaves_no_file_behind(tmp_path: Path) -> None:
    import time

    tier = DiskTier(tmp_path, key=KEY)
    assert tier.set("k", _big(4), ttl_s=0.01)
    deadline = time.monotonic() + 5.0
    while tier.get("k") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tier.get("k") is None
    assert tier.stats().bytes == 0
    assert _file_bytes(tier) == 0  # not an unindexed file outside the byte budget
    tier.close()
