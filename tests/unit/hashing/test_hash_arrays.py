"""Array hashing: layout invariance, sensitivity, no-copy fast path, torch and pandas."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleforge.errors import InvalidParameterError
from scaleforge.hashing import hash_array, hash_value
from scaleforge.testing.strategies import (
    array_dtypes,
    arrays,
    arrays_and_variants,
    flip_one_byte,
    same_values,
)


@given(arrays_and_variants())
def test_equal_values_in_any_layout_hash_alike(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    assert hash_value(a) == hash_value(b) == hash_array(a)


@given(arrays())
def test_all_variants_hash_alike(a: np.ndarray) -> None:
    digest = hash_array(a)
    for variant in same_values(a):
        assert hash_array(variant) == digest


@given(arrays(min_side=1), st.data())
def test_any_single_element_change_changes_digest(a: np.ndarray, data: st.DataObject) -> None:
    changed = data.draw(flip_one_byte(a))
    assert hash_array(changed) != hash_array(a)


@given(arrays(array_dtypes(strings=False, times=False), min_side=1), array_dtypes(strings=False, times=False))
def test_dtype_change_changes_digest(a: np.ndarray, dtype: np.dtype[Any]) -> None:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lossy casts (complex -> real, nan -> int) are fine here
        converted = a.astype(dtype)
    same_kind = converted.dtype.newbyteorder("<") == a.dtype.newbyteorder("<")
    assert (hash_array(converted) == hash_array(a)) == same_kind


@given(arrays(min_side=1))
def test_shape_change_changes_digest(a: np.ndarray) -> None:
    flat = a.reshape(-1)
    if flat.shape != a.shape:
        assert hash_array(flat) != hash_array(a)
    assert hash_array(a[np.newaxis]) != hash_array(a)


def test_int_bool_float_arrays_differ() -> None:
    ones = [np.ones(4, dtype=bool), np.ones(4, dtype=np.int8), np.ones(4, dtype=np.uint8), np.ones(4)]
    assert len({hash_array(a) for a in ones}) == 4
    # same bytes, different dtype
    raw = np.arange(8, dtype=np.int32)
    assert hash_array(raw) != hash_array(raw.view(np.float32))
    assert hash_array(raw) != hash_array(raw.view(np.int16))
    # empty arrays of different shapes or dtypes
    assert hash_array(np.empty((0, 3))) != hash_array(np.empty((3, 0)))
    assert hash_array(np.empty(0)) != hash_array(np.empty(0, dtype=np.int64))


def test_byte_order_is_layout_not_value() -> None:
    a = np.arange(10, dtype="<i4")
    assert hash_array(a.astype(">i4")) == hash_array(a)
    zero_d = np.array(7, dtype=">i2")  # numpy drops the byte order when pickling 0-d arrays
    assert hash_array(pickle.loads(pickle.dumps(zero_d))) == hash_array(zero_d)


def test_scalars_zero_d_arrays_and_python_numbers_differ() -> None:
    assert hash_value(np.float64(1.0)) != hash_value(1.0)
    assert hash_value(np.float64(1.0)) != hash_value(np.float32(1.0))
    assert hash_value(np.float64(1.0)) != hash_value(np.array(1.0))
    assert hash_value(np.int64(1)) != hash_value(np.bool_(True))
    assert hash_value(np.float64(2.5)) == hash_value(pickle.loads(pickle.dumps(np.float64(2.5))))
    assert hash_value(np.str_("ab")) != hash_value("ab")
    assert hash_value(np.datetime64("2020-01-01")) != hash_value(np.datetime64("2020-01-02"))


def test_object_arrays_are_hashed_element_wise() -> None:
    a = np.empty(2, dtype=object)
    a[0] = {"x": 1, "y": 2}
    a[1] = "s"
    b = np.empty(2, dtype=object)
    b[0] = {"y": 2, "x": 1}  # other insertion order: a pickle of it would differ
    b[1] = "s"
    assert hash_array(a) == hash_array(b)
    b[1] = "t"
    assert hash_array(a) != hash_array(b)
    assert hash_array(np.array([1, 2], dtype=object)) != hash_array(np.array([1, 2]))
    bad = np.array([1, object()], dtype=object)
    with pytest.raises(InvalidParameterError, match=r"at a\[1\]"):
        hash_array(bad)
    cyclic = np.empty(1, dtype=object)
    cyclic[0] = cyclic
    with pytest.raises(InvalidParameterError, match="contains itself"):
        hash_value(cyclic)


def test_structured_and_subclassed_arrays(tmp_path: Path) -> None:
    rec = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
    rec2 = np.zeros(3, dtype=[("a", "<i4"), ("c", "<f8")])
    assert hash_array(rec) != hash_array(rec2)
    assert hash_array(rec) == hash_array(rec.copy())
    path = tmp_path / "x.npy"
    data = np.arange(20.0)
    np.save(path, data)
    assert hash_value(np.load(path, mmap_mode="r")) == hash_value(data)
    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    assert hash_value(masked) != hash_value(np.ma.masked_array([1, 2, 3], mask=[0, 0, 0]))
    assert hash_value(masked) == hash_value(masked.copy())


def _allocated_while(fn: Any) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_contiguous_arrays_are_not_copied_others_in_bounded_blocks() -> None:
    a = np.random.default_rng(0).random(2_000_000)  # 16 MB
    assert _allocated_while(lambda: hash_array(a)) < 1_000_000
    for other in [
        np.asfortranarray(a.reshape(1000, 2000)),
        a[::2],
        a.astype(">f8"),
        np.asfortranarray(a.reshape(2, 1_000_000)),
        np.asfortranarray(a[:480_000].reshape(3, 400, 400)),
        a.reshape(1000, 2000).T,
        a.reshape(1000, 2000)[:, ::3],
    ]:
        expected = hash_array(np.ascontiguousarray(other, dtype="<f8"))
        assert other.flags.c_contiguous is False or other.dtype.byteorder == ">"
        peak = _allocated_while(lambda other=other: hash_array(other))
        assert peak < other.nbytes / 2
        assert hash_array(other) == expected


def test_hash_array_rejects_non_arrays() -> None:
    with pytest.raises(InvalidParameterError, match=r"'a' parameter of hash_array must be a numpy\.ndarray"):
        hash_array([1, 2, 3])  # type: ignore[arg-type]


def test_dtypes_hash_by_dtype() -> None:
    assert hash_value(np.dtype("f8")) == hash_value(np.dtype(np.float64))
    assert hash_value(np.dtype("f8")) != hash_value(np.dtype("f4"))
    assert hash_value(np.dtype("f8")) != hash_value(np.float64)  # the class, by qualified name


def test_ufuncs_hash_by_name() -> None:
    assert hash_value(np.sqrt) == hash_value(np.sqrt)
    assert hash_value(np.sqrt) != hash_value(np.exp)


def test_importing_hashing_imports_neither_torch_nor_pandas() -> None:
    code = (
        "import sys, scaleforge.hashing as h, numpy as np; h.hash_value(np.arange(3)); "
        "h.hash_value({'a': [1.0]}); "
        "bad = [m for m in ('torch', 'pandas', 'ray', 'redis', 'dask') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_structured_padding_bytes_do_not_change_the_key() -> None:
    # An aligned structured dtype has padding bytes that hold whatever was in memory: equal
    # records must hash alike whatever those bytes are, and like the packed layout.
    padded = np.dtype({"names": ["a", "b"], "formats": ["i4", "f8"], "offsets": [0, 8], "itemsize": 16})
    clean = np.zeros(3, dtype=padded)
    clean["a"], clean["b"] = [1, 2, 3], [0.5, 1.5, 2.5]
    dirty = clean.copy()
    dirty.view(np.uint8).reshape(3, 16)[:, 4:8] = 0xAB  # the padding between 'a' and 'b'
    packed = np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])
    packed["a"], packed["b"] = clean["a"], clean["b"]
    assert hash_value(dirty) == hash_value(clean) == hash_value(packed)
    assert hash_value(dirty[1]) == hash_value(clean[1]) == hash_value(packed[1])
    assert hash_value(np.asfortranarray(np.stack([dirty, dirty]))) == hash_value(np.stack([clean, clean]))
    changed = clean.copy()
    changed["b"][2] = 9.0
    assert hash_value(changed) != hash_value(clean)
    renamed = packed.astype([("a", "i4"), ("c", "f8")])
    assert hash_value(renamed) != hash_value(packed)


def test_equal_structured_dtypes_hash_alike_whichever_was_seen_first() -> None:
    a = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])
    b = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])  # an equal, distinct dtype object
    assert a.dtype is not b.dtype
    assert hash_value(a[1]) == hash_value(b[1])
    assert hash_value(a) == hash_value(b)
