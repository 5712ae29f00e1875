"""The ``Executor`` contract every compute backend implements.

An :class:`Executor` is a :class:`concurrent.futures.Executor` (``submit``,
``map``, ``shutdown``, context manager) with three additions that
:func:`scaleforge.map` relies on:

- :meth:`Executor.submit_task` takes an optional per-task ``timeout_s``: a task
  that runs longer fails with :class:`TimeoutError` and is stopped where the
  backend can stop it (processes: the worker is killed and replaced; Ray: the
  task is force-cancelled; Dask and threads: the result is abandoned).
- :meth:`Executor.share` turns a large value into a handle that travels cheaply
  and arrives in the worker as the value, once per worker.
- :attr:`Executor.num_workers` sizes chunks.

Backends: :class:`~scaleforge.compute.local.ProcessExecutor` (``"processes"``),
:class:`~scaleforge.compute.local.ThreadExecutor` (``"threads"``),
:class:`~scaleforge.compute.ray.RayExecutor` (``"ray"``) and
:class:`~scaleforge.compute.dask.DaskExecutor` (``"dask"``).
"""

from __future__ import annotations

import abc
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures as cf
from typing import Any

__all__ = ["Executor", "TaskDeadlines"]

logger = logging.getLogger(__name__)


class Executor(cf.Executor, abc.ABC):
    """A pool of workers that runs Python callables.

    Subclasses implement :meth:`submit_task`, :meth:`shutdown` and
    :attr:`num_workers`. :meth:`share`, :meth:`release` and the capability
    properties have working defaults.

    Executors are context managers; leaving the block shuts the executor down.
    An abandoned :meth:`map` iterator cancels the tasks it has not returned.

    See Also
    --------
    scaleforge.executor : Build an executor by name.
    scaleforge.map : The parallel map that runs on any executor.
    """

    #: Registry name of the backend (``"processes"``, ``"ray"``, ...).
    name: str = "executor"

    @abc.abstractmethod
    def submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> cf.Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` and return its future.

        Parameters
        ----------
        fn : callable
            The function; it is serialised with cloudpickle for process and
            cluster backends, so lambdas and functions from ``__main__`` work.
        args : tuple, default=()
            Positional arguments. Handles from :meth:`share` are resolved to
            their values in the worker.
        kwargs : dict, optional
            Keyword arguments (handles are resolved as well).
        timeout_s : float, optional
            Fail the future with :class:`TimeoutError` when the task runs longer.

        Returns
        -------
        concurrent.futures.Future
        """

    @abc.abstractmethod
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers; pending futures are cancelled if ``cancel_futures``.

        Parameters
        ----------
        wait : bool, default=True
            Block until running tasks finish and workers have exited.
        cancel_futures : bool, default=False
            Cancel tasks that have not started.
        """

    @property
    @abc.abstractmethod
    def num_workers(self) -> int:
        """Number of tasks that can run at the same time (>= 1)."""

    # ---- concurrent.futures API -------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Schedule ``fn(*args, **kwargs)`` (the :class:`concurrent.futures.Executor` API).

        Parameters
        ----------
        fn : callable
            The function to run.
        *args, **kwargs
            Its arguments.

        Returns
        -------
        concurrent.futures.Future
        """
        return self.submit_task(fn, args, kwargs)

    # ---- optional hooks ---------------------------------------------------------------
    def share(self, value: Any) -> Any:
        """Return a handle that arrives in workers as ``value``, shipped once per worker.

        The default returns ``value`` itself (right for threads). Process and
        cluster backends return a small handle (a shared-memory file, a Ray
        object reference, a scattered Dask future). Pass the handle as a
        top-level argument of :meth:`submit_task`.

        Parameters
        ----------
        value : object
            Typically a large read-only numpy array.

        Returns
        -------
        object
        """
        return value

    def release(self, handle: Any) -> None:
        """Free what :meth:`share` allocated for ``handle``. Default: nothing."""

    @property
    def is_alive(self) -> bool:
        """False once :meth:`shutdown` was called."""
        return not getattr(self, "_shutdown", False)

    @property
    def kills_timed_out_tasks(self) -> bool:
        """True if a task over its ``timeout_s`` is actually stopped (not just abandoned)."""
        return False

    @property
    def needs_pickling(self) -> bool:
        """True if functions and arguments are pickled to reach workers (all but threads)."""
        return True

    @property
    def task_overhead_s(self) -> float:
        """Typical round-trip cost of one task; :mod:`~scaleforge.compute.chunking` sizes chunks from it."""
        return 1e-3

    def stats(self) -> dict[str, Any]:
        """Return backend counters (workers, tasks, restarts); default: workers only."""
        return {"name": self.name, "workers": self.num_workers}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_workers={self.num_workers})"


class TaskDeadlines:
    """A watchdog thread failing futures that are not done by their deadline.

    Backends that cannot measure when a task starts use it: the clock starts at
    submission. ``on_timeout(inner)`` lets the backend stop the work (Ray
    cancels the task; others abandon it).

    Parameters
    ----------
    name : str
        Used in the thread's name and in log messages.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[
            tuple[float, int, cf.Future[Any], cf.Future[Any], Callable[[cf.Future[Any]], None]]
        ] = []
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def wrap(
        self,
        inner: cf.Future[Any],
        timeout_s: float,
        on_timeout: Callable[[cf.Future[Any]], None],
    ) -> cf.Future[Any]:
        """Return a future mirroring ``inner`` that fails after ``timeout_s`` seconds.

        Parameters
        ----------
        inner : Future
            The backend's future.
        timeout_s : float
            Seconds from now.
        on_timeout : callable
            Called with ``inner`` when the deadline passes first.

        Returns
        -------
        Future
        """
        outer: cf.Future[Any] = cf.Future()
        outer.set_running_or_notify_cancel()

        def _copy(f: cf.Future[Any]) -> None:
            if outer.done():
                return
            try:
                if f.cancelled():
                    outer.set_exception(cf.CancelledError())
                elif (err := f.exception()) is not None:
                    outer.set_exception(err)
                else:
                    outer.set_result(f.result())
            except cf.InvalidStateError:  # the watchdog won the race
                pass

        inner.add_done_callback(_copy)
        with self._cond:
            heapq.heappush(
                self._heap, (time.monotonic() + timeout_s, next(self._counter), outer, inner, on_timeout)
            )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"sf-deadlines-{self._name}", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return outer

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                    self._cond.wait(wait)
                if self._closed:
                    return
                deadline, _, outer, inner, on_timeout = heapq.heappop(self._heap)
            if outer.done():
                continue
            try:
                outer.set_exception(TimeoutError(f"task exceeded its timeout (deadline {deadline:.3f})"))
            except cf.InvalidStateError:
                continue
            try:
                on_timeout(inner)
            except Exception:  # a failing cancel must not kill the watchdog
                logger.exception("%s: stopping a timed-out task failed", self._name)

    def close(self) -> None:
        """Stop the watchdog thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
