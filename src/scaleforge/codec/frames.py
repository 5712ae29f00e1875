"""``FrameCodec``: the entry format of the disk and Redis tiers.

Layout of one entry (little-endian)::

    offset  size  field
    0       4     magic b"SFC\\x00"
    4       1     format version (1)
    5       1     kind: 1 = raw array, 2 = pickle protocol 5
    6       1     compression method (0 none, 1 lz4, 2 zstd, 3 zstd + byte shuffle)
    7       1     MAC algorithm (0 unsigned, 1 BLAKE3 keyed, 2 HMAC-SHA256)
    8       4     meta length M (JSON, space-padded so the payload starts 64-byte aligned)
    12      8     payload length P
    20      M     meta (JSON): array dtype/shape/order, or pickle segment lengths
    20+M    P     payload: the array bytes, or the pickle stream then its out-of-band buffers
    20+M+P  32    MAC over everything before it (zeros when unsigned)

The total length must be exactly ``20 + M + P + 32``: a torn or truncated entry
fails that check (and its MAC) and is never decoded. Pickled entries are
always verified before unpickling. Raw arrays are verified too, except when a
caller asks to skip it (``verify=False``, used by ``DiskTier.get(mmap=True)`` so
a memory map stays lazy); such arrays are never unpickled, only their header is
sanity-checked (dtype without objects, sizes consistent with the file).
"""

from __future__ import annotations

import hmac
import struct
from typing import Any

import orjson

from scaleforge.codec import compression as _comp
from scaleforge.codec.arrays import array_from_buffer, array_payload, is_raw_array
from scaleforge.codec.base import Buffer, Codec, EncodedValue
from scaleforge.codec.pickle5 import dumps, loads
from scaleforge.codec.signing import MAC_BYTES, Signer
from scaleforge.errors import IntegrityError, InvalidParameterError, SerializationError

__all__ = ["HEADER_BYTES", "KIND_ARRAY", "KIND_PICKLE", "MAGIC", "MIN_ENTRY_BYTES", "FrameCodec"]

MAGIC = b"SFC\x00"
VERSION = 1
KIND_ARRAY = 1
KIND_PICKLE = 2
_FIXED = struct.Struct("<4sBBBBIQ")
#: Bytes before the meta section.
HEADER_BYTES = _FIXED.size
#: Smallest possible entry (fixed fields + MAC).
MIN_ENTRY_BYTES = _FIXED.size + MAC_BYTES
_ALIGN = 64
_NO_MAC = bytes(MAC_BYTES)
_UNPICKLE_HINT = (
    "cannot unpickle a verified cache entry: %s. The code that wrote it may differ from this one "
    "(a renamed class or module); delete the entry or clear the cache."
)
_INLINE_BYTES = 64 * 1024  # smaller entries are encoded as one bytes object


class FrameCodec(Codec):
    """Raw array frames and pickle-5 frames, optionally compressed and signed.

    Parameters
    ----------
    signer : Signer or None, default=None
        Signs every entry and verifies it on decode. With a signer, unsigned
        entries and entries signed with another key or algorithm are rejected.
    compression : {"none", "lz4", "zstd", "auto"}, default="auto"
        Payload compression (see :mod:`scaleforge.codec.compression`).

    Examples
    --------
    >>> import numpy as np
    >>> from scaleforge.codec import FrameCodec, Signer
    >>> codec = FrameCodec(Signer(bytes(32)))
    >>> entry = codec.encode(np.arange(3.0)).tobytes()
    >>> codec.decode(entry)
    array([0., 1., 2.])
    """

    def __init__(self, signer: Signer | None = None, *, compression: str = "auto") -> None:
        if signer is not None and not isinstance(signer, Signer):
            raise InvalidParameterError(
                f"The 'signer' parameter of FrameCodec must be a scaleforge.codec.Signer or None. "
                f"Got {type(signer).__name__} instead."
            )
        self._signer = signer
        self._compression = _comp.check_compression(compression, "FrameCodec")

    def __repr__(self) -> str:
        return f"FrameCodec(signer={self._signer!r}, compression={self._compression!r})"

    @property
    def signed(self) -> bool:
        """True if entries carry a keyed MAC."""
        return self._signer is not None

    @property
    def compression(self) -> str:
        """The configured compression policy."""
        return self._compression

    # ---- encode ----------------------------------------------------------------------
    def encode(self, value: Any) -> EncodedValue:
        """Encode ``value`` into header + payload buffers (see the module docstring).

        Parameters
        ----------
        value : object

        Returns
        -------
        EncodedValue

        Raises
        ------
        SerializationError
            If the value cannot be pickled.
        """
        head, segments, payload_len, kind = self._encode_parts(value)
        mac = _NO_MAC if self._signer is None else self._signer.mac([head, *segments])
        if payload_len < _INLINE_BYTES:
            buffers_out: tuple[bytes | memoryview, ...] = (b"".join((head, *segments, mac)),)
        else:
            buffers_out = (head, *segments, mac)
        return EncodedValue(buffers_out, len(head) + payload_len + MAC_BYTES, kind)

    def encode_unsigned(self, value: Any) -> EncodedValue:
        """Encode ``value`` without its MAC trailer, for writers that MAC while they write.

        The entry is these buffers followed by :data:`MAC_BYTES` bytes: the
        digest of the buffers by :meth:`mac_hasher`, or zeros when the codec is
        unsigned (:meth:`trailer`). ``DiskTier`` uses it to hash each chunk of a
        large value right before writing it, so the data is read once while it
        is in the CPU cache instead of once for the MAC and once for the write.

        Parameters
        ----------
        value : object

        Returns
        -------
        EncodedValue
            ``nbytes`` excludes the trailer. Nothing is copied for large arrays.

        Raises
        ------
        SerializationError
            If the value cannot be pickled.
        """
        head, segments, payload_len, kind = self._encode_parts(value)
        return EncodedValue((head, *segments), len(head) + payload_len, kind)

    def trailer(self, hasher: Any) -> bytes:
        """Return the MAC trailer from a :meth:`mac_hasher` fed the whole entry body (zeros if unsigned)."""
        return _NO_MAC if hasher is None else bytes(hasher.digest())

    def _encode_parts(self, value: Any) -> tuple[bytes, list[bytes | memoryview], int, str]:
        segments: list[bytes | memoryview]
        if is_raw_array(value):
            kind = KIND_ARRAY
            meta, payload = array_payload(value)
            method = _comp.choose_method(payload, self._compression, value.dtype.itemsize)
            if method != _comp.NONE:
                meta["n"] = payload.nbytes
                meta["i"] = value.dtype.itemsize
                segments = [_comp.compress(payload, method, value.dtype.itemsize)]
            else:
                segments = [payload]
        else:
            kind = KIND_PICKLE
            stream, buffers = dumps(value)
            raw: list[memoryview] = [memoryview(stream), *buffers]
            method = _comp.choose_method(raw[0] if not buffers else max(raw, key=len), self._compression)
            if method != _comp.NONE:
                segments = [_comp.compress(s, method) if s.nbytes else b"" for s in raw]
                meta = {"r": [s.nbytes for s in raw], "c": [len(s) for s in segments]}
            else:
                segments = list(raw)
                meta = {"r": [s.nbytes for s in raw]} if buffers else {}
        if meta:
            meta_bytes = orjson.dumps(meta)
            meta_bytes += b" " * (-(HEADER_BYTES + len(meta_bytes)) % _ALIGN)
        else:  # one uncompressed in-band pickle: no meta, nothing to align
            meta_bytes = b""
        payload_len = sum(len(s) for s in segments)
        alg = 0 if self._signer is None else self._signer.algorithm_id
        fixed = _FIXED.pack(MAGIC, VERSION, kind, method, alg, len(meta_bytes), payload_len)
        head = fixed + meta_bytes
        return head, segments, payload_len, "array" if kind == KIND_ARRAY else "pickle"

    # ---- decode ----------------------------------------------------------------------
    def mac_hasher(self) -> Any:
        """Return an incremental hasher for :meth:`decode`'s ``precomputed_mac`` (None if unsigned).

        Feed it every byte of an entry except the last ``MAC_BYTES``.
        """
        return None if self._signer is None else self._signer.hasher()

    def decode(self, data: Buffer | Any, *, verify: bool = True, precomputed_mac: bytes | None = None) -> Any:
        """Decode one entry (see :meth:`Codec.decode`).

        Parameters
        ----------
        data : bytes, bytearray, memoryview or mmap
            Exactly one entry. Arrays decoded from a ``bytearray`` are writable
            and share its memory; from ``bytes`` the entry is first copied into a
            ``bytearray`` (so arrays are writable); from a read-only mmap or
            memoryview they are read-only views of it.
        verify : bool, default=True
            ``False`` skips the MAC for uncompressed raw arrays only.
        precomputed_mac : bytes, optional
            The MAC the caller computed over ``data[:-MAC_BYTES]`` with
            :meth:`mac_hasher` while reading it; compared with the stored MAC
            instead of hashing the entry again.

        Returns
        -------
        object

        Raises
        ------
        IntegrityError
            If the MAC does not verify, or the entry is unsigned while this codec signs.
        SerializationError
            If the entry is malformed or truncated.
        """
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        total = len(view)
        if total < MIN_ENTRY_BYTES:
            raise SerializationError(f"cache entry is truncated ({total} bytes)")
        magic, version, kind, method, alg, meta_len, payload_len = _FIXED.unpack_from(view)
        if magic != MAGIC or version != VERSION:
            raise SerializationError("not a scaleforge cache entry (bad magic or version)")
        start = HEADER_BYTES + meta_len
        end = start + payload_len
        if end + MAC_BYTES != total:
            raise SerializationError(
                f"cache entry is truncated or padded: {total} bytes, header says {end + MAC_BYTES}"
            )
        signer = self._signer
        if signer is None:
            if alg != 0:
                raise IntegrityError("cache entry is signed but this codec has no key to verify it")
        elif alg != signer.algorithm_id:
            raise IntegrityError("cache entry is unsigned or signed with another algorithm")
        elif precomputed_mac is not None:
            if not hmac.compare_digest(precomputed_mac, view[end:]):
                raise IntegrityError(
                    "cache entry failed its MAC check (tampered, torn, or written with another key)"
                )
        elif (verify or kind != KIND_ARRAY or method != _comp.NONE) and not signer.verify(
            [view[:end]], view[end:]
        ):
            raise IntegrityError(
                "cache entry failed its MAC check (tampered, torn, or written with another key)"
            )
        if meta_len == 0 and kind == KIND_PICKLE:  # the common small case: one in-band pickle
            try:
                return loads(view[HEADER_BYTES:end], ())
            except Exception as exc:
                raise SerializationError(_UNPICKLE_HINT % exc) from exc
        if type(data) is bytes:  # arrays decoded over immutable bytes would be read-only
            view = memoryview(bytearray(view))
        meta_view = view[HEADER_BYTES:start]
        payload = view[start:end]
        try:
            meta = orjson.loads(meta_view)
            if kind == KIND_ARRAY:
                if method == _comp.NONE:
                    return array_from_buffer(meta, view, start, payload_len)
                raw_n, itemsize = int(meta["n"]), int(meta["i"])
                out = _comp.decompress(payload, method, raw_n, itemsize)
                return array_from_buffer(meta, out, 0, raw_n)
            if kind != KIND_PICKLE:
                raise ValueError(f"unknown entry kind {kind}")
            parts = self._segments(meta, meta["r"], payload, payload_len, method)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            raise SerializationError(f"malformed cache entry: {exc}") from exc
        except Exception as exc:  # lz4/zstd errors
            raise SerializationError(f"cache entry payload does not decompress: {exc}") from exc
        try:
            return loads(parts[0], parts[1:])
        except Exception as exc:
            raise SerializationError(_UNPICKLE_HINT % exc) from exc

    @staticmethod
    def _segments(
        meta: dict[str, Any], raw_lens: list[Any], payload: memoryview, payload_len: int, method: int
    ) -> list[Any]:
        raw_lens = [int(n) for n in raw_lens]
        stored = [int(n) for n in meta.get("c", raw_lens)]
        if sum(stored) != payload_len or len(stored) != len(raw_lens) or not raw_lens:
            raise ValueError("segment lengths do not add up")
        parts: list[Any] = []
        pos = 0
        for raw_n, n in zip(raw_lens, stored, strict=False):
            seg = payload[pos : pos + n]
            pos += n
            if method == _comp.NONE:
                parts.append(seg)
            elif raw_n == 0:  # empty buffers are stored as zero bytes, not as a compressed frame
                if n != 0:
                    raise ValueError("an empty segment has stored bytes")
                parts.append(bytearray())
            else:
                parts.append(_comp.decompress(seg, method, raw_n))
        return parts
