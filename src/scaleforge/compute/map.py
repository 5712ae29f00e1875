"""``scaleforge.map`` and ``scaleforge.imap``: one parallel map from a laptop to a cluster.

The same call runs on local processes (default), threads, Ray or Dask,
chosen by ``executor=``, ``config_context(executor=...)`` or
``SCALEFORGE_COMPUTE__EXECUTOR``. It groups tiny tasks into chunks, ships large
shared arrays once per worker, retries failures with backoff, survives worker
deaths, and, when ``fn`` is ``@cached``, runs only the cache misses.

Delivery is **at least once**: an item whose worker died, or whose attempt
timed out or failed, runs again (up to ``retries`` more times for failures and
timeouts; worker deaths are resubmitted by the executor). Functions with side
effects should be idempotent.
"""

from __future__ import annotations

import dataclasses
import itertools
import reprlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import cloudpickle

from scaleforge._validation import check_choice, check_number
from scaleforge.compute._engine import MapRun, SpanEvent
from scaleforge.compute.base import Executor
from scaleforge.compute.progress import make_progress
from scaleforge.compute.registry import get_executor
from scaleforge.compute.retry import RetryPolicy
from scaleforge.errors import InvalidParameterError, TaskError
from scaleforge.settings import get_settings

__all__ = ["ItemError", "MapReport", "imap", "map"]

_summary = reprlib.Repr()
_summary.maxstring = 60
_summary.maxother = 60
_summary.maxlist = 4
_summary.maxtuple = 4
_summary.maxdict = 4


@dataclasses.dataclass(frozen=True, slots=True)
class ItemError:
    """Why one item failed (in :attr:`MapReport.errors`).

    Attributes
    ----------
    index : int
        Position of the item in the input.
    exception_type : str
        Qualified name of the last exception (``"builtins.ValueError"``).
    message : str
        Its message.
    attempts : int
        How many times the item ran.
    input_summary : str
        A short repr of the item.
    """

    index: int
    exception_type: str
    message: str
    attempts: int
    input_summary: str = ""


@dataclasses.dataclass(slots=True)
class MapReport:
    """The outcome of ``map(..., on_error="collect")``.

    Attributes
    ----------
    results : list
        One entry per input item, in input order; ``None`` where the item failed.
    errors : list of ItemError
        The failed items, by index.
    n_items, n_succeeded, n_failed : int
        Counts.
    cache_hits, cache_misses, duplicates : int
        For ``@cached`` functions: items answered by the cache, items computed,
        and items folded onto another item with the same key.
    retried : int
        Attempts that were retried.
    elapsed_s : float
        Wall time of the map.
    executor : str
        Name of the backend that ran it.
    """

    results: list[Any]
    errors: list[ItemError]
    n_items: int
    n_succeeded: int
    n_failed: int
    cache_hits: int = 0
    cache_misses: int = 0
    duplicates: int = 0
    retried: int = 0
    elapsed_s: float = 0.0
    executor: str = ""

    @property
    def ok(self) -> bool:
        """True if no item failed."""
        return self.n_failed == 0

    def raise_first(self) -> None:
        """Raise :class:`~scaleforge.errors.TaskError` for the first failed item, if any."""
        if self.errors:
            e = self.errors[0]
            raise TaskError(
                f"Item {e.index} ({e.input_summary}) failed after {e.attempts} attempt(s): "
                f"{e.exception_type}: {e.message}",
                index=e.index,
                attempts=e.attempts,
            )


def _type_name(exc: BaseException) -> str:
    remote = getattr(exc, "remote_type", None)
    if isinstance(remote, str):
        return remote
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _task_error(index: int, item: Any, star: bool, exc: BaseException, attempts: int) -> TaskError:
    summary = _summary.repr(item if not star else tuple(item))
    err = TaskError(
        f"Item {index} ({summary}) failed after {attempts} attempt(s): {_type_name(exc)}: {exc}. "
        "Fix the function or the input, raise retries=, or pass on_error='collect' to keep the other results.",
        index=index,
        attempts=attempts,
    )
    err.__cause__ = exc
    return err


@dataclasses.dataclass(slots=True)
class _Plan:
    run: MapRun
    star: bool
    total: int | None
    on_error: str
    ordered: bool
    started: float


def _plan(
    owner: str,
    fn: Callable[..., Any],
    iterables: tuple[Iterable[Any], ...],
    *,
    executor: str | Executor | None,
    chunksize: int | str,
    retries: int,
    retry_backoff_s: float,
    timeout_s: float | None,
    ordered: bool,
    progress: bool | None,
    on_error: str,
    shared: dict[str, Any],
    bounded: bool,
) -> _Plan:
    if not callable(fn):
        raise InvalidParameterError(
            f"The 'fn' parameter of {owner} must be callable. Got {type(fn).__name__} ({_summary.repr(fn)}) instead."
        )
    if not iterables:
        raise InvalidParameterError(
            f"{owner} needs at least one iterable of inputs, e.g. {owner}(fn, items)."
        )
    if chunksize != "auto":
        check_number(chunksize, "chunksize", owner, minimum=1, integer=True)
    retry = RetryPolicy(retries=retries, backoff_s=retry_backoff_s)
    check_number(timeout_s, "timeout_s", owner, minimum=0, exclusive_minimum=True, allow_none=True)
    check_choice(on_error, "on_error", owner, ("raise", "collect"))
    if not isinstance(ordered, bool):
        raise InvalidParameterError(
            f"The 'ordered' parameter of {owner} must be a bool. Got {ordered!r} instead."
        )
    if progress is not None and not isinstance(progress, bool):
        raise InvalidParameterError(
            f"The 'progress' parameter of {owner} must be True, False or None. Got {progress!r} instead."
        )
    iterators = []
    for pos, it in enumerate(iterables):
        try:
            iterators.append(iter(it))
        except TypeError as exc:
            raise InvalidParameterError(
                f"Input iterable #{pos} of {owner} is not iterable: got {type(it).__name__}. "
                "Pass lists, arrays, ranges or generators."
            ) from exc
    lengths = [len(it) for it in iterables if hasattr(it, "__len__")]  # type: ignore[arg-type]
    if len(lengths) == len(iterables) and len(set(lengths)) > 1:
        raise InvalidParameterError(
            f"The iterables passed to {owner} have different lengths {lengths}; each call takes one element "
            "from each. Pass iterables of equal length."
        )
    total = lengths[0] if len(lengths) == len(iterables) else None
    star = len(iterables) > 1
    source: Iterator[Any] = zip(*iterators, strict=False) if star else iterators[0]
    ex = get_executor(executor)
    if ex.needs_pickling:
        first = list(itertools.islice(source, 1))
        _check_picklable(owner, fn, first, shared)
        source = itertools.chain(first, source)
    settings = get_settings()
    prog = make_progress(total, progress, description=getattr(fn, "__name__", "map"))
    run = MapRun(
        fn,
        source,
        total,
        ex,
        star=star,
        chunksize=chunksize,
        retry=retry,
        timeout_s=timeout_s,
        shared=shared,
        progress=prog,
        bounded=bounded,
        shared_min_bytes=settings.compute.shared_arg_min_bytes,
    )
    return _Plan(run, star, total, on_error, ordered, time.perf_counter())


def _check_picklable(owner: str, fn: Any, first: list[Any], shared: dict[str, Any]) -> None:
    checks: list[tuple[str, Any]] = [(f"the function {getattr(fn, '__qualname__', fn)!r}", fn)]
    if first:
        checks.append(("item 0 of the input", first[0]))
    checks += [(f"the shared argument {k!r}", v) for k, v in shared.items() if not hasattr(v, "__array__")]
    for what, value in checks:
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            raise InvalidParameterError(
                f"{owner} cannot send {what} to worker processes: it cannot be pickled "
                f"({type(exc).__name__}: {exc}). Make it picklable (no open files, locks or sockets), "
                "or use executor='threads'."
            ) from exc


def _events(plan: _Plan) -> Iterator[list[tuple[int, bool, Any]] | SpanEvent]:
    """Batches of events of the run; a failed item raises TaskError here when raising."""
    run = plan.run
    raising = plan.on_error == "raise"
    try:
        for batch in run.events():
            if raising and not isinstance(batch, SpanEvent):
                for index, ok, value in batch:
                    if not ok:
                        exc, attempts = value
                        raise _task_error(index, run.item_args(index), plan.star, exc, attempts)
            yield batch
    finally:
        run.close()
        run.progress.close()


def _error_record(plan: _Plan, index: int, value: Any) -> ItemError:
    exc, attempts = value
    item = plan.run.item_args(index)
    return ItemError(
        index=index,
        exception_type=_type_name(exc),
        message=str(exc),
        attempts=attempts,
        input_summary=_summary.repr(tuple(item) if plan.star else item),
    )


def map(
    fn: Callable[..., Any],
    /,
    *iterables: Iterable[Any],
    executor: str | Executor | None = None,
    chunksize: int | Literal["auto"] = "auto",
    retries: int = 0,
    retry_backoff_s: float = 0.1,
    timeout_s: float | None = None,
    ordered: bool = True,
    progress: bool | None = None,
    on_error: Literal["raise", "collect"] = "raise",
    **shared: Any,
) -> Any:
    """Apply ``fn`` to every item in parallel and return the results.

    Parameters
    ----------
    fn : callable
        Called as ``fn(item, **shared)`` (or ``fn(a, b, ..., **shared)`` with
        several iterables). Lambdas and functions from ``__main__`` work.
        When ``fn`` is ``@cached``, only cache misses run (see Notes).
    *iterables : iterable
        The inputs; several iterables are zipped and must have equal lengths.
    executor : str or Executor, optional
        ``"processes"`` (default), ``"threads"``, ``"ray"``, ``"dask"``, a
        registered name or an Executor instance. Defaults to
        ``config_context(executor=...)`` or ``Settings.compute.executor``;
        the running default executor is reused across calls.
    chunksize : int or "auto", default="auto"
        Items per task. ``"auto"`` measures task durations and groups tiny
        tasks so per-task overhead stays under a few percent.
    retries : int, default=0
        Extra attempts for an item that raises or times out.
    retry_backoff_s : float, default=0.1
        Wait before the first retry, doubled for each later one.
    timeout_s : float, optional
        Per-item limit. On processes the worker is killed and replaced; the
        attempt counts as a failure (retryable). Items are not grouped when set.
    ordered : bool, default=True
        Return results in input order; ``False`` returns them as they complete.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    on_error : {"raise", "collect"}, default="raise"
        ``"raise"``: raise :class:`~scaleforge.errors.TaskError` for the first
        item that fails after its retries. ``"collect"``: return a
        :class:`MapReport` with all results and a per-item error list.
    **shared
        Keyword arguments passed to every call. Numpy arrays of at least
        ``Settings.compute.shared_arg_min_bytes`` are shipped once per worker
        (shared memory / ``ray.put`` / ``scatter``), read-only.

    Returns
    -------
    list or MapReport
        A list of results, or a :class:`MapReport` with ``on_error="collect"``.

    Raises
    ------
    InvalidParameterError
        Before anything runs, for a non-callable or unpicklable ``fn``, an
        unpicklable first item or shared argument, iterables of different
        lengths, or a bad option.
    TaskError
        When an item fails after ``retries + 1`` attempts (``on_error="raise"``),
        chained to the original exception; ``.index`` is the item's position.

    Notes
    -----
    Cache-aware: for a ``@cached`` ``fn`` all keys are computed in the caller,
    looked up in batches, duplicate keys run once, only misses are sent to
    workers, and each result is stored as it arrives. With a shared (Redis)
    tier, a key being computed by another process or machine is waited for.

    At-least-once: an item whose worker died runs again elsewhere.

    Examples
    --------
    >>> import scaleforge as sf
    >>> sf.map(abs, [-1, -2, 3], executor="threads")
    [1, 2, 3]
    """
    plan = _plan(
        "scaleforge.map",
        fn,
        iterables,
        executor=executor,
        chunksize=chunksize,
        retries=retries,
        retry_backoff_s=retry_backoff_s,
        timeout_s=timeout_s,
        ordered=ordered,
        progress=progress,
        on_error=on_error,
        shared=shared,
        bounded=False,
    )
    results: list[Any] = [None] * plan.total if plan.total is not None else []
    order: list[int] = []
    errors: list[ItemError] = []
    for batch in _events(plan):
        if isinstance(batch, SpanEvent):  # contiguous successes: one slice assignment
            end = batch.start + len(batch.values)
            if end > len(results):
                results.extend([None] * (end - len(results)))
            results[batch.start : end] = batch.values
            if not ordered:
                order.extend(range(batch.start, end))
            continue
        for index, ok, value in batch:
            if index >= len(results):
                results.extend([None] * (index + 1 - len(results)))
            if ok:
                results[index] = value
                if not ordered:
                    order.append(index)
            else:
                errors.append(_error_record(plan, index, value))
    n = len(results)
    if on_error == "raise":
        return results if ordered else [results[i] for i in order]
    run = plan.run
    errors.sort(key=lambda e: e.index)
    return MapReport(
        results=results,
        errors=errors,
        n_items=n,
        n_succeeded=n - len(errors),
        n_failed=len(errors),
        cache_hits=run.hits,
        cache_misses=run.misses,
        duplicates=run.duplicates,
        retried=run.retried,
        elapsed_s=time.perf_counter() - plan.started,
        executor=run.executor.name,
    )


def imap(
    fn: Callable[..., Any],
    /,
    *iterables: Iterable[Any],
    executor: str | Executor | None = None,
    chunksize: int | Literal["auto"] = "auto",
    retries: int = 0,
    retry_backoff_s: float = 0.1,
    timeout_s: float | None = None,
    ordered: bool = True,
    progress: bool | None = None,
    on_error: Literal["raise", "collect"] = "raise",
    **shared: Any,
) -> Iterator[Any]:
    """Like :func:`map`, but yield results lazily with bounded memory.

    Items are pulled from the input only as results are consumed (a bounded
    in-flight window), so very long or infinite generators work. With
    ``ordered=False`` results come as they complete. With
    ``on_error="collect"`` a failed item yields its :class:`ItemError` in
    place of a result. Abandoning the iterator (``break``, ``close()``, garbage
    collection) cancels what has not started.

    Parameters
    ----------
    fn, *iterables, executor, chunksize, retries, retry_backoff_s, timeout_s, ordered, progress, on_error, **shared
        As for :func:`map`.

    Returns
    -------
    iterator
        Results (or :class:`ItemError` for failures under ``on_error="collect"``).

    Raises
    ------
    InvalidParameterError
        Immediately, for invalid arguments (see :func:`map`).
    TaskError
        While iterating, when an item fails after its retries (``on_error="raise"``).

    Examples
    --------
    >>> import scaleforge as sf
    >>> list(sf.imap(str, range(3), executor="threads"))
    ['0', '1', '2']
    """
    plan = _plan(
        "scaleforge.imap",
        fn,
        iterables,
        executor=executor,
        chunksize=chunksize,
        retries=retries,
        retry_backoff_s=retry_backoff_s,
        timeout_s=timeout_s,
        ordered=ordered,
        progress=progress,
        on_error=on_error,
        shared=shared,
        bounded=True,
    )
    return _imap_results(plan)


def _imap_results(plan: _Plan) -> Iterator[Any]:
    run = plan.run
    buffer: dict[int, Any] = {}
    next_index = 0
    for batch in _events(plan):
        if isinstance(batch, SpanEvent):
            batch = [(batch.start + i, True, v) for i, v in enumerate(batch.values)]
        for index, ok, value in batch:
            out = value if ok else _error_record(plan, index, value)
            if not plan.ordered:
                run.delivered += 1
                yield out
                continue
            buffer[index] = out
            while next_index in buffer:
                run.delivered += 1
                yield buffer.pop(next_index)
                next_index += 1
