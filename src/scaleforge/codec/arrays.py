"""Raw array frames: the bytes of a numpy array, described by dtype, shape and order.

An array is stored as its buffer plus a small description, never pickled, so
a file-backed tier can hand it back memory-mapped without a copy. Only plain
``numpy.ndarray`` (and ``numpy.memmap``) values whose dtype round-trips
through ``dtype.str`` qualify; object, structured and other subclass arrays
go through pickle instead (:func:`is_raw_array`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["array_from_buffer", "array_payload", "is_raw_array"]

_RAW_TYPES = (np.ndarray, np.memmap)


def is_raw_array(value: Any) -> bool:
    """Return True if ``value`` is stored as a raw array frame.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    if type(value) not in _RAW_TYPES:
        return False
    dtype = value.dtype
    return not dtype.hasobject and dtype.fields is None and np.dtype(dtype.str) == dtype


def array_payload(arr: np.ndarray[Any, Any]) -> tuple[dict[str, Any], memoryview]:
    """Return the description and a zero-copy byte view of ``arr``.

    C- and Fortran-contiguous arrays are not copied; other strided views are
    copied once into C order.

    Parameters
    ----------
    arr : ndarray
        An array for which :func:`is_raw_array` is True.

    Returns
    -------
    meta : dict
        ``{"d": dtype.str, "s": shape, "o": "C" or "F"}``.
    payload : memoryview
        One-dimensional ``uint8`` view of the elements in that order.
    """
    if arr.flags.c_contiguous:
        order, flat = "C", arr.reshape(-1)
    elif arr.flags.f_contiguous:
        order, flat = "F", arr.T.reshape(-1)
    else:
        order, flat = "C", np.ascontiguousarray(arr).reshape(-1)
    meta = {"d": arr.dtype.str, "s": list(arr.shape), "o": order}
    return meta, memoryview(flat.view(np.uint8))  # type: ignore[arg-type]


def array_from_buffer(meta: dict[str, Any], buf: Any, offset: int, nbytes: int) -> np.ndarray[Any, Any]:
    """Rebuild an array over ``buf[offset:offset + nbytes]`` without copying.

    The array is writable when ``buf`` is (a ``bytearray``) and read-only when
    it is not (``bytes``, a read-only ``mmap``).

    Parameters
    ----------
    meta : dict
        The description written by :func:`array_payload`.
    buf : bytes-like or mmap
        The buffer holding the payload.
    offset, nbytes : int
        Where the payload lies in ``buf``.

    Returns
    -------
    ndarray

    Raises
    ------
    ValueError
        If the description is malformed or does not match ``nbytes``.
    """
    dtype = np.dtype(str(meta["d"]))
    if dtype.hasobject or dtype.fields is not None:
        raise ValueError(f"refusing dtype {dtype!r} in a raw array frame")
    shape = tuple(int(n) for n in meta["s"])
    order = meta["o"]
    if order not in ("C", "F") or any(n < 0 for n in shape):
        raise ValueError("malformed array description")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != nbytes:
        raise ValueError(f"array payload holds {nbytes} bytes, expected {count * dtype.itemsize}")
    if count == 0:
        return np.empty(shape, dtype=dtype, order=order)
    flat = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    if order == "F":
        return flat.reshape(shape[::-1]).T
    return flat.reshape(shape)
