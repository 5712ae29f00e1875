"""DiskTier: the Tier contract, layout, eviction, signing, mmap, processes."""

from __future__ import annotations

import os
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from scaleforge.cache.disk import SMALL_ENTRY_BYTES, DiskTier
from scaleforge.errors import ConfigError, InvalidParameterError
from scaleforge.settings import Settings, set_settings
from scaleforge.testing.tiers import TierTests

KEY = bytes(range(32))


class TestDiskTierConformance(TierTests):
    @pytest.fixture
    def tier(self, tmp_path: Path) -> Iterator[DiskTier]:
        t = DiskTier(tmp_path / "cache", max_bytes="100MB", key=KEY)
        yield t
        t.close()


def _files(tier: DiskTier) -> list[Path]:
    return sorted(p for p in (tier.path / "data").rglob("*") if p.is_file())


def test_small_entries_live_in_the_index_large_ones_in_files(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    for i in range(200):
        tier.set(f"small{i}", {"i": i, "pad": "x" * 100})
    assert _files(tier) == []
    tier.set("large", np.random.default_rng(0).random(SMALL_ENTRY_BYTES))  # 8 bytes each: above the threshold
    files = _files(tier)
    assert len(files) == 1 and files[0].suffix == ".sfc" and len(files[0].parent.name) == 2
    assert tier.stats().entries == 201


def test_eviction_is_lru_and_keeps_the_budget(tmp_path: Path) -> None:
    one = np.zeros(20_000)  # 160 kB -> files
    budget = 5 * (one.nbytes + 200)
    tier = DiskTier(tmp_path, max_bytes=budget, key=KEY, compression="none")
    for i in range(5):
        tier.set(f"k{i}", one)
    assert tier.get("k0") is not None  # k0 becomes recently used; k1 is now least recent
    tier.set("k5", one)
    assert tier.get("k1") is None
    assert tier.get("k0") is not None
    s = tier.stats()
    assert s.bytes <= budget and s.evictions == 1 and s.entries == 5
    assert sum(p.stat().st_size for p in _files(tier)) <= budget
    assert len(_files(tier)) == 5


def test_value_larger_than_budget_is_rejected(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, max_bytes=10_000, key=KEY, compression="none")
    assert tier.set("big", np.zeros(10_000)) is False
    assert tier.stats().errors == 1
    assert _files(tier) == []


def test_entry_written_with_another_key_is_a_counted_miss(tmp_path: Path) -> None:
    DiskTier(tmp_path, key=bytes(32)).set("k", {"v": 1})
    DiskTier(tmp_path, key=bytes(32)).set("big", np.arange(100_000))
    reader = DiskTier(tmp_path, key=KEY)
    assert reader.get("k") is None
    assert reader.get("big") is None
    assert reader.stats().errors == 2


def test_flipped_byte_in_a_file_is_a_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY, compression="none")
    tier.set("big", np.arange(100_000))
    (path,) = _files(tier)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert tier.get("big") is None
    assert tier.stats().errors == 1


def test_flipped_byte_in_the_index_blob_is_a_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    tier.set("k", [1, 2, 3])
    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        (blob,) = db.execute("SELECT blob FROM entries WHERE key = 'k'").fetchone()
        tampered = bytearray(blob)
        tampered[-2] ^= 0x20
        db.execute("UPDATE entries SET blob = ? WHERE key = 'k'", (bytes(tampered),))
    assert tier.get("k") is None
    assert tier.stats().errors == 1


def test_truncated_file_is_a_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    tier.set("big", np.random.default_rng(0).random(50_000))
    (path,) = _files(tier)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    assert tier.get("big") is None
    assert tier.get("big", mmap=True) is None


def test_vanished_file_is_a_plain_miss(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY, compression="none")
    tier.set("big", np.zeros(100_000))
    for p in _files(tier):
        p.unlink()
    assert tier.get("big") is None
    assert tier.stats().errors == 0
    assert "big" not in list(tier.keys())  # the dangling index row was dropped


def test_mmap_shares_the_file_and_survives_replacement(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY, compression="none")
    arr = np.arange(200_000, dtype=np.int32).reshape(400, 500)
    tier.set("a", arr)
    mapped = tier.get("a", mmap=True)
    assert not mapped.flags.writeable and not mapped.flags.owndata
    tier.set("a", arr * 2)  # the old map keeps the old inode
    np.testing.assert_array_equal(mapped, arr)
    np.testing.assert_array_equal(tier.get("a", mmap=True), arr * 2)


def test_compressed_entries_round_trip_and_shrink(tmp_path: Path) -> None:
    smooth = np.linspace(0.0, 1.0, 200_000)
    for compression in ("lz4", "zstd"):
        tier = DiskTier(tmp_path / compression, key=KEY, compression=compression)
        tier.set("s", smooth)
        np.testing.assert_array_equal(tier.get("s"), smooth)
        np.testing.assert_array_equal(tier.get("s", mmap=True), smooth)  # falls back to a decoded copy
    zstd_size = DiskTier(tmp_path / "zstd", key=KEY).stats().bytes
    assert zstd_size < smooth.nbytes / 4


def test_index_is_shared_by_two_instances(tmp_path: Path) -> None:
    a = DiskTier(tmp_path, key=KEY)
    b = DiskTier(tmp_path, key=KEY)
    a.set("k", "from a")
    assert b.get("k") == "from a"
    assert b.delete("k")
    assert a.get("k") is None


def test_expired_entry_is_removed(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    tier.set("k", 1, ttl_s=1e-6)
    assert tier.get("k") is None
    assert tier.stats().entries == 0


def test_touch_resets_ttl(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    tier.set("k", 1, ttl_s=1e-6)
    assert tier.touch("k", ttl_s=3600)
    assert tier.get("k") == 1


def test_sweep_removes_stale_temp_files(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY, compression="none")
    tier.set("big", np.zeros(100_000))
    stale = _files(tier)[0].parent / ".leftover.123.abc.tmp"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    assert tier.sweep_temp_files(max_age_s=3600) == 1
    assert not stale.exists()
    assert tier.get("big") is not None


def test_pickled_tier_opens_the_same_directory(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY, max_bytes="1GB")
    tier.set("k", 5)
    clone = pickle.loads(pickle.dumps(tier))
    assert clone.get("k") == 5 and clone.max_bytes == tier.max_bytes


def test_unpicklable_value_is_a_counted_failed_set(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    assert tier.set("k", threading_lock()) is False
    assert tier.stats().errors == 1


def threading_lock() -> object:
    import threading

    return threading.Lock()


def test_fsync_mode_writes_and_reads(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY, fsync=True, compression="none")
    tier.set("big", np.ones(100_000))
    assert tier.get("big").sum() == 100_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_bytes": -5}, "max_bytes"),
        ({"compression": "gzip"}, "compression"),
        ({"fsync": "yes"}, "fsync"),
        ({"mac_algorithm": "md5"}, "mac_algorithm"),
        ({"key": b"short"}, "32 bytes"),
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    kwargs.setdefault("key", KEY)
    with pytest.raises(InvalidParameterError, match=match):
        DiskTier(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_key_from_settings_and_key_file_inside_cache_refused(tmp_path: Path) -> None:
    inside = Settings(cache={"key_file": tmp_path / "cache" / "hmac.key"})
    set_settings(inside)
    try:
        with pytest.raises(ConfigError, match="outside the cache directory"):
            DiskTier(tmp_path / "cache")
        set_settings(Settings(cache={"key_file": tmp_path / "conf" / "hmac.key"}))
        tier = DiskTier(tmp_path / "cache")
        tier.set("k", 1)
        assert (tmp_path / "conf" / "hmac.key").stat().st_mode & 0o777 == 0o600
        assert DiskTier(tmp_path / "cache").get("k") == 1  # same key reloaded from the file
    finally:
        set_settings(None)


def test_unusable_directory_raises_cache_error(tmp_path: Path) -> None:
    from scaleforge.errors import CacheError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="writable directory"):
        DiskTier(blocker, key=KEY)


def test_metrics_reach_prometheus_on_stats(tmp_path: Path) -> None:
    from scaleforge.monitor.metrics import REGISTRY

    tier = DiskTier(tmp_path, key=KEY, name="disktest_prom")
    tier.set("k", 1)
    for _ in range(4):
        tier.get("k")
    tier.get("absent")
    tier.stats()
    labels = {"tier": "disktest_prom"}
    assert REGISTRY.get_sample_value("scaleforge_cache_hits_total", labels) == 4
    assert REGISTRY.get_sample_value("scaleforge_cache_misses_total", labels) == 1
    assert REGISTRY.get_sample_value("scaleforge_cache_get_seconds_count", labels) == 5
    assert REGISTRY.get_sample_value("scaleforge_cache_get_seconds_sum", labels) > 0
    assert REGISTRY.get_sample_value("scaleforge_cache_bytes", labels) == tier.stats().bytes > 0
