"""``RedisTier``: a cache tier shared by processes and machines through Redis.

redis-py is imported when a ``RedisTier`` is created, not when this module is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from scaleforge._validation import check_choice, check_number, parse_bytes
from scaleforge.cache._counters import TierCounters
from scaleforge.cache.base import Tier, TierStats, check_key, check_ttl
from scaleforge.codec import FrameCodec, Signer, load_key
from scaleforge.codec.base import EncodedValue
from scaleforge.errors import (
    IntegrityError,
    InvalidParameterError,
    MissingDependencyError,
    SerializationError,
)

__all__ = ["RedisLock", "RedisTier"]

logger = logging.getLogger(__name__)

# Values at least this large are sent with a hand-packed SET whose buffers go
# to the socket one by one: redis-py's hiredis packer copies every argument
# twice (bytes(memoryview) + pack_command). Measured on loopback (2 shared
# cores, medians of 3 interleaved runs): a 10 MB array in 32 ms including the
# BLAKE3 MAC, against 69 ms for redis-py's set() of the same bytes and 80 ms
# for set() of a memoryview; 100 MB: 173 ms against 376 ms and 405 ms.
_LARGE_VALUE_BYTES = 256 * 1024
_MGET_CHUNK = 1000
_LOCK_POLL_FIRST_S = 0.002
_LOCK_POLL_MAX_S = 0.05
_FAILED: Any = object()
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


class _Breaker:
    """Closed -> open (for ``cooldown_s``) -> half-open (one trial call) -> closed or open."""

    __slots__ = ("_lock", "cooldown_s", "open_until", "state")

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self.state = "closed"
        self.open_until = 0.0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        with self._lock:
            if self.state == "open" and time.monotonic() >= self.open_until:
                self.state = "half_open"  # this caller makes the one trial call
                return True
            return False

    def success(self) -> bool:
        """Record a successful call; True if this closed the breaker."""
        if self.state == "closed":
            return False
        with self._lock:
            was = self.state
            self.state = "closed"
            return was != "closed"

    def failure(self) -> None:
        with self._lock:
            self.state = "open"
            self.open_until = time.monotonic() + self.cooldown_s


class _Heartbeat:
    """One daemon thread per process that renews every held :class:`RedisLock`.

    Each lock is renewed (``PEXPIRE`` back to its full expiry, redis-py's
    ``Lock.reacquire``) every third of its expiry while it is held, so a
    computation longer than the expiry keeps its lock; when the holder dies
    the renewals stop and the lock expires. The thread exits after 5 s with
    nothing to renew and is started again by the next lock.
    """

    _IDLE_EXIT_S = 5.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[RedisLock, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, lock: RedisLock) -> None:
        with self._cond:
            self._due[lock] = time.monotonic() + lock.renew_interval_s
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="scaleforge-lock-heartbeat", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, lock: RedisLock) -> None:
        with self._cond:
            self._due.pop(lock, None)

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._due:
                    self._cond.wait(self._IDLE_EXIT_S)
                    if not self._due:
                        self._thread = None
                        return
                    continue
                now = time.monotonic()
                ready = [lock for lock, due in self._due.items() if due <= now]
                if not ready:
                    self._cond.wait(min(self._due.values()) - now)
                    continue
                for lock in ready:
                    self._due[lock] = now + lock.renew_interval_s
            for lock in ready:  # network calls outside the condition
                if not lock.renew():
                    self.remove(lock)


_HEARTBEAT = [_Heartbeat()]


def _reset_heartbeat_after_fork() -> None:
    # The child has no heartbeat thread; it must not renew its parent's locks either.
    _HEARTBEAT[0] = _Heartbeat()


os.register_at_fork(after_in_child=_reset_heartbeat_after_fork)


class RedisLock:
    """A lock in Redis with an expiry and a heartbeat, for single flight across machines.

    Returned by :meth:`RedisTier.lock`; wraps redis-py's ``Lock``. Entering it
    returns True if the lock was acquired and False if it was not (another
    holder kept it past ``blocking_timeout_s``, or Redis is unavailable): it
    never raises a Redis error, so callers can fall back to computing anyway.

    While held, a background thread renews the lock every ``timeout_s / 3``
    seconds, so a computation that outlives ``timeout_s`` still holds it and
    runs once. A holder that dies stops renewing, and its lock expires at
    most ``timeout_s`` after its last renewal.

    Examples
    --------
    >>> with tier.lock("key", timeout_s=60, blocking_timeout_s=60) as held:  # doctest: +SKIP
    ...     value = compute() if held else compute_without_lock()
    """

    __slots__ = (
        "__weakref__",
        "_lock",
        "_state",
        "_tier",
        "_wait",
        "acquired",
        "renew_interval_s",
        "renewals",
        "unavailable",
    )

    def __init__(
        self, tier: RedisTier, lock: Any, *, timeout_s: float, blocking_timeout_s: float | None
    ) -> None:
        self._tier = tier
        self._lock = lock
        self._wait = blocking_timeout_s
        self._state = threading.Lock()
        #: Seconds between renewals of a held lock (a third of its expiry).
        self.renew_interval_s = timeout_s / 3.0
        #: True while this object holds the lock.
        self.acquired = False
        #: True if the last ``acquire`` could not reach Redis (as opposed to
        #: another holder keeping the lock past ``blocking_timeout_s``).
        self.unavailable = False
        #: Successful renewals of the current hold.
        self.renewals = 0

    def acquire(self) -> bool:
        """Try to take the lock (waiting up to ``blocking_timeout_s``); True if taken.

        Polls with ``SET NX`` every 2 ms at first, backing off to every 50 ms,
        so long waits cost Redis little.
        """
        if self.acquired:
            return True
        deadline = None if self._wait is None else time.monotonic() + self._wait
        delay = _LOCK_POLL_FIRST_S
        while True:
            result = self._tier._call(self._lock.acquire, blocking=False)
            if result is _FAILED:
                self.unavailable = True
                return False
            self.unavailable = False
            if result is True:
                with self._state:
                    self.acquired = True
                    self.renewals = 0
                _HEARTBEAT[0].add(self)
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            time.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 1.5, _LOCK_POLL_MAX_S)

    def renew(self) -> bool:
        """Reset the lock's expiry to its full ``timeout_s``; False once it is no longer held.

        Called by the heartbeat thread. A lost connection is retried at the
        next beat; a lock that already expired (and may have a new holder)
        is given up, with a warning.
        """
        with self._state:
            if not self.acquired:
                return False
            if not self._tier._breaker.allow():
                return True
            try:
                self._lock.reacquire()
            except self._tier._conn_errors as exc:
                logger.debug("renewing a Redis lock failed (%s); retrying at the next beat", exc)
                return True
            except self._tier._redis.RedisError as exc:
                logger.warning(
                    "a Redis single-flight lock expired while its holder computed (%s); another process "
                    "may compute the same key. Raise lock_expiry_s if the holder stalls this long.",
                    exc,
                )
                return False
            self.renewals += 1
            return True

    def release(self) -> None:
        """Release the lock if held (an expired or lost lock is ignored); stops the renewals."""
        with self._state:
            if not self.acquired:
                return
            self.acquired = False
        _HEARTBEAT[0].remove(self)
        self._tier._call(self._lock.release, quiet=True)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class RedisTier(Tier):
    """A cache tier in Redis: signed entries, TTL, batching and a circuit breaker.

    Parameters
    ----------
    url : str, default="redis://127.0.0.1:6379/0"
        A ``redis://`` or ``rediss://`` URL.
    prefix : str, default="sf:"
        Prepended to every key; :meth:`clear` and :meth:`keys` only touch this namespace.
    ttl_s : float or None, default=None
        Default expiry of entries; ``set(..., ttl_s=...)`` overrides it.
    max_bytes : int or str, default=512_000_000
        Largest encoded value sent; larger ones are rejected (False, counted in ``errors``).
    socket_timeout_s : float, default=5.0
        Timeout of connects and of each socket read/write.
    breaker_cooldown_s : float, default=5.0
        After a connection error, calls skip Redis for this long (each one an
        immediate, counted miss), then one trial call decides whether to resume.
    compression : {"none", "lz4", "zstd", "auto"}, default="auto"
        Payload compression.
    key : bytes, optional
        32-byte signing key; default :func:`scaleforge.codec.load_key` from the settings.
    mac_algorithm : {"blake3", "hmac-sha256"}, default="blake3"
        The keyed MAC of every entry.
    name : str, default="redis"
        Name in stats and metrics.

    Raises
    ------
    MissingDependencyError
        If redis-py is not installed.
    InvalidParameterError
        For a bad argument.

    Notes
    -----
    ``get_many`` is one ``MGET`` per 1000 keys and ``set_many`` one pipeline.
    Values of 256 KiB and more are sent with a hand-packed ``SET`` whose
    header and buffers are written to the socket in turn, without the copies
    redis-py's hiredis packer makes (one atomic ``SET``; no ``APPEND``).
    Array values read back are copied once into a ``bytearray`` so they are
    writable. :meth:`stats` reports this process's counters; ``bytes`` and
    ``entries`` of a shared Redis are not tracked (0 and -1).
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "sf:",
        ttl_s: float | None = None,
        max_bytes: int | str = 512 * 10**6,
        socket_timeout_s: float = 5.0,
        breaker_cooldown_s: float = 5.0,
        compression: str = "auto",
        key: bytes | None = None,
        mac_algorithm: str = "blake3",
        name: str = "redis",
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise MissingDependencyError("RedisTier needs redis-py: pip install 'scaleforge[redis]'") from exc
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise InvalidParameterError(
                f"The 'url' parameter of RedisTier must be a redis:// URL such as 'redis://127.0.0.1:6379/0'. "
                f"Got {url!r} instead."
            )
        if not isinstance(prefix, str):
            raise InvalidParameterError(
                f"The 'prefix' parameter of RedisTier must be a str. Got {prefix!r} instead."
            )
        self._ttl = check_ttl(ttl_s, "RedisTier")
        self._max_bytes = parse_bytes(max_bytes, owner="RedisTier")
        check_number(socket_timeout_s, "socket_timeout_s", "RedisTier", minimum=0, exclusive_minimum=True)
        check_number(breaker_cooldown_s, "breaker_cooldown_s", "RedisTier", minimum=0)
        check_choice(mac_algorithm, "mac_algorithm", "RedisTier", ("blake3", "hmac-sha256"))
        if key is None:
            key = load_key()
        self._params: dict[str, Any] = {
            "prefix": prefix,
            "ttl_s": ttl_s,
            "max_bytes": self._max_bytes,
            "socket_timeout_s": socket_timeout_s,
            "breaker_cooldown_s": breaker_cooldown_s,
            "compression": compression,
            "key": bytes(key),
            "mac_algorithm": mac_algorithm,
            "name": name,
        }
        self._url = url
        self._codec = FrameCodec(Signer(bytes(key), mac_algorithm), compression=compression)  # type: ignore[arg-type]
        self._prefix = prefix
        self._bprefix = prefix.encode()
        self.name = name
        self._redis = redis
        self._conn_errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
            OSError,
        )
        self._pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._client = redis.Redis(connection_pool=self._pool)
        self._breaker = _Breaker(float(breaker_cooldown_s))
        self._c = TierCounters(name)

    def __repr__(self) -> str:
        return f"RedisTier({self._url!r}, prefix={self._prefix!r}, name={self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_redis_tier, (self._url, self._params))

    # ---- plumbing --------------------------------------------------------------------
    @property
    def is_shared(self) -> bool:
        """True: entries are signed."""
        return True

    @property
    def supports_ttl(self) -> bool:
        """True: ``ttl_s`` becomes a Redis expiry."""
        return True

    @property
    def supports_lock(self) -> bool:
        """True: :meth:`lock` is a Redis lock shared by every process and machine."""
        return True

    @property
    def breaker_state(self) -> str:
        """``"closed"`` (Redis in use), ``"open"`` (skipped) or ``"half_open"`` (trial call running)."""
        return self._breaker.state

    @property
    def prefix(self) -> str:
        """The key namespace."""
        return self._prefix

    def _rkey(self, key: str) -> bytes:
        return self._bprefix + key.encode("utf-8", "surrogatepass")

    def _call(self, fn: Any, *args: Any, quiet: bool = False, **kwargs: Any) -> Any:
        """Run one Redis call behind the breaker; ``_FAILED`` instead of raising."""
        if not self._breaker.allow():
            self._c.errors += 1
            return _FAILED
        try:
            result = fn(*args, **kwargs)
        except self._conn_errors as exc:
            self._breaker.failure()
            self._pool.disconnect()
            self._c.error(
                logger,
                "RedisTier %s: Redis unavailable (%s); skipping it for %.1f s",
                self._url,
                exc,
                self._breaker.cooldown_s,
            )
            return _FAILED
        except self._redis.RedisError as exc:
            self._breaker.success()
            if not quiet:
                self._c.error(logger, "RedisTier %s: command failed (%s)", self._url, exc)
            return _FAILED
        if self._breaker.success():
            logger.info("RedisTier %s: Redis is reachable again", self._url)
        return result

    def _decode(self, raw: bytes) -> Any:
        try:
            return self._codec.decode(raw)
        except (IntegrityError, SerializationError) as exc:
            self._c.error(logger, "RedisTier %s: ignoring a bad entry (%s)", self._url, exc)
            return _FAILED

    def _px(self, ttl_s: float | None) -> int | None:
        ttl = ttl_s if ttl_s is not None else self._ttl
        return None if ttl is None else max(1, int(ttl * 1000))

    def _encode(self, value: Any) -> EncodedValue | None:
        try:
            enc = self._codec.encode(value)
        except SerializationError as exc:
            self._c.error(logger, "RedisTier %s: cannot encode a value (%s)", self._url, exc)
            return None
        if enc.nbytes > self._max_bytes:
            self._c.error(
                logger,
                "RedisTier %s: rejected an entry of %d bytes (max_bytes=%d)",
                self._url,
                enc.nbytes,
                self._max_bytes,
            )
            return None
        return enc

    def _get_raw(self, rkey: bytes) -> Any:
        """``GET`` with a hand-packed command on a pooled connection.

        Skips redis-py's generic command path (argument encoding, retry and
        observability hooks: ~1/3 of the client-side time of a small GET,
        profiled for benchmarks/bench_cache.py ``redis_get_small_vs_redispy``).
        Errors are those of redis-py (handled by :meth:`_call`).
        """
        pool = self._pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(rkey), rkey)], False)  # type: ignore[no-untyped-call]
            return conn.read_response()
        except BaseException:
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(conn)

    def _set_large(self, rkey: bytes, enc: EncodedValue, px: int | None) -> Any:
        head = b"*%d\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (
            3 if px is None else 5,
            len(rkey),
            rkey,
            enc.nbytes,
        )
        tail = b"\r\n" if px is None else b"\r\n$2\r\nPX\r\n$%d\r\n%d\r\n" % (len(str(px)), px)
        conn = self._pool.get_connection()
        try:
            conn.send_packed_command([head, *enc.buffers, tail])  # type: ignore[no-untyped-call]
            return conn.read_response()
        except BaseException:
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            self._pool.release(conn)

    # ---- Tier API --------------------------------------------------------------------
    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        """Return the value under ``key`` or ``default`` (see :meth:`Tier.get`)."""
        if type(key) is not str or not key:
            check_key(key, "RedisTier")
        t0 = time.perf_counter()
        raw = self._call(self._get_raw, self._bprefix + key.encode("utf-8", "surrogatepass"))
        value = _FAILED if raw is _FAILED or raw is None else self._decode(raw)
        if value is _FAILED:
            self._c.misses += 1
            value = default
        else:
            self._c.hits += 1
        self._c.observe_get(time.perf_counter() - t0)
        return value

    def get_many(self, keys: Iterable[str], *, mmap: bool = False) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that hit: one ``MGET`` per 1000 keys."""
        wanted = list(dict.fromkeys(check_key(k, "RedisTier") for k in keys))
        t0 = time.perf_counter()
        out: dict[str, Any] = {}
        for i in range(0, len(wanted), _MGET_CHUNK):
            chunk = wanted[i : i + _MGET_CHUNK]
            raws = self._call(self._client.mget, [self._rkey(k) for k in chunk])
            if raws is _FAILED:
                continue
            for k, raw in zip(chunk, raws, strict=False):
                if raw is not None:
                    value = self._decode(raw)
                    if value is not _FAILED:
                        out[k] = value
        self._c.hits += len(out)
        self._c.misses += len(wanted) - len(out)
        self._c.observe_get(time.perf_counter() - t0)
        return out

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` (see :meth:`Tier.set`); False if too large or Redis failed."""
        check_key(key, "RedisTier")
        px = self._px(check_ttl(ttl_s, "RedisTier"))
        t0 = time.perf_counter()
        enc = self._encode(value)
        ok = False
        if enc is not None:
            rkey = self._rkey(key)
            if enc.nbytes >= _LARGE_VALUE_BYTES:
                result = self._call(self._set_large, rkey, enc, px)
            else:
                result = self._call(self._client.set, rkey, enc.tobytes(), px=px)
            ok = result is not _FAILED and bool(result)
            if ok:
                self._c.sets += 1
        self._c.set_time_s += time.perf_counter() - t0
        self._c.maybe_sync(0)
        return ok

    def set_many(self, items: Mapping[str, Any], *, ttl_s: float | None = None) -> dict[str, bool]:
        """Store several values with one pipeline (values >= 256 KiB are sent one by one)."""
        px = self._px(check_ttl(ttl_s, "RedisTier"))
        result = {check_key(k, "RedisTier"): False for k in items}
        t0 = time.perf_counter()
        small: list[tuple[str, bytes]] = []
        for k, v in items.items():
            enc = self._encode(v)
            if enc is None:
                continue
            if enc.nbytes >= _LARGE_VALUE_BYTES:
                r = self._call(self._set_large, self._rkey(k), enc, px)
                result[k] = r is not _FAILED and bool(r)
            else:
                small.append((k, enc.tobytes()))
        if small:

            def run() -> list[Any]:
                pipe = self._client.pipeline(transaction=False)
                for k, data in small:
                    pipe.set(self._rkey(k), data, px=px)
                return list(pipe.execute())

            replies = self._call(run)
            if replies is not _FAILED:
                for (k, _), reply in zip(small, replies, strict=False):
                    result[k] = bool(reply)
        self._c.sets += sum(result.values())
        self._c.set_time_s += time.perf_counter() - t0
        return result

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        check_key(key, "RedisTier")
        n = self._call(self._client.delete, self._rkey(key))
        if n is _FAILED or not n:
            return False
        self._c.deletes += 1
        return True

    def touch(self, key: str, *, ttl_s: float | None = None) -> bool:
        """Reset the expiry of ``key`` (to ``ttl_s`` or the tier's default); True if present."""
        check_key(key, "RedisTier")
        px = self._px(check_ttl(ttl_s, "RedisTier"))
        rkey = self._rkey(key)
        r = (
            self._call(self._client.exists, rkey)
            if px is None
            else self._call(self._client.pexpire, rkey, px)
        )
        return r is not _FAILED and bool(r)

    def _scan(self) -> list[bytes]:
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self._prefix).encode() + b"*"
        found = self._call(lambda: list(self._client.scan_iter(match=pattern, count=1000)))
        return [] if found is _FAILED else list(found)

    def keys(self) -> Iterator[str]:
        """Iterate over the keys of this namespace (a ``SCAN`` snapshot)."""
        n = len(self._bprefix)
        return iter([k[n:].decode("utf-8", "surrogatepass") for k in self._scan()])

    def clear(self) -> None:
        """Delete every key of this namespace (``SCAN`` + ``UNLINK``) and reset the counters."""
        found = self._scan()
        for i in range(0, len(found), 1000):
            self._call(self._client.unlink, *found[i : i + 1000])
        self._c.reset()

    def stats(self) -> TierStats:
        """Return this process's counters (bytes and entries of Redis are not tracked)."""
        return self._c.snapshot(bytes_now=0, entries=-1, max_bytes=self._max_bytes)

    def lock(
        self, name: str, *, timeout_s: float = 60.0, blocking_timeout_s: float | None = 60.0
    ) -> RedisLock:
        """Return a cross-process lock in this tier's namespace.

        Parameters
        ----------
        name : str
            Lock name (e.g. the cache key being computed).
        timeout_s : float, default=60.0
            Expiry of the lock. A live holder renews it every ``timeout_s / 3``
            (a heartbeat thread), so computations may take longer; a dead holder
            stops renewing and blocks the others at most this long.
        blocking_timeout_s : float or None, default=60.0
            How long ``acquire`` waits; ``None`` waits until the holder releases
            the lock or its lock expires.

        Returns
        -------
        RedisLock
            A context manager whose ``__enter__`` returns True if the lock was acquired.
        """
        check_key(name, "RedisTier.lock")
        check_number(timeout_s, "timeout_s", "RedisTier.lock", minimum=0, exclusive_minimum=True)
        check_number(blocking_timeout_s, "blocking_timeout_s", "RedisTier.lock", minimum=0, allow_none=True)
        # thread_local=False: the heartbeat thread renews the lock, and the
        # compute layer may release it from another thread than the acquirer.
        lock = self._client.lock(self._prefix + "lock:" + name, timeout=float(timeout_s), thread_local=False)
        return RedisLock(
            self,
            lock,
            timeout_s=float(timeout_s),
            blocking_timeout_s=None if blocking_timeout_s is None else float(blocking_timeout_s),
        )

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.disconnect()

    def __del__(self) -> None:
        # The pool is ours alone: close its sockets rather than leave them to the GC.
        pool = getattr(self, "_pool", None)
        if pool is not None:
            with contextlib.suppress(Exception):  # e.g. at interpreter shutdown
                pool.disconnect()


def _rebuild_redis_tier(url: str, params: dict[str, Any]) -> RedisTier:
    return RedisTier(url, **params)
