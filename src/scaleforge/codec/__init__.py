"""Serialization for the cache: raw array frames, pickle protocol 5, compression, signing.

``FrameCodec`` is the entry format of the disk and Redis tiers; ``Signer`` and
``load_key`` provide the keyed MAC every shared entry carries.
"""

from __future__ import annotations

from scaleforge.codec.base import Buffer, Codec, EncodedValue
from scaleforge.codec.compression import COMPRESSIONS
from scaleforge.codec.frames import FrameCodec
from scaleforge.codec.signing import KEY_BYTES, MAC_BYTES, Signer, load_key

__all__ = [
    "COMPRESSIONS",
    "KEY_BYTES",
    "MAC_BYTES",
    "Buffer",
    "Codec",
    "EncodedValue",
    "FrameCodec",
    "Signer",
    "load_key",
]
