"""Dynamic batching with an adaptive wait, the model running off the event loop.

:class:`DynamicBatcher` collects requests on the asyncio event loop and hands
batches to one worker (a thread, or a process) that runs the model. The rules:

* a batch holds at most ``max_batch_size`` **items** (a request may carry
  several items; it is never split across batches);
* **adaptive wait**: when the worker is free and the queue is not full, the
  batch leaves at once unless requests are arriving faster than a batch
  completes (EWMA of the inter-arrival gap < EWMA of the batch round trip);
  only then does it wait, up to ``max_wait_s`` after its oldest request, for
  more items. One client therefore never pays the wait, and under load
  batches fill;
* while the worker runs a batch, requests queue up (bounded by ``max_queue``
  items: beyond it :meth:`DynamicBatcher.submit` raises
  :class:`QueueFullError`, which the server answers with 503 + Retry-After);
* every request has a deadline on the ``time.monotonic()`` clock; when it
  passes, its future fails with :class:`~scaleforge.errors.RequestTimeoutError`
  and the request is dropped from the queue;
* the handler takes a list and must return a list of equal length, else
  :class:`~scaleforge.errors.BatchSizeMismatchError` fails that batch's requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import (
    BatchSizeMismatchError,
    InvalidParameterError,
    QueueFullError,
    RequestTimeoutError,
    ServeError,
    ServerClosingError,
    WorkerLostError,
)

__all__ = ["BatchPolicy", "BatcherStats", "DynamicBatcher", "QueueFullError", "ServerClosingError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Weight of the newest sample in the arrival-gap and batch-time averages: high
# enough to follow a load change within ~5 requests, low enough to ignore one outlier.
_EWMA = 0.2


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How a model's requests are grouped.

    Parameters
    ----------
    max_batch_size : int, default=64
        Largest batch, counted in items (not requests). Must be >= 1.
    max_wait_s : float, default=0.005
        Longest time the oldest request of a batch waits for more items, and
        only while requests arrive faster than batches complete. Must be >= 0.

    Examples
    --------
    >>> BatchPolicy(max_batch_size=32, max_wait_s=0.002)
    BatchPolicy(max_batch_size=32, max_wait_s=0.002)
    """

    max_batch_size: int = 64
    max_wait_s: float = 0.005

    def __post_init__(self) -> None:
        check_number(self.max_batch_size, "max_batch_size", "BatchPolicy", minimum=1, integer=True)
        check_number(self.max_wait_s, "max_wait_s", "BatchPolicy", minimum=0, maximum=60)


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """A snapshot of a batcher's counters.

    Attributes
    ----------
    requests, items, batches : int
        Accepted requests, their items, and batches run.
    errors : int
        Batches whose handler raised.
    rejected : int
        Requests refused because the queue was full or the batcher closing.
    timeouts : int
        Requests that missed their deadline.
    queued_items : int
        Items waiting now.
    busy : bool
        Whether a batch is running now.
    mean_batch_size : float
        Items per batch so far.
    arrival_gap_s, batch_time_s : float
        Current averages driving the adaptive wait.
    """

    requests: int
    items: int
    batches: int
    errors: int
    rejected: int
    timeouts: int
    queued_items: int
    busy: bool
    mean_batch_size: float
    arrival_gap_s: float
    batch_time_s: float


class _Pending:
    __slots__ = ("counted", "future", "items", "n", "t", "timer")

    def __init__(self, items: Sequence[Any], future: asyncio.Future[Any], t: float) -> None:
        self.items = items
        self.n = len(items)
        self.future = future
        self.t = t
        self.timer: asyncio.TimerHandle | None = None
        self.counted = True


def _run_batch(handler: Callable[[list[Any]], Any], batch: list[Any]) -> list[Any]:
    out = handler(batch)
    if not isinstance(out, list):
        try:
            out = list(out)
        except TypeError as exc:
            raise BatchSizeMismatchError(
                f"The model handler returned {type(out).__name__}, not a list. "
                f"Return one output per input item: a list of length {len(batch)}."
            ) from exc
    if len(out) != len(batch):
        raise BatchSizeMismatchError(
            f"The model handler returned {len(out)} outputs for a batch of {len(batch)} items. "
            "predict(batch) must return a list of the same length as batch, one output per item, in order."
        )
    return out


# ----------------------------------------------------------------------------- workers


class _ThreadWorker:
    """Runs the handler in one dedicated thread."""

    def __init__(self, handler: Callable[[list[Any]], Any], name: str) -> None:
        self._handler = handler
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"scaleforge-serve-{name}")

    def call(self, fn: Callable[[], Any]) -> cf.Future[Any]:
        return self._pool.submit(fn)

    def submit(self, batch: list[Any]) -> cf.Future[list[Any]]:
        return self._pool.submit(_run_batch, self._handler, batch)

    def restart(self) -> None:  # a thread cannot die from a handler exception
        return None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False)


_PROCESS_HANDLER: Callable[[list[Any]], Any] | None = None


def _process_init(payload: bytes) -> None:
    import cloudpickle

    global _PROCESS_HANDLER
    handler, setup = cloudpickle.loads(payload)
    if setup is not None:
        setup()
    _PROCESS_HANDLER = handler


def _process_call(batch: list[Any]) -> list[Any]:
    if _PROCESS_HANDLER is None:  # pragma: no cover - initializer always runs first
        raise ServeError("The serve worker process was not initialised.")
    return _run_batch(_PROCESS_HANDLER, batch)


def _process_noop() -> None:
    return None


class _ProcessWorker:
    """Runs the handler in one worker process (``spawn``), restarted if it dies."""

    def __init__(
        self, handler: Callable[[list[Any]], Any], setup: Callable[[], None] | None, name: str
    ) -> None:
        import cloudpickle

        self._payload = cloudpickle.dumps((handler, setup))
        self._name = name
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        import multiprocessing

        return cf.ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_process_init,
            initargs=(self._payload,),
        )

    def call(self, fn: Callable[[], Any]) -> cf.Future[Any]:
        # setup already ran in the initializer; a no-op forces the process to start now
        return self._pool.submit(_process_noop)

    def submit(self, batch: list[Any]) -> cf.Future[list[Any]]:
        return self._pool.submit(_process_call, batch)

    def restart(self) -> None:
        logger.warning("serve worker process of %s died; starting a new one", self._name)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- batcher


class DynamicBatcher(Generic[T, R]):
    """Group concurrent requests into batches for a model running in a worker.

    Parameters
    ----------
    handler : callable
        ``handler(batch: list) -> list`` of the same length. Runs in the worker.
    policy : BatchPolicy, optional
        Batch size and wait; defaults to ``BatchPolicy()``.
    max_queue : int, default=1024
        Most items waiting (not counting the running batch); beyond it
        :meth:`submit` raises :class:`QueueFullError`.
    timeout_s : float or None, default=30.0
        Deadline of each request from its arrival; ``None`` waits forever.
    worker : {"thread", "process"}, default="thread"
        Run the handler in a dedicated thread, or in a process (``spawn``;
        ``handler`` and ``setup`` must be picklable by cloudpickle).
    setup : callable, optional
        Called once in the worker before the first batch.
    teardown : callable, optional
        Called once in the worker (thread mode) when the batcher closes.
    on_batch : callable, optional
        ``on_batch(n_items, queue_waits_s, duration_s)`` after each successful
        batch, on the event loop (for metrics); exceptions are logged.
    name : str, default="model"
        Used in thread names, logs and messages.

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     b = DynamicBatcher(lambda xs: [x * 2 for x in xs], policy=BatchPolicy(8, 0.001))
    ...     await b.start()
    ...     out = await asyncio.gather(*(b.predict([i]) for i in range(4)))
    ...     await b.aclose()
    ...     return out
    >>> asyncio.run(main())
    [[0], [2], [4], [6]]
    """

    def __init__(
        self,
        handler: Callable[[list[T]], list[R]],
        *,
        policy: BatchPolicy | None = None,
        max_queue: int = 1024,
        timeout_s: float | None = 30.0,
        worker: str = "thread",
        setup: Callable[[], None] | None = None,
        teardown: Callable[[], None] | None = None,
        on_batch: Callable[[int, list[float], float], None] | None = None,
        name: str = "model",
    ) -> None:
        if not callable(handler):
            raise InvalidParameterError(
                f"The 'handler' parameter of DynamicBatcher must be callable (batch -> list). "
                f"Got {type(handler).__name__} instead."
            )
        if policy is None:
            policy = BatchPolicy()
        if not isinstance(policy, BatchPolicy):
            raise InvalidParameterError(
                f"The 'policy' parameter of DynamicBatcher must be a BatchPolicy. Got {type(policy).__name__} "
                "instead; write policy=BatchPolicy(max_batch_size=64, max_wait_s=0.005)."
            )
        check_number(max_queue, "max_queue", "DynamicBatcher", minimum=1, integer=True)
        check_number(
            timeout_s, "timeout_s", "DynamicBatcher", minimum=0, exclusive_minimum=True, allow_none=True
        )
        check_choice(worker, "worker", "DynamicBatcher", ("thread", "process"))
        self.policy = policy
        self.name = name
        self._handler = handler
        self._max_batch = policy.max_batch_size
        self._max_wait = policy.max_wait_s
        self._max_queue = max_queue
        self._timeout_s = timeout_s
        self._worker_kind = worker
        self._setup = setup
        self._teardown = teardown
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._queued = 0
        self._busy = False
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: _ThreadWorker | _ProcessWorker | None = None
        self._idle: asyncio.Event | None = None
        self._last_arrival = -math.inf
        self._gap = math.inf
        self._batch_s = 0.0
        self._n_requests = 0
        self._n_items = 0
        self._n_batches = 0
        self._n_batch_items = 0
        self._n_errors = 0
        self._n_rejected = 0
        self._n_timeouts = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker and run ``setup`` in it; call from the event loop.

        Raises
        ------
        Exception
            Whatever ``setup`` raised (the batcher stays unusable).
        """
        if self._worker is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        worker: _ThreadWorker | _ProcessWorker
        if self._worker_kind == "process":
            worker = _ProcessWorker(self._handler, self._setup, self.name)
            await asyncio.wrap_future(worker.call(_process_noop))
        else:
            worker = _ThreadWorker(self._handler, self.name)
            if self._setup is not None:
                try:
                    await asyncio.wrap_future(worker.call(self._setup))
                except BaseException:
                    worker.shutdown()
                    raise
        self._worker = worker

    @property
    def started(self) -> bool:
        """Whether :meth:`start` has completed and :meth:`aclose` not begun."""
        return self._worker is not None and not self._closing

    async def aclose(self, *, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Stop accepting requests, finish (or fail) queued ones, stop the worker.

        Parameters
        ----------
        drain : bool, default=True
            Run everything already queued before stopping; ``False`` fails the
            queued requests with :class:`ServerClosingError`.
        timeout_s : float, default=30.0
            Longest wait for the drain.
        """
        self._closing = True
        if self._worker is None:
            return
        if not drain:
            while self._queue:
                req = self._queue.popleft()
                self._settle_error(req, ServerClosingError(f"Model {self.name!r} is shutting down."))
            self._queued = 0
        self._maybe_dispatch()
        assert self._idle is not None  # set by start(); not user input
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            logger.warning("%s: drain did not finish within %.1f s", self.name, timeout_s)
        worker, self._worker = self._worker, None
        if self._teardown is not None and isinstance(worker, _ThreadWorker):
            try:
                await asyncio.wrap_future(worker.call(self._teardown))
            except Exception:
                logger.exception("%s: teardown raised", self.name)
        worker.shutdown()

    # ------------------------------------------------------------------ submit
    def submit(self, items: Sequence[T], *, timeout_s: float | None = None) -> asyncio.Future[list[R]]:
        """Queue one request of one or more items; return a future of its outputs.

        Must be called on the event loop that ran :meth:`start`.

        Parameters
        ----------
        items : sequence
            The request's items (1 <= len(items) <= max_batch_size).
        timeout_s : float, optional
            This request's deadline; defaults to the batcher's ``timeout_s``.

        Returns
        -------
        asyncio.Future of list
            Resolves to one output per item.

        Raises
        ------
        QueueFullError
            When the queue holds ``max_queue`` items already.
        ServerClosingError
            When the batcher is closing or not started.
        InvalidParameterError
            For an empty request or one larger than ``max_batch_size``.
        """
        if self._closing or self._worker is None or self._loop is None:
            self._n_rejected += 1
            raise ServerClosingError(
                f"Model {self.name!r} is not accepting requests (it is shutting down or not started)."
            )
        n = len(items)
        if n == 0 or n > self._max_batch:
            raise InvalidParameterError(
                f"A request to model {self.name!r} carries {n} items; it must carry between 1 and "
                f"max_batch_size={self._max_batch}. Split it into smaller requests."
            )
        if self._queued + n > self._max_queue:
            self._n_rejected += 1
            per_item = self._batch_s / max(1.0, self._n_batch_items / max(1, self._n_batches))
            retry = max(1.0, math.ceil(self._queued * per_item))
            raise QueueFullError(
                f"Model {self.name!r} has {self._queued} items queued (max_queue={self._max_queue}). "
                f"Retry after {retry:.0f} s, or raise serve.max_queue / add workers.",
                retry_after_s=retry,
            )
        loop = self._loop
        now = time.monotonic()
        gap = now - self._last_arrival
        self._last_arrival = now
        if gap < 1.0:
            self._gap = gap if self._gap == math.inf else self._gap + _EWMA * (gap - self._gap)
        else:
            self._gap = math.inf
        fut: asyncio.Future[list[R]] = loop.create_future()
        req = _Pending(items, fut, now)
        t = self._timeout_s if timeout_s is None else timeout_s
        if t is not None:
            req.timer = loop.call_later(t, self._expire, req)
        self._queue.append(req)
        self._queued += n
        self._n_requests += 1
        self._n_items += n
        if self._idle is not None:
            self._idle.clear()
        if not self._busy:
            self._maybe_dispatch()
        return fut

    async def predict(self, items: Sequence[T], *, timeout_s: float | None = None) -> list[R]:
        """Submit ``items`` and wait for their outputs (see :meth:`submit`).

        Parameters
        ----------
        items : sequence
        timeout_s : float, optional

        Returns
        -------
        list
        """
        return await self.submit(items, timeout_s=timeout_s)

    # ------------------------------------------------------------------ internals
    def _expire(self, req: _Pending) -> None:
        req.timer = None
        if req.future.done():
            return
        self._n_timeouts += 1
        if req.counted:
            req.counted = False
            self._queued -= req.n
        req.future.set_exception(
            RequestTimeoutError(
                f"A request to model {self.name!r} was not answered within its deadline. "
                "Retry, send smaller batches, or raise serve.request_timeout_s."
            )
        )

    def _should_wait(self) -> bool:
        # Waiting only pays when another request is expected before a batch would finish.
        return self._max_wait > 0 and self._gap < self._batch_s

    def _maybe_dispatch(self) -> None:
        if self._busy or self._worker is None:
            return
        if not self._queue:
            self._mark_idle()
            return
        if self._queued >= self._max_batch or self._closing or not self._should_wait():
            self._dispatch()
            return
        if self._timer is None:
            delay = self._queue[0].t + self._max_wait - time.monotonic()
            if delay <= 0:
                self._dispatch()
                return
            assert self._loop is not None  # set by start(); not user input
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._busy and self._queue:
            self._dispatch()

    def _mark_idle(self) -> None:
        if self._idle is not None and not self._busy and not self._queue:
            self._idle.set()

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue = self._queue
        reqs: list[_Pending] = []
        items: list[Any] = []
        total = 0
        while queue:
            req = queue[0]
            if req.future.done():  # expired or cancelled by its client
                queue.popleft()
                if req.counted:
                    req.counted = False
                    self._queued -= req.n
                continue
            if total + req.n > self._max_batch:
                break
            queue.popleft()
            req.counted = False
            self._queued -= req.n
            reqs.append(req)
            items.extend(req.items)
            total += req.n
        if not reqs:
            self._mark_idle()
            return
        worker = self._worker
        loop = self._loop
        assert worker is not None and loop is not None  # checked by the caller
        self._busy = True
        t0 = time.monotonic()
        try:
            fut = worker.submit(items)
        except RuntimeError as exc:  # the pool was shut down under us
            self._busy = False
            for req in reqs:
                self._settle_error(req, ServerClosingError(f"Model {self.name!r} is shutting down: {exc}"))
            return

        def done(f: cf.Future[list[Any]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(self._complete, reqs, f, t0)

        fut.add_done_callback(done)

    def _settle_error(self, req: _Pending, exc: BaseException) -> None:
        if req.timer is not None:
            req.timer.cancel()
        if not req.future.done():
            req.future.set_exception(exc)

    def _complete(self, reqs: list[_Pending], f: cf.Future[list[Any]], t0: float) -> None:
        self._busy = False
        now = time.monotonic()
        duration = now - t0
        self._batch_s = (
            duration if self._n_batches == 0 else self._batch_s + _EWMA * (duration - self._batch_s)
        )
        self._n_batches += 1
        exc = f.exception() if not f.cancelled() else ServerClosingError(f"Model {self.name!r} was stopped.")
        if exc is not None:
            self._n_errors += 1
            if isinstance(exc, BrokenProcessPool):
                exc = WorkerLostError(
                    f"The worker process of model {self.name!r} died while running a batch; it was restarted."
                )
                if self._worker is not None:
                    self._worker.restart()
            for req in reqs:
                self._settle_error(req, exc)
        else:
            out = f.result()
            i = 0
            n_items = 0
            waits: list[float] = []
            for req in reqs:
                n = req.n
                if req.timer is not None:
                    req.timer.cancel()
                if not req.future.done():
                    req.future.set_result(out[i : i + n])
                i += n
                n_items += n
                waits.append(t0 - req.t)
            self._n_batch_items += n_items
            if self._on_batch is not None:
                try:
                    self._on_batch(n_items, waits, duration)
                except Exception:
                    logger.exception("%s: on_batch callback raised", self.name)
        self._maybe_dispatch()

    # ------------------------------------------------------------------ introspection
    @property
    def queued_items(self) -> int:
        """Items waiting for a batch now."""
        return self._queued

    def stats(self) -> BatcherStats:
        """Return a snapshot of the counters.

        Returns
        -------
        BatcherStats
        """
        return BatcherStats(
            requests=self._n_requests,
            items=self._n_items,
            batches=self._n_batches,
            errors=self._n_errors,
            rejected=self._n_rejected,
            timeouts=self._n_timeouts,
            queued_items=self._queued,
            busy=self._busy,
            mean_batch_size=self._n_batch_items / max(1, self._n_batches - self._n_errors),
            arrival_gap_s=self._gap,
            batch_time_s=self._batch_s,
        )
