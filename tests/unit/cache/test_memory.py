"""MemoryTier: the Tier contract, LRU under a byte budget, thread safety, metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from scaleforge.cache.memory import MemoryTier, estimate_size
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor.metrics import REGISTRY
from scaleforge.testing.tiers import TierTests


class TestMemoryTierConformance(TierTests):
    @pytest.fixture
    def tier(self) -> Iterator[MemoryTier]:
        t = MemoryTier(max_bytes="64MB")
        yield t
        t.close()


def test_lru_evicts_least_recently_used_by_bytes() -> None:
    arr = [np.full(1000, i, dtype=np.float64) for i in range(4)]  # ~8.1 kB each
    tier = MemoryTier(max_bytes=3 * estimate_size(arr[0]) + 3 * 100)
    for i in range(3):
        tier.set(f"k{i}", arr[i])
    tier.get("k0")  # k0 is now most recent; k1 is the LRU entry
    tier.set("k3", arr[3])
    assert "k1" not in tier
    assert {"k0", "k2", "k3"} <= set(tier.keys())
    s = tier.stats()
    assert s.evictions == 1
    assert s.bytes <= s.max_bytes
    assert s.entries == 3


def test_value_larger_than_budget_is_rejected_and_counted() -> None:
    tier = MemoryTier(max_bytes=1000)
    assert tier.set("big", np.zeros(1000)) is False
    assert tier.get("big") is None
    assert tier.stats().errors == 1


def test_values_are_stored_by_reference() -> None:
    tier = MemoryTier()
    arr = np.zeros(3)
    tier.set("a", arr)
    assert tier.get("a") is arr  # documented: no copy


def test_overwrite_keeps_byte_count_exact() -> None:
    tier = MemoryTier()
    tier.set("a", np.zeros(10_000))
    tier.set("a", np.zeros(10))
    assert tier.stats().bytes == estimate_size(np.zeros(10)) + estimate_size("a")
    tier.delete("a")
    assert tier.stats().bytes == 0


def test_estimate_size_counts_array_buffers_inside_containers() -> None:
    arrays = {"u": np.zeros(10_000), "v": [np.zeros(5_000), np.zeros(5_000)]}
    assert estimate_size(arrays) >= 160_000
    assert estimate_size(np.zeros(1_000_000)) >= 8_000_000
    long_list = list(range(100_000))
    assert estimate_size(long_list) >= 100_000 * 28


@pytest.mark.parametrize("bad", [-1, "lots", True])
def test_invalid_max_bytes(bad: object) -> None:
    with pytest.raises(InvalidParameterError, match="max_bytes"):
        MemoryTier(max_bytes=bad)  # type: ignore[arg-type]


def test_concurrent_threads_keep_budget_and_values(global_random_seed: int) -> None:
    tier = MemoryTier(max_bytes=200_000)
    errors: list[str] = []

    def work(tid: int) -> None:
        rng = np.random.default_rng(global_random_seed + tid)
        for _ in range(2000):
            k = int(rng.integers(50))
            if rng.random() < 0.5:
                tier.set(f"k{k}", np.full(100, k))
            else:
                v = tier.get(f"k{k}")
                if v is not None and not (v == k).all():
                    errors.append(f"k{k} -> {v[:3]}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = tier.stats()
    assert s.bytes <= 200_000
    assert s.entries == len(list(tier.keys()))


def test_stats_export_to_prometheus() -> None:
    tier = MemoryTier(name="memtest_prom")
    tier.set("k", 1)
    for _ in range(3):
        tier.get("k")
    tier.get("nope")
    tier.stats()
    assert REGISTRY.get_sample_value("scaleforge_cache_hits_total", {"tier": "memtest_prom"}) == 3
    assert REGISTRY.get_sample_value("scaleforge_cache_misses_total", {"tier": "memtest_prom"}) == 1
    assert REGISTRY.get_sample_value("scaleforge_cache_bytes", {"tier": "memtest_prom"}) > 0


def test_pickled_memory_tier_arrives_empty() -> None:
    import pickle

    tier = MemoryTier(max_bytes=12345, name="mine")
    tier.set("k", 1)
    copy = pickle.loads(pickle.dumps(tier))
    assert copy.max_bytes == 12345 and copy.name == "mine"
    assert copy.get("k") is None
