"""NullTier: the same API, nothing stored."""

from __future__ import annotations

import numpy as np
import pytest

from scaleforge.cache.base import MISSING
from scaleforge.cache.null import NullTier
from scaleforge.errors import InvalidParameterError


def test_stores_nothing_and_counts_misses() -> None:
    tier = NullTier()
    assert tier.set("k", np.arange(3)) is False
    assert tier.get("k") is None
    assert tier.get("k", MISSING) is MISSING
    assert "k" not in tier
    assert tier.get_many(["a", "b"]) == {}
    assert tier.set_many({"a": 1}) == {"a": False}
    assert tier.delete("k") is False
    assert tier.touch("k") is False
    assert list(tier.keys()) == []
    s = tier.stats()
    assert (s.hits, s.misses, s.bytes, s.name) == (0, 6, 0, "null")  # get x2, in, get_many x2, touch
    with pytest.raises(KeyError):
        tier["k"]
    tier.clear()
    assert tier.stats().misses == 0


def test_validates_like_every_tier() -> None:
    tier = NullTier()
    with pytest.raises(InvalidParameterError):
        tier.get(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="ttl_s"):
        tier.set("k", 1, ttl_s=-1)


def test_capabilities() -> None:
    tier = NullTier()
    assert not tier.is_shared and not tier.supports_ttl and not tier.supports_mmap
