"""register_tier and default_cache built from Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scaleforge.cache.base import Tier, TierStats
from scaleforge.cache.disk import DiskTier
from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.null import NullTier
from scaleforge.cache.redis import RedisTier
from scaleforge.cache.registry import available_tiers, default_cache, get_tier_class, register_tier
from scaleforge.cache.tiered import TieredCache
from scaleforge.errors import ConfigError, InvalidParameterError
from scaleforge.settings import Settings


def _settings(tmp_path: Path, **cache: Any) -> Settings:
    base: dict[str, Any] = {
        "disk": {"path": tmp_path / "cache", "max_bytes": "1GB"},
        "key_file": tmp_path / "config" / "hmac.key",
    }
    for k, v in cache.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return Settings(cache=base)


def test_builtin_names_are_registered() -> None:
    assert {"memory", "disk", "redis", "null"} <= set(available_tiers())
    assert get_tier_class("memory") is MemoryTier
    assert get_tier_class("disk") is DiskTier
    assert get_tier_class("redis") is RedisTier
    assert get_tier_class("null") is NullTier


@pytest.mark.parametrize("cls", [object, MemoryTier(), "MemoryTier", TierStats, None])
def test_register_rejects_non_tier_classes(cls: Any) -> None:
    with pytest.raises(InvalidParameterError, match=r"subclass of scaleforge\.Tier"):
        register_tier("bad", cls)


@pytest.mark.parametrize("name", ["", "Upper", "has space", 3, "1st"])
def test_register_rejects_bad_names(name: Any) -> None:
    with pytest.raises(InvalidParameterError, match="lower-case identifier"):
        register_tier(name, NullTier)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(InvalidParameterError, match="memory"):
        get_tier_class("s3_nonexistent")


def test_default_cache_is_memory_plus_disk(tmp_path: Path) -> None:
    cache = default_cache(_settings(tmp_path, memory={"max_bytes": "10MB"}))
    assert isinstance(cache, TieredCache)
    memory, disk = cache.tiers
    assert isinstance(memory, MemoryTier) and memory.max_bytes == 10 * 10**6
    assert isinstance(disk, DiskTier) and disk.path == (tmp_path / "cache").absolute()
    assert cache.set("k", [1, 2]) and disk.get("k") == [1, 2]
    assert (tmp_path / "config" / "hmac.key").exists()


def test_disabled_cache_is_a_null_tier(tmp_path: Path) -> None:
    assert isinstance(default_cache(_settings(tmp_path, enabled=False)), NullTier)
    none_enabled = _settings(tmp_path, memory={"enabled": False}, disk={"enabled": False})
    assert isinstance(default_cache(none_enabled), NullTier)


def test_redis_tier_added_when_enabled(tmp_path: Path) -> None:
    cache = default_cache(
        _settings(tmp_path, redis={"enabled": True, "url": "redis://127.0.0.1:1/0", "prefix": "x:"})
    )
    assert isinstance(cache, TieredCache)
    assert [type(t) for t in cache.tiers] == [MemoryTier, DiskTier, RedisTier]
    assert cache.is_shared
    cache.close()


def test_write_policy_and_compression_come_from_settings(tmp_path: Path) -> None:
    cache = default_cache(_settings(tmp_path, write_policy="back_to_fastest", compression="zstd"))
    assert isinstance(cache, TieredCache)
    cache.set("k", 1)
    assert cache.tiers[1].get("k") is None  # deferred to the slower tier until flush
    cache.close()
    assert cache.tiers[1].get("k") == 1


def test_key_file_inside_disk_cache_is_refused(tmp_path: Path) -> None:
    s = _settings(tmp_path, key_file=tmp_path / "cache" / "hmac.key")
    with pytest.raises(ConfigError, match="outside the cache directory"):
        default_cache(s)


def test_registered_replacement_is_used_by_default_cache(tmp_path: Path) -> None:
    class LoudMemoryTier(MemoryTier):
        pass

    register_tier("memory", LoudMemoryTier)
    try:
        cache = default_cache(_settings(tmp_path))
        assert isinstance(cache, TieredCache) and type(cache.tiers[0]) is LoudMemoryTier
    finally:
        register_tier("memory", MemoryTier)


def test_custom_tier_subclass_can_be_registered() -> None:
    class ListTier(Tier):
        def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
            return default

        def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
            return False

        def delete(self, key: str) -> bool:
            return False

        def clear(self) -> None:
            pass

        def stats(self) -> TierStats:
            return TierStats(name="list")

    register_tier("listtier", ListTier)
    assert get_tier_class("listtier") is ListTier
