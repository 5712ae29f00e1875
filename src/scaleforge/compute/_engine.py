"""The engine behind :func:`scaleforge.map` and :func:`scaleforge.imap`.

One :class:`MapRun` pulls items from the input, groups them into chunks
(:mod:`.chunking`), keeps a bounded window of chunks in flight on the
executor, retries failed items with backoff (:mod:`.retry`) and yields
``(index, ok, value)`` events as chunks finish. When the function is
``@cached`` it first keys each batch of items in the parent, answers hits with
one ``get_many`` per batch, folds duplicate keys onto one computation, sends
only misses (workers run ``call_uncached``) and stores each result in the
parent as it arrives (batched by a background writer, :mod:`._cacheio`), so a
crash loses nothing already computed. With a shared cache (one with a
cross-process lock: disk file locks, Redis), a miss is dispatched only under
``fn.lock(key, blocking=False)``; a key locked by another process or machine is
waited for by polling the cache with backoff, and computed here only if its
holder's lock lapses.

Keying streams: items are keyed in small batches sized to take a few
milliseconds each, interleaved with dispatching, so the first chunks leave
before the whole input is hashed and a long keying pass never starves the
workers. The function is pickled once per map (:class:`PickledFunction`) and
unpickled once per worker process.
"""

from __future__ import annotations

import builtins
import collections
import concurrent.futures as cf
import functools
import heapq
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from scaleforge.compute._worker import RemoteException
from scaleforge.compute.base import Executor
from scaleforge.compute.chunking import AutoChunker, FixedChunker
from scaleforge.compute.progress import MapProgress
from scaleforge.compute.retry import RetryPolicy
from scaleforge.compute.shared import is_large_array
from scaleforge.monitor import metrics

if TYPE_CHECKING:
    from scaleforge.compute._cacheio import MapKeyer, ResultStore

__all__ = ["Event", "MapRun", "PickledFunction", "SpanEvent", "as_cached_function", "run_chunk"]

logger = logging.getLogger(__name__)

_SUBMITTED = metrics.counter("scaleforge_tasks_submitted_total", "Items sent to workers", ["executor"])
_COMPLETED = metrics.counter("scaleforge_tasks_completed_total", "Items that succeeded", ["executor"])
_FAILED = metrics.counter("scaleforge_tasks_failed_total", "Items that failed after retries", ["executor"])
_RETRIED = metrics.counter("scaleforge_tasks_retried_total", "Item attempts retried", ["executor"])
_QUEUE = metrics.gauge("scaleforge_queue_depth", "Items queued or running in map", ["executor"])
_HITS = metrics.counter("scaleforge_map_cache_hits_total", "Items of map answered by the cache", ["executor"])
_DURATION = metrics.histogram(
    "scaleforge_task_duration_seconds",
    "Time per item inside workers (one sample per chunk: chunk compute time / items)",
    ["executor"],
    buckets=(1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0),
)

#: (index, ok, value): value is the result, or (exception, attempts) when ok is False.
Event = tuple[int, bool, Any]

_KEY_BATCH = 512  # most items keyed and looked up per get_many (one MGET on Redis)
_KEY_BATCH_FIRST = 16  # the first batch is small: the first chunks leave at once
# A key batch is sized to take about this long in the parent, so dispatching never waits
# longer than that on keying (benchmarks/bench_compute.py, "cached 2000x5ms").
_KEY_BUDGET_S = 0.005
_WINDOW_PER_WORKER = 3  # chunks in flight per worker: one running, two queued behind it

_LOADED: dict[bytes, Any] = {}  # worker side: unpickled functions by payload
_LOADED_MAX = 32
_PROFILED: set[tuple[str, int, int]] = set()  # worker side: (map id, pid, thread) already profiled
_PROFILED_MAX = 8192
_NOT_QUEUED: Any = object()


class PickledFunction:
    """A function pickled once per map and unpickled once per worker process.

    Sending the function object with every chunk costs a cloudpickle pass in
    the parent (closures and ``@cached`` functions go by value) and an
    unpickle in the worker per chunk; this sends the bytes instead, which
    pickle as a plain copy, and workers keep what they unpickled.

    Parameters
    ----------
    blob : bytes
        ``cloudpickle.dumps(fn)``.
    """

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self) -> tuple[Any, ...]:
        return (PickledFunction, (self.blob,))

    def load(self) -> Callable[..., Any]:
        """Return the function, unpickling it on first use in this process."""
        fn = _LOADED.get(self.blob)
        if fn is None:
            fn = cloudpickle.loads(self.blob)
            if len(_LOADED) >= _LOADED_MAX:
                _LOADED.clear()
            _LOADED[self.blob] = fn
        return fn  # type: ignore[no-any-return]


def _profile_first(
    call: Callable[..., Any], item: Any, star: bool, profile: tuple[str, str], name: str
) -> tuple[str, Any, str | None]:
    """Run one item under the profiler; return ``(status, value, profile path)``.

    ``status`` is ``"ok"`` (value is the result), ``"raised"`` (value is the
    exception) or ``"skipped"`` when profiling could not start (the caller then
    runs the item normally).
    """
    from scaleforge.monitor.profiling import profile_call

    directory, map_id = profile
    path = Path(directory) / f"{name}-{map_id}-{os.getpid()}-{threading.get_ident() % 10**6}.html"
    state: dict[str, Any] = {}

    def target() -> None:
        state["ran"] = True
        state["value"] = call(*item) if star else call(item)
        state["returned"] = True

    try:
        _, result = profile_call(target, path=path)
    except Exception as exc:
        if "returned" in state:  # the item ran; writing its profile failed
            logger.warning("writing the profile %s failed: %s", path, exc)
            return "ok", state["value"], None
        if "ran" in state:  # the item itself raised
            return "raised", exc, str(path) if path.exists() else None
        logger.warning("cannot profile a task of map %s: %s", map_id, exc)
        return "skipped", None, None
    return "ok", state["value"], str(result.path) if result.path is not None else None


def run_chunk(
    fn: Callable[..., Any] | PickledFunction,
    items: list[Any],
    star: bool,
    uncached: bool,
    profile: tuple[str, str] | None = None,
    /,
    **shared: Any,
) -> tuple[list[Any], dict[int, RemoteException] | None, float, str | None]:
    """Run ``fn`` over ``items`` in a worker.

    Returns the results (``None`` where an item raised), ``{position: exception}``
    for the items that raised (``None`` if none did), the compute time and the
    path of a profile written for the first item (``profile=(directory, map id)``:
    the first chunk a worker runs for that map profiles its first item), else
    None. Each item runs exactly once; the loop restarts after a failure at the
    next item.
    """
    if isinstance(fn, PickledFunction):
        fn = fn.load()
    call: Callable[..., Any] = fn.call_uncached if uncached else fn  # type: ignore[attr-defined]
    if shared:
        call = functools.partial(call, **shared)
    values: list[Any] = []
    append = values.append
    errors: dict[int, RemoteException] | None = None
    profile_path: str | None = None
    t0 = time.perf_counter()
    if profile is not None and items:
        ident = (profile[1], os.getpid(), threading.get_ident())
        if ident not in _PROFILED:
            if len(_PROFILED) >= _PROFILED_MAX:  # a long-lived worker: forget old maps
                _PROFILED.clear()
            _PROFILED.add(ident)
            name = re.sub(r"[^A-Za-z0-9_]+", "_", getattr(fn, "__name__", "task"))[:40]
            status, outcome, profile_path = _profile_first(call, items[0], star, profile, name)
            if status == "raised":
                errors = {0: RemoteException(outcome)}
                append(None)
            elif status == "ok":
                append(outcome)
    while len(values) < len(items):
        try:
            rest = itertools.islice(items, len(values), None)
            if star:
                for item in rest:
                    append(call(*item))
            else:
                for item in rest:
                    append(call(item))
        except Exception as exc:
            if errors is None:
                errors = {}
            errors[len(values)] = RemoteException(exc)
            append(None)
    return values, errors, time.perf_counter() - t0, profile_path


def as_cached_function(fn: object) -> Any:
    """Return ``fn`` if it is a ``@cached`` function, else None (cache layer optional)."""
    try:
        from scaleforge.cache.decorators import CachedFunction
    except ImportError:
        return None
    return fn if isinstance(fn, CachedFunction) else None


class _Item:
    __slots__ = ("args", "attempts", "index", "key", "tokens")

    def __init__(self, index: int, args: Any, key: str | None = None) -> None:
        self.index = index
        self.args = args
        self.key = key
        self.tokens: dict[str, str] | None = None
        self.attempts = 0


class _Span:
    """Fresh, contiguous items of a plain (uncached) map: no per-item objects."""

    __slots__ = ("args", "start")

    def __init__(self, start: int, args: list[Any]) -> None:
        self.start = start
        self.args = args

    def __len__(self) -> int:
        return len(self.args)

    def items(self) -> list[_Item]:
        return [_Item(self.start + i, a) for i, a in enumerate(self.args)]


class SpanEvent:
    """``len(values)`` successful results for the items ``start, start + 1, ...``."""

    __slots__ = ("start", "values")

    def __init__(self, start: int, values: list[Any]) -> None:
        self.start = start
        self.values = values


class _Waiting:
    __slots__ = ("deadline", "delay", "item", "next_poll")

    def __init__(self, item: _Item, now: float, max_wait_s: float) -> None:
        self.item = item
        self.delay = 0.02
        self.next_poll = now + self.delay
        self.deadline = now + max_wait_s


class MapRun:
    """One execution of a map (see the module docstring).

    Parameters
    ----------
    fn : callable
    source : iterator
        Yields each item (a tuple of arguments when ``star``).
    total : int or None
        Number of items when known.
    executor : Executor
    star : bool
        Call ``fn(*item)`` instead of ``fn(item)``.
    chunksize : int or "auto"
    retry : RetryPolicy
    timeout_s : float or None
    shared : dict
        Keyword arguments passed to every call.
    progress : MapProgress
    bounded : bool
        Keep at most :attr:`max_outstanding` items pulled but not delivered (imap).
    shared_min_bytes : int
        Arrays in ``shared`` at least this large go through ``executor.share``.
    profile_dir : str, optional
        Profile the first item each worker runs into this directory.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        source: Iterator[Any],
        total: int | None,
        executor: Executor,
        *,
        star: bool,
        chunksize: int | str,
        retry: RetryPolicy,
        timeout_s: float | None,
        shared: dict[str, Any],
        progress: MapProgress,
        bounded: bool,
        shared_min_bytes: int,
        profile_dir: str | None = None,
    ) -> None:
        self.fn = fn
        self.cached = as_cached_function(fn)
        self._source = source
        self.total = total
        self.executor = executor
        self.star = star
        self.retry = retry
        self.timeout_s = timeout_s
        self.progress = progress
        self.bounded = bounded
        workers = max(1, executor.num_workers)
        self._chunker: AutoChunker | FixedChunker
        if isinstance(chunksize, int):
            self._chunker = FixedChunker(chunksize)
        elif timeout_s is not None:
            self._chunker = FixedChunker(1)  # timeouts are per task: tasks are not grouped
        else:
            self._chunker = AutoChunker(workers, overhead_s=executor.task_overhead_s)
        self._window = workers * _WINDOW_PER_WORKER
        self._shared_raw = shared
        self._handles: list[Any] = []
        self.shared = {k: self._share(v, shared_min_bytes) for k, v in shared.items()}
        # what workers receive: the function pickled once per map (see PickledFunction)
        self._payload: Callable[..., Any] | PickledFunction = fn
        if executor.needs_pickling:
            self._payload = PickledFunction(cloudpickle.dumps(fn))
        self.profiles: list[str] = []
        self._profile: tuple[str, str] | None = None
        if profile_dir is not None:
            self._profile = (profile_dir, os.urandom(4).hex())
        self._exhausted = False
        self._pulled = 0
        self.delivered = 0
        self._ready: collections.deque[_Item] = collections.deque()
        self._retry_heap: list[tuple[float, int, _Item]] = []
        self._seq = itertools.count()
        self._inflight: dict[cf.Future[Any], list[_Item] | _Span] = {}
        self._events: collections.deque[list[Event] | SpanEvent] = collections.deque()
        self._failed_args: dict[int, Any] = {}
        # cache-aware state
        self._dups: dict[str, list[int]] = {}
        self._locks: dict[str, AbstractContextManager[bool]] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._use_locks = bool(self.cached is not None and getattr(self.cached.cache, "is_shared", False))
        self._keyer: MapKeyer | None = None
        self._store: ResultStore | None = None
        if self.cached is not None:
            from scaleforge.compute._cacheio import MapKeyer, ResultStore  # the cache layer: on demand

            self._keyer = MapKeyer(self.cached, shared, star)
            self._store = ResultStore(self._keyer)
        self._key_batch_n = _KEY_BATCH_FIRST
        self.hits = 0
        self.misses = 0
        self.duplicates = 0
        self.retried = 0
        self.store_failures = 0
        self.submitted = 0
        self._label = executor.name

    # ---- setup / teardown ----------------------------------------------------------------
    def _share(self, value: Any, min_bytes: int) -> Any:
        if is_large_array(value, min_bytes):
            handle = self.executor.share(value)
            if handle is not value:
                self._handles.append(handle)
            return handle
        return value

    def item_args(self, index: int) -> Any:
        """The input of a failed item (kept for error messages only)."""
        return self._failed_args.get(index)

    def close(self) -> None:
        """Cancel what is left, store what arrived, release locks and shared arguments."""
        for fut in list(self._inflight):
            fut.cancel()
        self._inflight.clear()
        if self._store is not None:
            self._store.close()  # every result that arrived is stored before map returns
            self.store_failures = self._store.failed
        for key in list(self._locks):
            self._unlock(key)
        for handle in self._handles:
            try:
                self.executor.release(handle)
            except Exception:  # cleanup must not mask the real outcome
                logger.exception("releasing a shared argument failed")
        self._handles.clear()
        _QUEUE.labels(executor=self._label).set(0)

    # ---- intake --------------------------------------------------------------------------
    @property
    def max_outstanding(self) -> int:
        """Items pulled from the input but not yet delivered, at most (bounded runs)."""
        size = self._chunker.next_size(None) if self._chunker.calibrated else 1
        return max(1024, 4 * self._window * size)

    def _remaining(self) -> int | None:
        if self.total is None:
            return None
        return len(self._ready) + (self.total - self._pulled)

    def _pull(self, n: int) -> list[_Item]:
        out: list[_Item] = []
        if self._exhausted:
            return out
        if self.bounded:
            n = min(n, self.max_outstanding - (self._pulled - self.delivered))
        out = list(
            builtins.map(_Item, itertools.count(self._pulled), itertools.islice(self._source, max(0, n)))
        )
        self._pulled += len(out)
        if len(out) < n:
            self._exhausted = True
        return out

    def _take(self, n: int) -> list[Any]:
        """Pull up to ``n`` fresh items without per-item objects (plain maps)."""
        if self._exhausted:
            return []
        if self.bounded:
            n = min(n, self.max_outstanding - (self._pulled - self.delivered))
        args = list(itertools.islice(self._source, max(0, n)))
        self._pulled += len(args)
        if len(args) < n:
            self._exhausted = True
        return args

    def _lookahead(self) -> int:
        """Keyed items to keep ready: twice what the in-flight window holds."""
        return 2 * self._window * max(1, self._chunker.next_size(self._remaining()))

    def _wants_intake(self) -> bool:
        if self.cached is None or self._exhausted or len(self._ready) >= self._lookahead():
            return False
        return not self.bounded or self._pulled - self.delivered < self.max_outstanding

    def _key_batch(self) -> None:
        """Pull, key and triage one batch, sized to take about ``_KEY_BUDGET_S``."""
        t0 = time.perf_counter()
        batch = self._pull(self._key_batch_n)
        if not batch:
            return
        self._triage(batch)
        per_item = (time.perf_counter() - t0) / len(batch)
        grow = min(2 * self._key_batch_n, _KEY_BATCH)
        self._key_batch_n = max(_KEY_BATCH_FIRST, min(grow, int(_KEY_BUDGET_S / max(per_item, 1e-7))))

    def _triage(self, batch: list[_Item]) -> None:
        """Key a batch, answer hits and duplicates, queue (and lock) the misses."""
        fn = self.cached
        keyer = self._keyer
        assert keyer is not None  # set for cached functions
        store = self._store
        assert store is not None
        fresh: dict[str, _Item] = {}
        for item in batch:
            item.key, item.tokens = keyer.key(item.args)
            if item.key in self._dups or item.key in fresh:
                self._dups.setdefault(item.key, []).append(item.index)
                self.duplicates += 1
            elif (queued := store.peek(item.key, _NOT_QUEUED)) is not _NOT_QUEUED:  # computed, not yet stored
                self.duplicates += 1
                self._emit_ok(item, queued)
            else:
                fresh[item.key] = item
        if not fresh:
            return
        found = fn.get_many(list(fresh))
        if len(found) < len(fresh):
            keyer.diagnose([item.tokens for key, item in fresh.items() if key not in found])
        now = time.monotonic()
        for key, item in fresh.items():
            if key in found:
                self.hits += 1
                _HITS.labels(executor=self._label).inc()
                self._emit_ok(item, found[key], hit=True)
                continue
            self.misses += 1
            self._dups.setdefault(key, [])
            if self._use_locks and not self._try_lock(key):
                self._waiting[key] = _Waiting(item, now, self._max_wait_s())
            elif not (self._use_locks and self._hit_after_lock(item)):
                self._ready.append(item)

    def _max_wait_s(self) -> float:
        return 3600.0 if self.timeout_s is None else self.timeout_s * self.retry.max_attempts + 1.0

    def _try_lock(self, key: str) -> bool:
        cm = self.cached.lock(key, blocking=False)
        try:
            acquired = bool(cm.__enter__())
        except Exception:  # a failing lock backend must not stop the map: compute it
            logger.warning("single-flight lock for %s failed; computing it here", key, exc_info=True)
            return True
        if acquired:
            self._locks[key] = cm
            return True
        cm.__exit__(None, None, None)
        return False

    def _reread(self, keys: list[str]) -> dict[str, Any]:
        """Look keys up again straight in the tier, without the decorator's hit/miss counters.

        Each item was counted once, at its first lookup; re-reads (after taking a lock, or
        while waiting for another process's result) must not count it again.
        """
        try:
            return dict(self.cached.cache.get_many(keys, mmap=self.cached.mmap))
        except Exception:  # a failing cache degrades to a miss
            logger.warning("re-reading %d key(s) failed; treating them as misses", len(keys), exc_info=True)
            return {}

    def _hit_after_lock(self, item: _Item) -> bool:
        """Look ``item`` up again once its lock is held; emit it as a hit if it is there now.

        The previous holder may have stored the value and released the lock between
        our lookup and our lock: computing then would run the key twice.
        """
        key = item.key
        if key is None:
            return False
        found = self._reread([key])
        if key not in found:
            return False
        self._unlock(key)
        self.hits += 1
        self.misses -= 1
        self._emit_ok(item, found[key], hit=True)
        return True

    def _unlock(self, key: str | None) -> None:
        if key is None:
            return
        cm = self._locks.pop(key, None)
        if cm is not None:
            try:
                cm.__exit__(None, None, None)
            except Exception:
                logger.warning("releasing the lock of %s failed", key, exc_info=True)

    def _poll_waiting(self, now: float) -> None:
        due = [k for k, w in self._waiting.items() if w.next_poll <= now]
        if not due:
            return
        found = self._reread(due)
        for key in due:
            w = self._waiting[key]
            if key in found:
                del self._waiting[key]
                self.hits += 1
                self.misses -= 1
                self._emit_ok(w.item, found[key], hit=True)
            elif self._try_lock(key):
                del self._waiting[key]  # the holder finished, gave up or died
                if not self._hit_after_lock(w.item):
                    self._ready.append(w.item)
            elif now >= w.deadline:
                del self._waiting[key]  # waited long enough: compute it here
                self._ready.append(w.item)
            else:
                w.delay = min(w.delay * 2, 1.0)
                w.next_poll = now + w.delay

    # ---- outcomes ------------------------------------------------------------------------
    def _emit_ok(self, item: _Item, value: Any, *, hit: bool = False) -> None:
        indices = [item.index]
        if item.key is not None:
            indices += self._dups.pop(item.key, [])
        self._events.append([(i, True, value) for i in indices])
        self.progress.advance(len(indices), hits=len(indices) if hit else 0)

    def _succeed(self, item: _Item, value: Any) -> None:
        _COMPLETED.labels(executor=self._label).inc()
        if self._store is not None and item.key is not None:
            # stored (then unlocked) by the writer thread: dispatching never waits on the cache
            self._store.put(item.key, value, item.args, item.tokens, self._locks.pop(item.key, None))
        self._emit_ok(item, value)

    def _fail(self, item: _Item, exc: BaseException) -> None:
        if self.retry.should_retry(item.attempts):
            self.retried += 1
            _RETRIED.labels(executor=self._label).inc()
            due = time.monotonic() + self.retry.delay_s(item.attempts)
            heapq.heappush(self._retry_heap, (due, next(self._seq), item))
            return
        _FAILED.labels(executor=self._label).inc()
        self._unlock(item.key)
        self._failed_args[item.index] = item.args
        indices = [item.index] + (self._dups.pop(item.key, []) if item.key is not None else [])
        self._events.append([(i, False, (exc, item.attempts)) for i in indices])
        self.progress.advance(len(indices), failed=len(indices))

    def _finish(self, fut: cf.Future[Any]) -> None:
        chunk = self._inflight.pop(fut)
        try:
            values, errors, compute_s, profile_path = fut.result()
        except BaseException as exc:  # timeout, lost worker, cancelled, transport error
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            for item in chunk.items() if isinstance(chunk, _Span) else chunk:
                item.attempts += 1
                self._fail(item, exc)
            return
        self._chunker.observe(len(chunk), compute_s)
        _DURATION.labels(executor=self._label).observe(compute_s / max(1, len(chunk)))
        if profile_path is not None:
            self.profiles.append(profile_path)
        if isinstance(chunk, _Span) and errors is None:  # fast path: one event for the chunk
            self._events.append(SpanEvent(chunk.start, values))
            _COMPLETED.labels(executor=self._label).inc(len(values))
            self.progress.advance(len(values))
            return
        items = chunk.items() if isinstance(chunk, _Span) else chunk
        for pos, (item, value) in enumerate(zip(items, values, strict=True)):
            item.attempts += 1
            err = errors.get(pos) if errors is not None else None
            if err is None:
                self._succeed(item, value)
            else:
                self._fail(item, err.to_exception())

    # ---- dispatch ------------------------------------------------------------------------
    def _submit(self, now: float) -> None:
        while len(self._inflight) < self._window:
            chunk: list[_Item] | _Span
            if self._retry_heap and self._retry_heap[0][0] <= now:
                chunk = [heapq.heappop(self._retry_heap)[2]]  # retried items run one per task
            else:
                if not self._chunker.calibrated and len(self._inflight) >= self.executor.num_workers:
                    return  # probes first, then real sizes
                size = self._chunker.next_size(self._remaining())
                if self.cached is None:
                    start = self._pulled
                    args = self._take(size)
                    if not args:
                        return
                    chunk = _Span(start, args)
                else:
                    if not self._ready:
                        self._key_batch()
                        if not self._ready:
                            return
                    chunk = [self._ready.popleft() for _ in range(min(size, len(self._ready)))]
            fut = self.executor.submit_task(
                run_chunk,
                (
                    self._payload,
                    chunk.args if isinstance(chunk, _Span) else [it.args for it in chunk],
                    self.star,
                    self.cached is not None,
                    self._profile,
                ),
                self.shared,
                timeout_s=None if self.timeout_s is None else self.timeout_s * len(chunk),
            )
            self._inflight[fut] = chunk
            self.submitted += len(chunk)
            _SUBMITTED.labels(executor=self._label).inc(len(chunk))

    def _idle(self) -> bool:
        return not (self._inflight or self._ready or self._retry_heap or self._waiting or not self._exhausted)

    def events(self) -> Iterator[list[Event] | SpanEvent]:
        """Run the map, yielding batches of events as items finish (in completion order)."""
        while True:
            now = time.monotonic()
            if self._waiting:
                self._poll_waiting(now)
            self._submit(now)
            while self._events:
                yield self._events.popleft()
            if self._idle():
                return
            if self._wants_intake():
                # key the next batch while the workers compute; then collect what finished
                # meanwhile without blocking, and go round again
                self._key_batch()
                for fut in [f for f in self._inflight if f.done()]:
                    self._finish(fut)
                continue
            wake = [self._retry_heap[0][0]] if self._retry_heap else []
            wake += [w.next_poll for w in self._waiting.values()]
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            _QUEUE.labels(executor=self._label).set(
                len(self._ready) + len(self._retry_heap) + sum(map(len, self._inflight.values()))
            )
            if self._inflight:
                done, _ = cf.wait(list(self._inflight), timeout=timeout, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    self._finish(fut)
            elif timeout is not None:
                time.sleep(min(timeout, 1.0))
            elif not self._exhausted:
                continue  # bounded run: the consumer caught up, pull more
            else:  # nothing in flight and nothing to wait for: the input is done
                return
