"""The bulk path of a cache-aware map into a ``@cached`` function.

:class:`~scaleforge.cache.decorators.CachedFunction` keys and stores one call
at a time (``key``, ``store``). A map over thousands of items needs the same
keys and entries for a fraction of the cost, off the dispatch loop:

- :class:`MapKeyer` hashes each *shared* argument (``map(fn, items,
  mesh=big)``) once per map, not once per item: an item's key is built from
  its own argument tokens plus the precomputed tokens of the shared ones. The
  key is the one ``fn.key(item, **shared)`` returns (a test checks it).
- :class:`ResultStore` writes results from a background thread, in batches:
  one ``set_many`` for the values, one for their manifests, one
  read-modify-write of the function's index per batch (instead of three
  transactions and an index rewrite per item), then releases the items'
  single-flight locks. :meth:`ResultStore.flush` waits for what is queued;
  ``map`` flushes before it returns, so a finished map has stored everything.

Both read the decorator's argument plan, manifests and index through its
private attributes (``_plan``, ``_owner``, ``_manifest``, ``_lock``,
``_index_key``), because ``CachedFunction`` has no bulk hook yet; when those
are missing they fall back to the public per-call ``key``/``store``.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import threading
from contextlib import AbstractContextManager
from typing import Any

from scaleforge.cache.explain import (
    INDEX_CAP,
    add_to_index,
    argument_token,
    index_summary,
    manifest_key,
    read_index,
)
from scaleforge.hashing import make_key

__all__ = ["MapKeyer", "ResultStore"]

logger = logging.getLogger(__name__)

# A store batch waits this long for more results before writing: each write costs two
# transactions and an index rewrite however many results it holds (~1 ms per result
# written one by one, ~0.1 ms in batches of 32+; benchmarks/bench_compute.py "cached
# 2000x5ms"). It is also the most a crash of the parent can lose.
_LINGER_S = 0.05
_BATCH_MAX = 1024
_DIAGNOSE_PER_BATCH = 8  # as CachedFunction.get_many: misses explained per looked-up batch


def _bulk_capable(fn: Any) -> bool:
    return all(hasattr(fn, name) for name in ("_plan", "_owner", "_manifest", "_lock", "_index_key"))


class MapKeyer:
    """Cache keys of ``fn(item, **shared)`` with each shared argument hashed once.

    Parameters
    ----------
    fn : CachedFunction
    shared : dict
        The map's shared keyword arguments (the values, not executor handles).
    star : bool
        Items are tuples of positional arguments.
    """

    def __init__(self, fn: Any, shared: dict[str, Any], star: bool) -> None:
        self.fn = fn
        self.shared = shared
        self.star = star
        self.bulk = _bulk_capable(fn)
        self._shared_tokens: dict[str, str] = {}
        if self.bulk:
            identity = fn.identity  # validates the code once per map
            self._base = {"function": identity.digest, "version": fn.version or ""}
            plan = fn._plan
            names = plan.names
            kept = {names[i] for i in plan.keep}
            for name, value in shared.items():
                if name in kept:
                    self._shared_tokens[name] = argument_token(value, name, fn._owner)

    def key(self, args: Any) -> tuple[str, dict[str, str] | None]:
        """Return the key of one item and its argument tokens (None on the fallback path)."""
        fn = self.fn
        call = args if self.star else (args,)
        if not self.bulk:
            return fn.key(*call, **self.shared), None
        plan = fn._plan
        owner = fn._owner
        values = plan.values(call, self.shared, owner)
        names = plan.names
        parts = dict(self._base)
        tokens: dict[str, str] = {}
        shared = self.shared
        pre = self._shared_tokens
        for i in plan.keep:
            name = names[i]
            token = pre.get(name)
            if token is None or values[i] is not shared.get(name):
                token = argument_token(values[i], name, owner)
            tokens[name] = token
            parts["arg:" + name] = token
        return make_key(parts), tokens

    def diagnose(self, misses: list[dict[str, str] | None]) -> None:
        """Let the decorator explain a few misses of a batch (``scaleforge_cache_miss_argument_total``).

        ``fn.get_many`` does this from the manifests ``fn.key`` keeps; the map's
        keys bypass ``fn.key``, so the tokens are handed over here instead.
        Bounded (:data:`_DIAGNOSE_PER_BATCH`) and best effort.
        """
        hook = getattr(self.fn, "_diagnose_miss", None)
        if hook is None or not self.bulk:
            return
        cache = self.fn.cache
        for tokens in [t for t in misses if t is not None][:_DIAGNOSE_PER_BATCH]:
            hook(cache, tokens)


class _Pending:
    __slots__ = ("args", "key", "lock", "tokens", "value")

    def __init__(
        self,
        key: str,
        value: Any,
        args: Any,
        tokens: dict[str, str] | None,
        lock: AbstractContextManager[bool] | None,
    ) -> None:
        self.key = key
        self.value = value
        self.args = args
        self.tokens = tokens
        self.lock = lock


class _IndexBuffer:
    """A one-entry stand-in for a tier: lets ``add_to_index`` run in memory for a batch."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, key: str, default: Any = None) -> Any:
        return default if self.value is None else self.value

    def set(self, key: str, value: Any, **_: Any) -> bool:
        self.value = value
        return True


class ResultStore:
    """Store a map's results in the cache from a background thread, in batches.

    Parameters
    ----------
    keyer : MapKeyer
        Supplies the function, the shared arguments and the path (bulk or per call).

    Notes
    -----
    A failing cache never fails the map: errors are logged and counted by the
    decorator (``scaleforge_cached_errors_total``), and the item's lock is
    released anyway.
    """

    def __init__(self, keyer: MapKeyer) -> None:
        self._keyer = keyer
        # The writer thread resolves ``fn.cache`` like the caller did: inside the caller's
        # context, so ``config_context(cache=...)`` around ``map`` is honoured.
        self._context = contextvars.copy_context()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._values: dict[str, Any] = {}  # queued or being written: answers duplicates meanwhile
        self.stored = 0
        self.failed = 0  # results the cache rejected or failed to write (full disk, lost Redis)
        self.batches = 0

    def put(
        self,
        key: str,
        value: Any,
        args: Any,
        tokens: dict[str, str] | None,
        lock: AbstractContextManager[bool] | None,
    ) -> None:
        """Queue one result (and the lock to release once it is stored)."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._context.run, args=(self._run,), name="sf-map-store", daemon=True
                )
                self._thread.start()
            self._queue.append(_Pending(key, value, args, tokens, lock))
            self._values[key] = value
            if len(self._queue) == 1:
                self._cond.notify_all()

    def peek(self, key: str, default: Any = None) -> Any:
        """Return the value queued for ``key`` (not yet in the cache), else ``default``."""
        return self._values.get(key, default)

    def flush(self) -> None:
        """Block until every queued result is written and its lock released."""
        with self._cond:
            self._cond.notify_all()
            while self._queue or self._busy:
                if self._thread is None or not self._thread.is_alive():
                    break
                self._cond.wait()
        if self._queue:  # the writer died (it never should): write here
            batch = list(self._queue)
            self._queue.clear()
            self._write(batch)
            self._values.clear()

    def close(self) -> None:
        """Flush, then stop the writer thread."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                if len(self._queue) < 64 and not self._closed:
                    self._cond.wait(_LINGER_S)  # let a burst of results gather
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), _BATCH_MAX))]
                self._busy = True
            try:
                self._write(batch)
            finally:
                with self._cond:
                    for p in batch:
                        if self._values.get(p.key) is p.value:
                            del self._values[p.key]
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        try:
            if self._keyer.bulk:
                ok = self._write_bulk(batch)
            else:
                ok = sum(bool(self._keyer.fn.store(p.key, p.value)) for p in batch)
            self.stored += ok
            self.failed += len(batch) - ok
            self.batches += 1
        except Exception:  # a failing cache never fails the computation
            self.failed += len(batch)
            logger.warning("storing %d map result(s) failed", len(batch), exc_info=True)
        finally:
            for p in batch:
                if p.lock is not None:
                    try:
                        p.lock.__exit__(None, None, None)
                    except Exception:
                        logger.warning("releasing the lock of %s failed", p.key, exc_info=True)

    def _write_bulk(self, batch: list[_Pending]) -> int:
        """Store a batch of results (values, manifests, index); return how many values were stored."""
        fn = self._keyer.fn
        cache = fn.cache
        ttl_s = fn.ttl_s
        values = {p.key: p.value for p in batch}
        try:
            stored = cache.set_many(values, ttl_s=ttl_s)
        except Exception as exc:
            fn._error("set", exc)
            return 0
        done = [p for p in batch if stored.get(p.key)]
        if not done:
            return 0
        try:
            shared = self._keyer.shared
            star = self._keyer.star
            manifests = {}
            for p in done:
                call = p.args if star else (p.args,)
                manifests[p.key] = fn._manifest(tuple(call), shared, p.tokens)
            cache.set_many({manifest_key(k): m for k, m in manifests.items()}, ttl_s=ttl_s)
            with fn._lock:  # the decorator serialises index updates on this lock
                old = _IndexBuffer(cache.get(fn._index_key, None))
                known = set(read_index(old, fn._index_key))
                added: list[Any] = []
                for key, manifest in manifests.items():
                    if key not in known:
                        known.add(key)
                        # add_to_index formats the entry; on an empty list it scans nothing
                        one = _IndexBuffer([])
                        add_to_index(one, fn._index_key, key, index_summary(manifest))
                        added += one.value
                if added:
                    entries = list(old.value) if isinstance(old.value, list) else []
                    cache.set(fn._index_key, (entries + added)[-INDEX_CAP:])
        except Exception as exc:
            fn._error("manifest", exc)
        return len(done)
