"""Single flight: concurrent calls with the same cache key compute once.

Two layers of locking, taken in this order:

1. **In-process**: one :class:`threading.Lock` per key, created on demand and
   dropped when its last user leaves (:class:`KeyLocks`). Always on.
2. **Cross-process / cross-machine**: when the cache declares
   :attr:`~scaleforge.cache.base.Tier.supports_lock`, its
   ``lock(name, *, timeout_s, blocking_timeout_s)`` context manager:

   * a :class:`~scaleforge.cache.disk.DiskTier` locks a file (``fcntl.flock``):
     the processes of one machine compute a key once, and a holder that dies
     frees the lock at once;
   * a :class:`~scaleforge.cache.redis.RedisTier` takes a Redis lock with an
     expiry (``expiry_s``) that a heartbeat renews every ``expiry_s / 3`` while
     the holder computes, so long computations run once, and a holder that
     dies (``kill -9``, a lost machine) blocks the others for at most
     ``expiry_s`` seconds;
   * a :class:`~scaleforge.cache.tiered.TieredCache` takes the locks of its
     tiers fastest first (disk, then Redis: one process per machine waits on Redis).

   Without a timeout, waiters wait until the holder releases (or loses) the
   lock, then look the key up again: they get the holder's result.

A failing shared lock never fails the caller: if Redis is down, the lock
degrades to what is left (the computation may then run once per process or
machine), the failure is logged and counted in ``scaleforge_singleflight_errors_total``.

Only one thread per process waits on the shared lock (the in-process lock is
taken first), so a process full of threads does not poll Redis once per thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from scaleforge.cache.base import Tier
from scaleforge.errors import InvalidParameterError

__all__ = ["DEFAULT_EXPIRY_S", "KeyLocks", "find_lock_tier", "single_flight"]

logger = logging.getLogger(__name__)

#: Default expiry of a cross-process lock: how long a dead holder can block the others.
DEFAULT_EXPIRY_S = 60.0


class KeyLocks:
    """In-process locks, one per key, created on demand and freed after use.

    The table holds an entry only while some thread holds or waits for that
    key, so it never grows with the number of keys ever seen.

    Examples
    --------
    >>> locks = KeyLocks()
    >>> with locks.hold("k") as acquired:
    ...     acquired
    True
    >>> len(locks)
    0
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # key -> [threading.Lock, users]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)

    @contextlib.contextmanager
    def hold(self, key: str, *, blocking: bool = True, timeout_s: float | None = None) -> Iterator[bool]:
        """Hold the lock of ``key`` for the duration of the block.

        Parameters
        ----------
        key : str
            The cache key.
        blocking : bool, default=True
            Wait for the lock; when False, yield False at once if it is held.
        timeout_s : float or None, default=None
            Longest wait when blocking; None waits forever.

        Yields
        ------
        bool
            True if this thread holds the lock inside the block.
        """
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = [threading.Lock(), 0]
            entry[1] += 1
        lock: threading.Lock = entry[0]
        if not blocking:
            acquired = lock.acquire(blocking=False)
        elif timeout_s is None:
            acquired = lock.acquire()
        else:
            acquired = lock.acquire(timeout=max(0.0, timeout_s))
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0 and self._locks.get(key) is entry:
                    del self._locks[key]


_KEY_LOCKS = KeyLocks()


def _reset_after_fork() -> None:
    # A key lock held by another thread at fork time would never be released in the child.
    global _KEY_LOCKS
    _KEY_LOCKS = KeyLocks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def find_lock_tier(cache: object) -> Any | None:
    """Return ``cache`` if it offers a cross-process lock (``supports_lock``), else None.

    A :class:`~scaleforge.cache.tiered.TieredCache` supports locks when one of
    its tiers does, and combines them itself (:meth:`TieredCache.lock`).

    Parameters
    ----------
    cache : Tier
        The cache in use.

    Returns
    -------
    Tier or None
    """
    if not isinstance(cache, Tier):
        return None
    try:
        supported = cache.supports_lock is True
    except Exception:  # a broken property must not break the caller
        logger.debug("reading supports_lock of %r failed", cache, exc_info=True)
        return None
    return cache if supported else None


def _count_error(op: str) -> None:
    try:
        from scaleforge.monitor.metrics import counter

        counter(
            "scaleforge_singleflight_errors_total",
            "Failures of the shared single-flight lock (the call went on without it)",
            ["op"],
        ).labels(op=op).inc()
    except Exception:  # metrics are best effort
        logger.debug("could not record a single-flight error metric", exc_info=True)


@contextlib.contextmanager
def _shared_lock(tier: Any, name: str, *, expiry_s: float, wait_s: float | None) -> Iterator[bool]:
    """Hold ``tier.lock(name)``; yield True if held or if the lock itself failed."""
    try:
        manager = tier.lock(name, timeout_s=expiry_s, blocking_timeout_s=wait_s)
        acquired = manager.__enter__()
    except Exception as exc:
        # A lock that times out raises on some backends; others yield False.
        if _is_timeout(exc):
            yield False
            return
        logger.warning(
            "single-flight lock on %s failed (%s); continuing without it", type(tier).__name__, exc
        )
        _count_error("acquire")
        yield True
        return
    held = acquired is not False
    try:
        yield held
    finally:
        try:
            manager.__exit__(None, None, None)
        except Exception as exc:  # expired lock, lost connection: the work is already done
            logger.debug("single-flight lock release failed: %s", exc)
            _count_error("release")


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    text = str(exc).lower()
    return type(exc).__name__ == "LockError" and ("acquire" in text or "timeout" in text)


@contextlib.contextmanager
def single_flight(
    cache: object,
    key: str,
    *,
    blocking: bool = True,
    timeout_s: float | None = None,
    expiry_s: float = DEFAULT_EXPIRY_S,
) -> Iterator[bool]:
    """Hold the single-flight lock of ``key`` for the duration of the block.

    Parameters
    ----------
    cache : Tier
        The cache whose shared tier (if any) provides the cross-process lock.
    key : str
        The cache key being computed.
    blocking : bool, default=True
        Wait for the lock; when False, yield False at once if another holder has it.
    timeout_s : float or None, default=None
        Longest total wait when blocking (None: wait until the holder releases
        it or its cross-process lock expires).
    expiry_s : float, default=60.0
        Expiry of a Redis lock: a holder that dies blocks the others for at
        most this long. A live holder renews it every ``expiry_s / 3``, so
        computations may take longer than this.

    Yields
    ------
    bool
        True if this caller holds the lock and should compute; False if it
        gave up waiting (``blocking=False`` or ``timeout_s`` elapsed).

    Raises
    ------
    InvalidParameterError
        If ``timeout_s`` or ``expiry_s`` is negative or not a number.
    """
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s < 0
    ):
        raise InvalidParameterError(
            f"The 'timeout_s' parameter of single_flight must be a number >= 0 or None. Got {timeout_s!r} instead."
        )
    if isinstance(expiry_s, bool) or not isinstance(expiry_s, (int, float)) or not expiry_s > 0:
        raise InvalidParameterError(
            f"The 'expiry_s' parameter of single_flight must be a number > 0. Got {expiry_s!r} instead."
        )
    start = time.monotonic()
    with _KEY_LOCKS.hold(key, blocking=blocking, timeout_s=timeout_s) as local:
        if not local:
            yield False
            return
        tier = find_lock_tier(cache)
        if tier is None:
            yield True
            return
        if not blocking:
            wait: float | None = 0.0
        elif timeout_s is None:
            # Until the holder releases: a live holder renews its lock, a dead one frees it
            # (file lock) or lets it expire within expiry_s (Redis).
            wait = None
        else:
            wait = max(0.0, timeout_s - (time.monotonic() - start))
        with _shared_lock(tier, f"singleflight:{key}", expiry_s=float(expiry_s), wait_s=wait) as shared:
            yield shared
