"""Parallel execution: one ``map`` from a laptop to a Ray or Dask cluster.

See :func:`scaleforge.map`, :func:`scaleforge.imap` and :func:`scaleforge.executor`.
Backends: ``processes`` (:class:`ProcessExecutor`, the default), ``threads``
(:class:`ThreadExecutor`), ``ray`` (:class:`~scaleforge.compute.ray.RayExecutor`)
and ``dask`` (:class:`~scaleforge.compute.dask.DaskExecutor`), imported on first use.
"""

from __future__ import annotations

from scaleforge.compute.autoscale import AutoscalePolicy
from scaleforge.compute.base import Executor
from scaleforge.compute.local import ProcessExecutor, ThreadExecutor
from scaleforge.compute.map import ItemError, MapReport, imap, map
from scaleforge.compute.registry import available_executors, executor, register_executor, shutdown_executors
from scaleforge.compute.retry import RetryPolicy

__all__ = [
    "AutoscalePolicy",
    "Executor",
    "ItemError",
    "MapReport",
    "ProcessExecutor",
    "RetryPolicy",
    "ThreadExecutor",
    "available_executors",
    "executor",
    "imap",
    "map",
    "register_executor",
    "shutdown_executors",
]
