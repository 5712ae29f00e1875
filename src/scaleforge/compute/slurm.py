"""The ``slurm`` executor: each task (a ``map`` chunk, or a job) becomes a SLURM job via submitit.

``scaleforge.map(f, items, executor=SlurmExecutor(partition="gpu"))`` or, once
registered, ``config_context(executor="slurm")``: submitit pickles the call,
``sbatch``-es it with the requested walltime and partition, and the job is
requeued from the start if SLURM pre-empts it or it hits its walltime (up to
``max_requeues`` times). On a machine without SLURM, ``cluster="local"`` runs
the same jobs as local subprocesses through submitit's local executor, which
is how this backend is tested.

Importing this module does not import submitit; building the executor does.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scaleforge._validation import check_choice, check_number
from scaleforge.compute.base import Executor, TaskDeadlines
from scaleforge.errors import ComputeError, InvalidParameterError, MissingDependencyError
from scaleforge.settings import get_settings

__all__ = ["SlurmExecutor", "register"]

logger = logging.getLogger(__name__)


class SlurmExecutor(Executor):
    """Run tasks as SLURM jobs through submitit.

    Parameters
    ----------
    folder : path-like, optional
        Where submitit writes job scripts, pickles and logs (must be on a
        filesystem shared with the compute nodes). Defaults to
        ``Settings.compute.slurm.folder``, else ``<Settings.jobs.result_dir>/../submitit``.
    cluster : {"auto", "slurm", "local", "debug"}, optional
        ``"auto"`` detects SLURM (``sbatch`` on PATH) and falls back to local.
        Defaults to ``Settings.compute.slurm.cluster`` (``"auto"``).
    partition : str, optional
        ``--partition``; defaults to ``Settings.compute.slurm.partition``.
    walltime_min : int, optional
        ``--time`` in minutes; defaults to ``Settings.compute.slurm.walltime_min`` (60).
    cpus_per_task : int, default=1
    mem_gb : float, optional
    gpus_per_node : int, default=0
    max_requeues : int, optional
        Requeues on pre-emption or walltime before the task fails; defaults to
        ``Settings.compute.slurm.max_requeues`` (3).
    max_jobs : int, default=64
        Reported as :attr:`num_workers` (chunks sized for this many jobs).
    poll_interval_s : float, default=1.0
        How often job states are polled.
    slurm_options : dict, optional
        Extra ``#SBATCH`` options (``{"account": "proj1", "qos": "high"}``).

    Raises
    ------
    InvalidParameterError
        For a bad argument.
    MissingDependencyError
        If submitit is not installed.

    Examples
    --------
    >>> import scaleforge as sf                                            # doctest: +SKIP
    >>> with SlurmExecutor(partition="cpu", walltime_min=30) as ex:       # doctest: +SKIP
    ...     sf.map(simulate, params, executor=ex)
    """

    name = "slurm"

    def __init__(
        self,
        *,
        folder: str | os.PathLike[str] | None = None,
        cluster: str | None = None,
        partition: str | None = None,
        walltime_min: int | None = None,
        cpus_per_task: int = 1,
        mem_gb: float | None = None,
        gpus_per_node: int = 0,
        max_requeues: int | None = None,
        max_jobs: int = 64,
        poll_interval_s: float = 1.0,
        slurm_options: dict[str, Any] | None = None,
    ) -> None:
        owner = "SlurmExecutor"
        defaults = get_settings().compute.slurm
        cluster = defaults.cluster if cluster is None else cluster
        partition = defaults.partition if partition is None else partition
        walltime_min = defaults.walltime_min if walltime_min is None else walltime_min
        max_requeues = defaults.max_requeues if max_requeues is None else max_requeues
        if folder is None:
            folder = defaults.folder
        check_choice(cluster, "cluster", owner, ("auto", "slurm", "local", "debug"))
        if partition is not None and (not isinstance(partition, str) or not partition):
            raise InvalidParameterError(
                f"The 'partition' parameter of {owner} must be a non-empty str or None. Got {partition!r} "
                "instead (Settings.compute.slurm.partition)."
            )
        check_number(walltime_min, "walltime_min", owner, minimum=1, integer=True)
        check_number(cpus_per_task, "cpus_per_task", owner, minimum=1, integer=True)
        check_number(mem_gb, "mem_gb", owner, minimum=0, allow_none=True)
        check_number(gpus_per_node, "gpus_per_node", owner, minimum=0, integer=True)
        check_number(max_requeues, "max_requeues", owner, minimum=0, integer=True)
        check_number(max_jobs, "max_jobs", owner, minimum=1, integer=True)
        check_number(poll_interval_s, "poll_interval_s", owner, minimum=0.01)
        try:
            import submitit
        except ImportError as exc:  # pragma: no cover - submitit is part of the jobs extra
            raise MissingDependencyError(
                "The slurm executor needs submitit: pip install 'scaleforge[jobs]'"
            ) from exc
        folder = Path(folder) if folder is not None else get_settings().jobs.result_dir.parent / "submitit"
        self.folder = Path(folder)
        self._ex = submitit.AutoExecutor(
            folder=self.folder,
            cluster=None if cluster == "auto" else cluster,
            slurm_max_num_timeout=max_requeues,
        )
        self.partition = partition
        self.walltime_min = int(walltime_min)
        self.max_requeues = int(max_requeues)
        params: dict[str, Any] = {
            "timeout_min": walltime_min,
            "cpus_per_task": cpus_per_task,
            "gpus_per_node": gpus_per_node,
            "name": "scaleforge",
        }
        if mem_gb is not None:
            params["mem_gb"] = mem_gb
        if partition is not None:
            params["slurm_partition"] = partition
        if slurm_options:
            params["slurm_additional_parameters"] = dict(slurm_options)
        self._ex.update_parameters(**params)
        self.cluster = self._ex.cluster
        self._max_jobs = int(max_jobs)
        self._poll_s = float(poll_interval_s)
        self._pending: list[tuple[Any, cf.Future[Any]]] = []
        self._cond = threading.Condition()
        self._shutdown = False
        self._deadlines = TaskDeadlines("slurm")
        self._poller = threading.Thread(target=self._poll, name="sf-slurm-poller", daemon=True)
        self._poller.start()

    @property
    def num_workers(self) -> int:
        """Jobs this executor plans for (``max_jobs``)."""
        return self._max_jobs

    @property
    def task_overhead_s(self) -> float:
        """A SLURM job costs seconds to schedule: map makes few, large chunks."""
        return 5.0

    def submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> cf.Future[Any]:
        """Submit ``fn(*args, **kwargs)`` as one SLURM job.

        Parameters
        ----------
        fn : callable
        args : tuple, default=()
        kwargs : dict, optional
        timeout_s : float, optional
            Cancel the SLURM job (``scancel``) and fail the future after this long.

        Returns
        -------
        concurrent.futures.Future
        """
        if self._shutdown:
            raise RuntimeError("cannot submit to a SlurmExecutor after shutdown()")
        from scaleforge.compute._slurm_task import SlurmCall

        job = self._ex.submit(SlurmCall(), fn, tuple(args), dict(kwargs or {}))
        logger.debug("submitted SLURM job %s", job.job_id)
        future: cf.Future[Any] = cf.Future()
        future.set_running_or_notify_cancel()
        with self._cond:
            self._pending.append((job, future))
            self._cond.notify()
        if timeout_s is not None:
            return self._deadlines.wrap(future, timeout_s, lambda _f: job.cancel(check=False))
        return future

    def _poll(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._shutdown:
                    self._cond.wait()
                if self._shutdown and not self._pending:
                    return
                pending = list(self._pending)
            finished = []
            for job, future in pending:
                try:
                    if not job.done():
                        continue
                    finished.append((job, future))
                    future.set_result(job.result())
                except cf.InvalidStateError:
                    pass
                except (
                    Exception
                ) as exc:  # submitit's FailedJobError / UncompletedJobError carry the traceback
                    if not future.done():
                        future.set_exception(ComputeError(f"SLURM job {job.job_id} failed: {exc}"))
            with self._cond:
                for item in finished:
                    self._pending.remove(item)
                if self._pending:
                    self._cond.wait(self._poll_s)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop polling; cancel submitted jobs if ``cancel_futures``.

        Parameters
        ----------
        wait : bool, default=True
            Wait for submitted jobs to finish.
        cancel_futures : bool, default=False
            ``scancel`` jobs that have not finished.
        """
        with self._cond:
            if cancel_futures:
                for job, future in self._pending:
                    job.cancel(check=False)
                    if not future.cancel() and not future.done():
                        future.set_exception(cf.CancelledError("executor shut down"))
                self._pending.clear()
            self._shutdown = True
            self._cond.notify_all()
        if wait:
            self._poller.join()
        self._deadlines.close()


def register() -> None:
    """Register :class:`SlurmExecutor` as ``executor="slurm"`` with the compute layer."""
    from scaleforge.compute.registry import register_executor

    register_executor("slurm", SlurmExecutor)
