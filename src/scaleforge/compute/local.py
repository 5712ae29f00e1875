"""Local executors: a self-healing process pool (the default) and a thread pool.

:class:`ProcessExecutor` is written on ``multiprocessing`` primitives: one
duplex pipe per worker and one manager thread in the parent that sends tasks,
receives results and watches each worker's ``sentinel``. That is what lets it
do what :class:`concurrent.futures.ProcessPoolExecutor` cannot:

- a worker that dies (SIGKILL, the OOM killer, ``os._exit``) is detected at
  once, replaced, and the tasks it held are sent to another worker; the pool
  stays usable. Delivery is therefore **at least once**: a task whose worker
  died mid-run runs again (``max_task_restarts`` bounds how often a task may
  take its worker down before it fails with
  :class:`~scaleforge.errors.WorkerLostError`);
- a task over its ``timeout_s`` has its worker killed and replaced; its
  future fails with :class:`TimeoutError`;
- workers are forked once and reused by every later call (the registry keeps
  the default pool per process and shuts it down at exit);
- with ``min_workers < max_workers`` the pool autoscales
  (:mod:`scaleforge.compute.autoscale`), draining a worker before retiring it.

Fork caveats: ``fork`` (the default on Linux, fastest to start) copies the
parent, including locks held by other threads at that instant. Create the
pool early — before starting threads of your own, torch intra-op pools or a
Ray driver — or choose ``start_method="forkserver"`` (slower to start, safe).
A warning is logged when forking with extra threads running.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import cloudpickle

from scaleforge._validation import check_choice, check_number
from scaleforge.compute import _worker
from scaleforge.compute.autoscale import AutoscalePolicy, Autoscaler
from scaleforge.compute.base import Executor, TaskDeadlines
from scaleforge.compute.shared import SharedArray, is_large_array, release_shared, share_array
from scaleforge.errors import ComputeError, InvalidParameterError, WorkerLostError
from scaleforge.monitor import metrics
from scaleforge.settings import get_settings

__all__ = ["ProcessExecutor", "ThreadExecutor"]

logger = logging.getLogger(__name__)

_WORKERS = metrics.gauge("scaleforge_workers", "Workers of an executor", ["executor"])
_RESTARTS = metrics.counter(
    "scaleforge_worker_restarts_total", "Workers replaced after dying or timing out", ["executor"]
)
_SCALE = metrics.counter(
    "scaleforge_autoscale_decisions_total", "Autoscaling decisions", ["executor", "direction"]
)

# Payloads up to this size may be queued behind a running task: the pipe buffer
# holds them, so the manager never blocks on a busy worker (no deadlock with a
# worker that is itself sending a large result).
_PREFETCH_MAX_BYTES = 32 * 1024


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _cancel_future(future: cf.Future[Any]) -> None:
    future.cancel()


class ThreadExecutor(Executor):
    """Run tasks on threads of this process (for I/O-bound or GIL-releasing code).

    Parameters
    ----------
    max_workers : int, optional
        Number of threads; defaults to the number of usable CPUs.

    Notes
    -----
    A task over its ``timeout_s`` fails with :class:`TimeoutError`, but the
    thread cannot be stopped: it runs to completion in the background.

    Examples
    --------
    >>> with ThreadExecutor(max_workers=2) as ex:
    ...     ex.submit(pow, 2, 10).result()
    1024
    """

    name = "threads"

    def __init__(self, *, max_workers: int | None = None) -> None:
        check_number(max_workers, "max_workers", "ThreadExecutor", minimum=1, integer=True, allow_none=True)
        self._n = max_workers or _cpu_count()
        self._pool = cf.ThreadPoolExecutor(max_workers=self._n, thread_name_prefix="scaleforge")
        self._deadlines = TaskDeadlines(self.name)
        self._shutdown = False
        _WORKERS.labels(executor=self.name).set(self._n)

    @property
    def num_workers(self) -> int:
        """Number of threads."""
        return self._n

    @property
    def needs_pickling(self) -> bool:
        """False: threads share the caller's memory."""
        return False

    @property
    def task_overhead_s(self) -> float:
        """About 50 µs per task."""
        return 5e-5

    def submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` on a thread (see :meth:`Executor.submit_task`)."""
        if self._shutdown:
            raise ComputeError(
                "This ThreadExecutor was shut down; create a new one with scaleforge.executor()."
            )
        inner = self._pool.submit(fn, *args, **(kwargs or {}))
        if timeout_s is None:
            return inner
        return self._deadlines.wrap(inner, timeout_s, _cancel_future)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads (see :meth:`Executor.shutdown`)."""
        self._shutdown = True
        self._deadlines.close()
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


@dataclasses.dataclass(slots=True, eq=False)
class _Task:
    id: int
    payload: bytes
    future: cf.Future[Any]
    timeout_s: float | None
    restarts: int = 0


@dataclasses.dataclass(slots=True, eq=False)
class _Worker:
    wid: int
    process: Any  # multiprocessing.process.BaseProcess
    conn: Connection
    inflight: collections.deque[_Task] = dataclasses.field(default_factory=collections.deque)
    head_started: float = 0.0
    draining: bool = False
    killed_for_timeout: bool = False


def _foreign_threads() -> list[str]:
    """Names of the threads, other than the main and current ones, that a fork would copy mid-flight.

    Our own threads (named ``sf-*``: pool managers, map store writers, deadline
    watchers) are fork-aware and left out; only foreign threads can hold a lock
    the child inherits.
    """
    return [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread()
        and t is not threading.current_thread()
        and t.is_alive()
        and not t.name.startswith("sf-")
    ]


class ProcessExecutor(Executor):
    """A pool of worker processes that survives worker deaths.

    Parameters
    ----------
    max_workers : int, optional
        Worker processes; defaults to ``Settings.compute.max_workers`` or the
        number of usable CPUs.
    min_workers : int, optional
        With ``min_workers < max_workers`` the pool autoscales between the two
        (``autoscale`` tunes how). Default: a fixed pool of ``max_workers``.
    start_method : {"fork", "forkserver", "spawn"}, optional
        How workers start; ``fork`` on Linux by default (see the module notes).
    max_task_restarts : int, default=3
        How many times one task may lose its worker before its future fails
        with :class:`~scaleforge.errors.WorkerLostError`.
    autoscale : AutoscalePolicy, optional
        Thresholds of the autoscaler (built from ``min_workers``/``max_workers``
        when omitted).
    threads_per_worker : int, optional
        Size of each worker's native thread pools (OpenMP, BLAS, torch), set
        with threadpoolctl when the worker starts. Default: the usable CPUs
        divided by ``max_workers`` (at least 1), so workers do not oversubscribe
        the cores. This also makes forked workers safe after the parent used
        OpenMP (e.g. scikit-learn's k-means): GNU OpenMP's thread pool does not
        survive ``fork``, and a forked child that opens a parallel region with
        more than one thread hangs.

    Examples
    --------
    >>> with ProcessExecutor(max_workers=2) as ex:
    ...     ex.submit(sum, [1, 2, 3]).result()
    6
    """

    name = "processes"

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        min_workers: int | None = None,
        start_method: str | None = None,
        max_task_restarts: int = 3,
        autoscale: AutoscalePolicy | None = None,
        threads_per_worker: int | None = None,
    ) -> None:
        owner = "ProcessExecutor"
        check_number(
            threads_per_worker, "threads_per_worker", owner, minimum=1, integer=True, allow_none=True
        )
        check_number(max_workers, "max_workers", owner, minimum=1, integer=True, allow_none=True)
        check_number(min_workers, "min_workers", owner, minimum=0, integer=True, allow_none=True)
        check_number(max_task_restarts, "max_task_restarts", owner, minimum=0, integer=True)
        if autoscale is not None and not isinstance(autoscale, AutoscalePolicy):
            raise InvalidParameterError(
                f"The 'autoscale' parameter of {owner} must be an AutoscalePolicy or None. "
                f"Got {type(autoscale).__name__} instead."
            )
        methods = mp.get_all_start_methods()
        if start_method is None:
            start_method = get_settings().compute.start_method
        if start_method is None:
            start_method = "fork" if "fork" in methods and sys.platform.startswith("linux") else "spawn"
        check_choice(start_method, "start_method", owner, methods)
        n_max = max_workers or (autoscale.max_workers if autoscale else None) or _cpu_count()
        if autoscale is None and min_workers is not None and min_workers < n_max:
            autoscale = AutoscalePolicy(min_workers=min_workers, max_workers=n_max)
        if autoscale is not None and min_workers is not None and min_workers > autoscale.max_workers:
            raise InvalidParameterError(
                f"The 'min_workers' parameter of {owner} ({min_workers}) must be <= max_workers "
                f"({autoscale.max_workers}). Lower min_workers or raise max_workers."
            )
        self._ctx = mp.get_context(start_method)
        self.start_method = start_method
        # Workers record metrics into this shared directory so /metrics adds them up (settings
        # are read here, at the edge, and passed to each worker).
        mp_dir = get_settings().monitor.multiprocess_dir
        self._metrics_dir = str(mp_dir) if mp_dir is not None else None
        self._max_task_restarts = max_task_restarts
        self._autoscaler = Autoscaler(autoscale) if autoscale is not None else None
        self._target = autoscale.min_workers if autoscale is not None else n_max
        self._max = n_max if autoscale is None else autoscale.max_workers
        self.threads_per_worker = threads_per_worker or max(1, _cpu_count() // self._max)
        self._warned_threads = False
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._workers: dict[int, _Worker] = {}
        self._ids = itertools.count()
        self._wids = itertools.count()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False  # a wake-up byte is in the pipe, not yet read
        self._shutdown = False
        self._terminating = False
        self._stopped = threading.Event()
        self._shared: list[SharedArray] = []
        self.restarts = 0
        self.tasks_done = 0
        self.scale_events: list[tuple[str, int]] = []
        self._warn_if_threads()
        for _ in range(self._target):
            self._spawn()
        self._thread = threading.Thread(target=self._manage, name="sf-process-pool", daemon=True)
        self._thread.start()
        atexit.register(_atexit_shutdown, weakref.ref(self))
        _WORKERS.labels(executor=self.name).set(len(self._workers))

    # ---- public ------------------------------------------------------------------------
    @property
    def num_workers(self) -> int:
        """Workers that may run tasks (the autoscaling maximum when autoscaling)."""
        return self._max if self._autoscaler is not None else max(1, self._target)

    @property
    def live_workers(self) -> int:
        """Worker processes alive right now."""
        with self._lock:
            return sum(1 for w in self._workers.values() if not w.draining)

    @property
    def kills_timed_out_tasks(self) -> bool:
        """True: the worker running a timed-out task is killed and replaced."""
        return True

    @property
    def task_overhead_s(self) -> float:
        """About 0.4 ms of parent CPU per task (pickling, two pipe hops, two thread wake-ups).

        Measured on 2 busy cores (``benchmarks/bench_compute.py``, ``ms1`` and
        ``cached`` cases): with the chunker's 2 % target, chunks run ~20 ms.
        """
        return 4e-4

    def worker_pids(self) -> list[int]:
        """PIDs of the current workers (for tests and monitoring)."""
        with self._lock:
            workers = list(self._workers.values())
        return [int(w.process.pid) for w in workers]

    def stats(self) -> dict[str, Any]:
        """Workers, restarts, completed tasks, queued tasks and scaling events."""
        return {
            "name": self.name,
            "workers": self.live_workers,
            "restarts": self.restarts,
            "tasks_done": self.tasks_done,
            "queued": len(self._pending),
            "scale_events": list(self.scale_events),
        }

    def submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> cf.Future[Any]:
        """Send ``fn(*args, **kwargs)`` to a worker (see :meth:`Executor.submit_task`).

        Raises
        ------
        ComputeError
            If the executor was shut down.
        InvalidParameterError
            If the function or an argument cannot be pickled with cloudpickle.
        """
        if self._shutdown:
            raise ComputeError(
                "This ProcessExecutor was shut down; create a new one with scaleforge.executor()."
            )
        task_id = next(self._ids)
        try:
            payload = cloudpickle.dumps((task_id, fn, args, kwargs or {}))
        except Exception as exc:
            raise InvalidParameterError(
                f"Cannot send {getattr(fn, '__qualname__', fn)!r} and its arguments to a worker process: "
                f"{type(exc).__name__}: {exc}. Pass picklable values, or use executor='threads'."
            ) from exc
        future: cf.Future[Any] = cf.Future()
        with self._lock:
            self._pending.append(_Task(task_id, payload, future, timeout_s))
        self._wake()
        return future

    def share(self, value: Any) -> Any:
        """Write a large array once to ``/dev/shm``; workers memory-map it (see :mod:`.shared`)."""
        if is_large_array(value, 0):
            handle = share_array(value)
            self._shared.append(handle)
            return handle
        return value

    def release(self, handle: Any) -> None:
        """Delete a shared file created by :meth:`share`."""
        if isinstance(handle, SharedArray):
            release_shared(handle)
            if handle in self._shared:
                self._shared.remove(handle)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers (see :meth:`Executor.shutdown`)."""
        if self._shutdown:
            return
        self._shutdown = True
        if cancel_futures:
            with self._lock:
                while self._pending:
                    self._pending.popleft().future.cancel()
        self._wake()
        if wait:
            self._stopped.wait()
            self._thread.join()
        for handle in list(self._shared):
            self.release(handle)
        _WORKERS.labels(executor=self.name).set(0)

    def kill_worker(self, pid: int | None = None) -> int:
        """SIGKILL one worker (the first, or ``pid``); return its pid. For fault tests."""
        for w in list(self._workers.values()):
            if pid is None or w.process.pid == pid:
                os.kill(int(w.process.pid), signal.SIGKILL)
                return int(w.process.pid)
        raise InvalidParameterError(f"No worker with pid {pid!r}; live workers are {self.worker_pids()}.")

    # ---- internals ---------------------------------------------------------------------
    def _wake(self) -> None:
        with self._lock:
            # One byte wakes the manager; while it is unread, more would only cost a
            # syscall and a thread switch per submitted task.
            if self._wake_w < 0 or self._wake_pending:
                return
            self._wake_pending = True
            with contextlib.suppress(OSError):  # pipe full: the manager is awake anyway
                os.write(self._wake_w, b"x")

    def _warn_if_threads(self) -> None:
        if self.start_method != "fork" or self._warned_threads:
            return
        others = _foreign_threads()
        if others:
            self._warned_threads = True
            logger.warning(
                "forking worker processes while %d other thread(s) run (%s); if workers hang, create "
                "the pool earlier or use start_method='forkserver'",
                len(others),
                ", ".join(others[:5]),
            )

    def _spawn(self) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        fork = self.start_method == "fork"
        proc = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker.worker_main,
            args=(child_conn, parent_conn if fork else None, self._metrics_dir, self.threads_per_worker),
            name="scaleforge-worker",
            daemon=True,
        )
        proc.start()
        child_conn.close()
        wid = next(self._wids)
        with self._lock:
            self._workers[wid] = _Worker(wid, proc, parent_conn)

    def _send(self, worker: _Worker, task: _Task) -> bool:
        if not task.future.running() and not task.future.set_running_or_notify_cancel():
            return True  # cancelled while queued: drop it
        if not worker.inflight:
            worker.head_started = time.monotonic()
        worker.inflight.append(task)
        try:
            worker.conn.send_bytes(task.payload)
        except OSError:
            return False  # dead worker; its sentinel will fire and requeue the task
        return True

    def _dispatch(self) -> None:
        with self._lock:
            if not self._pending:
                return
            for worker in sorted(self._workers.values(), key=lambda w: len(w.inflight)):
                while self._pending and not worker.draining:
                    n = len(worker.inflight)
                    head = self._pending[0]
                    if n >= 2 or (n == 1 and (len(head.payload) > _PREFETCH_MAX_BYTES or head.timeout_s)):
                        break
                    task = self._pending.popleft()
                    if not self._send(worker, task):
                        break

    def _on_result(self, worker: _Worker) -> None:
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):
            return  # the sentinel handles the death
        task_id, ok, value = _worker.decode_result(data)
        if not worker.inflight or worker.inflight[0].id != task_id:
            logger.error("worker %s returned task %s out of order; ignoring it", worker.process.pid, task_id)
            return
        task = worker.inflight.popleft()
        worker.head_started = time.monotonic()
        self.tasks_done += 1
        if task.future.done():
            return
        if ok:
            task.future.set_result(value)
        else:
            exc = (
                value.to_exception()
                if isinstance(value, _worker.RemoteException)
                else ComputeError(str(value))
            )
            task.future.set_exception(exc)

    def _on_death(self, worker: _Worker) -> None:
        # results sent just before dying are still in the pipe
        while True:
            try:
                if not worker.conn.poll():
                    break
            except (EOFError, OSError):
                break
            before = len(worker.inflight)
            self._on_result(worker)
            if len(worker.inflight) == before:
                break
        worker.process.join(timeout=1)
        code = worker.process.exitcode
        with self._lock:
            del self._workers[worker.wid]
        worker.conn.close()
        if self._metrics_dir is not None:
            with contextlib.suppress(Exception):  # metrics are best effort
                metrics.mark_process_dead(int(worker.process.pid), self._metrics_dir)
        if worker.draining and not worker.inflight:
            return
        if self._terminating:  # we killed it at exit: nothing to resubmit
            for task in worker.inflight:
                if not task.future.done() and not task.future.cancel():
                    task.future.set_exception(
                        ComputeError("The process pool was terminated at interpreter exit.")
                    )
            return
        self.restarts += 1
        _RESTARTS.labels(executor=self.name).inc()
        lost = list(worker.inflight)
        requeue: list[_Task] = []
        for i, task in enumerate(lost):
            if task.future.done():
                continue
            if i == 0 and not worker.killed_for_timeout:  # the task running when the worker died
                task.restarts += 1
                if task.restarts > self._max_task_restarts:
                    task.future.set_exception(
                        WorkerLostError(
                            f"A worker process died (exit code {code}) while running this task, "
                            f"{task.restarts} time(s); giving up. The task may exhaust memory or crash the "
                            "interpreter; raise max_task_restarts to try harder."
                        )
                    )
                    continue
            requeue.append(task)
        if lost:
            logger.warning(
                "worker pid %s died (exit code %s) holding %d task(s); resubmitting %d",
                worker.process.pid,
                code,
                len(lost),
                len(requeue),
            )
        with self._lock:
            self._pending.extendleft(reversed(requeue))
        if not self._terminating and self.live_workers < self._target:
            self._spawn()

    def _check_deadlines(self, now: float) -> float | None:
        nearest: float | None = None
        for worker in list(self._workers.values()):
            if not worker.inflight:
                continue
            task = worker.inflight[0]
            if task.timeout_s is None or task.future.done():
                continue
            deadline = worker.head_started + task.timeout_s
            if deadline <= now:
                task.future.set_exception(
                    TimeoutError(
                        f"task exceeded timeout_s={task.timeout_s}; its worker was killed and replaced"
                    )
                )
                worker.inflight.popleft()
                worker.killed_for_timeout = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(worker.process.pid), signal.SIGKILL)
            else:
                nearest = deadline if nearest is None else min(nearest, deadline)
        return nearest

    def _autoscale(self, now: float) -> None:
        if self._autoscaler is None or self._shutdown:
            return
        active = [w for w in self._workers.values() if not w.draining]
        busy = sum(1 for w in active if w.inflight)
        backlog = len(self._pending) + sum(len(w.inflight) for w in active)
        delta = self._autoscaler.decide(now, workers=len(active), busy=busy, backlog=backlog)
        if delta > 0:
            for _ in range(delta):
                self._spawn()
            self._target = len(active) + delta
            self._record_scale("up", self._target)
        elif delta < 0:
            idle = [w for w in active if not w.inflight]
            for w in idle[:-delta]:
                w.draining = True  # idle, so nothing to drain; it exits when told
                with contextlib.suppress(OSError):
                    w.conn.send_bytes(b"")
            self._target = len(active) - min(len(idle), -delta)
            self._record_scale("down", self._target)
        _WORKERS.labels(executor=self.name).set(self.live_workers)

    def _record_scale(self, direction: str, workers: int) -> None:
        self.scale_events.append((direction, workers))
        _SCALE.labels(executor=self.name, direction=direction).inc()
        logger.info("autoscale %s: %s now has %d worker(s)", direction, self.name, workers)

    def _manage(self) -> None:
        try:
            self._loop()
        except Exception:  # the pool must fail loudly, not hang its callers
            logger.exception("process pool manager crashed; failing pending tasks")
            err = ComputeError(
                "The process pool's manager thread crashed; see the log. Create a new executor."
            )
            with self._lock:
                tasks = list(self._pending) + [t for w in self._workers.values() for t in w.inflight]
                self._pending.clear()
            for t in tasks:
                if not t.future.done():
                    t.future.set_exception(err)
            self._shutdown = True
        finally:
            self._stop_workers()
            self._stopped.set()

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            self._autoscale(now)
            if self._terminating:
                self._cancel_all()
                return
            self._dispatch()
            if self._shutdown and not self._pending and all(not w.inflight for w in self._workers.values()):
                return
            nearest = self._check_deadlines(now)
            timeout = None if nearest is None else max(0.0, nearest - now)
            if self._autoscaler is not None:
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            by_conn = {w.conn: w for w in self._workers.values()}
            by_sentinel = {w.process.sentinel: w for w in self._workers.values()}
            ready = wait([self._wake_r, *by_conn, *by_sentinel], timeout=timeout)
            dead: list[_Worker] = []
            for obj in ready:
                if obj == self._wake_r:
                    with self._lock:  # cleared before the next _dispatch, which sees every queued task
                        self._wake_pending = False
                        os.read(self._wake_r, 65536)
                elif obj in by_conn:
                    self._on_result(by_conn[obj])
                elif isinstance(obj, int) and obj in by_sentinel:
                    dead.append(by_sentinel[obj])
            for worker in dead:
                if worker.wid in self._workers:
                    self._on_death(worker)
            for worker in list(self._workers.values()):
                if worker.draining and not worker.inflight and not worker.process.is_alive():
                    self._on_death(worker)

    def _cancel_all(self) -> None:
        with self._lock:
            tasks = list(self._pending) + [t for w in self._workers.values() for t in w.inflight]
            self._pending.clear()
        for t in tasks:
            if not t.future.done() and not t.future.cancel():
                t.future.set_exception(ComputeError("The process pool was terminated at interpreter exit."))

    def _stop_workers(self) -> None:
        for w in list(self._workers.values()):
            with contextlib.suppress(OSError):
                w.conn.send_bytes(b"")
        deadline = time.monotonic() + 2.0
        for w in list(self._workers.values()):
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=1)
            w.conn.close()
        with self._lock:
            self._workers.clear()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = -1

    def _terminate_at_exit(self) -> None:
        """Kill workers quickly at interpreter exit; queued and running tasks are cancelled."""
        if self._shutdown:
            return
        self._terminating = True
        self.shutdown(wait=False, cancel_futures=True)
        for w in list(self._workers.values()):
            with contextlib.suppress(Exception):  # interpreter teardown: best effort
                w.process.kill()
        self._stopped.wait(timeout=5)


def _atexit_shutdown(ref: weakref.ref[ProcessExecutor]) -> None:
    executor = ref()
    if executor is not None:
        executor._terminate_at_exit()
