"""FrameCodec: raw array frames, pickle-5 frames, compression, MAC checks."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scaleforge.codec import MAC_BYTES, FrameCodec, Signer
from scaleforge.codec.frames import HEADER_BYTES, KIND_ARRAY, KIND_PICKLE
from scaleforge.errors import IntegrityError, InvalidParameterError, SerializationError
from scaleforge.testing.tiers import assert_same_value, sample_values

SIGNED = FrameCodec(Signer(bytes(range(32))))


def _kind(entry: bytes) -> int:
    return entry[5]


@pytest.mark.parametrize("name", sorted(sample_values()))
@pytest.mark.parametrize("compression", ["none", "lz4", "zstd", "auto"])
def test_round_trip(name: str, compression: str) -> None:
    codec = FrameCodec(Signer(bytes(32)), compression=compression)
    value = sample_values()[name]
    entry = codec.encode(value).tobytes()
    assert_same_value(codec.decode(bytearray(entry)), value)


def test_plain_arrays_are_raw_frames_not_pickles() -> None:
    arr = np.arange(100_000.0)
    enc = FrameCodec(Signer(bytes(32)), compression="none").encode(arr)
    assert enc.kind == "array"
    assert _kind(enc.tobytes()) == KIND_ARRAY
    # Large payloads are the array's memory itself (no copy on encode): header, payload, MAC.
    assert len(enc.buffers) == 3
    assert np.shares_memory(np.frombuffer(enc.buffers[1], dtype=np.float64), arr)
    assert _kind(SIGNED.encode(np.array([1, "a"], dtype=object)).tobytes()) == KIND_PICKLE


@pytest.mark.parametrize("n", [10, 100_000])
def test_payload_is_64_byte_aligned_and_exactly_sized(n: int) -> None:
    enc = SIGNED.encode(np.arange(n, dtype=np.int16))
    entry = enc.tobytes()
    meta_len = struct.unpack_from("<I", entry, 8)[0]
    assert (HEADER_BYTES + meta_len) % 64 == 0
    assert enc.nbytes == len(entry) == HEADER_BYTES + meta_len + 2 * n + MAC_BYTES


def test_arrays_inside_containers_go_out_of_band_without_copy() -> None:
    big = np.random.default_rng(0).random(100_000)
    enc = FrameCodec(Signer(bytes(32)), compression="none").encode({"u": big, "n": 3})
    assert enc.kind == "pickle"
    assert any(np.shares_memory(np.frombuffer(b, dtype=np.uint8), big) for b in enc.buffers[1:])
    out = FrameCodec(Signer(bytes(32))).decode(bytearray(enc.tobytes()))
    np.testing.assert_array_equal(out["u"], big)
    assert out["u"].flags.writeable


def test_fortran_order_is_preserved() -> None:
    arr = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    out = SIGNED.decode(bytearray(SIGNED.encode(arr).tobytes()))
    assert out.flags.f_contiguous
    np.testing.assert_array_equal(out, arr)


def test_decoded_arrays_are_writable_unless_read_from_a_read_only_view() -> None:
    entry = SIGNED.encode(np.arange(5)).tobytes()
    assert SIGNED.decode(entry).flags.writeable  # bytes: copied once
    assert SIGNED.decode(bytearray(entry)).flags.writeable  # shared, writable
    assert not SIGNED.decode(memoryview(entry)).flags.writeable  # a read-only view stays one


def test_auto_compression_skips_random_floats_and_compresses_zeros() -> None:
    codec = FrameCodec(Signer(bytes(32)), compression="auto")
    noise = np.random.default_rng(0).random(100_000)
    assert codec.encode(noise).nbytes > noise.nbytes
    assert codec.encode(np.zeros(100_000)).nbytes < 10_000
    tiny = np.zeros(10)  # under 4 KiB: never compressed
    assert codec.encode(tiny).nbytes > tiny.nbytes


def test_zstd_shuffle_beats_plain_zstd_on_smooth_floats() -> None:
    smooth = np.sin(np.linspace(0, 20, 200_000))
    shuffled = FrameCodec(compression="zstd").encode(smooth).nbytes
    import zstandard

    plain = len(zstandard.ZstdCompressor(level=3).compress(smooth.tobytes()))
    assert shuffled < plain


def test_every_flipped_byte_is_detected() -> None:
    entry = SIGNED.encode({"a": np.arange(20), "b": "text"}).tobytes()
    for pos in range(len(entry)):
        tampered = bytearray(entry)
        tampered[pos] ^= 0x40
        with pytest.raises((IntegrityError, SerializationError)):
            SIGNED.decode(tampered)


@pytest.mark.parametrize("cut", [0, 10, HEADER_BYTES + MAC_BYTES, -1])
def test_truncated_entries_are_rejected(cut: int) -> None:
    entry = SIGNED.encode(np.arange(100.0)).tobytes()
    with pytest.raises(SerializationError):
        SIGNED.decode(entry[:cut])


def test_wrong_key_and_wrong_algorithm_and_unsigned_are_rejected() -> None:
    value = {"x": 1}
    other = FrameCodec(Signer(bytes(32))).encode(value).tobytes()
    with pytest.raises(IntegrityError):
        SIGNED.decode(other)
    hmac_entry = FrameCodec(Signer(bytes(range(32)), "hmac-sha256")).encode(value).tobytes()
    with pytest.raises(IntegrityError, match="algorithm"):
        SIGNED.decode(hmac_entry)
    unsigned = FrameCodec().encode(value).tobytes()
    with pytest.raises(IntegrityError):
        SIGNED.decode(unsigned)
    with pytest.raises(IntegrityError):
        FrameCodec().decode(SIGNED.encode(value).tobytes())  # no key to verify a signed entry


def test_hmac_sha256_round_trip() -> None:
    codec = FrameCodec(Signer(bytes(range(32)), "hmac-sha256"))
    assert codec.decode(codec.encode([1, 2]).tobytes()) == [1, 2]


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (self.path, "w"))


def test_malicious_pickle_with_wrong_mac_is_never_loaded(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    forged = FrameCodec(Signer(bytes(32))).encode(_Evil(str(target))).tobytes()
    with pytest.raises(IntegrityError):
        SIGNED.decode(forged)
    assert not target.exists()
    # verify=False never applies to pickles
    with pytest.raises(IntegrityError):
        SIGNED.decode(forged, verify=False)
    assert not target.exists()
    # Control: the payload is live if unpickled without the check.
    pickle.loads(pickle.dumps(_Evil(str(target)))).close()
    assert target.exists()


def test_verify_false_skips_only_raw_uncompressed_arrays() -> None:
    entry = bytearray(
        FrameCodec(Signer(bytes(range(32))), compression="none").encode(np.arange(10)).tobytes()
    )
    entry[-MAC_BYTES - 1] ^= 1  # change one element's byte
    out = SIGNED.decode(entry, verify=False)
    assert out[-1] != 9  # decoded without the MAC: numbers may be wrong, nothing is unpickled
    with pytest.raises(IntegrityError):
        SIGNED.decode(entry)


def test_object_dtype_in_raw_header_is_refused() -> None:
    codec = FrameCodec(compression="none")
    entry = bytearray(codec.encode(np.arange(4, dtype=np.int64)).tobytes())
    meta_start = HEADER_BYTES
    meta_len = struct.unpack_from("<I", entry, 8)[0]
    meta = bytes(entry[meta_start : meta_start + meta_len]).replace(b'"<i8"', b'"|O8"')
    assert len(meta) == meta_len
    entry[meta_start : meta_start + meta_len] = meta
    with pytest.raises(SerializationError):
        codec.decode(entry)


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidParameterError, match="compression"):
        FrameCodec(compression="brotli")
    with pytest.raises(InvalidParameterError, match="signer"):
        FrameCodec(signer=b"key")  # type: ignore[arg-type]


def test_unpicklable_value_raises_serialization_error() -> None:
    import threading

    with pytest.raises(SerializationError, match="lock"):
        SIGNED.encode(threading.Lock())


def test_lambdas_fall_back_to_cloudpickle() -> None:
    fn = SIGNED.decode(SIGNED.encode(lambda x: x * 3).tobytes())
    assert fn(2) == 6


@given(
    arr=hnp.arrays(
        dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    ),
    compression=st.sampled_from(["none", "lz4", "zstd", "auto"]),
    fortran=st.booleans(),
)
def test_round_trip_property(arr: np.ndarray, compression: str, fortran: bool) -> None:
    if fortran:
        arr = np.asfortranarray(arr)
    codec = FrameCodec(Signer(bytes(32)), compression=compression)
    out = codec.decode(bytearray(codec.encode(arr).tobytes()))
    assert out.dtype == arr.dtype and out.shape == arr.shape
    assert out.tobytes() == np.ascontiguousarray(arr).tobytes()  # bit-exact, NaNs included
