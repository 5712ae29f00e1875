"""``TieredCache``: several tiers behind one ``Tier``, fastest first."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from scaleforge._validation import check_choice
from scaleforge.cache.base import MISSING, Tier, TierStats, check_key, check_ttl
from scaleforge.errors import InvalidParameterError

__all__ = ["WRITE_POLICIES", "TieredCache"]

logger = logging.getLogger(__name__)

#: Accepted values of ``write_policy``.
WRITE_POLICIES: tuple[str, ...] = ("through", "back_to_fastest")
_LOG_INTERVAL_S = 10.0  # at most one warning per tier and operation in this interval


class TieredCache(Tier):
    """Read-through, write-through composition of tiers (L1 -> L2 -> L3).

    Parameters
    ----------
    tiers : sequence of Tier
        Fastest first, e.g. ``[MemoryTier(), DiskTier(path), RedisTier(url)]``.
    write_policy : {"through", "back_to_fastest"}, default="through"
        ``"through"`` writes every ``set`` to every tier. ``"back_to_fastest"``
        writes to the fastest tier only and remembers the key; :meth:`flush`
        (also run by :meth:`close`) copies those entries that the fastest tier
        still holds to the slower tiers.
    promote : bool, default=True
        Copy a hit found in a slower tier into the faster tiers before returning it.

    Notes
    -----
    A tier that raises (a third-party tier breaking the :class:`Tier`
    contract) is logged and treated as a miss or failed write, counted in
    this cache's ``errors``; the caller never sees the exception.
    ``set`` returns True if at least one tier stored the value. ``stats()``
    aggregates: ``hits``/``misses`` count lookups of this cache (a hit in any
    tier is one hit), the other counters and sizes are sums over the tiers;
    :meth:`tier_stats` gives the per-tier breakdown. ``get(..., mmap=True)`` is
    forwarded, so a disk hit may be a memory-mapped array, which is then
    promoted into the memory tier by reference. Promoted copies carry no TTL
    (the tiers do not report remaining lifetimes); give the faster tiers
    their own expiry if entries must vanish everywhere on time.

    Examples
    --------
    >>> from scaleforge.cache.memory import MemoryTier
    >>> cache = TieredCache([MemoryTier(max_bytes="1MB"), MemoryTier(max_bytes="10MB", name="l2")])
    >>> cache.set("k", [1, 2])
    True
    >>> cache.get("k")
    [1, 2]
    """

    name = "tiered"

    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        write_policy: str = "through",
        promote: bool = True,
        name: str = "tiered",
    ) -> None:
        if not isinstance(tiers, (list, tuple)) or not tiers:
            raise InvalidParameterError(
                "The 'tiers' parameter of TieredCache must be a non-empty list of Tier instances, fastest "
                f"first, e.g. [MemoryTier(), DiskTier(path)]. Got {tiers!r} instead."
            )
        for i, tier in enumerate(tiers):
            if not isinstance(tier, Tier):
                raise InvalidParameterError(
                    f"The 'tiers' parameter of TieredCache must hold Tier instances; item {i} is "
                    f"{type(tier).__name__}. Wrap custom stores in a Tier subclass."
                )
        self._tiers: tuple[Tier, ...] = tuple(tiers)
        self._policy = check_choice(write_policy, "write_policy", "TieredCache", WRITE_POLICIES)
        if not isinstance(promote, bool):
            raise InvalidParameterError(
                f"The 'promote' parameter of TieredCache must be a bool. Got {promote!r} instead."
            )
        self._promote = promote
        self.name = name
        self._hits = self._misses = self._errors = 0
        self._get_time_s = self._set_time_s = 0.0
        self._dirty: dict[str, float | None] = {}
        self._dirty_lock = threading.Lock()
        self._last_log: dict[tuple[str, str], float] = {}

    def __repr__(self) -> str:
        return f"TieredCache({list(self._tiers)!r}, write_policy={self._policy!r}, promote={self._promote})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_tiered, (list(self._tiers), self._policy, self._promote, self.name))

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers, fastest first."""
        return self._tiers

    @property
    def is_shared(self) -> bool:
        """True if any tier is shared."""
        return any(t.is_shared for t in self._tiers)

    @property
    def supports_ttl(self) -> bool:
        """True if any tier honours ``ttl_s``."""
        return any(t.supports_ttl for t in self._tiers)

    @property
    def supports_mmap(self) -> bool:
        """True if any tier can return memory-mapped arrays."""
        return any(t.supports_mmap for t in self._tiers)

    @property
    def supports_lock(self) -> bool:
        """True if any tier has a cross-process lock (:meth:`lock`)."""
        return any(t.supports_lock for t in self._tiers)

    def lock(
        self, name: str, *, timeout_s: float = 60.0, blocking_timeout_s: float | None = 60.0
    ) -> AbstractContextManager[bool]:
        """Return the locks of the tiers that have one, taken fastest first.

        The first such tier's lock is taken first, then each slower tier's, all
        within one ``blocking_timeout_s`` budget. On ``[memory, disk, redis]``
        the disk file lock lets one process per machine through, and only that
        one then waits on the Redis lock, which excludes the other machines.

        Parameters
        ----------
        name : str
            Lock name (the cache key being computed).
        timeout_s : float, default=60.0
            Passed to each tier's lock (the Redis expiry).
        blocking_timeout_s : float or None, default=60.0
            Longest total wait; None waits for the holders.

        Returns
        -------
        contextlib.AbstractContextManager of bool
            ``__enter__`` is True when every lock is held. It is False when one
            timed out (the slower ones are then not tried) or a backend could
            not take its lock; the locks already taken stay held for the block.

        Raises
        ------
        CacheError
            If no tier supports locks (check :attr:`supports_lock`).
        """
        check_key(name, "TieredCache.lock")
        tiers = [t for t in self._tiers if t.supports_lock]
        if not tiers:
            return super().lock(name, timeout_s=timeout_s, blocking_timeout_s=blocking_timeout_s)
        return _ChainedLock(self, tiers, name, timeout_s, blocking_timeout_s)

    def _failed(self, tier: Tier, op: str, exc: BaseException) -> None:
        self._errors += 1
        now = time.monotonic()
        if now - self._last_log.get((tier.name, op), -_LOG_INTERVAL_S) >= _LOG_INTERVAL_S:
            self._last_log[(tier.name, op)] = now
            logger.warning("TieredCache: tier %r failed in %s (%r); treated as a miss", tier.name, op, exc)

    def _set_in(self, tiers: Iterable[Tier], key: str, value: Any, ttl: float | None) -> bool:
        ok = False
        for tier in tiers:
            try:
                ok = tier.set(key, value, ttl_s=ttl) or ok
            except Exception as exc:
                self._failed(tier, "set", exc)
        return ok

    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        """Return the value from the fastest tier that has it, promoting it (see :meth:`Tier.get`)."""
        check_key(key, "TieredCache")
        t0 = time.perf_counter()
        for i, tier in enumerate(self._tiers):
            try:
                value = tier.get(key, MISSING, mmap=mmap)
            except Exception as exc:
                self._failed(tier, "get", exc)
                continue
            if value is not MISSING:
                if i and self._promote:
                    self._set_in(self._tiers[:i], key, value, None)
                self._hits += 1
                self._get_time_s += time.perf_counter() - t0
                return value
        self._misses += 1
        self._get_time_s += time.perf_counter() - t0
        return default

    def get_many(self, keys: Iterable[str], *, mmap: bool = False) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that hit; one batch per tier for the keys still missing."""
        missing = list(dict.fromkeys(check_key(k, "TieredCache") for k in keys))
        t0 = time.perf_counter()
        out: dict[str, Any] = {}
        for i, tier in enumerate(self._tiers):
            if not missing:
                break
            try:
                found = tier.get_many(missing, mmap=mmap)
            except Exception as exc:
                self._failed(tier, "get_many", exc)
                continue
            if not found:
                continue
            out.update(found)
            if i and self._promote:
                for faster in self._tiers[:i]:
                    try:
                        faster.set_many(found)
                    except Exception as exc:
                        self._failed(faster, "set_many", exc)
            missing = [k for k in missing if k not in found]
        self._hits += len(out)
        self._misses += len(missing)
        self._get_time_s += time.perf_counter() - t0
        return out

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` according to the write policy; True if at least one tier stored it."""
        check_key(key, "TieredCache")
        ttl = check_ttl(ttl_s, "TieredCache")
        t0 = time.perf_counter()
        if self._policy == "through":
            ok = self._set_in(self._tiers, key, value, ttl)
        else:
            ok = self._set_in(self._tiers[:1], key, value, ttl)
            if len(self._tiers) > 1:
                with self._dirty_lock:
                    self._dirty[key] = ttl
        self._set_time_s += time.perf_counter() - t0
        return ok

    def set_many(self, items: Mapping[str, Any], *, ttl_s: float | None = None) -> dict[str, bool]:
        """Store several values, one batch per tier; ``{key: stored in at least one tier}``."""
        ttl = check_ttl(ttl_s, "TieredCache")
        result = {check_key(k, "TieredCache"): False for k in items}
        targets = self._tiers if self._policy == "through" else self._tiers[:1]
        for tier in targets:
            try:
                for k, ok in tier.set_many(items, ttl_s=ttl).items():
                    result[k] = result[k] or ok
            except Exception as exc:
                self._failed(tier, "set_many", exc)
        if self._policy != "through" and len(self._tiers) > 1:
            with self._dirty_lock:
                self._dirty.update(dict.fromkeys(items, ttl))
        return result

    def flush(self) -> int:
        """Copy entries written under ``"back_to_fastest"`` to the slower tiers.

        Returns
        -------
        int
            How many entries were copied (entries the fastest tier evicted meanwhile are skipped).
        """
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, {}
        copied = 0
        fastest = self._tiers[0]
        for key, ttl in dirty.items():
            try:
                value = fastest.get(key, MISSING)
            except Exception as exc:
                self._failed(fastest, "get", exc)
                continue
            if value is not MISSING and self._set_in(self._tiers[1:], key, value, ttl):
                copied += 1
        return copied

    def delete(self, key: str) -> bool:
        """Remove ``key`` from every tier; True if any tier had it."""
        check_key(key, "TieredCache")
        with self._dirty_lock:
            self._dirty.pop(key, None)
        found = False
        for tier in self._tiers:
            try:
                found = tier.delete(key) or found
            except Exception as exc:
                self._failed(tier, "delete", exc)
        return found

    def touch(self, key: str, *, ttl_s: float | None = None) -> bool:
        """Touch ``key`` in every tier; True if any tier has it."""
        check_key(key, "TieredCache")
        ttl = check_ttl(ttl_s, "TieredCache")
        found = False
        for tier in self._tiers:
            try:
                found = tier.touch(key, ttl_s=ttl) or found
            except Exception as exc:
                self._failed(tier, "touch", exc)
        return found

    def clear(self) -> None:
        """Clear every tier and reset this cache's counters."""
        with self._dirty_lock:
            self._dirty.clear()
        for tier in self._tiers:
            try:
                tier.clear()
            except Exception as exc:
                self._failed(tier, "clear", exc)
        self._hits = self._misses = self._errors = 0
        self._get_time_s = self._set_time_s = 0.0

    def keys(self) -> Iterator[str]:
        """Iterate over the union of the keys the tiers can list."""
        seen: dict[str, None] = {}
        for tier in self._tiers:
            try:
                seen.update(dict.fromkeys(tier.keys()))
            except Exception as exc:
                self._failed(tier, "keys", exc)
        return iter(list(seen))

    def tier_stats(self) -> list[TierStats]:
        """Return each tier's :class:`TierStats`, fastest first."""
        out = []
        for tier in self._tiers:
            try:
                out.append(tier.stats())
            except Exception as exc:
                self._failed(tier, "stats", exc)
                out.append(TierStats(name=tier.name, entries=-1))
        return out

    def stats(self) -> TierStats:
        """Return this cache's lookups and the tiers' summed counters (see Notes)."""
        per = self.tier_stats()
        budgets = [s.max_bytes for s in per]
        return TierStats(
            name=self.name,
            hits=self._hits,
            misses=self._misses,
            sets=sum(s.sets for s in per),
            deletes=sum(s.deletes for s in per),
            errors=self._errors + sum(s.errors for s in per),
            evictions=sum(s.evictions for s in per),
            bytes=sum(s.bytes for s in per),
            entries=-1 if any(s.entries < 0 for s in per) else sum(s.entries for s in per),
            max_bytes=None if any(b is None for b in budgets) else sum(b for b in budgets if b is not None),
            get_time_s=self._get_time_s,
            set_time_s=self._set_time_s,
        )

    def close(self) -> None:
        """Flush pending write-backs, then close every tier."""
        self.flush()
        for tier in self._tiers:
            try:
                tier.close()
            except Exception as exc:
                self._failed(tier, "close", exc)


class _ChainedLock:
    """The locks of several tiers, taken in order and released in reverse."""

    def __init__(
        self,
        owner: TieredCache,
        tiers: Sequence[Tier],
        name: str,
        timeout_s: float,
        blocking_timeout_s: float | None,
    ) -> None:
        self._owner = owner
        self._tiers = tiers
        self._name = name
        self._timeout_s = timeout_s
        self._wait = blocking_timeout_s
        self._held: list[AbstractContextManager[bool]] = []

    def __enter__(self) -> bool:
        deadline = None if self._wait is None else time.monotonic() + self._wait
        for tier in self._tiers:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                manager = tier.lock(self._name, timeout_s=self._timeout_s, blocking_timeout_s=wait)
                held = manager.__enter__()
            except Exception as exc:  # a third-party tier breaking the contract
                self._owner._failed(tier, "lock", exc)
                return False
            self._held.append(manager)
            if held is False:
                return False
        return True

    def __exit__(self, *exc: object) -> None:
        while self._held:
            manager = self._held.pop()
            try:
                manager.__exit__(None, None, None)
            except Exception as err:
                logger.debug("releasing a tier lock failed: %r", err)


def _rebuild_tiered(tiers: list[Tier], policy: str, promote: bool, name: str) -> TieredCache:
    return TieredCache(tiers, write_policy=policy, promote=promote, name=name)
