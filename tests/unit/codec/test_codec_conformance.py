"""``FrameCodec`` passes the ``CodecTests`` conformance suite (signed with BLAKE3 and HMAC-SHA256)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from scaleforge.codec import FrameCodec, Signer
from scaleforge.codec.base import Codec
from scaleforge.testing.codecs import CodecTests


class TestFrameCodecBlake3(CodecTests):
    @pytest.fixture
    def make_codec(self) -> Callable[..., Codec]:
        def make(*, compression: str = "auto", key: bytes | None = CodecTests.KEY) -> Codec:
            return FrameCodec(None if key is None else Signer(key, "blake3"), compression=compression)

        return make


class TestFrameCodecHmacSha256(CodecTests):
    @pytest.fixture
    def make_codec(self) -> Callable[..., Codec]:
        def make(*, compression: str = "auto", key: bytes | None = CodecTests.KEY) -> Codec:
            return FrameCodec(None if key is None else Signer(key, "hmac-sha256"), compression=compression)

        return make
