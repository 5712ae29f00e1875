"""hash_value on Python values: type tags, order-insensitive containers, registry, errors."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import pathlib
import pickle
import re
import uuid

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleforge.errors import InvalidParameterError, ScaleforgeError
from scaleforge.hashing import Hasher, hash_value, register_hasher, unregister_hasher
from scaleforge.testing.strategies import hashable_keys, scalars, values

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_digest_is_32_hex_and_deterministic() -> None:
    for obj in [None, 0, -1, 2**100, 1.5, "x", b"x", (1, "a"), {"k": [1, 2]}]:
        digest = hash_value(obj)
        assert HEX32.match(digest)
        assert digest == hash_value(pickle.loads(pickle.dumps(obj)))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (True, 1),
        (False, 0),
        (1, 1.0),
        (1.0, 1 + 0j),
        (0, None),
        ("a", b"a"),
        (b"a", bytearray(b"a")),
        ((1, 2), [1, 2]),
        ((), []),
        ([], {}),
        (frozenset({1}), {1}),
        ((1, 2), (1, (2,))),
        ([[1], 2], [1, [2]]),
        ("ab", ("a", "b")),
        (("a", "b"), ("ab",)),
        ([b"a", b"b"], [b"ab"]),
        (-0.0, 0.0),
        (2**64, 2**64 + 1),
        (-(2**63), 2**63),
        (range(3), (0, 1, 2)),
        (pathlib.Path("/a/b"), "/a/b"),
        ({"a": 1}, {"a": True}),
        ({"a": 1}, {"b": 1}),
        (slice(1, 2), slice(1, 2, 1)),
        (int, float),
        (decimal.Decimal("1.0"), decimal.Decimal("1.00")),
        (datetime.date(2020, 1, 2), datetime.datetime(2020, 1, 2)),
    ],
)
def test_different_values_or_types_differ(left: object, right: object) -> None:
    assert hash_value(left) != hash_value(right)


def test_nan_hashes_consistently() -> None:
    assert hash_value(float("nan")) == hash_value(float("-nan")) == hash_value(float("inf") - float("inf"))
    assert hash_value(complex(float("nan"), 1)) == hash_value(complex(float("nan"), 1))


def test_big_and_small_ints() -> None:
    digests = {hash_value(v) for v in [0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**5000]}
    assert len(digests) == 8
    assert hash_value(10**5000) == hash_value(10**5000)


def test_dict_is_insertion_order_insensitive() -> None:
    a = {"x": 1, "y": [1, 2], 3: "z"}
    b = {3: "z", "y": [1, 2], "x": 1}
    assert hash_value(a) == hash_value(b)


@given(st.dictionaries(hashable_keys(), scalars(), max_size=8), st.randoms())
def test_dict_order_hypothesis(d: dict[object, object], rnd: object) -> None:
    items = list(d.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert hash_value(dict(items)) == hash_value(d)


@given(st.frozensets(hashable_keys(), max_size=8), st.randoms())
def test_set_order_insensitive(s: frozenset[object], rnd: object) -> None:
    items = list(s)
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert hash_value(set(items)) == hash_value(set(s))
    assert hash_value(frozenset(items)) == hash_value(s)
    assert hash_value(set(s)) != hash_value(frozenset(s))


@given(values())
def test_pickle_round_trip_and_copy_hash_alike(value: object) -> None:
    assert hash_value(pickle.loads(pickle.dumps(value))) == hash_value(value)


@given(st.lists(scalars(), min_size=1, max_size=6), st.data())
def test_changing_one_item_changes_digest(items: list[object], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(items) - 1))
    replacement = data.draw(scalars())
    changed = list(items)
    changed[index] = replacement
    same = hash_value(items[index]) == hash_value(replacement)
    assert (hash_value(changed) == hash_value(items)) == same


def test_tuple_fast_path_matches_general_path() -> None:
    # The short-tuple fast path and the Hasher must encode exactly like the general encoder.
    value = (1, 2.5, "x", None, True, b"b")
    nested = (value,)
    assert hash_value(value) == Hasher().update(value).hexdigest()
    assert hash_value(nested) != hash_value(value)
    long = tuple(range(40))
    assert hash_value(long) == Hasher().update(long).hexdigest()


def test_namedtuple_and_subclasses_are_tagged() -> None:
    point = collections.namedtuple("point", "x y")
    assert hash_value(point(1, 2)) != hash_value((1, 2))
    assert hash_value(point(1, 2)) == hash_value(point(1, 2))
    ordered = collections.OrderedDict([("a", 1), ("b", 2)])
    assert hash_value(ordered) != hash_value({"a": 1, "b": 2})


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


def test_enums() -> None:
    assert hash_value(Color.RED) != hash_value(Color.BLUE)
    assert hash_value(Level.LOW) != hash_value(1)
    assert hash_value(Color.RED) == hash_value(Color(1))


@dataclasses.dataclass(frozen=True)
class Params:
    kappa: float
    steps: int = 10
    label: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class OtherParams:
    kappa: float
    steps: int = 10


def test_dataclasses() -> None:
    assert hash_value(Params(1.0)) == hash_value(Params(1.0, 10))
    assert hash_value(Params(1.0)) != hash_value(Params(1.0, 11))
    assert hash_value(Params(1.0)) != hash_value(OtherParams(1.0))
    # compare=False fields are not part of the value, as for ==
    assert hash_value(Params(1.0, label="a")) == hash_value(Params(1.0, label="b"))


class Model(pydantic.BaseModel):
    kappa: float
    names: list[str] = []


class OtherModel(pydantic.BaseModel):
    kappa: float
    names: list[str] = []


def test_pydantic_models() -> None:
    assert hash_value(Model(kappa=1.0, names=["a"])) == hash_value(Model(kappa=1.0, names=["a"]))
    assert hash_value(Model(kappa=1.0)) != hash_value(Model(kappa=2.0))
    assert hash_value(Model(kappa=1.0)) != hash_value(OtherModel(kappa=1.0))


def test_misc_builtin_types() -> None:
    cases = [
        datetime.datetime(2020, 1, 2, 3, 4, 5, 6),
        datetime.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
        datetime.time(1, 2),
        datetime.timedelta(days=1, microseconds=3),
        decimal.Decimal("3.14"),
        fractions.Fraction(1, 3),
        uuid.UUID(int=5),
        range(0, 10, 2),
        slice(None, 5),
        Ellipsis,
        memoryview(b"abc"),
        int,
        Params,
    ]
    digests = [hash_value(c) for c in cases]
    assert len(set(digests)) == len(cases)
    assert hash_value(memoryview(b"abcd")[::2]) == hash_value(memoryview(b"ac"))
    assert hash_value(fractions.Fraction(2, 6)) == hash_value(fractions.Fraction(1, 3))


def test_classes_hash_by_qualified_name() -> None:
    assert hash_value(Params) == hash_value(Params)
    assert hash_value(Params) != hash_value(OtherParams)


class Opaque:
    def __init__(self, n: int) -> None:
        self.n = n


def test_unsupported_type_error_names_argument_type_and_fix() -> None:
    with pytest.raises(InvalidParameterError) as info:
        hash_value({"mesh": [1, Opaque(3)]}, name="kappa")
    message = str(info.value)
    assert "'kappa'" in message
    assert "kappa['mesh'][1]" in message
    assert "Opaque" in message
    assert "scaleforge.hashing.register_hasher(" in message
    assert isinstance(info.value, (TypeError, ValueError, ScaleforgeError))


def test_self_referencing_containers_raise_clear_error() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    with pytest.raises(InvalidParameterError, match="contains itself"):
        hash_value(loop, name="x")
    d: dict[str, object] = {}
    d["me"] = [d]
    with pytest.raises(InvalidParameterError, match=r"contains itself"):
        hash_value(d, name="x")
    # Shared (non-cyclic) references are fine.
    shared = [1, 2]
    assert hash_value([shared, shared]) == hash_value([[1, 2], [1, 2]])


def test_too_deep_nesting_raises_invalid_parameter() -> None:
    deep: list[object] = []
    for _ in range(20_000):
        deep = [deep]
    with pytest.raises(InvalidParameterError, match="nested too deeply"):
        hash_value(deep, name="deep")


class Base:
    def __init__(self, v: int) -> None:
        self.v = v


class Child(Base):
    pass


class GrandChild(Child):
    pass


def test_register_hasher_and_mro() -> None:
    register_hasher(Base, lambda obj: obj.v)
    try:
        assert hash_value(Base(1)) == hash_value(Base(1))
        assert hash_value(Base(1)) != hash_value(Base(2))
        assert hash_value(Base(1)) != hash_value(1)
        # subclasses use the nearest registered base, tagged with their own type
        assert hash_value(GrandChild(1)) != hash_value(Base(1))
        assert hash_value(GrandChild(1)) != hash_value(GrandChild(2))
        register_hasher(Child, lambda obj: ("child", obj.v))
        assert hash_value(GrandChild(1)) != hash_value(Child(1))
        assert hash_value(Child(5)) == hash_value(Child(5))
        unregister_hasher(Child)
        assert hash_value(Child(1)) != hash_value(Child(2))
    finally:
        unregister_hasher(Base)
    with pytest.raises(InvalidParameterError, match="register_hasher"):
        hash_value(Base(1))


def test_register_hasher_validates() -> None:
    with pytest.raises(InvalidParameterError, match="'cls' parameter of register_hasher must be a class"):
        register_hasher(Base(1), lambda obj: 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="'fn' parameter"):
        register_hasher(Base, 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="hashed natively"):
        register_hasher(int, lambda obj: 1)
    with pytest.raises(InvalidParameterError, match="no registered hasher"):
        unregister_hasher(Opaque)


def test_failing_or_self_returning_hasher_is_reported() -> None:
    def broken(obj: Opaque) -> object:
        raise RuntimeError("boom")

    register_hasher(Opaque, broken)
    try:
        with pytest.raises(InvalidParameterError, match="boom") as info:
            hash_value([Opaque(1)], name="arg")
        assert isinstance(info.value.__cause__, RuntimeError)
        register_hasher(Opaque, lambda obj: obj)
        with pytest.raises(InvalidParameterError, match="returned the object itself"):
            hash_value(Opaque(1))
        register_hasher(Opaque, lambda obj: Opaque(obj.n))
        with pytest.raises(InvalidParameterError, match=r"nested too deeply|recursing"):
            hash_value(Opaque(1))
    finally:
        unregister_hasher(Opaque)


def test_registering_a_builtin_subtype_base_overrides_prepopulated_dispatch() -> None:
    # datetime.date is dispatched by exact type on the fast path; a registration must win.
    class Day(datetime.date):
        pass

    before = hash_value(Day(2020, 1, 1))
    register_hasher(Day, lambda obj: obj.toordinal() % 7)
    try:
        assert hash_value(Day(2020, 1, 1)) != before
        assert hash_value(Day(2020, 1, 1)) == hash_value(Day(2020, 1, 8))
    finally:
        unregister_hasher(Day)
    assert hash_value(Day(2020, 1, 1)) == before


def test_hasher_incremental() -> None:
    h = Hasher().update(1).update("two")
    assert h.hexdigest() == Hasher().update(1).update("two").hexdigest()
    assert h.hexdigest() != Hasher().update("two").update(1).hexdigest()
    assert Hasher().update([1, {"a": 2}]).hexdigest() == hash_value([1, {"a": 2}])
    copy = h.copy().update(3)
    assert copy.hexdigest() != h.hexdigest()
    assert len(h.digest()) == 16 and h.digest().hex() == h.hexdigest()
    with pytest.raises(InvalidParameterError, match="'payload'"):
        Hasher(name="payload").update(Opaque(1))
