"""Pickle protocol 5 with out-of-band buffers.

Contiguous arrays anywhere inside a value (in dicts, tuples, dataclasses)
are handed out as separate buffers instead of being copied into the pickle
stream, so encoding a dict of large arrays copies nothing, and decoding
rebuilds the arrays over the buffers read from storage. Values the standard
pickler cannot handle (lambdas, local classes) fall back to cloudpickle.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from scaleforge.errors import SerializationError

__all__ = ["dumps", "loads"]


def dumps(value: Any) -> tuple[bytes, list[memoryview]]:
    """Pickle ``value`` with protocol 5, returning the stream and its out-of-band buffers.

    Parameters
    ----------
    value : object

    Returns
    -------
    stream : bytes
        The pickle stream.
    buffers : list of memoryview
        One-dimensional byte views, in the order :func:`loads` needs them.

    Raises
    ------
    SerializationError
        If neither pickle nor cloudpickle can serialise the value.
    """
    buffers: list[memoryview] = []

    def keep(pb: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(pb.raw())
        except BufferError:  # not contiguous: serialise in-band
            return True
        return False

    try:
        return pickle.dumps(value, protocol=5, buffer_callback=keep), buffers
    except Exception as first:  # PicklingError, AttributeError, TypeError: try cloudpickle
        buffers.clear()
        try:
            import cloudpickle

            return cloudpickle.dumps(value, protocol=5, buffer_callback=keep), buffers
        except Exception as exc:
            raise SerializationError(
                f"Cannot serialise a value of type {type(value).__name__} for the cache: {first}. "
                "Return picklable values (arrays, dataclasses, builtins) from cached functions, "
                "or use a MemoryTier only."
            ) from exc


def loads(stream: Any, buffers: Sequence[Any]) -> Any:
    """Unpickle ``stream`` with its out-of-band ``buffers``.

    Call this only on bytes whose MAC has been verified.

    Parameters
    ----------
    stream : bytes-like
        The pickle stream.
    buffers : sequence of bytes-like
        The out-of-band buffers in order.

    Returns
    -------
    object
    """
    return pickle.loads(stream, buffers=buffers)
