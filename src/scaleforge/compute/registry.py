"""Executors by name, and the per-process cache of running default executors.

``scaleforge.executor("ray", address=...)`` builds a backend by name;
:func:`register_executor` adds one. :func:`get_executor` is what
:func:`scaleforge.map` calls: it resolves the name (argument >
``config_context(executor=...)`` > ``Settings.compute.executor``) and returns a
*running* executor, reusing the one a previous ``map`` started, so workers are
forked once per process. Cached executors are shut down at interpreter exit.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import multiprocessing as mp
import os
import threading
from typing import Any

from scaleforge.compute.base import Executor
from scaleforge.errors import InvalidParameterError
from scaleforge.settings import resolve

__all__ = [
    "available_executors",
    "executor",
    "get_executor",
    "register_executor",
    "shutdown_executors",
]

logger = logging.getLogger(__name__)

# name -> class, or "module:Class" for backends imported on first use (ray, dask)
_REGISTRY: dict[str, type[Executor] | str] = {
    "processes": "scaleforge.compute.local:ProcessExecutor",
    "threads": "scaleforge.compute.local:ThreadExecutor",
    "ray": "scaleforge.compute.ray:RayExecutor",
    "dask": "scaleforge.compute.dask:DaskExecutor",
    "slurm": "scaleforge.compute.slurm:SlurmExecutor",
}
_lock = threading.RLock()
_running: dict[tuple[Any, ...], Executor] = {}


def register_executor(name: str, cls: type[Executor]) -> None:
    """Make ``cls`` available as ``executor=name``.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"slurm"``.
    cls : type
        A concrete subclass of :class:`~scaleforge.compute.base.Executor`.

    Raises
    ------
    InvalidParameterError
        If ``name`` is not a non-empty str or ``cls`` is not a concrete Executor subclass.
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"register_executor needs a non-empty str name. Got {name!r} instead.")
    if not (isinstance(cls, type) and issubclass(cls, Executor)) or getattr(cls, "__abstractmethods__", None):
        raise InvalidParameterError(
            f"register_executor({name!r}, cls) needs a concrete subclass of scaleforge.Executor "
            f"(implementing submit_task, shutdown and num_workers). Got {cls!r} instead."
        )
    with _lock:
        _REGISTRY[name] = cls


def available_executors() -> list[str]:
    """Names accepted by :func:`executor`."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> type[Executor]:
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise InvalidParameterError(
            f"Unknown executor {name!r}. Choose one of {', '.join(map(repr, available_executors()))}, "
            "or register one with scaleforge.compute.register_executor(name, cls)."
        )
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        assert isinstance(cls, type) and issubclass(cls, Executor)  # our own table
        return cls
    return entry


def executor(name: str | None = None, **options: Any) -> Executor:
    """Create a new executor by name.

    Parameters
    ----------
    name : str, optional
        ``"processes"`` (default), ``"threads"``, ``"ray"``, ``"dask"`` or a
        registered name; defaults to ``config_context(executor=...)`` or
        ``Settings.compute.executor``.
    **options
        Passed to the backend (``max_workers=``, ``address=``, ``num_cpus=``...).
        ``address`` defaults to ``config_context(address=...)`` /
        ``Settings.compute.address`` for the cluster backends.

    Returns
    -------
    Executor
        A new executor; shut it down (or use it as a context manager) when done.

    Raises
    ------
    InvalidParameterError
        For an unknown name or option.
    MissingDependencyError
        When the backend's extra (``ray``, ``dask``) is not installed.

    Examples
    --------
    >>> import scaleforge as sf
    >>> with sf.executor("threads", max_workers=2) as ex:
    ...     ex.submit(abs, -3).result()
    3
    """
    name = resolve("executor", name, "processes")
    cls = _lookup(name)
    if name in ("ray", "dask") and "address" not in options:
        options["address"] = resolve("address")
    if name == "processes" and "max_workers" not in options and resolve("max_workers") is not None:
        options["max_workers"] = resolve("max_workers")
    try:
        return cls(**options)
    except TypeError as exc:
        raise InvalidParameterError(
            f"Executor {name!r} ({cls.__name__}) does not accept the options {sorted(options)}: {exc}. "
            f"See help(scaleforge.compute.{cls.__name__})."
        ) from exc


def get_executor(spec: str | Executor | None = None) -> Executor:
    """Return a running executor for ``spec``, reusing the one started earlier.

    Parameters
    ----------
    spec : str, Executor or None
        An executor instance (returned as is), a name, or None for the
        configured default.

    Returns
    -------
    Executor
    """
    if isinstance(spec, Executor):
        return spec
    if spec is not None and not isinstance(spec, str):
        raise InvalidParameterError(
            f"The 'executor' parameter must be a name such as 'processes', 'threads', 'ray' or 'dask', "
            f"or a scaleforge.Executor instance. Got {type(spec).__name__} instead."
        )
    name = resolve("executor", spec, "processes")
    _lookup(name)  # validate the name before caching anything
    if name == "processes" and mp.current_process().daemon:
        # Inside a worker process (a nested map): daemonic processes cannot start children.
        logger.debug("nested map inside a worker process: running it on threads")
        name = "threads"
    key = (name, resolve("address"), resolve("max_workers"))
    with _lock:
        ex = _running.get(key)
        if ex is not None and ex.is_alive:
            return ex
        ex = executor(name)
        _running[key] = ex
        logger.debug("started default executor %r", ex)
        return ex


def shutdown_executors() -> None:
    """Shut down every executor started by :func:`get_executor` (also run at exit)."""
    with _lock:
        running = list(_running.values())
        _running.clear()
    for ex in running:
        try:
            ex.shutdown(wait=False, cancel_futures=True)
        except Exception:  # exit path: log, never raise
            logger.exception("shutting down %r failed", ex)


def _forget_after_fork() -> None:
    # A forked child inherits executor objects whose threads and pipes belong to the parent:
    # it must start its own.
    global _lock
    _lock = threading.RLock()
    _running.clear()


atexit.register(shutdown_executors)
os.register_at_fork(after_in_child=_forget_after_fork)
