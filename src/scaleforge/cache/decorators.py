"""``@cached``: memoize a function by the content of its arguments and its code.

The key of a call combines

* the function's identity digest (:func:`scaleforge.hashing.function_identity`:
  its normalised source, the helpers and module constants it uses, ``version``),
* one token per argument after binding with :func:`inspect.signature` and
  applying defaults (so ``f(1)`` and ``f(1, steps=100)`` share a key), minus the
  ``ignore``\\ d parameters. Short scalars (``int``, ``float``, ``bool``,
  ``None``, ``complex``, ``str`` up to 64 characters) are tokenised literally
  (``"int:100"``); everything else by :func:`scaleforge.hashing.hash_value`,

and is built by :func:`scaleforge.hashing.make_key`.

Methods
-------
On a method, ``self`` is an argument like any other: it is hashed by content
with ``hash_value`` (dataclasses, pydantic models, registered types). An
instance that cannot be hashed raises :class:`~scaleforge.errors.InvalidParameterError`
suggesting ``ignore=["self"]`` (when the result does not depend on the
instance) or ``register_hasher``. A ``cls`` argument (class methods) and any
other class object is tokenised by its ``module.qualname``. ``@cached`` can be
applied above or below ``@staticmethod`` / ``@classmethod``.

Miss diagnostics
----------------
Each stored entry joins its function's index with a compact summary (a
hash of the code and version, one hash per argument token). When a call
misses, the index is read from the in-process memory tier only (no decode,
no I/O; skipped for disk- or Redis-only caches and before the process stored
anything) and compared with the summaries in one pass: if the nearest entry
differs in exactly one argument, ``scaleforge_cache_miss_argument_total
{function, argument}`` is incremented. Hits never pay for it; ``get_many``
diagnoses at most 8 misses per batch. ``explain()`` gives the full story.

Generators and coroutines
-------------------------
Generator, async generator and ``async def`` functions are refused at
decoration time (``InvalidParameterError`` with the fix): their results run
later and can be consumed once, so a cached copy would come back exhausted
or already awaited. A plain function that returns such an object anyway
(e.g. a wrapper) is called, and its result returned but never stored
(counted in ``errors``).

Layout
------
This module holds the public face (:class:`CachedFunction`, :func:`cached`);
:mod:`scaleforge.cache._core` the machinery it inherits (option checks, key
building and its memo, storage, single flight, counters).

Failures
--------
A cache failure never fails the computation: an exception from a tier's
``get``/``set`` (a lost Redis, a full disk, an unpicklable result) becomes a
miss or an unsaved result, logged and counted in ``cache_info()["errors"]`` and
``scaleforge_cached_errors_total``. Errors of the user's function propagate
and are not cached. Arguments that cannot be hashed raise
``InvalidParameterError`` naming the argument: that is a programming error,
not a cache failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from scaleforge.cache._bound import BoundCachedFunction
from scaleforge.cache._core import _DIAGNOSE_PER_BATCH, _PENDING_MAX, CachedCore, _monotonic
from scaleforge.cache.base import MISSING, Tier, check_key
from scaleforge.cache.explain import describe_miss, manifest_key, tier_stats
from scaleforge.cache.singleflight import DEFAULT_EXPIRY_S, single_flight

if TYPE_CHECKING:
    from scaleforge.hashing import FunctionIdentity

__all__ = ["CachedFunction", "cached"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


# ---- the cached function ----------------------------------------------------------------
class CachedFunction(CachedCore[P, R]):
    """A function memoized by the content of its arguments and its code.

    Created by :func:`cached`; see there for the options. Calling it returns
    the cached result when there is one, else computes it once (single
    flight), stores it and returns it.

    Attributes
    ----------
    __wrapped__ : callable
        The undecorated function.

    See Also
    --------
    cached : the decorator.
    scaleforge.cache.singleflight : the locks behind single flight.
    """

    # -- pickling: never ship the resolved cache -----------------------------------------------
    def __reduce__(self) -> str | tuple[Any, ...]:
        module: str = self._func.__module__
        qualname: str = self._func.__qualname__
        if module != "__main__" and "<locals>" not in qualname:
            try:
                import importlib

                obj: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
            except Exception:
                obj = None
            if obj is self:
                return qualname  # by reference: the worker imports the module
        # By value (cloudpickle ships the function itself); the cache is re-resolved in the worker.
        return (
            _rebuild,
            (
                self._func,
                self._binding,
                {
                    "version": self._version,
                    "ignore": sorted(self._plan.ignore),
                    "ttl_s": self._ttl_s,
                    "mmap": self._mmap,
                    "lock_expiry_s": self._lock_expiry_s,
                },
            ),
        )

    # -- descriptor protocol: methods, classmethods, staticmethods -----------------------------
    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if self._binding == "static":
            return self
        if self._binding == "class":
            return BoundCachedFunction(self, owner if owner is not None else type(instance))
        if instance is None:
            return self
        return BoundCachedFunction(self, instance)

    def __repr__(self) -> str:
        return f"<CachedFunction {self._owner}>"

    # -- properties ------------------------------------------------------------------------
    @property
    def cache(self) -> Tier:
        """The tier in use: ``cache=`` > ``config_context(cache=...)`` > the settings' default.

        The default cache is built on first use and shared by every cached
        function of the process (rebuilt in a forked child). With
        ``config_context(cache_enabled=False)`` or ``Settings.cache.enabled``
        false, a ``NullTier`` (nothing is cached).
        """
        return self._current_cache()

    @property
    def ttl_s(self) -> float | None:
        """Expiry of stored entries in seconds (tiers that support TTLs), or None."""
        return self._ttl_s

    @property
    def mmap(self) -> bool:
        """Whether hits from the disk tier come back as read-only memory maps."""
        return self._mmap

    @property
    def version(self) -> str | None:
        """The explicit ``version=`` (as a str), or None."""
        return self._version

    @property
    def identity(self) -> FunctionIdentity:
        """The function's :class:`~scaleforge.hashing.FunctionIdentity` (recomputed if its code changed)."""
        self._ensure_identity()
        assert self._identity is not None  # set by _ensure_identity
        return self._identity

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the cached result for these arguments, computing and storing it on a miss."""
        key = None
        tokens = None
        now = _monotonic()
        if not kwargs and self._func.__code__ is self._code and now < self._revalidate_at:
            # Hot path (profiled for benchmarks/bench_cache.py hit_scalar_us): a positional
            # call with scalar arguments seen before finds its key in the memo.
            try:  # noqa: SIM105 - contextlib.suppress costs ~0.3 us on this path
                key = self._memo.get((args, tuple(map(type, args))))
            except TypeError:  # an unhashable argument (an array): compute the key
                pass
        if key is None:
            key, tokens = self._key(args, kwargs)
        cache = self._current_cache()
        try:
            value = cache.get(key, MISSING, mmap=self._mmap)
        except Exception as exc:
            self._error("get", exc)
            value = MISSING
        if value is not MISSING:
            self._hits += 1
            if now >= self._next_sync:
                self._sync_hits()
            return value  # type: ignore[no-any-return]
        self._misses += 1
        self._m_miss.inc()
        self._sync_hits()
        if tokens is None:
            try:
                values = self._plan.values(args, kwargs, self._owner)
            except Exception:  # the key was found for these arguments: cannot happen, be safe
                values = None
            self._diagnose_miss(cache, None, values)
        else:
            self._diagnose_miss(cache, tokens)
        return self._compute_and_store(cache, key, args, kwargs, recheck=True, tokens=tokens)

    def call_uncached(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function without reading or writing the cache.

        This is what the compute layer's workers call: the parent process
        looks up keys in bulk (:meth:`get_many`) and stores results (:meth:`store`).
        """
        return self._func(*args, **kwargs)

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Return the cache key of a call, without calling.

        Arguments are bound to the signature with defaults applied; ignored
        parameters are left out.

        Returns
        -------
        str

        Raises
        ------
        InvalidParameterError
            If the arguments do not fit the signature, or one cannot be hashed.
        """
        key, tokens = self._key(args, kwargs)
        try:
            manifest = self._manifest(args, kwargs, tokens)
        except Exception:  # the key is what was asked for; explain data is optional
            logger.debug("could not build the manifest of %s", self._owner, exc_info=True)
        else:
            # Remember the manifest so store(key, value) can record it for explain().
            with self._lock:
                self._pending[key] = manifest
                self._pending.move_to_end(key)
                while len(self._pending) > _PENDING_MAX:
                    self._pending.popitem(last=False)
        return key

    def lookup(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Return the cached result of a call, without computing.

        Raises
        ------
        KeyError
            If no result is cached for these arguments.
        """
        key, _ = self._key(args, kwargs)
        value = self._get(self._current_cache(), key)
        if value is MISSING:
            raise KeyError(f"no cached result of {self._owner} for these arguments (key {key!r})")
        return value  # type: ignore[no-any-return]

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Recompute a call and overwrite its cached result; return the new result."""
        key, tokens = self._key(args, kwargs)
        cache = self._current_cache()
        self._misses += 1
        self._m_miss.inc()
        return self._compute_and_store(cache, key, args, kwargs, recheck=False, tokens=tokens)

    def store(self, key: str, value: Any) -> bool:
        """Store ``value`` under ``key`` (from :meth:`key`); return True if stored.

        Used by the compute layer to save results computed by workers. The
        manifest :meth:`key` computed for that key (for :meth:`explain`) is
        stored with it, and the key joins the function's index (:meth:`clear`).

        Parameters
        ----------
        key : str
            A key returned by :meth:`key`.
        value : object
            The result of ``call_uncached`` for that key.

        Returns
        -------
        bool
            False if the cache rejected or failed the write (counted, never raised).

        Raises
        ------
        InvalidParameterError
            If ``key`` is not a non-empty str.
        """
        check_key(key, owner=self._owner)
        with self._lock:
            manifest = self._pending.pop(key, None)
        return self._store(self._current_cache(), key, value, manifest)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys that are cached (misses are absent).

        One batched lookup (one ``MGET`` on Redis). Counts one hit per key found
        and one miss per key absent; a failing cache returns ``{}``.

        Parameters
        ----------
        keys : iterable of str
            Keys returned by :meth:`key`.

        Returns
        -------
        dict
        """
        wanted = [check_key(k, owner=self._owner) for k in keys]
        if not wanted:
            return {}
        try:
            found = self._current_cache().get_many(wanted, mmap=self._mmap)
        except Exception as exc:
            self._error("get_many", exc)
            found = {}
        if found and self._pending:
            with self._lock:  # hits will not be stored: drop the manifests key() kept for them
                for key in found:
                    self._pending.pop(key, None)
        if len(found) < len(wanted) and self._pending:
            # Diagnose a few misses per batch from the manifests key() kept (bounded cost).
            with self._lock:
                manifests = [self._pending.get(k) for k in wanted if k not in found]
            cache = self._current_cache()
            for manifest in [m for m in manifests if m is not None][:_DIAGNOSE_PER_BATCH]:
                self._diagnose_manifest(cache, manifest)
        self._hits += len(found)
        self._misses += len(wanted) - len(found)
        self._m_miss.inc(len(wanted) - len(found))
        self._sync_hits()
        return dict(found)

    def lock(
        self, key: str, *, blocking: bool = True, timeout_s: float | None = None
    ) -> AbstractContextManager[bool]:
        """Single-flight lock of ``key``: a context manager yielding True if acquired.

        Across threads always; across the processes of a machine when the
        cache has a ``DiskTier`` (a file lock); across machines when it has a
        ``RedisTier`` (a Redis lock with expiry ``lock_expiry_s``, renewed
        while held); see :mod:`scaleforge.cache.singleflight`. It yields False when the wait timed out or the shared tier could not
        take the lock (``RedisTier`` reports a down Redis that way): look the
        key up again, then compute anyway.

        Look the key up again after acquiring it, too: the previous holder may
        have stored the result just before releasing (a lookup made before the
        lock was taken is stale), which is what ``__call__`` does.

        Parameters
        ----------
        key : str
            A key returned by :meth:`key`.
        blocking : bool, default=True
            Wait for the lock; when False, yield False at once if it is held.
        timeout_s : float or None, default=None
            Longest wait; None waits until the holder finishes or its lock expires.

        Returns
        -------
        contextlib.AbstractContextManager of bool

        Examples
        --------
        >>> from scaleforge.cache.memory import MemoryTier
        >>> f = cached(cache=MemoryTier(max_bytes="1MB"))(lambda x: x + 1)
        >>> with f.lock(f.key(1)) as acquired:
        ...     acquired
        True
        """
        check_key(key, owner=self._owner)
        return single_flight(
            self._current_cache(), key, blocking=blocking, timeout_s=timeout_s, expiry_s=self._lock_expiry_s
        )

    def clear(self) -> int:
        """Remove this function's entries; return how many were removed.

        Reaches the entries recorded in the function's index (the last 1024
        keys stored through this function by any process sharing the cache;
        concurrent writers in several processes may drop a few index
        updates). Entries it cannot reach expire or are evicted as usual; use
        ``scaleforge cache clear`` to empty whole tiers.
        """
        cache = self._current_cache()
        removed = 0
        for key in self._index(cache):
            try:
                removed += bool(cache.delete(key))
                cache.delete(manifest_key(key))
            except Exception as exc:
                self._error("delete", exc)
        try:
            cache.delete(self._index_key)
        except Exception as exc:
            self._error("delete", exc)
        with self._lock:
            self._pending.clear()
        return removed

    def cache_info(self) -> dict[str, Any]:
        """Return counters like ``functools.lru_cache().cache_info()``, plus the tiers.

        Returns
        -------
        dict
            ``hits``, ``misses``, ``computations`` (calls of the function),
            ``errors`` (cache failures absorbed) of this function in this
            process; ``entries`` (keys in its index); ``tiers``: ``{name:
            TierStats.as_dict()}`` of the cache in use (tier-wide counters,
            shared by every function using that tier).
        """
        cache = self._current_cache()
        self._sync_hits()
        return {
            "function": self._owner,
            "hits": self._hits,
            "misses": self._misses,
            "computations": self._computations,
            "errors": self._errors,
            "entries": len(self._index(cache)),
            "tiers": tier_stats(cache),
        }

    def explain(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Say whether a call would hit and, for a miss, which part of the key differs.

        Compares with the nearest earlier entry of this function (the one with
        the fewest differing parts): an argument, the function's code, a
        helper's code, or the ``version``.

        Returns
        -------
        str
            ``"hit"``, or e.g. ``"miss: argument 'steps' differs (100 -> 200)"``,
            ``"miss: code of helper 'mymod.grad' changed"``,
            ``"miss: version changed ('1' -> '2')"``.
        """
        key, tokens = self._key(args, kwargs)
        cache = self._current_cache()
        if self._get(cache, key) is not MISSING:
            return "hit"
        current = self._manifest(args, kwargs, tokens)
        keys = [k for k in self._index(cache) if k != key]
        try:
            found = cache.get_many([manifest_key(k) for k in keys]) if keys else {}
        except Exception as exc:
            self._error("get_many", exc)
            found = {}
        return describe_miss(current, found.values())


def _rebuild(func: Callable[..., Any], binding: str, options: dict[str, Any]) -> CachedFunction[..., Any]:
    raw: Any = func
    if binding == "static":
        raw = staticmethod(func)
    elif binding == "class":
        raw = classmethod(func)
    return CachedFunction(raw, **options)


# ---- the decorator ----------------------------------------------------------------------
@overload
def cached(func: Callable[P, R], /) -> CachedFunction[P, R]: ...


@overload
def cached(
    func: None = None,
    /,
    *,
    cache: Tier | None = None,
    version: str | int | None = None,
    ignore: Iterable[str] | None = None,
    ttl_s: float | None = None,
    mmap: bool = False,
    lock_expiry_s: float = DEFAULT_EXPIRY_S,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]: ...


def cached(
    func: Callable[P, R] | None = None,
    /,
    *,
    cache: Tier | None = None,
    version: str | int | None = None,
    ignore: Iterable[str] | None = None,
    ttl_s: float | None = None,
    mmap: bool = False,
    lock_expiry_s: float = DEFAULT_EXPIRY_S,
) -> CachedFunction[P, R] | Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Memoize a function by the content of its arguments and its code.

    Usable bare (``@cached``) or with options (``@cached(version="2")``).

    Parameters
    ----------
    func : callable, optional
        The function (or method, staticmethod, classmethod) to memoize.
    cache : Tier or None, default=None
        Where results go. None: ``config_context(cache=...)`` if set, else the
        default tiers from settings (memory + disk; + Redis under the
        ``distributed`` profile), resolved on first call.
    version : str or int or None, default=None
        Part of the key: bump it to invalidate every entry by hand.
    ignore : list of str or None, default=None
        Parameters left out of the key (``verbose``, ``n_jobs``, ``self``).
    ttl_s : float or None, default=None
        Expiry of stored entries, in seconds, where the tier supports it.
    mmap : bool, default=False
        Return array results found on disk as read-only memory maps.
    lock_expiry_s : float, default=60.0
        Expiry of the Redis single-flight lock: the longest a dead holder
        blocks the others. A live holder renews it every ``lock_expiry_s / 3``,
        so computations may run longer than this and still run once.

    Returns
    -------
    CachedFunction
        Or a decorator returning one, when called with options only.

    Raises
    ------
    InvalidParameterError
        At decoration time, for an unknown name in ``ignore`` (the message
        lists the real parameters), a bad ``ttl_s``/``version``/``cache``, or a
        generator, async generator or ``async def`` function.

    Examples
    --------
    >>> import scaleforge as sf
    >>> @sf.cached(cache=sf.MemoryTier(max_bytes="1MB"))
    ... def square(x, steps=1):
    ...     return x * x
    >>> square(3)
    9
    >>> square.explain(3, steps=1)
    'hit'
    """
    options: dict[str, Any] = {
        "cache": cache,
        "version": version,
        "ignore": ignore,
        "ttl_s": ttl_s,
        "mmap": mmap,
        "lock_expiry_s": lock_expiry_s,
    }
    if func is None:

        def decorate(f: Callable[P, R]) -> CachedFunction[P, R]:
            return CachedFunction(f, **options)

        return decorate
    return CachedFunction(func, **options)
