"""``CodecTests``: the conformance suite every cache codec passes.

Subclass it in a test module and supply a ``make_codec`` fixture: a factory
``make_codec(*, compression="auto", key=CodecTests.KEY)`` returning a fresh
:class:`~scaleforge.codec.base.Codec` (``key=None``: unsigned)::

    class TestMyCodec(CodecTests):
        @pytest.fixture
        def make_codec(self):
            def make(*, compression="auto", key=CodecTests.KEY):
                return MyCodec(None if key is None else Signer(key), compression=compression)
            return make

The suite checks the :class:`~scaleforge.codec.base.Codec` contract: round
trips of arrays of many dtypes, byte orders, memory orders and shapes
(0-d and empty included), of nested containers holding large arrays (passed
out of band, without a copy when uncompressed), of builtins; every
compression mode; and, with a signer, that a tampered, truncated, unsigned or
foreign-key entry is rejected with a
:class:`~scaleforge.errors.CacheError` and is **never unpickled**.

Together with :class:`scaleforge.testing.tiers.TierTests` (tiers) it is one
of the conformance suites of :mod:`scaleforge.testing` (import them from
``scaleforge.testing.codecs`` and ``scaleforge.testing.tiers``).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest

from scaleforge.codec.base import Codec, EncodedValue
from scaleforge.errors import CacheError, IntegrityError

__all__ = ["CodecTests", "array_cases", "assert_same_array"]

#: Dtypes every codec must round-trip exactly (byte order and units included).
DTYPES: tuple[str, ...] = (
    "bool",
    "i1",
    "u1",
    "<i2",
    "<u2",
    "<i4",
    "<u4",
    "<i8",
    "<u8",
    "<f2",
    "<f4",
    "<f8",
    "<c8",
    "<c16",
    ">i4",
    ">f8",
    "<M8[D]",
    "<m8[ms]",
    "S7",
    "<U3",
)
SHAPES: tuple[tuple[int, ...], ...] = ((), (0,), (0, 3), (1,), (7,), (3, 4), (2, 3, 5), (4, 1, 0, 2))


def _filled(dtype: np.dtype[Any], shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray[Any, Any]:
    n = int(np.prod(shape, dtype=np.int64))
    raw = rng.integers(0, 256, size=n * dtype.itemsize, dtype=np.uint8)
    if dtype.kind in "fc":  # avoid NaN payloads, which compare unequal
        return (rng.standard_normal(n) * 100).astype(dtype).reshape(shape)
    if dtype.kind == "b":
        return (raw[:n] & 1).astype(bool).reshape(shape)
    if dtype.kind == "U":
        return np.array(
            ["".join(chr(97 + int(c) % 26) for c in raw[i : i + 3]) for i in range(n)], dtype=dtype
        ).reshape(shape)
    return raw.view(dtype).reshape(shape)


def array_cases(dtype: str, seed: int = 0) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """Return ``(label, array)`` pairs of one dtype in every shape and memory order.

    Each shape comes C-contiguous, Fortran-contiguous (a copy) and, where
    possible, as a non-contiguous strided view.

    Parameters
    ----------
    dtype : str
        A numpy dtype string (e.g. ``">f8"``).
    seed : int, default=0
        Seed of the values.

    Returns
    -------
    list of (str, ndarray)
    """
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    out: list[tuple[str, np.ndarray[Any, Any]]] = []
    for shape in SHAPES:
        base = _filled(dt, shape, rng)
        out.append((f"C{shape}", base))
        out.append((f"F{shape}", np.asfortranarray(base)))
        if base.ndim >= 1 and base.shape[-1] > 1:
            big = _filled(dt, (*shape[:-1], shape[-1] * 2), rng)
            out.append((f"strided{shape}", big[..., ::2]))
    return out


def assert_same_array(got: Any, expected: np.ndarray[Any, Any]) -> None:
    """Assert ``got`` is an ndarray with ``expected``'s dtype (byte order included), shape and values."""
    assert isinstance(got, np.ndarray), f"expected an ndarray, got {type(got).__name__}"
    assert got.dtype == expected.dtype and got.dtype.str == expected.dtype.str, (got.dtype, expected.dtype)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@dataclasses.dataclass
class _Sample:
    name: str
    weights: np.ndarray[Any, Any]
    extras: dict[str, Any]


class _CreatesFile:
    """Unpickling this creates a file: a tampered entry must never get that far."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _encode_bytes(codec: Codec, value: Any) -> bytes:
    enc = codec.encode(value)
    assert isinstance(enc, EncodedValue)
    data = enc.tobytes()
    assert len(data) == enc.nbytes
    return data


class CodecTests:
    """Conformance tests for a :class:`~scaleforge.codec.base.Codec`; supply ``make_codec``."""

    #: Signing key the suite uses, and another one for foreign entries.
    KEY: ClassVar[bytes] = bytes(range(32))
    OTHER_KEY: ClassVar[bytes] = bytes(range(1, 33))
    #: Compression policies the codec accepts.
    COMPRESSIONS: ClassVar[tuple[str, ...]] = ("none", "lz4", "zstd", "auto")
    #: Whether uncompressed large arrays must be encoded without a copy.
    ZERO_COPY: ClassVar[bool] = True

    @pytest.fixture
    def make_codec(self) -> Callable[..., Codec]:
        raise NotImplementedError("subclasses of CodecTests supply a 'make_codec' fixture")

    # ---- arrays ----------------------------------------------------------------------------
    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("compression", ["none", "zstd"])
    def test_array_round_trip(self, make_codec: Callable[..., Codec], dtype: str, compression: str) -> None:
        codec = make_codec(compression=compression)
        for label, arr in array_cases(dtype):
            data = _encode_bytes(codec, arr)
            try:
                assert_same_array(codec.decode(data), arr)
            except AssertionError as exc:
                raise AssertionError(f"{dtype} {label}: {exc}") from exc

    @pytest.mark.parametrize("compression", ["none", "lz4", "zstd", "auto"])
    def test_every_compression_mode_round_trips(
        self, make_codec: Callable[..., Codec], compression: str
    ) -> None:
        if compression not in self.COMPRESSIONS:
            pytest.skip(f"codec does not offer {compression!r}")
        codec = make_codec(compression=compression)
        rng = np.random.default_rng(1)
        smooth = np.sin(np.linspace(0, 40, 200_000))  # compresses after a byte shuffle
        values: dict[str, Any] = {
            "random": rng.random(50_000),
            "zeros": np.zeros((300, 300)),
            "smooth_f4": smooth.astype(np.float32),
            "ints": np.arange(100_000, dtype=np.int32),
            "tiny": np.arange(3),
            "pickled": {"a": np.zeros(100_000), "text": "x" * 10_000, "n": [1, 2, 3]},
        }
        for name, value in values.items():
            got = codec.decode(_encode_bytes(codec, value))
            if isinstance(value, np.ndarray):
                assert_same_array(got, value)
            else:
                np.testing.assert_array_equal(got["a"], value["a"])
                assert got["text"] == value["text"] and got["n"] == value["n"], name

    def test_compression_shrinks_compressible_data(self, make_codec: Callable[..., Codec]) -> None:
        zeros = np.zeros(1_000_000)  # 8 MB of zeros
        raw = make_codec(compression="none").encode(zeros).nbytes
        assert raw >= zeros.nbytes
        for compression in ("lz4", "zstd", "auto"):
            if compression in self.COMPRESSIONS:
                assert make_codec(compression=compression).encode(zeros).nbytes < raw / 10, compression

    def test_auto_leaves_incompressible_data_alone(self, make_codec: Callable[..., Codec]) -> None:
        if "auto" not in self.COMPRESSIONS:
            pytest.skip("codec has no 'auto' compression")
        noise = np.random.default_rng(2).random(200_000)
        enc = make_codec(compression="auto").encode(noise)
        assert enc.nbytes <= noise.nbytes + 4096  # stored (nearly) as is

    def test_arrays_decoded_from_bytes_are_writable(self, make_codec: Callable[..., Codec]) -> None:
        codec = make_codec(compression="none")
        for value in (np.arange(100_000.0), {"a": np.arange(100_000.0)}):
            got = codec.decode(_encode_bytes(codec, value))
            arr = got if isinstance(got, np.ndarray) else got["a"]
            arr[0] = -1.0  # must not raise
            assert arr[0] == -1.0

    @pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
    def test_decode_accepts_bytes_like(self, make_codec: Callable[..., Codec], kind: str) -> None:
        codec = make_codec()
        value = {"x": np.arange(20_000), "y": "text"}
        data: Any = _encode_bytes(codec, value)
        data = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[kind](data)
        got = codec.decode(data)
        np.testing.assert_array_equal(got["x"], value["x"])
        assert got["y"] == "text"

    # ---- containers and builtins -----------------------------------------------------------
    def test_nested_containers_with_out_of_band_buffers(self, make_codec: Callable[..., Codec]) -> None:
        rng = np.random.default_rng(3)
        big = rng.random(100_000)  # 800 kB: an out-of-band buffer
        value: dict[str, Any] = {
            "arrays": [big, np.asfortranarray(rng.random((300, 200))), big[::3]],
            "tuple": (np.arange(10), ("nested", np.zeros((0, 2)))),
            "sample": _Sample("s", rng.random(70_000).astype(np.float32), {"k": np.array(2.5)}),
            "scalars": [np.float64(1.5), np.int8(-3), np.bool_(True)],
            "empty": {},
        }
        codec = make_codec(compression="none")
        enc = codec.encode(value)
        if self.ZERO_COPY:  # the large contiguous array is passed by reference, not copied
            assert any(
                isinstance(b, memoryview) and np.shares_memory(np.asarray(b), big) for b in enc.buffers
            ), "a large contiguous array inside a container was copied into the entry"
        for compression in ("none", "zstd"):
            if compression not in self.COMPRESSIONS:
                continue
            c = make_codec(compression=compression)
            got = c.decode(_encode_bytes(c, value))
            for a, b in zip(got["arrays"], value["arrays"], strict=True):
                assert_same_array(a, b)
            assert_same_array(got["tuple"][0], value["tuple"][0])
            assert got["tuple"][1][0] == "nested"
            assert_same_array(got["tuple"][1][1], value["tuple"][1][1])
            assert isinstance(got["sample"], _Sample) and got["sample"].name == "s"
            assert_same_array(got["sample"].weights, value["sample"].weights)
            assert_same_array(got["sample"].extras["k"], value["sample"].extras["k"])
            assert got["scalars"] == value["scalars"]
            assert [type(x) for x in got["scalars"]] == [type(x) for x in value["scalars"]]
            assert got["empty"] == {}

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            0,
            -(2**70),
            1.5,
            float("inf"),
            2j,
            "",
            "héllo",
            b"",
            b"\x00raw",
            [],
            (1, "a"),
            {1, 2},
            frozenset({3}),
        ],
        ids=repr,
    )
    def test_builtins_round_trip(self, make_codec: Callable[..., Codec], value: Any) -> None:
        codec = make_codec()
        got = codec.decode(_encode_bytes(codec, value))
        assert type(got) is type(value) and got == value

    # ---- signing -----------------------------------------------------------------------------
    def test_signed_property(self, make_codec: Callable[..., Codec]) -> None:
        assert make_codec().signed is True
        assert make_codec(key=None).signed is False

    @pytest.mark.parametrize(
        "value_kind", ["pickle_small", "pickle_out_of_band", "array", "array_compressed"]
    )
    def test_any_flipped_byte_is_rejected(self, make_codec: Callable[..., Codec], value_kind: str) -> None:
        codec = make_codec(compression="zstd" if value_kind == "array_compressed" else "none")
        value: Any = {
            "pickle_small": {"a": 1, "b": "two"},
            "pickle_out_of_band": {"arr": np.arange(20_000, dtype=np.int64)},
            "array": np.arange(300, dtype=np.int16),
            "array_compressed": np.zeros(5_000),
        }[value_kind]
        data = _encode_bytes(codec, value)
        n = len(data)
        positions = range(n) if n <= 4096 else sorted({*range(0, 256), *range(n - 64, n), n // 2, n // 3})
        for pos in positions:
            tampered = bytearray(data)
            tampered[pos] ^= 0x01
            with pytest.raises(CacheError):
                codec.decode(bytes(tampered))

    def test_a_tampered_entry_is_never_unpickled(
        self, make_codec: Callable[..., Codec], tmp_path: Any
    ) -> None:
        codec = make_codec(compression="none")
        marker = tmp_path / "pwned"
        legit = _encode_bytes(codec, {"payload": "x" * 50})
        evil_unsigned = _encode_bytes(make_codec(compression="none", key=None), _CreatesFile(str(marker)))
        evil_foreign = _encode_bytes(
            make_codec(compression="none", key=self.OTHER_KEY), _CreatesFile(str(marker))
        )
        for evil in (evil_unsigned, evil_foreign):
            with pytest.raises(CacheError):
                codec.decode(evil)
            with pytest.raises(CacheError):
                codec.decode(evil, verify=False)  # pickles are verified regardless
        with pytest.raises(IntegrityError):
            codec.decode(evil_foreign)
        # A legitimate entry's MAC pasted onto the evil payload: still rejected.
        spliced = evil_unsigned[:-32] + legit[-32:]
        with pytest.raises(CacheError):
            codec.decode(spliced)
        assert not marker.exists()
        # The same value signed with the right key does run its reduce (the test is meaningful).
        codec.decode(_encode_bytes(codec, _CreatesFile(str(marker))))
        assert marker.exists()

    @pytest.mark.parametrize("cut", [1, 31, 32, 33, -1])
    def test_truncated_or_padded_entries_are_rejected(
        self, make_codec: Callable[..., Codec], cut: int
    ) -> None:
        codec = make_codec(compression="none")
        data = _encode_bytes(codec, np.arange(10_000))
        broken = data + b"\x00" if cut == -1 else data[:-cut]
        with pytest.raises(CacheError):
            codec.decode(broken)
        with pytest.raises(CacheError):
            codec.decode(b"")

    def test_an_unsigned_codec_reads_its_own_entries_and_rejects_signed_ones(
        self, make_codec: Callable[..., Codec]
    ) -> None:
        plain = make_codec(key=None)
        assert plain.decode(_encode_bytes(plain, [1, 2])) == [1, 2]
        with pytest.raises(CacheError):
            plain.decode(_encode_bytes(make_codec(), [1, 2]))
