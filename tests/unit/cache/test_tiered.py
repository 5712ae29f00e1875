"""TieredCache: read-through, promotion, write policies, failing tiers, a stateful model test."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from scaleforge.cache.base import MISSING, Tier, TierStats
from scaleforge.cache.disk import DiskTier
from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.null import NullTier
from scaleforge.cache.tiered import TieredCache
from scaleforge.errors import InvalidParameterError
from scaleforge.testing.tiers import TierTests, assert_same_value

KEY = bytes(range(32))


class TestTieredCacheConformance(TierTests):
    @pytest.fixture
    def tier(self, tmp_path: Path) -> Iterator[TieredCache]:
        t = TieredCache([MemoryTier(max_bytes="10MB"), DiskTier(tmp_path, max_bytes="50MB", key=KEY)])
        yield t
        t.close()


class BrokenTier(Tier):
    """A third-party tier that breaks the contract by raising."""

    name = "broken"

    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        raise ConnectionError("backend down")

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        raise ConnectionError("backend down")

    def delete(self, key: str) -> bool:
        raise ConnectionError("backend down")

    def clear(self) -> None:
        raise ConnectionError("backend down")

    def stats(self) -> TierStats:
        raise ConnectionError("backend down")


def test_hit_in_lower_tier_is_promoted(tmp_path: Path) -> None:
    l1, l2 = MemoryTier(), DiskTier(tmp_path, key=KEY)
    cache = TieredCache([l1, l2])
    l2.set("k", np.arange(5))
    np.testing.assert_array_equal(cache.get("k"), np.arange(5))
    assert "k" in list(l1.keys())
    assert l1.stats().sets == 1
    cache.get("k")
    assert l2.stats().hits == 1  # the second get was served by L1
    s = cache.stats()
    assert (s.hits, s.misses) == (2, 0)
    assert [t.name for t in cache.tier_stats()] == ["memory", "disk"]


def test_promote_false_leaves_faster_tiers_alone() -> None:
    l1, l2 = MemoryTier(), MemoryTier(name="l2")
    cache = TieredCache([l1, l2], promote=False)
    l2.set("k", 1)
    assert cache.get("k") == 1
    assert l1.get("k") is None


def test_write_through_writes_every_tier(tmp_path: Path) -> None:
    l1, l2 = MemoryTier(), DiskTier(tmp_path, key=KEY)
    cache = TieredCache([l1, l2])
    assert cache.set("k", "v")
    assert l1.get("k") == "v" and l2.get("k") == "v"
    assert cache.delete("k")
    assert l1.get("k") is None and l2.get("k") is None


def test_back_to_fastest_defers_lower_tiers_until_flush(tmp_path: Path) -> None:
    l1, l2 = MemoryTier(), DiskTier(tmp_path, key=KEY)
    cache = TieredCache([l1, l2], write_policy="back_to_fastest")
    cache.set("a", 1)
    cache.set_many({"b": 2, "c": 3})
    assert l2.get("a") is None
    l1.delete("c")  # evicted before the flush: skipped
    assert cache.flush() == 2
    assert l2.get("a") == 1 and l2.get("b") == 2 and l2.get("c") is None
    cache.set("d", 4)
    cache.close()
    assert l2.get("d") == 4


def test_get_many_asks_each_tier_only_for_missing_keys() -> None:
    class CountingTier(MemoryTier):
        def __init__(self, name: str) -> None:
            super().__init__(name=name)
            self.asked: list[list[str]] = []

        def get_many(self, keys: Any, *, mmap: bool = False) -> dict[str, Any]:
            keys = list(keys)
            self.asked.append(keys)
            return super().get_many(keys, mmap=mmap)

    l1, l2, l3 = CountingTier("a"), CountingTier("b"), CountingTier("c")
    cache = TieredCache([l1, l2, l3])
    l1.set("x", 1)
    l2.set("y", 2)
    l3.set("z", 3)
    assert cache.get_many(["x", "y", "z", "w"]) == {"x": 1, "y": 2, "z": 3}
    assert l1.asked == [["x", "y", "z", "w"]]
    assert l2.asked == [["y", "z", "w"]]
    assert l3.asked == [["z", "w"]]
    assert l1.get("z") == 3 and l2.get("z") == 3  # promoted in batches
    s = cache.stats()
    assert (s.hits, s.misses) == (3, 1)


def test_failing_tier_is_a_counted_miss_never_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    good = MemoryTier()
    cache = TieredCache([BrokenTier(), good])
    assert cache.set("k", 1) is True  # stored in the good tier
    assert cache.get("k") == 1
    assert cache.get("nope", "d") == "d"
    assert cache.get_many(["k"]) == {"k": 1}
    assert cache.delete("k") is True
    assert cache.tier_stats()[0].entries == -1
    assert cache.stats().errors >= 6
    cache.clear()
    assert "broken" in caplog.text


def test_all_tiers_failing_returns_false() -> None:
    cache = TieredCache([BrokenTier()])
    assert cache.set("k", 1) is False
    assert cache.get("k", MISSING) is MISSING


def test_capabilities_combine() -> None:
    assert not TieredCache([MemoryTier()]).is_shared
    assert TieredCache([MemoryTier(), NullTier()]).supports_ttl
    assert not TieredCache([NullTier()]).supports_mmap


def test_mmap_request_is_forwarded(tmp_path: Path) -> None:
    disk = DiskTier(tmp_path, key=KEY, compression="none")
    cache = TieredCache([MemoryTier(), disk])
    arr = np.random.default_rng(0).random(100_000)
    disk.set("a", arr)
    got = cache.get("a", mmap=True)
    assert cache.supports_mmap and cache.is_shared
    assert not got.flags.writeable
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ([[]], {}, "non-empty list"),
        ([[object()]], {}, "item 0"),
        ([MemoryTier()], {}, "non-empty list"),
        ([[MemoryTier()]], {"write_policy": "around"}, "write_policy"),
        ([[MemoryTier()]], {"promote": "yes"}, "promote"),
    ],
)
def test_invalid_arguments(args: list[Any], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        TieredCache(*args, **kwargs)


# ---- stateful test: TieredCache behaves like a dict ----------------------------------------------
values = st.one_of(
    st.integers(),
    st.text(max_size=20),
    st.none(),
    st.lists(st.integers(), max_size=5),
    st.integers(0, 3000).map(lambda n: np.arange(n, dtype=np.float64)),
)


class TieredCacheModel(RuleBasedStateMachine):
    """A small memory tier (evicting), a disk tier with room for everything, and a NullTier."""

    keys = Bundle("keys")

    @initialize()
    def setup(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="sf-tiered-")
        self.cache = TieredCache(
            [MemoryTier(max_bytes=30_000), DiskTier(self.dir, max_bytes="50MB", key=KEY), NullTier()]
        )
        self.model: dict[str, Any] = {}

    @rule(target=keys, key=st.text(min_size=1, max_size=8))
    def new_key(self, key: str) -> str:
        return key

    @rule(key=keys, value=values)
    def set(self, key: str, value: Any) -> None:
        assert self.cache.set(key, value)
        self.model[key] = value

    @rule(items=st.dictionaries(keys, values, max_size=4))
    def set_many(self, items: dict[str, Any]) -> None:
        assert all(self.cache.set_many(items).values())
        self.model.update(items)

    @rule(key=keys)
    def get(self, key: str) -> None:
        got = self.cache.get(key, MISSING)
        if key in self.model:
            assert_same_value(got, self.model[key])
        else:
            assert got is MISSING

    @rule(ks=st.lists(keys, max_size=5))
    def get_many(self, ks: list[str]) -> None:
        got = self.cache.get_many(ks)
        assert set(got) == {k for k in ks if k in self.model}
        for k, v in got.items():
            assert_same_value(v, self.model[k])

    @rule(key=keys)
    def delete(self, key: str) -> None:
        assert self.cache.delete(key) == (key in self.model)
        self.model.pop(key, None)

    @rule()
    def clear(self) -> None:
        self.cache.clear()
        self.model.clear()

    @invariant()
    def keys_match(self) -> None:
        if hasattr(self, "cache"):
            assert set(self.cache.keys()) == set(self.model)
            assert self.cache.stats().errors == 0

    def teardown(self) -> None:
        if hasattr(self, "cache"):
            self.cache.close()
            shutil.rmtree(self.dir, ignore_errors=True)


TestTieredCacheModel = TieredCacheModel.TestCase
TestTieredCacheModel.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
