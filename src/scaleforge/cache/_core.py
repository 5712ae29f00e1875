"""The machinery behind :class:`~scaleforge.cache.decorators.CachedFunction`.

:class:`CachedCore` holds what a cached function does between being called
and returning: validating the decorator's options, binding a call's
arguments and turning them into a key (with a memo for scalar-only calls),
resolving the cache in use, single flight around the computation, storing
the result with its manifest and index entry, and counting hits, misses and
failures. The public methods live on ``CachedFunction`` in
:mod:`scaleforge.cache.decorators`; the compute layer reads a few of the
attributes set here (``_plan``, ``_owner``, ``_index_key``, ``_lock``,
``_manifest``, ``_error``, ``_diagnose_miss``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from scaleforge.cache.base import MISSING, Tier, check_ttl
from scaleforge.cache.explain import (
    ArgumentPlan,
    add_to_index,
    argument_token,
    build_manifest,
    changed_argument,
    code_id,
    index_key,
    index_summary,
    manifest_key,
    read_index,
    short_repr,
)
from scaleforge.cache.singleflight import DEFAULT_EXPIRY_S, single_flight
from scaleforge.errors import InvalidParameterError
from scaleforge.settings import resolve

if TYPE_CHECKING:
    from scaleforge.hashing import FunctionIdentity

__all__ = ["CachedCore"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_monotonic = time.monotonic
_MEMO_TYPES = frozenset({int, float, bool, complex, type(None), str})
_MEMO_MAX = 4096  # memoised keys of scalar-only calls per function
_PENDING_MAX = 16_384  # manifests computed by key() awaiting store()
_SYNC_INTERVAL_S = 1.0  # longest delay before hits reach Prometheus
_REVALIDATE_S = 1.0  # how often a hit re-checks the function identity (helpers re-bound)
_DIAGNOSE_PER_BATCH = 8  # misses of one get_many() checked for a single changed argument


# ---- process-wide default cache ---------------------------------------------------------
_default_lock = threading.Lock()
_default_cache: list[Tier] = []
_instances: weakref.WeakSet[CachedCore[Any, Any]] = weakref.WeakSet()


def _reset_after_fork() -> None:
    # The child must not share the parent's connections, and a lock held by another
    # thread at fork time would never be released in the child: renew them all.
    global _default_lock
    _default_lock = threading.Lock()
    _default_cache.clear()
    for cf in list(_instances):
        cf._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _get_default_cache() -> Tier:
    if _default_cache:
        return _default_cache[0]
    with _default_lock:
        if not _default_cache:
            from scaleforge.cache.registry import default_cache

            _default_cache.append(default_cache())
        return _default_cache[0]


def _null_tier() -> Tier:
    from scaleforge.cache.null import NullTier

    return NullTier()


def _check_tier(value: object, where: str) -> Tier:
    if not isinstance(value, Tier):
        raise InvalidParameterError(
            f"The 'cache' {where} must be a scaleforge Tier (MemoryTier, DiskTier, RedisTier, TieredCache, "
            f"NullTier) or None for the default cache. Got {type(value).__name__} instead."
        )
    return value


# ---- the machinery of a cached function ------------------------------------------------
class CachedCore(Generic[P, R]):
    """Validated options, key building, storage and counters of a cached function (see the module)."""

    def __init__(
        self,
        func: Callable[P, R],
        *,
        cache: Tier | None = None,
        version: str | int | None = None,
        ignore: Iterable[str] | None = None,
        ttl_s: float | None = None,
        mmap: bool = False,
        lock_expiry_s: float = DEFAULT_EXPIRY_S,
    ) -> None:
        binding = "function"
        raw: Any = func
        if isinstance(raw, staticmethod):
            raw, binding = raw.__func__, "static"
        elif isinstance(raw, classmethod):
            raw, binding = raw.__func__, "class"
        if not inspect.isfunction(raw):
            raise InvalidParameterError(
                f"@cached decorates Python functions and methods. Got {type(raw).__name__} ({raw!r}) instead. "
                "Wrap it in a function: @cached\ndef f(x): return obj(x)"
            )
        owner = f"{raw.__module__}.{raw.__qualname__}"
        _reject_lazy_results(raw, owner)
        if cache is not None:
            _check_tier(cache, f"parameter of @cached on {owner}")
        if isinstance(version, bool) or not isinstance(version, (str, int, type(None))):
            raise InvalidParameterError(
                f"The 'version' parameter of @cached on {owner} must be a str, an int or None. "
                f"Got {version!r} instead."
            )
        ttl = check_ttl(ttl_s, owner=f"@cached on {owner}")
        if not isinstance(mmap, bool):
            raise InvalidParameterError(
                f"The 'mmap' parameter of @cached on {owner} must be True or False. Got {mmap!r} instead."
            )
        if (
            isinstance(lock_expiry_s, bool)
            or not isinstance(lock_expiry_s, (int, float))
            or lock_expiry_s <= 0
        ):
            raise InvalidParameterError(
                f"The 'lock_expiry_s' parameter of @cached on {owner} must be a number > 0. "
                f"Got {lock_expiry_s!r} instead."
            )
        signature = inspect.signature(raw)
        ignored = self._check_ignore(ignore, signature, owner)

        wrapper: Any = self  # CachedFunction defines __call__; update_wrapper wants a callable
        functools.update_wrapper(wrapper, raw)
        self._func: Callable[..., R] = raw
        self._binding = binding
        self._owner = owner
        self._cache_arg = cache
        self._version = None if version is None else str(version)
        self._ttl_s = ttl
        self._mmap = mmap
        self._lock_expiry_s = float(lock_expiry_s)
        self._plan = ArgumentPlan(signature, ignored)
        self._init_runtime()

    # -- construction helpers -------------------------------------------------------------
    @staticmethod
    def _check_ignore(
        ignore: Iterable[str] | None, signature: inspect.Signature, owner: str
    ) -> frozenset[str]:
        if ignore is None:
            return frozenset()
        if isinstance(ignore, (str, bytes)) or not isinstance(ignore, Iterable):
            raise InvalidParameterError(
                f"The 'ignore' parameter of @cached on {owner} must be a list of parameter names, "
                f"e.g. ignore=['verbose']. Got {ignore!r} instead."
            )
        names = list(ignore)
        real = list(signature.parameters)
        bad = [n for n in names if not isinstance(n, str) or n not in signature.parameters]
        if bad:
            raise InvalidParameterError(
                f"The 'ignore' parameter of @cached on {owner} names {', '.join(map(repr, bad))}, which "
                f"{'is not a parameter' if len(bad) == 1 else 'are not parameters'} of the function. "
                f"Its parameters are: {', '.join(map(repr, real)) or '(none)'}."
            )
        return frozenset(names)

    def _init_runtime(self) -> None:
        """(Re)create the per-process state: counters, memo, locks, resolved cache."""
        self._code: Any = None
        self._revalidate_at = 0.0
        self._identity: FunctionIdentity | None = None
        self._fn_digest = ""
        self._memo: dict[Any, str] = {}
        self._pending: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()  # index updates, pending manifests, identity
        _instances.add(self)
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self._computations = 0
        self._index_key = index_key(self._owner)
        from scaleforge.monitor.metrics import counter

        calls = counter(
            "scaleforge_cached_calls_total", "Calls of @cached functions by result", ["function", "result"]
        )
        self._m_hit = calls.labels(function=self._owner, result="hit")
        self._m_miss = calls.labels(function=self._owner, result="miss")
        self._hits_synced = 0
        self._next_sync = 0.0
        self._m_errors = counter(
            "scaleforge_cached_errors_total",
            "Cache failures inside @cached functions (the call still returned its result)",
            ["function", "op"],
        )
        self._m_miss_argument = counter(
            "scaleforge_cache_miss_argument_total",
            "Misses of @cached functions whose nearest stored entry differs in exactly this one argument",
            ["function", "argument"],
        )

    # -- internals -------------------------------------------------------------------------
    def _ensure_identity(self) -> None:
        """Recompute the identity if the code changed, or re-validate it once a second.

        ``function_identity`` notices re-bound helpers and constants but costs
        ~20 us even when cached, too much for every hit; so a hit re-validates
        at most every ``_REVALIDATE_S`` seconds, and a changed ``__code__`` at once.
        """
        code = self._func.__code__
        if code is self._code and time.monotonic() < self._revalidate_at:
            return
        from scaleforge.hashing import function_identity

        with self._lock:
            if code is self._code and time.monotonic() < self._revalidate_at:
                return
            identity = function_identity(self._func, version=self._version)
            if identity.digest != self._fn_digest:
                self._memo = {}
            self._identity = identity
            self._fn_digest = identity.digest
            self._code = code
            self._revalidate_at = time.monotonic() + _REVALIDATE_S

    def _current_cache(self) -> Tier:
        if resolve("cache_enabled", default=True) is False:
            return _null_tier()
        if self._cache_arg is not None:
            return self._cache_arg
        context = resolve("cache")
        if context is not None:
            return _check_tier(context, "option of config_context")
        return _get_default_cache()

    def _key_of_values(self, values: tuple[Any, ...]) -> tuple[str, dict[str, str]]:
        """Return the key and the per-argument tokens (reused by the manifest: hash once)."""
        names = self._plan.names
        tokens = {names[i]: argument_token(values[i], names[i], self._owner) for i in self._plan.keep}
        parts = {"function": self._fn_digest, "version": self._version or ""}
        for name, token in tokens.items():
            parts["arg:" + name] = token
        return _make_key(parts), tokens

    def _key(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str, dict[str, str] | None]:
        """Return the key of a call and its tokens (None when the key came from the memo)."""
        self._ensure_identity()
        values = self._plan.values(args, kwargs, self._owner)
        types = tuple(map(type, values))
        if not all(map(_MEMO_TYPES.__contains__, types)):
            return self._key_of_values(values)
        if (float in types or complex in types) and any(map(_has_zero, values)):
            # 0.0 == -0.0 with equal hashes, so the memo would hand one the other's key
            # (their tokens differ: copysign, 1/x and atan2 tell them apart). Never memoise them.
            return self._key_of_values(values)
        # Scalar-only call: memoise the key, by the positional arguments as given (what
        # __call__ looks up) or by the bound values for keyword calls. Types are part of
        # the memo key because 1 == 1.0 == True would otherwise share an entry.
        memo_key: tuple[Any, ...] = (args, tuple(map(type, args))) if not kwargs else (values, types, None)
        key = self._memo.get(memo_key)
        if key is not None:
            return key, None
        key, tokens = self._key_of_values(values)
        if len(self._memo) >= _MEMO_MAX:
            self._memo = {}
        self._memo[memo_key] = key
        return key, tokens

    def _manifest(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], tokens: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        self._ensure_identity()
        identity = self._identity
        assert identity is not None  # set by _ensure_identity
        values = self._plan.values(args, kwargs, self._owner)
        names = self._plan.names
        described: dict[str, tuple[str, str]] = {}
        for i in self._plan.keep:
            name = names[i]
            token = tokens[name] if tokens is not None else argument_token(values[i], name, self._owner)
            described[name] = (token, short_repr(values[i], token))
        return build_manifest(
            function=self._owner,
            digest=identity.digest,
            source_digest=identity.source_digest,
            dependencies=identity.dependencies,
            version=self._version,
            args=described,
            created=time.time(),
        )

    def _sync_hits(self) -> None:
        """Push hits counted since the last push to Prometheus.

        The hit hot path only bumps an int (a Prometheus ``inc`` takes a lock
        and costs about as much as the rest of a hit); pushes happen on the
        next miss, in :meth:`cache_info`, and at most once a second from hits.
        """
        self._next_sync = time.monotonic() + _SYNC_INTERVAL_S
        delta = self._hits - self._hits_synced
        if delta > 0:
            self._hits_synced += delta
            self._m_hit.inc(delta)

    def _error(self, op: str, exc: BaseException) -> None:
        self._errors += 1
        logger.warning(
            "cache %s failed for %s (the call goes on without the cache): %r", op, self._owner, exc
        )
        try:
            self._m_errors.labels(function=self._owner, op=op).inc()
        except Exception:  # metrics are best effort
            logger.debug("could not record a cache error metric", exc_info=True)

    def _get(self, cache: Tier, key: str) -> Any:
        try:
            return cache.get(key, MISSING, mmap=self._mmap)
        except Exception as exc:
            self._error("get", exc)
            return MISSING

    def _store(self, cache: Tier, key: str, value: Any, manifest: dict[str, Any] | None) -> bool:
        try:
            stored = bool(cache.set(key, value, ttl_s=self._ttl_s))
        except Exception as exc:
            self._error("set", exc)
            return False
        if not stored:
            return False
        try:
            summary = None
            if manifest is not None:
                cache.set(manifest_key(key), manifest, ttl_s=self._ttl_s)
                summary = index_summary(manifest)
            with self._lock:  # index updates are read-modify-write
                add_to_index(cache, self._index_key, key, summary)
        except Exception as exc:
            self._error("manifest", exc)
        return True

    def _diagnose_miss(self, cache: Tier, tokens: Mapping[str, str] | None, values: Any = None) -> None:
        """Count ``scaleforge_cache_miss_argument_total`` if this miss changed one argument.

        See :func:`scaleforge.cache.explain.changed_argument` for the cost
        bounds (memory-tier index only, one pass). Best effort: never raises.
        """
        try:
            if (
                tokens is None
                and values is not None
                and changed_argument(cache, self._index_key, 0, None) == ""
            ):
                tokens = self._key_of_values(values)[1]  # memoised key: tokenise again (scalars, cheap)
            if tokens is None:
                return
            code = code_id(self._fn_digest, self._version)
            name = changed_argument(cache, self._index_key, code, tokens)
            if name:
                self._m_miss_argument.labels(function=self._owner, argument=name).inc()
        except Exception:  # diagnostics must never fail a call
            logger.debug("miss diagnostics failed for %s", self._owner, exc_info=True)

    def _diagnose_manifest(self, cache: Tier, manifest: Mapping[str, Any]) -> None:
        args = manifest.get("args")
        if isinstance(args, Mapping):
            self._diagnose_miss(cache, {name: str(pair[0]) for name, pair in args.items()})

    def _index(self, cache: Tier) -> list[str]:
        try:
            return read_index(cache, self._index_key)
        except Exception as exc:
            self._error("index", exc)
            return []

    def _compute_and_store(
        self,
        cache: Tier,
        key: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        recheck: bool,
        tokens: Mapping[str, str] | None = None,
    ) -> R:
        if _is_null(cache):
            self._computations += 1
            return self._func(*args, **kwargs)
        with single_flight(cache, key, expiry_s=self._lock_expiry_s):
            # Whether we hold the lock or gave up waiting, look again: the holder may have stored it.
            if recheck:
                value = self._get(cache, key)
                if value is not MISSING:
                    return value  # type: ignore[no-any-return]
            self._computations += 1
            result = self._func(*args, **kwargs)
            if _is_lazy(result):
                # A wrapped generator or coroutine function slipped past the decoration check:
                # storing the object would hand later callers an exhausted or awaited one.
                self._error("set", InvalidParameterError(_lazy_message(type(result).__name__, self._owner)))
                return result
            manifest = None
            try:
                manifest = self._manifest(args, kwargs, tokens)
            except Exception as exc:
                self._error("manifest", exc)
            self._store(cache, key, result, manifest)
            return result


def _make_key(parts: Mapping[str, str]) -> str:
    from scaleforge.hashing import make_key

    return make_key(parts)


def _is_null(cache: Tier) -> bool:
    from scaleforge.cache.null import NullTier

    return isinstance(cache, NullTier)


def _has_zero(value: object) -> bool:
    """True for a float or complex argument with a zero part (whose sign the memo cannot see)."""
    if type(value) is float:
        return value == 0.0
    if type(value) is complex:
        return value.real == 0.0 or value.imag == 0.0
    return False


def _is_lazy(value: object) -> bool:
    return inspect.isgenerator(value) or inspect.iscoroutine(value) or inspect.isasyncgen(value)


def _lazy_message(what: str, owner: str) -> str:
    return (
        f"@cached cannot cache {owner}: it returns a {what}, an object that runs later and can be "
        "consumed only once, so a cached copy would come back exhausted."
    )


def _reject_lazy_results(func: Callable[..., Any], owner: str) -> None:
    """Raise InvalidParameterError for generator, async generator and ``async def`` functions."""
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise InvalidParameterError(
            _lazy_message("generator", owner) + " Cache a function that returns the whole sequence "
            "instead: decorate `def items(n): return list(gen(n))` with @cached."
        )
    if inspect.iscoroutinefunction(func):
        raise InvalidParameterError(
            f"@cached cannot cache {owner}: it is an async def function, and caching the coroutine it "
            "returns would hand later callers an already-awaited one. Cache a sync function and call it "
            "from async code with `await asyncio.to_thread(f, *args)`."
        )
