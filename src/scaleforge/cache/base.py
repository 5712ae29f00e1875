"""The ``Tier`` contract every cache backend implements.

A tier maps ``str`` keys to Python values. Encoding, signing and byte budgets
are the tier's business; callers only see values. Failures of the backing
store (a lost Redis connection, a full disk, a corrupt or tampered entry)
never raise from ``get``/``set``/``delete``: they are counted in
:meth:`Tier.stats` as errors, logged, and turned into a miss (``default``) or
an unsuccessful write (``False``). Only programming errors — a key that is not
a ``str``, a negative TTL — raise :class:`~scaleforge.errors.InvalidParameterError`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from scaleforge.errors import CacheError, InvalidParameterError

__all__ = ["MISSING", "Tier", "TierStats", "check_key", "check_ttl"]


class _Missing:
    """Sentinel for "no value"; a cached ``None`` is a real value."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclasses.dataclass(frozen=True, slots=True)
class TierStats:
    """Counters of one tier since it was created (or since ``clear``).

    Attributes
    ----------
    name : str
        The tier's name (``"memory"``, ``"disk"``, ``"redis"``, ...).
    hits, misses, sets, deletes, errors, evictions : int
        Event counts. ``errors`` counts backend failures and rejected entries.
    bytes : int
        Bytes currently held (best effort for shared tiers).
    entries : int
        Entries currently held (best effort for shared tiers; -1 if unknown).
    max_bytes : int or None
        The byte budget, if any.
    get_time_s, set_time_s : float
        Total wall time spent in get and set.
    """

    name: str
    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    errors: int = 0
    evictions: int = 0
    bytes: int = 0
    entries: int = 0
    max_bytes: int | None = None
    get_time_s: float = 0.0
    set_time_s: float = 0.0

    @property
    def hit_rate(self) -> float:
        """Hits / (hits + misses), 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as a plain dict (with ``hit_rate``)."""
        out = dataclasses.asdict(self)
        out["hit_rate"] = self.hit_rate
        return out


def check_key(key: object, owner: str = "Tier") -> str:
    """Return ``key`` if it is a non-empty str, else raise InvalidParameterError."""
    if not isinstance(key, str) or not key:
        raise InvalidParameterError(
            f"Cache keys of {owner} must be non-empty str (e.g. from scaleforge.hashing.make_key). "
            f"Got {key!r} instead."
        )
    return key


def check_ttl(ttl_s: object, owner: str = "Tier") -> float | None:
    """Return ``ttl_s`` if it is None or a number > 0, else raise InvalidParameterError."""
    if ttl_s is None:
        return None
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not ttl_s > 0:
        raise InvalidParameterError(
            f"The 'ttl_s' parameter of {owner} must be a number > 0 or None. Got {ttl_s!r} instead."
        )
    return float(ttl_s)


class Tier(abc.ABC):
    """A cache tier: a bounded mapping from ``str`` keys to values.

    Subclasses implement :meth:`get`, :meth:`set`, :meth:`delete`, :meth:`clear`
    and :meth:`stats`. The batch methods, :meth:`touch`, :meth:`close` and the
    capability properties (``is_shared``, ``supports_ttl``, ``supports_mmap``,
    ``supports_lock``) have working defaults; a tier whose ``supports_lock`` is
    True also overrides :meth:`lock`.

    Mapping-style access follows dict: ``tier[key]`` raises ``KeyError`` on a
    miss, ``key in tier`` tests presence, ``tier[key] = value`` stores.

    See Also
    --------
    scaleforge.MemoryTier, scaleforge.DiskTier, scaleforge.RedisTier, scaleforge.TieredCache
    """

    #: Short name used in stats and metrics.
    name: str = "tier"

    @abc.abstractmethod
    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        """Return the value stored under ``key``, or ``default`` on a miss.

        Parameters
        ----------
        key : str
            The cache key.
        default : object, default=None
            Returned on a miss, and when the backend fails.
        mmap : bool, default=False
            Tiers that store arrays raw in files may return a read-only
            memory map instead of reading them into memory. Others ignore it.

        Returns
        -------
        object
        """

    @abc.abstractmethod
    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` under ``key``.

        Parameters
        ----------
        key : str
            The cache key.
        value : object
            Any value the tier's codec can encode.
        ttl_s : float or None, default=None
            Expire after this many seconds where :attr:`supports_ttl`.

        Returns
        -------
        bool
            True if stored; False if rejected (too large) or the backend failed.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return True if it was present."""

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every entry of this tier (for shared tiers, of its namespace)."""

    @abc.abstractmethod
    def stats(self) -> TierStats:
        """Return this tier's counters."""

    # ---- optional hooks with defaults ------------------------------------------------
    def get_many(self, keys: Iterable[str], *, mmap: bool = False) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that hit (misses are absent).

        The default calls :meth:`get` per key; shared tiers batch (one MGET).
        """
        out: dict[str, Any] = {}
        for key in keys:
            value = self.get(key, MISSING, mmap=mmap)
            if value is not MISSING:
                out[key] = value
        return out

    def set_many(self, items: Mapping[str, Any], *, ttl_s: float | None = None) -> dict[str, bool]:
        """Store several values; return ``{key: stored}``. Default: one :meth:`set` each."""
        return {key: self.set(key, value, ttl_s=ttl_s) for key, value in items.items()}

    def touch(self, key: str, *, ttl_s: float | None = None) -> bool:
        """Mark ``key`` as recently used (and reset its TTL); True if present.

        The default is a :meth:`get` for its LRU side effect.
        """
        return self.get(key, MISSING) is not MISSING

    def keys(self) -> Iterator[str]:
        """Iterate over stored keys where the tier can list them (default: none)."""
        return iter(())

    def close(self) -> None:  # noqa: B027 - optional hook, documented default
        """Release connections and file handles. Default: nothing to release."""

    def lock(
        self, name: str, *, timeout_s: float = 60.0, blocking_timeout_s: float | None = 60.0
    ) -> AbstractContextManager[bool]:
        """Return a lock shared by every process that uses this tier (where :attr:`supports_lock`).

        Single flight (:mod:`scaleforge.cache.singleflight`) takes it around a
        computation so that processes sharing the tier compute a key once.

        Parameters
        ----------
        name : str
            Lock name (the cache key being computed).
        timeout_s : float, default=60.0
            For locks that can outlive a dead holder (Redis), the expiry after
            which a holder that stopped renewing it loses it. Locks the
            operating system frees when the holder dies (files) ignore it.
        blocking_timeout_s : float or None, default=60.0
            Longest wait in ``__enter__``; 0 tries once, None waits until the
            holder releases the lock (or dies).

        Returns
        -------
        contextlib.AbstractContextManager of bool
            ``__enter__`` returns True if the lock is held, False if the wait
            timed out or the backend could not take it (compute anyway). It
            never raises a backend error.

        Raises
        ------
        CacheError
            Always, in this default: the tier has no lock (``supports_lock`` is
            False). Tiers that override it set ``supports_lock`` to True.
        """
        raise CacheError(
            f"{type(self).__name__} has no cross-process lock (its supports_lock is False). "
            "Check tier.supports_lock before calling tier.lock(), or use a DiskTier or RedisTier."
        )

    @property
    def is_shared(self) -> bool:
        """True if other processes or machines can write this tier (entries are signed)."""
        return False

    @property
    def supports_ttl(self) -> bool:
        """True if ``ttl_s`` is honoured."""
        return False

    @property
    def supports_mmap(self) -> bool:
        """True if ``get(..., mmap=True)`` can return memory-mapped arrays."""
        return False

    @property
    def supports_lock(self) -> bool:
        """True if :meth:`lock` returns a lock shared by the processes using this tier.

        Default: False (and :meth:`lock` raises :class:`~scaleforge.errors.CacheError`).
        """
        return False

    # ---- dict-style sugar ------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, MISSING) is not MISSING

    def __enter__(self) -> Tier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
