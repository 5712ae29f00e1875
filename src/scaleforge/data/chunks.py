"""Arrays larger than memory, processed chunk by chunk in parallel.

:func:`chunks` iterates over blocks of rows (axis 0) of an in-memory array,
a memory-mapped ``.npy`` file or a zarr (v3) array. :func:`map_chunks` applies
a function to every block in parallel with :func:`scaleforge.map` and writes
each result straight into an output array on disk (``.npy`` through
``numpy.lib.format.open_memmap``, or zarr): workers open the input and the
output themselves and write their block in place, so no block travels back
through the parent. Only block boundaries and file paths are sent.

The function must map a block of ``n`` rows to ``n`` rows (trailing
dimensions and dtype may change, e.g. ``np.sqrt`` or a per-row feature
extractor); it is called once in the parent on the first block to learn the
output's shape and dtype.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scaleforge.errors import InvalidParameterError

__all__ = ["chunks", "map_chunks"]

_DEFAULT_CHUNK_BYTES = 64 * 10**6  # big enough to amortise a task, small enough for 2-core RAM budgets


@dataclasses.dataclass(frozen=True, slots=True)
class _NpySpec:
    path: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    order: str

    def open(self, mode: str = "r") -> Any:
        return np.memmap(
            self.path,
            dtype=np.dtype(self.dtype),
            mode=mode,
            offset=self.offset,
            shape=self.shape,
            order=self.order,
        )  # type: ignore[call-overload]


@dataclasses.dataclass(frozen=True, slots=True)
class _ZarrSpec:
    path: str

    def open(self, mode: str = "r") -> Any:
        import zarr

        return zarr.open_array(store=self.path, mode=mode)


def _is_zarr(x: object) -> bool:
    return type(x).__module__.startswith("zarr")


def _open_source(x: Any, owner: str) -> tuple[Any, Any]:
    """Return (array-like for reading in this process, spec or array for workers)."""
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if not path.exists():
            raise InvalidParameterError(
                f"The input of {owner} is a path that does not exist: {str(path)!r}. Pass an existing "
                ".npy file, a zarr array directory, or an array."
            )
        if path.is_dir():
            spec = _ZarrSpec(str(path))
            return spec.open(), spec
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return arr, _memmap_spec(arr) or arr
    if _is_zarr(x):
        store_path = getattr(getattr(x, "store", None), "root", None)
        if store_path is None:
            return x, x  # an in-memory zarr array: pickled to workers with its store
        return x, _ZarrSpec(str(Path(str(store_path)) / x.path) if x.path else str(store_path))
    if isinstance(x, np.ndarray):
        if x.ndim == 0:
            raise InvalidParameterError(
                f"{owner} needs an array with at least one dimension. Got a 0-d array."
            )
        return x, _memmap_spec(x) or x
    raise InvalidParameterError(
        f"{owner} processes numpy arrays, memory-mapped .npy files, zarr arrays or their paths. "
        f"Got {type(x).__name__} instead."
    )


def _memmap_spec(arr: Any) -> _NpySpec | None:
    # Only a whole mapping (its base is the mmap itself) is described by filename + offset:
    # a slice of a memmap keeps the parent's offset, so it travels as an array instead.
    base: object = getattr(arr, "base", None)
    filename: object = getattr(arr, "filename", None)
    if not (type(arr) is np.memmap and filename and isinstance(base, mmap.mmap)):
        return None
    if arr.flags.c_contiguous or arr.flags.f_contiguous:
        order = "C" if arr.flags.c_contiguous else "F"
        return _NpySpec(str(arr.filename), arr.dtype.str, tuple(arr.shape), int(arr.offset), order)
    return None


def _rows_per_chunk(x: Any, chunk: int | None, owner: str) -> int:
    if chunk is not None:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise InvalidParameterError(
                f"The 'chunk' parameter of {owner} must be a number of rows >= 1 (or None for automatic). "
                f"Got {chunk!r} instead."
            )
        return chunk
    if _is_zarr(x):
        return int(x.chunks[0])
    row_bytes = max(1, int(np.prod(x.shape[1:], dtype=np.int64)) * int(np.dtype(x.dtype).itemsize))
    return int(max(1, _DEFAULT_CHUNK_BYTES // row_bytes))


def chunks(array_or_path: Any, chunk: int | None = None) -> Iterator[tuple[slice, np.ndarray[Any, Any]]]:
    """Iterate over blocks of rows of an array that may not fit in memory.

    Parameters
    ----------
    array_or_path : ndarray, zarr.Array, str or path-like
        An array, a ``.npy`` file (memory-mapped read-only) or a zarr array directory.
    chunk : int, optional
        Rows per block; default: the zarr chunk length, or ~64 MB of rows.

    Yields
    ------
    (slice, ndarray)
        The rows' slice along axis 0 and the block itself (read only when yielded).

    Raises
    ------
    InvalidParameterError
        For a missing path, an unsupported type or a bad ``chunk``.

    Examples
    --------
    >>> import numpy as np
    >>> [s for s, _ in chunks(np.zeros((5, 2)), chunk=2)]
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    arr, _ = _open_source(array_or_path, "chunks")
    rows = _rows_per_chunk(arr, chunk, "chunks")
    n = int(arr.shape[0])
    for start in range(0, n, rows):
        sl = slice(start, min(n, start + rows))
        yield sl, np.asarray(arr[sl])


def _open_in_worker(spec: Any, mode: str = "r") -> Any:
    return spec.open(mode) if isinstance(spec, (_NpySpec, _ZarrSpec)) else spec


def _process_block(bounds: tuple[int, int], *, block_fn: Callable[..., Any], src: Any, dst: Any) -> int:
    start, stop = bounds
    source = _open_in_worker(src)
    result = np.asarray(block_fn(np.asarray(source[start:stop])))
    if result.shape[:1] != (stop - start,):
        raise InvalidParameterError(
            f"map_chunks: fn returned {result.shape[0] if result.ndim else 'a scalar'} rows for a block of "
            f"{stop - start} rows; fn must map n rows to n rows."
        )
    out = _open_in_worker(dst, "r+")
    out[start:stop] = result
    if isinstance(out, np.memmap):
        out.flush()
    return stop - start


def map_chunks(
    fn: Callable[[np.ndarray[Any, Any]], Any],
    x: Any,
    *,
    out: str | os.PathLike[str] | None = None,
    chunk: int | None = None,
    executor: Any = None,
    progress: bool | None = None,
) -> Any:
    """Apply ``fn`` to blocks of rows of ``x`` in parallel, writing the result to disk.

    Parameters
    ----------
    fn : callable
        Maps a block of ``n`` rows (an ndarray) to ``n`` rows.
    x : ndarray, zarr.Array, str or path-like
        The input: an array, a memory-mapped ``.npy`` (``np.load(..., mmap_mode="r")``),
        a ``.npy`` path, or a zarr array (or its directory).
    out : str or path-like, optional
        Output file: a path ending in ``.zarr`` creates a zarr array, anything
        else a ``.npy`` file. Default: a new ``.npy`` in the temp directory.
    chunk : int, optional
        Rows per block; default: the input's zarr chunk length or ~64 MB of rows.
    executor : str or Executor, optional
        As for :func:`scaleforge.map`.
    progress : bool, optional
        As for :func:`scaleforge.map`.

    Returns
    -------
    numpy.memmap or zarr.Array
        The output, opened read-only (``.npy``) or as a zarr array.

    Raises
    ------
    InvalidParameterError
        For a non-callable ``fn``, an unsupported input, a bad ``chunk`` or an
        ``fn`` that changes the number of rows.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "out.npy")
    >>> y = map_chunks(np.sqrt, np.arange(10.0) ** 2, out=path, chunk=4, executor="threads")
    >>> y[:4].tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    from scaleforge.compute.map import map as sf_map

    owner = "scaleforge.map_chunks"
    if not callable(fn):
        raise InvalidParameterError(
            f"The 'fn' parameter of {owner} must be callable. Got {type(fn).__name__}."
        )
    arr, src = _open_source(x, owner)
    rows = _rows_per_chunk(arr, chunk, owner)
    n = int(arr.shape[0])
    if n == 0:
        raise InvalidParameterError(f"{owner} got an empty array (0 rows); nothing to process.")
    first_stop = min(n, rows)
    first = np.asarray(fn(np.asarray(arr[0:first_stop])))
    if first.ndim == 0 or first.shape[0] != first_stop:
        raise InvalidParameterError(
            f"{owner}: fn returned shape {first.shape} for a block of {first_stop} rows; fn must map n rows "
            "to n rows (e.g. np.sqrt, or a per-row function)."
        )
    shape = (n, *first.shape[1:])
    if out is None:
        fd, name = tempfile.mkstemp(prefix="scaleforge-map-chunks-", suffix=".npy")
        os.close(fd)
        out = name
    out_path = Path(out)
    dst: Any
    if out_path.suffix == ".zarr":
        import zarr

        zarr.create_array(
            store=str(out_path), shape=shape, dtype=first.dtype, chunks=(rows, *shape[1:]), overwrite=True
        )
        dst = _ZarrSpec(str(out_path))
    else:
        mm = np.lib.format.open_memmap(out_path, mode="w+", dtype=first.dtype, shape=shape)
        del mm
        probe = np.load(out_path, mmap_mode="r")
        spec = _memmap_spec(probe)
        if spec is None:  # pragma: no cover - open_memmap always gives a C-contiguous memmap
            raise InvalidParameterError(f"{owner} could not memory-map its output {str(out_path)!r}.")
        dst = spec
    target = _open_in_worker(dst, "r+")
    target[0:first_stop] = first
    if isinstance(target, np.memmap):
        target.flush()
    del target
    bounds = [(s, min(n, s + rows)) for s in range(first_stop, n, rows)]
    if bounds:
        sf_map(
            _process_block,
            bounds,
            executor=executor,
            chunksize=1,
            progress=progress,
            block_fn=fn,
            src=src,
            dst=dst,
        )
    if isinstance(dst, _ZarrSpec):
        return dst.open("r")
    return np.load(out_path, mmap_mode="r")
