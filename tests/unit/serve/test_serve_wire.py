"""Wire formats: JSON, msgpack raw buffers, .npy, and Accept negotiation."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.serve.wire import (
    JSON,
    MSGPACK,
    NPY,
    MalformedBodyError,
    NotAcceptableError,
    UnsupportedMediaTypeError,
    choose_response_type,
    decode_body,
    encode_body,
    pack_msgpack,
    unpack_msgpack,
)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("application/x-npy", NPY),
        ("application/msgpack", MSGPACK),
        ("application/x-msgpack;q=0.9, application/x-npy;q=0.1", MSGPACK),
        ("text/html, application/*;q=0.2", JSON),
        ("application/x-npy;q=0, application/json", JSON),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str) -> None:
    assert choose_response_type(accept) == expected


def test_unsupported_accept_is_not_acceptable() -> None:
    with pytest.raises(NotAcceptableError, match="Accept one of"):
        choose_response_type("text/html")


def test_json_inputs_and_single_input() -> None:
    assert decode_body(b'{"inputs": [[1, 2], [3, 4]]}', "application/json") == ([[1, 2], [3, 4]], False)
    assert decode_body(b'{"input": [1, 2]}', None) == ([[1, 2]], True)


@pytest.mark.parametrize("body", [b"{bad", b"", b'{"inputs": [NaN]}', b"\xff\xfe"])
def test_malformed_json_is_a_400_kind_of_error(body: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        decode_body(body, "application/json")


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"x": 1}', b'{"inputs": 3}', b"null"])
def test_json_without_inputs_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidParameterError, match="inputs"):
        decode_body(body, "application/json")


def test_unknown_content_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="text/csv"):
        decode_body(b"1,2", "text/csv")


def test_npy_body_splits_items_on_the_first_axis_and_never_unpickles() -> None:
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    items, single = decode_body(_npy(a), "application/x-npy")
    assert not single and len(items) == 3
    np.testing.assert_array_equal(np.stack(items), a)
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MalformedBodyError):
        decode_body(buf.getvalue(), NPY)
    with pytest.raises(MalformedBodyError):
        decode_body(b"not npy", NPY)


def test_msgpack_raw_buffers_round_trip_exactly() -> None:
    a = np.random.default_rng(0).normal(size=(2, 5)).astype(np.float64)
    packed = pack_msgpack({"inputs": a, "note": "x"})
    doc = unpack_msgpack(packed)
    np.testing.assert_array_equal(doc["inputs"], a)
    items, single = decode_body(packed, "application/msgpack")
    assert len(items) == 2 and not single
    np.testing.assert_array_equal(items[1], a[1])


def test_msgpack_inconsistent_buffer_is_malformed() -> None:
    import msgpack

    bad = msgpack.packb({"inputs": {"dtype": "<f8", "shape": [3], "data": b"\x00" * 5}}, use_bin_type=True)
    with pytest.raises(MalformedBodyError, match="inconsistent"):
        decode_body(bad, MSGPACK)
    with pytest.raises(MalformedBodyError):
        decode_body(b"\xc1", MSGPACK)


def test_encode_json_spreads_mapping_outputs_for_single_requests() -> None:
    out = {"mean": np.array([1.0, 2.0]), "std": np.array([0.5, 0.5])}
    doc = orjson.loads(encode_body([out], True, JSON, {"model": "m", "version": "1"}))
    assert doc == {"mean": [1.0, 2.0], "std": [0.5, 0.5], "model": "m", "version": "1"}
    doc = orjson.loads(encode_body([np.float32(3.0), np.arange(2)], False, JSON, {}))
    assert doc == {"outputs": [3.0, [0, 1]]}
    # non-contiguous arrays fall back to lists
    doc = orjson.loads(encode_body([np.arange(6).reshape(2, 3).T], True, JSON, {}))
    assert doc["output"] == [[0, 3], [1, 4], [2, 5]]


def test_encode_npy_stacks_outputs_and_refuses_mappings() -> None:
    body = encode_body([np.ones(3), np.zeros(3)], False, NPY, {})
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), np.stack([np.ones(3), np.zeros(3)]))
    with pytest.raises(NotAcceptableError):
        encode_body([{"mean": 1.0}], False, NPY, {})


def test_encode_msgpack_keeps_dtype() -> None:
    body = encode_body([np.arange(3, dtype=np.int16)], False, MSGPACK, {"model": "m"})
    doc = unpack_msgpack(body)
    assert doc["model"] == "m" and doc["outputs"][0].dtype == np.int16
