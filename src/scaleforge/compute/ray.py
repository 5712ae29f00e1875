"""The Ray backend: ``executor="ray"``.

Connects to a running cluster (``address="ray://head:10001"`` or ``"auto"``)
or starts a local Ray when none is running. :func:`scaleforge.map` sends
*chunks* of items as Ray tasks, never one remote task per tiny item; shared
arrays go through ``ray.put`` once and reach every task as a zero-copy view
from the node's object store.

Failures: a task whose worker process dies is retried by Ray
(``max_retries``, default 3), so delivery is at least once. A task over its
``timeout_s`` is force-cancelled (``ray.cancel(ref, force=True)`` kills its
worker).

Autoscaling is Ray's: on a cluster started with ``ray up``, set
``max_workers`` and ``available_node_types`` in the cluster YAML; tasks
request ``num_cpus``/``num_gpus`` each and pending tasks make the autoscaler
add nodes. scaleforge adds no autoscaler of its own on Ray.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable
from typing import Any

from scaleforge._validation import check_number
from scaleforge.compute.base import Executor, TaskDeadlines
from scaleforge.errors import ComputeError, InvalidParameterError, MissingDependencyError

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            "executor='ray' needs Ray, which is not installed. Install it with: pip install 'scaleforge[ray]'"
        ) from exc
    return ray


def _ray_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Body of every Ray task: Ray has already resolved top-level object refs."""
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """Run tasks as Ray tasks on a local or remote Ray cluster.

    Parameters
    ----------
    address : str, optional
        Cluster to connect to (``"auto"``, ``"ray://host:10001"``). Default:
        the Ray already initialised in this process, else a new local one.
    num_cpus : float, default=1
        CPUs each task requests.
    num_gpus : float, default=0
        GPUs each task requests.
    max_retries : int, default=3
        How often Ray reruns a task whose worker died.
    init_options : dict, optional
        Extra ``ray.init`` keywords when this executor starts Ray.

    Raises
    ------
    MissingDependencyError
        If Ray is not installed.
    ComputeError
        If Ray cannot start or connect.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_retries: int = 3,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        owner = "RayExecutor"
        check_number(num_cpus, "num_cpus", owner, minimum=0)
        check_number(num_gpus, "num_gpus", owner, minimum=0)
        check_number(max_retries, "max_retries", owner, minimum=0, integer=True)
        if init_options is not None and not isinstance(init_options, dict):
            raise InvalidParameterError(
                f"The 'init_options' parameter of {owner} must be a dict of ray.init keywords. "
                f"Got {type(init_options).__name__} instead."
            )
        ray = _import_ray()
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            options = {"include_dashboard": False, "log_to_driver": False, **(init_options or {})}
            try:
                ray.init(address=address, **options)
            except Exception as exc:
                raise ComputeError(
                    f"Could not start or connect to Ray (address={address!r}): {exc}. Check the address, "
                    "or leave it unset to start a local Ray."
                ) from exc
            self._owns = True
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self._remote = ray.remote(_ray_call).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries, retry_exceptions=False
        )
        self._deadlines = TaskDeadlines(self.name)
        self._refs: dict[cf.Future[Any], Any] = {}
        self._shutdown = False

    @property
    def num_workers(self) -> int:
        """Tasks the cluster can run at once with this executor's per-task request."""
        try:
            resources = self._ray.cluster_resources()
        except Exception:
            return 1
        if self.num_gpus:
            return max(1, int(resources.get("GPU", 0) // self.num_gpus))
        cpus = float(resources.get("CPU", 1))
        return max(1, int(cpus // self.num_cpus)) if self.num_cpus else max(1, int(cpus))

    @property
    def task_overhead_s(self) -> float:
        """About 2 ms per Ray task (scheduling, object store round trip)."""
        return 2e-3

    @property
    def kills_timed_out_tasks(self) -> bool:
        """True: ``ray.cancel(force=True)`` kills the worker of a timed-out task."""
        return True

    def submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
    ) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` as one Ray task (see :meth:`Executor.submit_task`)."""
        if self._shutdown:
            raise ComputeError(
                "This RayExecutor was shut down; create a new one with scaleforge.executor('ray')."
            )
        ref = self._remote.remote(fn, *args, **(kwargs or {}))
        inner: cf.Future[Any] = ref.future()
        if timeout_s is None:
            return inner
        ray = self._ray

        def _cancel(_: cf.Future[Any]) -> None:
            ray.cancel(ref, force=True)

        return self._deadlines.wrap(inner, timeout_s, _cancel)

    def share(self, value: Any) -> Any:
        """``ray.put(value)``: stored once in the object store, resolved in every task."""
        return self._ray.put(value)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop using Ray; shut it down if this executor started it."""
        if self._shutdown:
            return
        self._shutdown = True
        self._deadlines.close()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
