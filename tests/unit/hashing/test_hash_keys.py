"""make_key: stable, order-free, safe as a file name and a Redis key."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleforge.errors import InvalidParameterError
from scaleforge.hashing import ALGORITHM, KEY_SCHEMA_VERSION, hash_value, make_key

KEY = re.compile(r"^[a-z0-9_-]+$")


def test_constants() -> None:
    assert ALGORITHM == "xxh3_128"
    assert KEY_SCHEMA_VERSION == 1


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=6))
def test_key_shape_and_order_independence(parts: dict[str, str]) -> None:
    key = make_key(parts)
    assert key.startswith(f"{ALGORITHM}-v{KEY_SCHEMA_VERSION}-")
    assert KEY.match(key)
    assert len(key) == len("xxh3_128-v1-") + 32
    assert make_key(dict(reversed(list(parts.items())))) == key


def test_keys_depend_on_names_and_values() -> None:
    base = {"function": hash_value("f"), "arg:x": hash_value(1)}
    assert make_key(base) != make_key({**base, "arg:x": hash_value(2)})
    assert make_key(base) != make_key({"function": base["function"], "arg:y": base["arg:x"]})
    assert make_key(base) != make_key({**base, "version": "2"})
    # no ambiguity from concatenation
    assert make_key({"ab": "c"}) != make_key({"a": "bc"})
    assert make_key({"a": "b", "c": "d"}) != make_key({"a": "bc", "": "d"})
    # names or digests holding the separator still give unambiguous keys
    assert make_key({"a\x1fb": "c"}) != make_key({"a": "b\x1fc"})
    assert make_key({"a\x1fb": "c"}) != make_key({"a": "b", "": "c"})
    assert make_key({}) != make_key({"": ""})


def test_make_key_validates() -> None:
    with pytest.raises(InvalidParameterError, match="'parts' parameter of make_key must be a mapping"):
        make_key([("a", "b")])  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="must map str names to str digests"):
        make_key({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidParameterError, match="must map str names to str digests"):
        make_key({1: "a", "b": "c"})  # type: ignore[dict-item]
    with pytest.raises(InvalidParameterError, match="must map str names to str digests"):
        make_key({1: "a"})  # type: ignore[dict-item]
