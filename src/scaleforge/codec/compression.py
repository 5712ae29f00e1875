"""Optional compression of entry payloads: ``none``, ``lz4``, ``zstd`` and ``auto``.

``auto`` compresses only where it pays: payloads under 4 KiB are stored as is,
and larger ones are compressed with lz4 only if lz4 shrinks a 64 KiB sample
to <= 85 % of its size (random floats do not compress, so they are stored raw
and stay memory-mappable). ``zstd`` byte-shuffles arrays of multi-byte
numbers first (all first bytes, then all second bytes, ...), which is what
makes smooth float data compress.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from scaleforge._validation import check_choice

__all__ = [
    "COMPRESSIONS",
    "LZ4",
    "NONE",
    "ZSTD",
    "ZSTD_SHUFFLE",
    "Compression",
    "check_compression",
    "choose_method",
    "compress",
    "decompress",
]

Compression = Literal["none", "lz4", "zstd", "auto"]
#: Accepted values of every ``compression`` parameter.
COMPRESSIONS: tuple[str, ...] = ("none", "lz4", "zstd", "auto")

# Method ids stored in entry headers.
NONE = 0
LZ4 = 1
ZSTD = 2
ZSTD_SHUFFLE = 3

_AUTO_MIN_BYTES = 4096
_SAMPLE_BYTES = 64 * 1024
_AUTO_MAX_RATIO = 0.85
_LZ4_MAX_INPUT = 0x7E000000  # LZ4_MAX_INPUT_SIZE
_ZSTD_LEVEL = 3


def check_compression(value: object, owner: str) -> str:
    """Return ``value`` if it is a known compression name, else raise InvalidParameterError.

    Parameters
    ----------
    value : object
        One of ``"none"``, ``"lz4"``, ``"zstd"``, ``"auto"``.
    owner : str
        The class or function named in the error message.

    Returns
    -------
    str
    """
    return str(check_choice(value, "compression", owner, COMPRESSIONS))


def choose_method(buf: memoryview, compression: str, itemsize: int = 1) -> int:
    """Pick the method id for one payload.

    Parameters
    ----------
    buf : memoryview
        One-dimensional byte view of the payload.
    compression : {"none", "lz4", "zstd", "auto"}
        The configured policy.
    itemsize : int, default=1
        Element size of the array the bytes come from (enables the shuffle for zstd).

    Returns
    -------
    int
        ``NONE``, ``LZ4``, ``ZSTD`` or ``ZSTD_SHUFFLE``.
    """
    n = buf.nbytes
    if compression == "none" or n == 0:
        return NONE
    if compression == "lz4":
        return LZ4 if n <= _LZ4_MAX_INPUT else NONE
    if compression == "zstd":
        return ZSTD_SHUFFLE if itemsize > 1 and n % itemsize == 0 else ZSTD
    if n < _AUTO_MIN_BYTES or n > _LZ4_MAX_INPUT:
        return NONE
    import lz4.block

    sample = buf[:_SAMPLE_BYTES]
    packed = lz4.block.compress(sample, store_size=False)
    return LZ4 if len(packed) <= _AUTO_MAX_RATIO * sample.nbytes else NONE


def _shuffle(buf: memoryview, itemsize: int) -> bytes:
    return np.frombuffer(buf, dtype=np.uint8).reshape(-1, itemsize).T.tobytes()


def compress(buf: memoryview, method: int, itemsize: int = 1) -> bytes:
    """Compress ``buf`` with ``method`` (see :func:`choose_method`).

    Parameters
    ----------
    buf : memoryview
        One-dimensional byte view.
    method : int
        ``LZ4``, ``ZSTD`` or ``ZSTD_SHUFFLE``.
    itemsize : int, default=1
        Element size, used by ``ZSTD_SHUFFLE``.

    Returns
    -------
    bytes
    """
    if method == LZ4:
        import lz4.block

        return bytes(lz4.block.compress(buf, store_size=False))
    import zstandard

    data: bytes | memoryview = _shuffle(buf, itemsize) if method == ZSTD_SHUFFLE else buf
    return bytes(zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data))


def decompress(data: memoryview, method: int, raw_nbytes: int, itemsize: int = 1) -> bytearray:
    """Decompress ``data`` into a new writable ``bytearray`` of ``raw_nbytes``.

    Parameters
    ----------
    data : memoryview
        The compressed bytes.
    method : int
        The id stored with the entry.
    raw_nbytes : int
        The uncompressed size stored with the entry.
    itemsize : int, default=1
        Element size, used by ``ZSTD_SHUFFLE``.

    Returns
    -------
    bytearray

    Raises
    ------
    ValueError
        If the bytes do not decompress to ``raw_nbytes`` bytes (callers translate
        it into :class:`~scaleforge.errors.SerializationError`).
    """
    if method == LZ4:
        import lz4.block

        out = lz4.block.decompress(data, uncompressed_size=raw_nbytes, return_bytearray=True)
        if len(out) != raw_nbytes:
            raise ValueError("lz4 payload has the wrong size")
        return bytearray(out)
    if method in (ZSTD, ZSTD_SHUFFLE):
        import zstandard

        try:
            raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=raw_nbytes)
        except zstandard.ZstdError as exc:
            raise ValueError(f"zstd payload does not decompress: {exc}") from exc
        if len(raw) != raw_nbytes:
            raise ValueError("zstd payload has the wrong size")
        result = bytearray(raw_nbytes)
        if method == ZSTD_SHUFFLE:
            shuffled = np.frombuffer(raw, dtype=np.uint8).reshape(itemsize, -1)
            np.frombuffer(result, dtype=np.uint8).reshape(-1, itemsize)[...] = shuffled.T
        else:
            result[:] = raw
        return result
    raise ValueError(f"unknown compression method id {method}")
