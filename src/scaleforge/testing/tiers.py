"""``TierTests``: the conformance suite every cache tier passes.

Subclass it in a test module and supply a ``tier`` fixture (a fresh, empty
tier per test)::

    class TestMyTier(TierTests):
        @pytest.fixture
        def tier(self, tmp_path):
            t = MyTier(tmp_path)
            yield t
            t.close()

The suite checks the :class:`~scaleforge.cache.base.Tier` contract: round
trips of the values a scientific cache holds (arrays of every layout,
containers of arrays, builtins, ``None``), misses, dict sugar, delete and
clear, batches, input validation, stats, and the optional capabilities a tier
declares (``supports_ttl``, ``supports_mmap``, ``supports_lock``: a lock that
excludes a second holder, or ``CacheError`` from the default ``lock``).

:class:`scaleforge.testing.codecs.CodecTests` is the matching suite for codecs.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest

from scaleforge.cache.base import MISSING, Tier
from scaleforge.errors import CacheError, InvalidParameterError

__all__ = ["TierTests", "assert_same_value", "sample_values"]


@dataclasses.dataclass
class _Point:
    x: float
    label: str


def sample_values() -> dict[str, Any]:
    """Return named values every tier must round-trip."""
    rng = np.random.default_rng(0)
    return {
        "none": None,
        "int": 7,
        "float": 2.5,
        "str": "héllo",
        "bytes": b"\x00\x01raw",
        "list": [1, "two", 3.0, None],
        "tuple": (1, (2, 3)),
        "dict": {"a": 1, "b": [1, 2]},
        "set": {1, 2, 3},
        "dataclass": _Point(1.5, "p"),
        "f64": rng.random((17, 5)),
        "f32_fortran": np.asfortranarray(rng.random((6, 9)).astype(np.float32)),
        "int_strided": np.arange(100, dtype=np.int64)[::3],
        "bool": rng.random(33) > 0.5,
        "complex": (rng.random(8) + 1j * rng.random(8)).astype(np.complex128),
        "big_endian": np.arange(10, dtype=">i4"),
        "zero_d": np.array(3.25),
        "empty": np.zeros((0, 4)),
        "datetime": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
        "structured": np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        "object_array": np.array([1, "a", None], dtype=object),
        "dict_of_arrays": {"u": rng.random(1000), "meta": {"n": 3}},
        "large": rng.random(40_000),  # 320 kB: a file on disk, a large SET in Redis
        "scalar_np": np.float32(1.5),
    }


def assert_same_value(got: Any, expected: Any) -> None:
    """Assert ``got`` equals ``expected``, arrays compared by dtype, shape and elements."""
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), type(got)
        assert got.dtype == expected.dtype
        assert got.shape == expected.shape
        if expected.dtype.hasobject:
            assert got.tolist() == expected.tolist()
        else:
            np.testing.assert_array_equal(got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys()
        for k in expected:
            assert_same_value(got[k], expected[k])
    else:
        assert type(got) is type(expected)
        assert got == expected


class TierTests:
    """Conformance tests for a :class:`~scaleforge.cache.base.Tier`; supply a ``tier`` fixture."""

    @pytest.fixture
    def tier(self) -> Tier:
        raise NotImplementedError("subclasses of TierTests supply a 'tier' fixture")

    @pytest.mark.parametrize("name", sorted(sample_values()))
    def test_round_trip(self, tier: Tier, name: str) -> None:
        value = sample_values()[name]
        assert tier.set(f"k-{name}", value) is True
        assert_same_value(tier.get(f"k-{name}"), value)

    def test_miss_returns_default(self, tier: Tier) -> None:
        assert tier.get("absent") is None
        assert tier.get("absent", "dflt") == "dflt"
        assert tier.get("absent", MISSING) is MISSING

    def test_cached_none_is_a_hit(self, tier: Tier) -> None:
        tier.set("none", None)
        assert tier.get("none", "dflt") is None
        assert "none" in tier

    def test_overwrite(self, tier: Tier) -> None:
        tier.set("k", 1)
        tier.set("k", np.arange(3))
        np.testing.assert_array_equal(tier.get("k"), np.arange(3))

    def test_dict_sugar(self, tier: Tier) -> None:
        tier["k"] = {"x": 1}
        assert tier["k"] == {"x": 1}
        assert "k" in tier and "other" not in tier and 42 not in tier
        with pytest.raises(KeyError):
            tier["other"]
        del tier["k"]
        with pytest.raises(KeyError):
            del tier["k"]

    def test_delete(self, tier: Tier) -> None:
        tier.set("k", 1)
        assert tier.delete("k") is True
        assert tier.delete("k") is False
        assert tier.get("k") is None

    def test_clear(self, tier: Tier) -> None:
        for i in range(5):
            tier.set(f"k{i}", i)
        tier.clear()
        assert all(tier.get(f"k{i}") is None for i in range(5))
        assert list(tier.keys()) == []

    def test_keys_lists_what_was_stored(self, tier: Tier) -> None:
        tier.set("a", 1)
        tier.set("b", 2)
        listed = set(tier.keys())
        assert listed in ({"a", "b"}, set())  # a tier may be unable to list (default: empty)

    def test_batch_methods(self, tier: Tier) -> None:
        stored = tier.set_many({"a": 1, "b": np.arange(4), "c": "x"})
        assert stored == {"a": True, "b": True, "c": True}
        got = tier.get_many(["a", "b", "c", "zz"])
        assert set(got) == {"a", "b", "c"}
        np.testing.assert_array_equal(got["b"], np.arange(4))
        assert tier.get_many([]) == {}

    def test_unicode_and_long_keys(self, tier: Tier) -> None:
        for key in ["ключ/ü:*?[x]", "k" * 1000, "sha256:" + "0" * 64]:
            assert tier.set(key, key)
            assert tier.get(key) == key

    @pytest.mark.parametrize("bad", [None, 1, b"k", "", ("k",)])
    def test_invalid_key_raises(self, tier: Tier, bad: Any) -> None:
        with pytest.raises(InvalidParameterError, match="non-empty str"):
            tier.get(bad)
        with pytest.raises(InvalidParameterError):
            tier.set(bad, 1)
        with pytest.raises(InvalidParameterError):
            tier.delete(bad)

    @pytest.mark.parametrize("bad", [0, -1, "10", True])
    def test_invalid_ttl_raises(self, tier: Tier, bad: Any) -> None:
        with pytest.raises(InvalidParameterError, match="ttl_s"):
            tier.set("k", 1, ttl_s=bad)

    def test_stats_count_hits_and_misses(self, tier: Tier) -> None:
        tier.set("k", 1)
        tier.get("k")
        tier.get("k")
        tier.get("missing")
        s = tier.stats()
        assert (s.hits, s.misses) == (2, 1)
        assert s.sets >= 1
        assert s.errors == 0
        assert s.hit_rate == pytest.approx(2 / 3)
        assert s.as_dict()["name"] == s.name

    def test_touch(self, tier: Tier) -> None:
        assert tier.touch("absent") is False
        tier.set("k", 1)
        assert tier.touch("k") is True

    def test_ttl_expires(self, tier: Tier) -> None:
        if not tier.supports_ttl:
            pytest.skip("tier does not support TTL")
        tier.set("short", 1, ttl_s=0.05)
        tier.set("long", 2, ttl_s=3600)
        deadline = time.monotonic() + 10
        while tier.get("short") is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tier.get("short") is None
        assert tier.get("long") == 2

    def test_mmap_returns_equal_array(self, tier: Tier) -> None:
        if not tier.supports_mmap:
            pytest.skip("tier does not support mmap")
        arr = np.random.default_rng(1).random((300, 200))  # 480 kB: stored in a file
        tier.set("arr", arr)
        got = tier.get("arr", mmap=True)
        np.testing.assert_array_equal(got, arr)
        fortran = np.asfortranarray(arr)
        tier.set("f", fortran)
        np.testing.assert_array_equal(tier.get("f", mmap=True), fortran)

    def test_arrays_read_back_are_writable_without_mmap(self, tier: Tier) -> None:
        tier.set("arr", np.arange(50_000.0))
        got = tier.get("arr")
        got[0] = -1.0  # must not raise
        assert got[0] == -1.0

    def test_capabilities_are_bools(self, tier: Tier) -> None:
        assert isinstance(tier.is_shared, bool)
        assert isinstance(tier.supports_ttl, bool)
        assert isinstance(tier.supports_mmap, bool)
        assert isinstance(tier.supports_lock, bool)

    def test_lock_matches_supports_lock(self, tier: Tier) -> None:
        if not tier.supports_lock:
            with pytest.raises(CacheError, match="supports_lock"):
                tier.lock("conformance-lock")
            return
        with tier.lock("conformance-lock", timeout_s=30, blocking_timeout_s=0) as held:
            assert held is True
            with tier.lock("conformance-lock", timeout_s=30, blocking_timeout_s=0) as other:
                assert other is False  # a second holder is excluded
            with tier.lock("conformance-other", timeout_s=30, blocking_timeout_s=0) as other:
                assert other is True  # names are independent
        with tier.lock("conformance-lock", timeout_s=30, blocking_timeout_s=0) as held:
            assert held is True  # released on exit

    def test_close_is_idempotent_via_context_manager(self, tier: Tier) -> None:
        with tier as t:
            assert t is tier
