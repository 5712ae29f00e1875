"""Hypothesis strategies for arrays and values, reusable by any layer's tests.

Examples
--------
>>> from hypothesis import given
>>> from scaleforge.testing.strategies import arrays, same_values
>>> @given(arrays())
... def test_copy_hashes_alike(a):
...     from scaleforge.hashing import hash_value
...     assert all(hash_value(v) == hash_value(a) for v in same_values(a))
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "array_dtypes",
    "arrays",
    "arrays_and_variants",
    "flip_one_byte",
    "hashable_keys",
    "same_values",
    "scalars",
    "values",
]


def array_dtypes(*, strings: bool = True, times: bool = True) -> st.SearchStrategy[np.dtype[Any]]:
    """Numeric dtypes (bool, signed/unsigned ints, floats, complex), optionally strings and times.

    Parameters
    ----------
    strings : bool, default=True
        Include fixed-width bytes (``S``) and unicode (``U``) dtypes.
    times : bool, default=True
        Include ``datetime64`` and ``timedelta64`` dtypes.

    Returns
    -------
    SearchStrategy of numpy.dtype
        Both byte orders are drawn for multi-byte types.
    """
    choices: list[st.SearchStrategy[Any]] = [
        hnp.boolean_dtypes(),
        hnp.integer_dtypes(endianness="?"),
        hnp.unsigned_integer_dtypes(endianness="?"),
        hnp.floating_dtypes(endianness="?"),
        hnp.complex_number_dtypes(endianness="?"),
    ]
    if strings:
        choices += [hnp.byte_string_dtypes(max_len=4), hnp.unicode_string_dtypes(max_len=4)]
    if times:
        choices += [hnp.datetime64_dtypes(), hnp.timedelta64_dtypes()]
    return st.one_of(*choices)


def arrays(
    dtype: np.dtype[Any] | st.SearchStrategy[np.dtype[Any]] | None = None,
    *,
    max_dims: int = 3,
    min_side: int = 0,
    max_side: int = 5,
) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    """Small numpy arrays of any dtype from :func:`array_dtypes` and up to ``max_dims`` axes.

    Parameters
    ----------
    dtype : numpy.dtype or SearchStrategy of numpy.dtype, default=None
        The dtype (strategy); ``None`` draws from :func:`array_dtypes`.
    max_dims : int, default=3
        Largest number of dimensions (0-d arrays are included).
    min_side, max_side : int, default=0 and 5
        Bounds of each axis length.

    Returns
    -------
    SearchStrategy of ndarray
        Elements include NaN and infinities for float dtypes.
    """
    return hnp.arrays(
        dtype=array_dtypes() if dtype is None else dtype,
        shape=hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=min_side, max_side=max_side),
    )


def same_values(a: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """Arrays equal to ``a`` in dtype, shape and every element, in other memory layouts.

    Parameters
    ----------
    a : ndarray
        The reference array.

    Returns
    -------
    list of ndarray
        A copy, a Fortran-ordered copy, a non-contiguous strided view holding
        the same values, a read-only view, and a pickle round trip.
    """
    strided_base = np.zeros((*a.shape[:-1], 2 * a.shape[-1]) if a.ndim else (2,), dtype=a.dtype)
    if a.ndim:
        strided_base[..., ::2] = a
        strided = strided_base[..., ::2]
    else:
        strided_base[0] = a
        strided = strided_base[0:1:2].reshape(())
    readonly = a.view()
    readonly.flags.writeable = False
    return [
        a.copy(),
        np.asfortranarray(a).reshape(a.shape),  # asfortranarray turns 0-d into 1-d
        strided,
        readonly,
        pickle.loads(pickle.dumps(a, protocol=5)),
    ]


@st.composite
def arrays_and_variants(
    draw: st.DrawFn, dtype: np.dtype[Any] | st.SearchStrategy[np.dtype[Any]] | None = None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Pairs ``(a, b)`` where ``b`` is one of :func:`same_values` of ``a``.

    Parameters
    ----------
    draw : callable
        Supplied by Hypothesis.
    dtype : numpy.dtype or SearchStrategy of numpy.dtype, default=None
        Passed to :func:`arrays`.

    Returns
    -------
    tuple of ndarray
        Two arrays with equal dtype, shape and elements.
    """
    a = draw(arrays(dtype))
    return a, draw(st.sampled_from(same_values(a)))


@st.composite
def flip_one_byte(draw: st.DrawFn, a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A copy of ``a`` (non-empty, non-object) with one bit of one element flipped.

    Parameters
    ----------
    draw : callable
        Supplied by Hypothesis.
    a : ndarray
        A non-empty array whose dtype is not ``object``.

    Returns
    -------
    ndarray
        Same dtype and shape; exactly one element differs bitwise.
    """
    b = np.ascontiguousarray(a).copy()
    raw = b.reshape(-1).view(np.uint8)
    index = draw(st.integers(0, raw.size - 1))
    bit = draw(st.integers(0, 7))
    raw[index] ^= np.uint8(1 << bit)
    return b


def scalars() -> st.SearchStrategy[Any]:
    """Python scalars: None, bool, int (beyond 64 bits), float (NaN, inf), complex, str, bytes."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.complex_numbers(allow_nan=True),
        st.text(max_size=8),
        st.binary(max_size=8),
    )


def hashable_keys() -> st.SearchStrategy[Any]:
    """Values usable as dict keys and set elements: scalars and tuples of scalars (no NaN)."""
    base = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=8),
        st.binary(max_size=8),
    )
    return st.one_of(base, st.tuples(base, base))


def values(*, max_leaves: int = 12, with_arrays: bool = True) -> st.SearchStrategy[Any]:
    """Nested values ``hash_value`` supports: scalars and small arrays inside tuples, lists, dicts, sets.

    Parameters
    ----------
    max_leaves : int, default=12
        Bound on the number of leaves.
    with_arrays : bool, default=True
        Include small numeric numpy arrays among the leaves.

    Returns
    -------
    SearchStrategy
        Values built only from supported types.
    """
    leaves = scalars()
    if with_arrays:
        leaves = st.one_of(leaves, arrays(array_dtypes(strings=False, times=False), max_dims=2, max_side=3))
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.lists(children, max_size=4).map(tuple),
            st.dictionaries(hashable_keys(), children, max_size=4),
            st.frozensets(hashable_keys(), max_size=4),
        ),
        max_leaves=max_leaves,
    )
