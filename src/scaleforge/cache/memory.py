"""``MemoryTier``: an in-process LRU bounded by bytes."""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from scaleforge._validation import parse_bytes
from scaleforge.cache._counters import TierCounters
from scaleforge.cache.base import MISSING, Tier, TierStats, check_key, check_ttl

__all__ = ["MemoryTier", "estimate_size"]

_SAMPLE_ITEMS = 64  # containers longer than this are sized from a sample


def estimate_size(value: Any, _depth: int = 0) -> int:
    """Estimate the memory held by ``value`` in bytes.

    Objects with an integer ``nbytes`` (numpy arrays, torch tensors) count
    their buffer plus a small overhead; str/bytes count ``sys.getsizeof``;
    lists, tuples, sets and dicts add their items, two levels deep (long
    containers are extrapolated from their first 64 items); anything else
    counts ``sys.getsizeof``, which ignores what it references.

    Parameters
    ----------
    value : object

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> estimate_size(np.zeros(1000)) >= 8000
    True
    """
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and not isinstance(value, (bytes, bytearray, memoryview)):
        return nbytes + 128
    size = sys.getsizeof(value, 64)
    if _depth >= 2 or isinstance(value, (str, bytes, bytearray)):
        return size
    if isinstance(value, dict):
        items: list[Any] = []
        for i, (k, v) in enumerate(value.items()):
            if i >= _SAMPLE_ITEMS:
                break
            items.extend((k, v))
        n = len(value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = []
        for i, v in enumerate(value):
            if i >= _SAMPLE_ITEMS:
                break
            items.append(v)
        n = len(value)
    else:
        return size
    if not items:
        return size
    sampled = sum(estimate_size(v, _depth + 1) for v in items)
    per_item = sampled / min(n, _SAMPLE_ITEMS)
    return size + int(per_item * n)


class MemoryTier(Tier):
    """An in-process cache tier: LRU eviction under a byte budget, thread-safe.

    Parameters
    ----------
    max_bytes : int or str, default=512_000_000
        Byte budget (``"2GB"`` style strings accepted). A value whose estimated
        size exceeds it is rejected (``set`` returns False, counted in ``errors``).
    name : str, default="memory"
        Name in stats and metrics.

    Notes
    -----
    Values are stored **by reference**: arrays are neither copied nor made
    read-only, so mutating a value after ``set`` or after ``get`` mutates the
    cached entry too. Treat cached values as immutable. Sizes are estimated
    with :func:`estimate_size`. All operations are O(1) under one lock
    (an ``OrderedDict`` in LRU order). Hits and misses are plain counters;
    Prometheus sees them when :meth:`stats` is called or on the next write,
    so a hit costs well under a microsecond (0.43 µs measured on the
    project's 2 shared cores).

    Examples
    --------
    >>> tier = MemoryTier(max_bytes="1MB")
    >>> tier.set("k", 42)
    True
    >>> tier.get("k")
    42
    """

    name = "memory"

    def __init__(self, max_bytes: int | str = 512 * 10**6, *, name: str = "memory") -> None:
        self._max_bytes = parse_bytes(max_bytes, owner="MemoryTier")
        self.name = name
        # key -> (value, size, expires_at monotonic or 0.0)
        self._data: OrderedDict[str, tuple[Any, int, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self._c = TierCounters(name)

    def __repr__(self) -> str:
        return f"MemoryTier(max_bytes={self._max_bytes}, name={self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled memory tier arrives empty in the other process.
        return (self.__class__, (self._max_bytes,), {"name": self.name})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self._c = TierCounters(self.name)

    @property
    def max_bytes(self) -> int:
        """The byte budget."""
        return self._max_bytes

    @property
    def supports_ttl(self) -> bool:
        """True: ``ttl_s`` is honoured (checked on access)."""
        return True

    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        """Return the value under ``key`` or ``default`` (see :meth:`Tier.get`)."""
        if type(key) is not str or not key:
            check_key(key, "MemoryTier")
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                if entry[2] and entry[2] <= time.monotonic():
                    del self._data[key]
                    self._bytes -= entry[1]
                else:
                    self._data.move_to_end(key)
                    self._c.hits += 1
                    return entry[0]
            self._c.misses += 1
            return default

    def peek(self, key: str, default: Any = None) -> Any:
        """Return the value under ``key`` without counting a hit or miss or refreshing its LRU position.

        For bookkeeping reads (``@cached``'s miss diagnostics) that must not
        skew the tier's statistics or eviction order.

        Parameters
        ----------
        key : str
            The cache key.
        default : object, default=None
            Returned when the key is absent or expired.

        Returns
        -------
        object
        """
        entry = self._data.get(key)  # a dict read is atomic under the GIL
        if entry is None or (entry[2] and entry[2] <= time.monotonic()):
            return default
        return entry[0]

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` by reference (see :meth:`Tier.set`)."""
        check_key(key, "MemoryTier")
        ttl = check_ttl(ttl_s, "MemoryTier")
        t0 = time.perf_counter()
        size = estimate_size(value) + sys.getsizeof(key)
        if size > self._max_bytes:
            self._c.errors += 1
            return False
        expires = time.monotonic() + ttl if ttl is not None else 0.0
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._data[key] = (value, size, expires)
            self._bytes += size
            evicted = 0
            while self._bytes > self._max_bytes:
                _, (_, old_size, _) = self._data.popitem(last=False)
                self._bytes -= old_size
                evicted += 1
            self._c.evictions += evicted
            self._c.sets += 1
            bytes_now = self._bytes
        self._c.set_time_s += time.perf_counter() - t0
        self._c.maybe_sync(bytes_now)
        return True

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        check_key(key, "MemoryTier")
        with self._lock:
            entry = self._data.pop(key, None)
            if entry is None:
                return False
            self._bytes -= entry[1]
            self._c.deletes += 1
            return True

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._data.clear()
            self._bytes = 0
        self._c.reset()

    def touch(self, key: str, *, ttl_s: float | None = None) -> bool:
        """Mark ``key`` most recently used and (if given) reset its TTL; True if present."""
        check_key(key, "MemoryTier")
        ttl = check_ttl(ttl_s, "MemoryTier")
        return self._touch(key, ttl)

    def _touch(self, key: str, ttl: float | None) -> bool:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return False
            now = time.monotonic()
            if entry[2] and entry[2] <= now:
                del self._data[key]
                self._bytes -= entry[1]
                return False
            if ttl is not None:
                self._data[key] = (entry[0], entry[1], now + ttl)
            self._data.move_to_end(key)
            return True

    def keys(self) -> Iterator[str]:
        """Iterate over a snapshot of the stored keys, least recently used first."""
        with self._lock:
            snapshot = list(self._data)
        return iter(snapshot)

    def stats(self) -> TierStats:
        """Return the counters, bytes held and entry count."""
        with self._lock:
            bytes_now, entries = self._bytes, len(self._data)
        return self._c.snapshot(bytes_now=bytes_now, entries=entries, max_bytes=self._max_bytes)

    def get_many(self, keys: Any, *, mmap: bool = False) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys present (one lock acquisition)."""
        keys = [check_key(k, "MemoryTier") for k in keys]
        out: dict[str, Any] = {}
        now = time.monotonic()
        with self._lock:
            for key in keys:
                entry = self._data.get(key)
                if entry is None or (entry[2] and entry[2] <= now):
                    self._c.misses += 1
                    continue
                self._data.move_to_end(key)
                self._c.hits += 1
                out[key] = entry[0]
        return out

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(key) and self.get(key, MISSING) is not MISSING
