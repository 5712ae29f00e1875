"""The Dask backend: ``executor="dask"``.

Connects to a scheduler (``address="tcp://host:8786"``), uses a given
``distributed.Client``, or starts a ``LocalCluster`` of worker processes.
:func:`scaleforge.map` sends chunks of items as Dask tasks; shared arrays are
scattered once to every worker (``client.scatter(value, broadcast=True)``).

Failures: Dask reschedules the tasks of a worker that died (its nanny starts
a new one); a task that keeps killing workers fails with ``KilledWorker``
after ``distributed.scheduler.allowed-failures``. A task over its
``timeout_s`` fails its future and is cancelled, but a task already running
in a worker thread runs to completion.

Autoscaling is Dask's: ``DaskExecutor(adapt=(minimum, maximum))`` calls
``cluster.adapt(minimum=..., maximum=...)`` on the cluster it manages.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
from collections.abc import Callable
from typing import Any

from scaleforge._validation import check_number
from scaleforge.compute.base import Executor, TaskDeadlines
from scaleforge.errors import ComputeError, InvalidParameterError, MissingDependencyError

__all__ = ["DaskExecutor"]

logger = logging.getLogger(__name__)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            "executor='dask' needs dask.distributed, which is not installed. "
            "Install it with: pip install 'scaleforge[dask]'"
        ) from exc
    return distributed


class DaskExecutor(Executor):
    """Run tasks on a Dask cluster.

    Parameters
    ----------
    address : str, optional
        Scheduler address. Default: start a ``LocalCluster``.
    client : distributed.Client, optional
        Use this client (not closed by :meth:`shutdown`).
    n_workers : int, optional
        Workers of the ``LocalCluster`` (default: usable CPUs).
    adapt : tuple of (int, int), optional
        ``(minimum, maximum)`` workers for ``cluster.adapt`` (managed clusters only).

    Raises
    ------
    MissingDependencyError
        If ``distributed`` is not installed.
    ComputeError
        If the cluster cannot be started or reached.
    """

    name = "dask"

    def __init__(
        self,
        *,
        address: str | None = None,
        client: Any = None,
        n_workers: int | None = None,
        adapt: tuple[int, int] | None = None,
    ) -> None:
        owner = "DaskExecutor"
        check_number(n_workers, "n_workers", owner, minimum=1, integer=True, allow_none=True)
        if adapt is not None and not (
            isinstance(adapt, tuple)
            and len(adapt) == 2
            and all(isinstance(v, int) and v >= 0 for v in adapt)
            and adapt[0] <= adapt[1]
        ):
            raise InvalidParameterError(
                f"The 'adapt' parameter of {owner} must be a (minimum, maximum) tuple of ints with "
                f"0 <= minimum <= maximum. Got {adapt!r} instead."
            )
        distributed = _import_distributed()
        self._own_client = client is None
        self.cluster: Any = None
        try:
            if client is not None:
                self.client = client
            elif address is not None:
                self.client = distributed.Client(address, timeout="10s")
            else:
                workers = n_workers or max(1, len(os.sched_getaffinity(0)))
                self.cluster = distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    host="127.0.0.1",
                )
                self.client = distributed.Client(self.cluster)
        except Exception as exc:
            raise ComputeError(
                f"Could not start or reach a Dask cluster (address={address!r}): {exc}"
            ) from exc
        if adapt is not None:
            cluster = self.cluster if self.cluster is not None else getattr(self.client, "cluster", None)
            if cluster is None:
                raise InvalidParameterError(
                    f"{owner}(adapt=...) needs a cluster object to adapt; with address= only, "
                    "configure adaptivity where the cluster is created."
                )
            self.adaptive = cluster.adapt(minimum=adapt[0], maximum=adapt[1])
        self._adapt_max = adapt[1] if adapt is not None else None
        self._deadlines = TaskDeadlines(self.name)
        self._shutdown = False

    @property
    def num_workers(self) -> int:
        """Worker threads in the cluster (the adaptive maximum when adapting)."""
        if self._adapt_max is not None:
            return max(1, self._adapt_max)
        try:
            return max(1, int(sum(self.client.nthreads().values())))
        except Exception:
            return 1

    @property
    def task_overhead_s(self) -> float:
        """About 3 ms per Dask task (scheduler round trip)."""
        return 3e-3

    def submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` as one Dask task (see :meth:`Executor.submit_task`)."""
        if self._shutdown:
            raise ComputeError(
                "This DaskExecutor was shut down; create a new one with scaleforge.executor('dask')."
            )
        dfut = self.client.submit(fn, *args, pure=False, **(kwargs or {}))
        out: cf.Future[Any] = cf.Future()  # stays PENDING so cancel() works and reaches Dask

        def _copy(f: Any) -> None:
            if out.done():
                return
            try:
                if f.status == "cancelled":
                    out.set_exception(cf.CancelledError())
                elif f.status == "error":
                    out.set_exception(f.exception())
                else:
                    out.set_result(f.result())
            except cf.InvalidStateError:
                pass
            except BaseException as exc:  # transport or deserialisation failure
                if not out.done():
                    out.set_exception(ComputeError(f"Dask task failed: {exc}"))

        dfut.add_done_callback(_copy)
        out.add_done_callback(lambda f: dfut.cancel() if f.cancelled() else None)
        if timeout_s is None:
            return out
        return self._deadlines.wrap(out, timeout_s, lambda _: dfut.cancel())

    def share(self, value: Any) -> Any:
        """Scatter ``value`` to every worker once; tasks receive it by reference."""
        return self.client.scatter(value, broadcast=True, hash=False)

    def release(self, handle: Any) -> None:
        """Release a scattered value."""
        release = getattr(handle, "release", None)
        if callable(release):
            release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Close the client and the cluster this executor started."""
        if self._shutdown:
            return
        self._shutdown = True
        self._deadlines.close()
        if self._own_client:
            try:
                self.client.close()
                if self.cluster is not None:
                    self.cluster.close()
            except Exception:  # closing a dead cluster must not raise at exit
                logger.warning("closing the Dask cluster failed", exc_info=True)
