"""``scaleforge.map`` and ``scaleforge.imap``: one parallel map from a laptop to a cluster.

The same call runs on local processes (default), threads, Ray or Dask,
chosen by ``executor=``, ``config_context(executor=...)`` or
``SCALEFORGE_COMPUTE__EXECUTOR``. It groups tiny tasks into chunks, ships large
shared arrays once per worker, retries failures with backoff, survives worker
deaths, and, when ``fn`` is ``@cached``, runs only the cache misses.

Delivery semantics: at least once
---------------------------------
Every item's result is delivered exactly once (one entry of the returned list
or one value of ``imap``), but the function may *run* more than once for an
item:

- **Exceptions** (the function raised): the item runs again, alone, after
  ``retry_backoff_s * 2**(attempt-1)``, up to ``retries`` more times; then it
  fails with :class:`~scaleforge.errors.TaskError` (``on_error="raise"``) or
  an :class:`ItemError` (``on_error="collect"``). An attempt that raised made
  whatever side effects it made before raising.
- **Worker death** (SIGKILL, the OOM killer, ``os._exit``, a lost Ray or Dask
  worker): every item of the chunk the worker held is resubmitted, so items
  that had already *finished* inside that chunk run again, and the item that
  was running may have done part of its side effects. This does not consume
  ``retries``: the process pool resubmits up to ``max_task_restarts`` times
  (then :class:`~scaleforge.errors.WorkerLostError`, a retryable failure);
  Ray and Dask apply their own worker-loss retries.
- **Timeouts** (``timeout_s``): the attempt counts as a failure and is retried
  like an exception. On ``processes`` (and Ray, ``force=True``) the worker is
  killed, so the timed-out attempt stops where it was. On ``threads`` and
  Dask the attempt can only be *abandoned*: it keeps running in the background
  while the retry runs, so two attempts of one item can overlap.
- **Abandoned maps** (an exception, ``break`` out of ``imap``): chunks not yet
  started are cancelled; chunks already running finish in their worker and
  their results are dropped (not stored in the cache either).

For a ``@cached`` function, reruns are idempotent as far as the cache is
concerned when the function is pure: workers compute without touching the
cache, the parent stores each result under its content key (a second store of
the same key writes the same value), a key already stored is answered from
the cache instead of running again (a re-run after a crash computes only what
was not stored), and with a shared tier the single-flight lock keeps two maps
on different processes or machines from computing a key at the same time.
Results are written by a background thread in batches at most ~50 ms old and
all are written before ``map`` returns, so a crash of the *parent* loses at
most the last batch. Functions with side effects other than their return
value (files, databases, messages) must make those idempotent themselves, e.g.
by writing to a path derived from the input and renaming atomically.

Profiling: ``map(..., profile=True)`` (or a directory) profiles the first
item each worker runs, with :func:`scaleforge.monitor.profiling.profile_call`,
into one pyinstrument HTML flame graph per worker; the paths are in
:attr:`MapReport.profiles` and logged. Metrics recorded per map:
``scaleforge_tasks_{submitted,completed,failed,retried}_total``,
``scaleforge_queue_depth``, ``scaleforge_map_cache_hits_total`` and
``scaleforge_task_duration_seconds`` (one sample per chunk: its compute time
per item), all labelled by ``executor``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import reprlib
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
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

logger = logging.getLogger(__name__)

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
    profiles : list of str
        With ``profile=``: the flame graphs written, one per worker that ran
        an item (paths on the worker's machine).
    store_failures : int
        Results of a ``@cached`` function that the cache did not store (a full
        disk, a lost Redis): they were returned, and a re-run computes them again.
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
    profiles: list[str] = dataclasses.field(default_factory=list)
    store_failures: int = 0

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
    profile: bool | str | os.PathLike[str] | None = None,
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
    profile_dir = _profile_dir(owner, profile)
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
        profile_dir=profile_dir,
    )
    return _Plan(run, star, total, on_error, ordered, time.perf_counter())


def _profile_dir(owner: str, profile: object) -> str | None:
    """Validate ``profile=`` and return the directory to write profiles to (created)."""
    if profile is None or profile is False:
        return None
    if profile is True:
        return tempfile.mkdtemp(prefix="scaleforge-profiles-")
    if not isinstance(profile, (str, os.PathLike)):
        raise InvalidParameterError(
            f"The 'profile' parameter of {owner} must be True, False, None or a directory path. "
            f"Got {type(profile).__name__} ({_summary.repr(profile)}) instead."
        )
    path = Path(profile)
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(
            f"The 'profile' parameter of {owner} must name a directory; {str(path)!r} is a file. "
            "Pass a directory (created if missing), or profile=True for a temporary one."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(
            f"The 'profile' directory of {owner} ({str(path)!r}) cannot be created: {exc}. "
            "Choose a writable directory."
        ) from exc
    return str(path)


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
        if run.profiles:
            logger.info("map profiles written: %s", ", ".join(run.profiles))


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
    profile: bool | str | os.PathLike[str] | None = None,
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
    profile : bool or path-like, optional
        Profile the first item each worker runs (pyinstrument, one HTML flame
        graph per worker) into this directory, or a new temporary directory
        with ``True``. The paths are in :attr:`MapReport.profiles` and logged.
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

    At-least-once: an item may run more than once (retries, a worker that
    died holding its chunk, an abandoned timeout); see the module
    documentation of :mod:`scaleforge.compute.map` for exactly when, and how
    the cache makes reruns of pure functions idempotent.

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
        profile=profile,
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
        profiles=list(run.profiles),
        store_failures=run.store_failures,
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
    profile: bool | str | os.PathLike[str] | None = None,
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
    fn, *iterables, executor, chunksize, retries, retry_backoff_s, timeout_s, ordered, progress, on_error, profile, **shared
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
        profile=profile,
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
