"""``NullTier``: a tier that stores nothing (the disabled cache)."""

from __future__ import annotations

from typing import Any

from scaleforge.cache.base import Tier, TierStats, check_key, check_ttl

__all__ = ["NullTier"]


class NullTier(Tier):
    """A tier that stores nothing: every ``get`` misses and every ``set`` returns False.

    Used when ``cache.enabled`` is False, so callers keep one code path.

    Parameters
    ----------
    name : str, default="null"
        Name in stats.

    Examples
    --------
    >>> tier = NullTier()
    >>> tier.set("k", 1)
    False
    >>> tier.get("k", "miss")
    'miss'
    """

    name = "null"

    def __init__(self, *, name: str = "null") -> None:
        self.name = name
        self._misses = 0

    def __repr__(self) -> str:
        return f"NullTier(name={self.name!r})"

    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        """Return ``default`` (always a miss)."""
        check_key(key, "NullTier")
        self._misses += 1
        return default

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store nothing; return False."""
        check_key(key, "NullTier")
        check_ttl(ttl_s, "NullTier")
        return False

    def delete(self, key: str) -> bool:
        """Return False (nothing is ever present)."""
        check_key(key, "NullTier")
        return False

    def clear(self) -> None:
        """Reset the miss counter."""
        self._misses = 0

    def stats(self) -> TierStats:
        """Return the miss count (everything else is zero)."""
        return TierStats(name=self.name, misses=self._misses, max_bytes=0)
