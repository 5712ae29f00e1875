"""Large shared arguments: shipped once per worker, not once per task.

``map(fn, items, mesh=big_array)`` passes ``mesh`` to every call. Arrays of at
least ``Settings.compute.shared_arg_min_bytes`` bytes are handed to the
executor's :meth:`~scaleforge.compute.base.Executor.share`, which returns a
small handle:

- processes: the array is written once to a file in ``/dev/shm`` (RAM-backed
  on Linux) and each worker memory-maps it on first use, read-only, without a
  copy (:class:`SharedArray`); later tasks on that worker reuse the mapping;
- Ray: ``ray.put`` (the object store is shared memory on each node);
- Dask: ``client.scatter(value, broadcast=True)``.

Shared arrays are read-only in workers. A worker keeps its last few mappings
open (:data:`MAX_OPEN_PER_WORKER`), so memory of a released file is freed when
it is evicted or the worker exits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from scaleforge.errors import ComputeError

__all__ = [
    "MAX_OPEN_PER_WORKER",
    "SharedArray",
    "is_large_array",
    "load_count",
    "load_shared",
    "release_shared",
    "resolve_shared",
    "share_array",
]

logger = logging.getLogger(__name__)

#: Mappings a worker keeps open; older ones are closed (their file may be gone).
MAX_OPEN_PER_WORKER = 8

_lock = threading.Lock()
_open: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
_loads = 0


def _shm_dir() -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


@dataclasses.dataclass(frozen=True, slots=True)
class SharedArray:
    """A handle to a read-only array stored once in a RAM-backed file.

    Attributes
    ----------
    path : str
        The ``.npy`` file (under ``/dev/shm`` where available).
    shape : tuple of int
    dtype : str
    nbytes : int
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int


def is_large_array(value: object, min_bytes: int) -> bool:
    """True if ``value`` is a numpy array of at least ``min_bytes`` bytes."""
    return isinstance(value, np.ndarray) and value.nbytes >= min_bytes and value.dtype != object


def share_array(value: np.ndarray[Any, Any], directory: str | os.PathLike[str] | None = None) -> SharedArray:
    """Write ``value`` once to a RAM-backed ``.npy`` file and return its handle.

    Parameters
    ----------
    value : ndarray
        Any numeric array (object arrays cannot be memory-mapped).
    directory : path-like, optional
        Where to put the file; ``/dev/shm`` when writable, else the temp dir.

    Returns
    -------
    SharedArray

    Raises
    ------
    ComputeError
        If the file cannot be written (e.g. ``/dev/shm`` is full).
    """
    folder = Path(directory) if directory is not None else _shm_dir()
    final = folder / f"scaleforge-shared-{os.getpid()}-{uuid.uuid4().hex}.npy"
    tmp = final.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(value), allow_pickle=False)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ComputeError(
            f"Could not write a shared argument of {value.nbytes} bytes to {folder}: {exc}. "
            "Free space there, or pass a smaller array."
        ) from exc
    return SharedArray(str(final), tuple(value.shape), value.dtype.str, int(value.nbytes))


def load_shared(handle: SharedArray) -> np.ndarray[Any, Any]:
    """Return the array behind ``handle``, memory-mapped once per process."""
    global _loads
    with _lock:
        arr = _open.get(handle.path)
        if arr is not None:
            _open.move_to_end(handle.path)
            return arr
        arr = cast("np.ndarray[Any, Any]", np.load(handle.path, mmap_mode="r", allow_pickle=False))
        _loads += 1
        _open[handle.path] = arr
        while len(_open) > MAX_OPEN_PER_WORKER:
            _open.popitem(last=False)
        return arr


def load_count() -> int:
    """How many shared arrays this process has mapped (a test hook: once per worker)."""
    return _loads


def resolve_shared(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Replace top-level :class:`SharedArray` handles in ``args``/``kwargs`` by their arrays."""
    new_args = tuple(load_shared(a) if isinstance(a, SharedArray) else a for a in args)
    new_kwargs = {k: load_shared(v) if isinstance(v, SharedArray) else v for k, v in kwargs.items()}
    return new_args, new_kwargs


def release_shared(handle: SharedArray) -> None:
    """Delete the file behind ``handle`` (mappings already open stay valid)."""
    try:
        os.unlink(handle.path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # never fail a map on cleanup
        logger.warning("could not remove shared argument file %s: %s", handle.path, exc)
