"""The ``Codec`` contract: values to signed byte frames and back.

A codec turns a Python value into an :class:`EncodedValue` — a list of
buffers that, written one after the other, form one entry — and turns the
bytes of an entry back into the value. Tiers that store bytes (disk, Redis)
hold a codec; the memory tier stores objects and needs none.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

__all__ = ["Buffer", "Codec", "EncodedValue"]

#: Anything a codec can read an entry from.
Buffer = bytes | bytearray | memoryview


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedValue:
    """One encoded entry as a sequence of buffers (never concatenated for large values).

    Attributes
    ----------
    buffers : tuple of bytes-like
        One-dimensional byte buffers; the entry is their concatenation.
    nbytes : int
        Total length of the entry in bytes.
    kind : str
        ``"array"`` for a raw array frame, ``"pickle"`` otherwise.
    """

    buffers: tuple[bytes | memoryview, ...]
    nbytes: int
    kind: str

    def tobytes(self) -> bytes:
        """Return the entry as one ``bytes`` object (copies; meant for small entries)."""
        return b"".join(self.buffers)


class Codec(abc.ABC):
    """Encode values into byte frames and decode them back.

    Subclasses implement :meth:`encode` and :meth:`decode`. A codec with a
    signer (:attr:`signed`) must refuse to decode an entry whose MAC does not
    verify, and must never unpickle such bytes.

    See Also
    --------
    scaleforge.codec.FrameCodec : the default implementation.
    """

    @abc.abstractmethod
    def encode(self, value: Any) -> EncodedValue:
        """Encode ``value``.

        Parameters
        ----------
        value : object
            The value to store.

        Returns
        -------
        EncodedValue

        Raises
        ------
        SerializationError
            If the value cannot be encoded.
        """

    @abc.abstractmethod
    def decode(self, data: Buffer, *, verify: bool = True) -> Any:
        """Decode one entry.

        Parameters
        ----------
        data : bytes-like
            Exactly the bytes of one entry (bytes, bytearray, memoryview or mmap).
        verify : bool, default=True
            Check the MAC. Implementations may skip it only for values that are
            not unpickled (raw arrays); pickled values are always verified.

        Returns
        -------
        object

        Raises
        ------
        IntegrityError
            If the MAC does not verify.
        SerializationError
            If the bytes are not a well-formed entry.
        """

    @property
    def signed(self) -> bool:
        """True if entries carry a keyed MAC. Default: False."""
        return False
