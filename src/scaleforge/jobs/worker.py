"""The job worker: claim jobs, run them on an executor, heartbeat, store results.

A :class:`Worker` keeps up to ``concurrency`` jobs in flight on a compute
executor (``processes``, ``threads``, ``ray``, ``dask``, ``slurm`` or any
registered name). A heartbeat thread renews the lease of every job it holds
every ``lease_s / 3`` seconds; if the worker dies, the leases lapse and another
worker re-queues the jobs (:meth:`~scaleforge.jobs.queue.JobQueue.requeue_expired`).

Results are written by :mod:`scaleforge.jobs.results` (plain JSON as ``.json``,
anything else — numpy arrays, dicts of arrays — as a signed cache-codec frame
``.sfc``) to ``<result_dir>/<job id>/<claim token>.<ext>``, and the job row
stores the file's URI only if the claim still holds; otherwise the file is
removed. So a job has exactly one recorded result even when a slow worker and
its replacement both finish.

Delivery is **at least once**. A job runs again when its worker dies or stalls
longer than its lease (the lease expires, the job is re-queued). When a
heartbeat finds that the worker *lost* a job it is still running — its lease
expired and the job was re-queued, or its owner cancelled it
(``POST /v1/jobs/{id}/cancel``) — the worker abandons it at once: it stops
renewing that lease, never records its result, and stops the computation where
the executor allows it:

- a task not started yet is cancelled and never runs;
- on executors whose tasks own their process (``kills_timed_out_tasks``:
  ``processes``, ``ray``) the task's process is ended: each job runs with a
  watchdog that polls a cancel marker (``<token>.cancel`` next to the result)
  and exits the process when it appears; the executor replaces the process,
  and a re-sent task sees the marker and stops before running;
- on ``threads``, ``dask`` and ``slurm`` a running Python function cannot be
  interrupted: it runs to the end and its result is dropped (logged). Jobs
  should therefore be idempotent, as with any at-least-once queue.

The worker exports ``scaleforge_jobs_queue_depth`` and
``scaleforge_jobs_recommended_workers`` (``ceil(depth / concurrency)``) for an
external autoscaler (Kubernetes HPA on an external metric, or KEDA) to act on.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaleforge.compute.base import Executor
from scaleforge.errors import InvalidParameterError, JobError, ScaleforgeError, WorkerLostError
from scaleforge.jobs.queue import Claim, JobQueue
from scaleforge.jobs.registry import get_workload
from scaleforge.jobs.results import read_result, write_result
from scaleforge.jobs.store import SQLJobStore
from scaleforge.monitor.metrics import counter, gauge, histogram
from scaleforge.settings import get_settings

if TYPE_CHECKING:
    from scaleforge.codec import Signer

__all__ = ["Worker", "read_result", "recommend_workers", "run_job", "run_workload"]

logger = logging.getLogger(__name__)

# Depth, queued and per-status counts are read from the shared database, so every worker and the
# service export the same figure: "livemax" (not the default livesum) keeps it right when several
# processes record into one multiprocess directory.
_DEPTH = gauge("scaleforge_jobs_queue_depth", "Jobs queued or running", [], multiprocess_mode="livemax")
_QUEUED = gauge("scaleforge_jobs_queued", "Jobs waiting for a worker", [], multiprocess_mode="livemax")
_RECOMMENDED = gauge(
    "scaleforge_jobs_recommended_workers",
    "Workers needed for the current queue depth (autoscaler input)",
    [],
    multiprocess_mode="livemax",
)
_BY_STATUS = gauge("scaleforge_jobs_by_status", "Jobs per status", ["status"], multiprocess_mode="livemax")
_INFLIGHT = gauge("scaleforge_jobs_worker_inflight", "Jobs this worker is running", [])
_CLAIM_SECONDS = histogram(
    "scaleforge_jobs_claim_seconds",
    "Latency of one claim round trip to the job database (claimed or empty)",
    [],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
_WAIT_SECONDS = histogram(
    "scaleforge_jobs_wait_seconds",
    "Time a job waited from submission to its claim by a worker",
    ["workload"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0),
)
_ABANDONED = counter(
    "scaleforge_jobs_abandoned_total", "Jobs a worker stopped or dropped after losing their lease", ["how"]
)
#: How often a running job's watchdog looks for its cancel marker.
CANCEL_POLL_S = 0.2
#: Exit code of a process ended because its job was cancelled or its lease lost.
CANCEL_EXIT_CODE = 75


def recommend_workers(
    depth: int, concurrency: int, *, min_workers: int = 0, max_workers: int | None = None
) -> int:
    """Workers needed so that every queued or running job has a slot.

    Parameters
    ----------
    depth : int
        Jobs queued or running.
    concurrency : int
        Jobs one worker runs at once (>= 1).
    min_workers : int, default=0
    max_workers : int, optional

    Returns
    -------
    int

    Examples
    --------
    >>> recommend_workers(10, 4)
    3
    >>> recommend_workers(0, 4, min_workers=1)
    1
    """
    if concurrency < 1 or depth < 0:
        raise InvalidParameterError(
            f"recommend_workers needs depth >= 0 and concurrency >= 1. Got depth={depth}, concurrency={concurrency}."
        )
    n = max(min_workers, math.ceil(depth / concurrency))
    return n if max_workers is None else min(n, max_workers)


def run_workload(target: str | Callable[..., Any], params: dict[str, Any]) -> Any:
    """Run one job's function (this is what executors receive).

    Parameters
    ----------
    target : str or callable
        ``"module:qualname"`` or the function.
    params : dict
        Validated parameters.

    Returns
    -------
    object
        The function's return value.
    """
    if callable(target):
        fn = target
    else:
        import importlib

        module, _, qualname = target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        fn = obj
    return fn(**params)


def run_job(
    target: str | Callable[..., Any],
    params: dict[str, Any],
    cancel_path: str | None = None,
    stop_on_cancel: bool = False,
) -> Any:
    """Run one job where the executor puts it, honouring its cancel marker.

    Parameters
    ----------
    target : str or callable
        ``"module:qualname"`` or the function.
    params : dict
        Validated parameters.
    cancel_path : str, optional
        A file whose existence means "stop": checked before the job starts.
    stop_on_cancel : bool, default=False
        Also watch the marker while the job runs and end this *process* when it
        appears (only for executors whose tasks own their process).

    Returns
    -------
    object
        The function's return value.

    Raises
    ------
    JobError
        If the marker exists before the job starts.
    """
    if cancel_path is not None and os.path.exists(cancel_path):
        raise JobError("the job was cancelled or its lease lost before it started; not running it")
    if cancel_path is None or not stop_on_cancel:
        return run_workload(target, params)
    done = threading.Event()

    def _watch() -> None:
        while not done.wait(CANCEL_POLL_S):
            if os.path.exists(cancel_path):
                logger.warning("job cancelled or its lease lost: ending process %d", os.getpid())
                os._exit(CANCEL_EXIT_CODE)

    watchdog = threading.Thread(target=_watch, name="sf-job-watchdog", daemon=True)
    watchdog.start()
    try:
        return run_workload(target, params)
    finally:
        done.set()


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claim and run jobs until stopped.

    Parameters
    ----------
    store : SQLJobStore or str, optional
        The store, or a database URL; defaults to ``Settings.jobs.database_url``.
    executor : str or Executor, default="processes"
        Where jobs run; a name is built with ``scaleforge.executor(name)``.
    concurrency : int, default=1
        Jobs in flight at once.
    lease_s : float, optional
        Lease length; defaults to ``Settings.jobs.lease_s``.
    poll_interval_s : float, default=0.5
        Sleep between claims when the queue is empty.
    result_dir : path-like, optional
        Where results are written; defaults to ``Settings.jobs.result_dir``.
    worker_id : str, optional
        Defaults to ``host:pid:random``.
    workloads : collection of str, optional
        Claim only these workloads (default: any).
    signer : scaleforge.codec.Signer, optional
        Signs non-JSON results; defaults to the cache key from settings
        (:func:`scaleforge.jobs.results.default_signer`).

    Raises
    ------
    InvalidParameterError
        For a bad argument.

    Examples
    --------
    >>> import tempfile, os
    >>> from scaleforge.jobs.models import JobSpec
    >>> tmp = tempfile.mkdtemp()
    >>> store = SQLJobStore(f"sqlite:///{tmp}/w.db")
    >>> job, _ = store.submit(JobSpec("scaleforge.sleep", {"seconds": 0}), owner="me")
    >>> Worker(store, executor="threads", result_dir=tmp).run(stop_when_idle=True)
    1
    >>> store.get(job.id).status
    'succeeded'
    """

    def __init__(
        self,
        store: SQLJobStore | str | None = None,
        *,
        executor: str | Executor = "processes",
        concurrency: int = 1,
        lease_s: float | None = None,
        poll_interval_s: float = 0.5,
        result_dir: str | os.PathLike[str] | None = None,
        worker_id: str | None = None,
        workloads: Collection[str] | None = None,
        signer: Signer | None = None,
    ) -> None:
        owner = "Worker"
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= 10_000
        ):
            raise InvalidParameterError(
                f"The 'concurrency' parameter of {owner} must be an int between 1 and 10000. Got {concurrency!r}."
            )
        if (
            isinstance(poll_interval_s, bool)
            or not isinstance(poll_interval_s, (int, float))
            or not 0.001 <= poll_interval_s <= 3600
        ):
            raise InvalidParameterError(
                f"The 'poll_interval_s' parameter of {owner} must be seconds between 0.001 and 3600. "
                f"Got {poll_interval_s!r}."
            )
        if not isinstance(executor, (str, Executor)):
            raise InvalidParameterError(
                f"The 'executor' parameter of {owner} must be a name such as 'processes', 'threads', 'ray', "
                f"'dask' or 'slurm', or a scaleforge.Executor. Got {type(executor).__name__} instead."
            )
        self._owns_store = not isinstance(store, SQLJobStore)
        self.store = store if isinstance(store, SQLJobStore) else SQLJobStore(store)
        self.queue = JobQueue(self.store, lease_s=lease_s)
        self.concurrency = concurrency
        self.poll_interval_s = float(poll_interval_s)
        self.result_dir = Path(result_dir) if result_dir is not None else get_settings().jobs.result_dir
        self.worker_id = worker_id or _default_worker_id()
        self.workloads = None if workloads is None else sorted(workloads)
        for name in self.workloads or ():
            get_workload(name)  # fail fast on a typo
        self._executor_spec = executor
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._inflight: dict[cf.Future[Any], Claim] = {}
        self._kills_tasks = False
        self._lost: set[str] = set()  # claim tokens whose lease this worker lost
        self._signer = signer
        self.processed = 0
        self.abandoned = 0

    # ---- control -----------------------------------------------------------------------
    def stop(self) -> None:
        """Stop claiming; :meth:`run` returns once the jobs in flight finish."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (no new claims)."""
        return self._stop.is_set()

    def _make_executor(self) -> tuple[Executor, bool]:
        if isinstance(self._executor_spec, Executor):
            return self._executor_spec, False
        from scaleforge.compute.registry import executor

        name = self._executor_spec
        options: dict[str, Any] = {}
        if name in ("processes", "threads"):
            options["max_workers"] = self.concurrency
        return executor(name, **options), True

    def run(self, *, stop_when_idle: bool = False, max_jobs: int | None = None) -> int:
        """Claim and run jobs until :meth:`stop` (or the queue is empty, or ``max_jobs`` ran).

        Parameters
        ----------
        stop_when_idle : bool, default=False
            Return once nothing is queued and nothing is in flight.
        max_jobs : int, optional
            Return after this many jobs finished.

        Returns
        -------
        int
            Jobs finished by this call.
        """
        ex, owns_executor = self._make_executor()
        self._kills_tasks = bool(ex.kills_timed_out_tasks)
        self.result_dir.mkdir(parents=True, exist_ok=True)
        beat = threading.Thread(
            target=self._heartbeat_loop, name=f"sf-heartbeat-{self.worker_id}", daemon=True
        )
        beat.start()
        done_here = 0
        last_sweep = last_metrics = 0.0
        logger.info("worker %s started on %r (concurrency %d)", self.worker_id, ex, self.concurrency)
        try:
            while True:
                now = time.monotonic()
                try:
                    if now - last_sweep >= min(self.queue.lease_s / 2, 5.0):
                        self.queue.requeue_expired()
                        last_sweep = now
                    if now - last_metrics >= 5.0:
                        self._export_metrics()
                        last_metrics = now
                    claimed = self._fill(ex, max_jobs, done_here)
                except JobError:
                    # A database blip must not kill the worker: held jobs keep running, their
                    # leases are renewed once the database answers again.
                    logger.exception("worker %s: job database unavailable; retrying", self.worker_id)
                    self._stop.wait(min(5.0, self.poll_interval_s * 10))
                    claimed = False
                with self._lock:
                    pending = list(self._inflight)
                if not pending:
                    if self._stop.is_set() or (max_jobs is not None and done_here >= max_jobs):
                        break
                    if stop_when_idle and not claimed:
                        break
                    self._stop.wait(self.poll_interval_s)
                    continue
                finished, _ = cf.wait(pending, timeout=self.poll_interval_s, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    with self._lock:
                        claim = self._inflight.pop(fut)
                    try:
                        self._settle(claim, fut)
                    except JobError:
                        # Not recorded: the lease lapses and the job runs again elsewhere.
                        logger.exception("worker %s could not record job %s", self.worker_id, claim.job.id)
                    done_here += 1
                    self.processed += 1
                _INFLIGHT.set(len(self._inflight))
        finally:
            self._stop.set()
            beat.join(timeout=5)
            if owns_executor:
                ex.shutdown(wait=False, cancel_futures=True)
            self._export_metrics()  # the gauges show the queue as this worker left it
            if self._owns_store:
                self.store.close()
        logger.info("worker %s stopped after %d job(s)", self.worker_id, done_here)
        return done_here

    # ---- internals ---------------------------------------------------------------------
    def _fill(self, ex: Executor, max_jobs: int | None, done_here: int) -> bool:
        claimed = False
        while not self._stop.is_set():
            with self._lock:
                busy = len(self._inflight)
            if busy >= self.concurrency or (max_jobs is not None and done_here + busy >= max_jobs):
                break
            t0 = time.perf_counter()
            claim = self.queue.claim(self.worker_id, workloads=self.workloads)
            _CLAIM_SECONDS.observe(time.perf_counter() - t0)
            if claim is None:
                break
            if claim.job.started_at is not None:
                _WAIT_SECONDS.labels(workload=claim.job.workload).observe(
                    max(0.0, claim.job.started_at - claim.job.created_at)
                )
            claimed = True
            try:
                entry = get_workload(claim.job.workload)
                params = entry.validate(claim.job.params)
            except InvalidParameterError as exc:
                self.queue.fail(claim, str(exc))
                continue
            cancel_path = str(self._marker(claim))
            try:
                fut = ex.submit_task(
                    run_job, (entry.target, params, cancel_path, bool(ex.kills_timed_out_tasks))
                )
            except Exception as exc:  # the executor refused the task
                logger.exception("worker %s could not submit job %s", self.worker_id, claim.job.id)
                self.queue.fail(claim, f"the executor refused the job: {exc}", retry=True)
                continue
            with self._lock:
                self._inflight[fut] = claim
        return claimed

    def _marker(self, claim: Claim) -> Path:
        return self.result_dir / claim.job.id / f"{claim.token}.cancel"

    def _settle(self, claim: Claim, fut: cf.Future[Any]) -> None:
        if claim.token in self._lost:
            self._lost.discard(claim.token)
            self._marker(claim).unlink(missing_ok=True)
            outcome = (
                "cancelled" if fut.cancelled() else "failed" if fut.exception() is not None else "finished"
            )
            logger.warning(
                "worker %s dropped the outcome of job %s (%s after its lease was lost)",
                self.worker_id,
                claim.job.id,
                outcome,
            )
            return
        if fut.cancelled():
            self.queue.fail(claim, "the executor cancelled the task", retry=True)
            return
        exc = fut.exception()
        if exc is not None:
            retry = isinstance(exc, WorkerLostError)
            self.queue.fail(claim, f"{type(exc).__name__}: {exc}", retry=retry)
            return
        try:
            path = write_result(
                fut.result(), self.result_dir / claim.job.id, claim.token, signer=self._signer
            )
        except ScaleforgeError as exc:  # not picklable, or no usable signing key
            self.queue.fail(
                claim,
                f"the result of workload {claim.job.workload!r} cannot be stored ({exc}); return JSON data, "
                "numpy arrays or picklable objects, and write large artefacts to files",
            )
            return
        if not self.queue.complete(claim, path.resolve().as_uri()):
            path.unlink(missing_ok=True)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.queue.lease_s / 3):
            self._beat()
        self._beat()  # one last renewal covers the drain after stop()

    def _beat(self) -> None:
        with self._lock:
            held = [(f, c) for f, c in self._inflight.items() if c.token not in self._lost]
        for fut, claim in held:
            try:
                if not self.queue.heartbeat(claim):
                    self._abandon(fut, claim)
            except JobError:
                logger.exception("heartbeat of job %s failed; retrying next beat", claim.job.id)

    def _abandon(self, fut: cf.Future[Any], claim: Claim) -> None:
        """Lease lost (re-queued elsewhere, or cancelled): stop the job where possible, never record it."""
        self._lost.add(claim.token)
        self.abandoned += 1
        if fut.cancel():  # not started: it never runs
            how = "not_started"
        else:
            how = "stopped" if self._kills_tasks else "dropped"
            try:  # the job's watchdog ends its process (or a re-sent task stops at once)
                marker = self._marker(claim)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            except OSError:
                logger.exception("could not write the cancel marker of job %s", claim.job.id)
        _ABANDONED.labels(how=how).inc()
        logger.warning(
            "worker %s lost the lease of job %s (re-queued or cancelled); abandoning it (%s)%s",
            self.worker_id,
            claim.job.id,
            how,
            "" if how != "dropped" else ": this executor cannot interrupt it, its result will be dropped",
        )

    def _export_metrics(self) -> None:
        try:
            counts = self.store.counts()
        except JobError:
            logger.exception("could not read queue depth")
            return
        depth = counts["queued"] + counts["running"]
        _DEPTH.set(depth)
        _QUEUED.set(counts["queued"])
        _RECOMMENDED.set(recommend_workers(depth, self.concurrency))
        for status, n in counts.items():
            _BY_STATUS.labels(status=status).set(n)
