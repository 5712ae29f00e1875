"""Canonical content hashing of Python values: :func:`hash_value`, :class:`Hasher`, the registry.

Containers are encoded structurally: dictionaries are ordered by the digests
of their keys and sets by the digests of their elements, so insertion order
never changes a digest; tuples and lists, sets and frozensets, and subclasses
of built-ins (a namedtuple, an OrderedDict) carry their own type tags.
Dataclasses are hashed by type and compared fields, pydantic models by type
and ``model_dump()``, enums by type and member name. The encoder and the type
dispatch live in :mod:`scaleforge.hashing._encoding`.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import sys
import types
import uuid
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import xxhash

from scaleforge.errors import InvalidParameterError
from scaleforge.hashing._encoding import (
    _BUILTIN,
    _CORE_TYPES,
    _DISPATCH,
    _EXACT_FAST,
    _LOCK,
    _SCALARS,
    _TAG_SUBCLASSES,
    _USER,
    Handler,
    _enc_int,
    _enc_type,
    _encode,
    _Encoder,
    _HashFailure,
    _register_predicate,
    _reset_dispatch,
    _resolve,
    _scalar_handler,
    _type_name,
    _xxh3_digest,
    _xxh3_hex,
    lp,
)

__all__ = ["Hasher", "hash_value", "register_hasher", "unregister_hasher"]

# --------------------------------------------------------------------------- container handlers


def _h_bytes(obj: bytes, encoder: _Encoder) -> None:
    encoder.blob(b"Y%d:" % len(obj), obj)


def _h_bytearray(obj: bytearray, encoder: _Encoder) -> None:
    encoder.blob(b"y%d:" % len(obj), obj)


def _h_memoryview(obj: memoryview, encoder: _Encoder) -> None:
    header = b"M" + lp(obj.format) + lp(repr(obj.shape)) + b"%d:" % obj.nbytes
    data: Any
    try:  # a flat byte view of a C-contiguous buffer costs no copy
        data = obj.cast("B") if obj.c_contiguous and obj.ndim > 0 else obj.tobytes()
    except TypeError:  # zeros in the shape
        data = obj.tobytes()
    encoder.blob(header, data)


def _h_tuple(obj: tuple[Any, ...], encoder: _Encoder) -> None:
    encoder.out.append(b"t%d;" % len(obj))
    _encode_items(obj, encoder)


def _h_list(obj: list[Any], encoder: _Encoder) -> None:
    encoder.enter(obj)
    encoder.out.append(b"l%d;" % len(obj))
    _encode_items(obj, encoder)
    encoder.leave(obj)


def _encode_items(items: Any, encoder: _Encoder) -> None:
    out = encoder.out
    scalars = _SCALARS
    dispatch = _DISPATCH
    item: Any = None
    try:
        for item in items:
            # Scalars first: one dict lookup and no handler call (the common case of arguments).
            encode = scalars.get(type(item))
            if encode is not None:
                out.append(encode(item))
                continue
            handler = dispatch.get(type(item))
            if handler is None:
                handler = _resolve(type(item))
            handler(item, encoder)
    except _HashFailure as exc:
        index = next((i for i, other in enumerate(items) if other is item), "?")
        exc.path.append(f"[{index}]")
        raise


def _h_dict(obj: dict[Any, Any], encoder: _Encoder) -> None:
    encoder.enter(obj)
    items = []
    for key, value in obj.items():
        try:
            items.append((encoder.sub_digest(key), key, value))
        except _HashFailure as exc:
            exc.path.append(f"[<key {key!r}>]")
            raise
    items.sort(key=itemgetter(0))
    out = encoder.out
    out.append(b"d%d;" % len(items))
    scalars = _SCALARS
    for digest, key, value in items:
        out.append(digest)
        encode = scalars.get(type(value))
        if encode is not None:
            out.append(encode(value))
            continue
        try:
            encoder.encode(value)
        except _HashFailure as exc:
            exc.path.append(f"[{key!r}]")
            raise
    encoder.leave(obj)


def _set_handler(tag: bytes) -> Handler:
    def handler(obj: Any, encoder: _Encoder) -> None:
        encoder.enter(obj)
        digests = []
        for item in obj:
            try:
                digests.append(encoder.sub_digest(item))
            except _HashFailure as exc:
                exc.path.append(f"{{{item!r}}}")
                raise
        digests.sort()
        encoder.out.append(tag + b"%d;" % len(digests) + b"".join(digests))
        encoder.leave(obj)

    return handler


def _h_range(obj: range, encoder: _Encoder) -> None:
    encoder.out.append(b"r" + _enc_int(obj.start) + _enc_int(obj.stop) + _enc_int(obj.step))


def _h_slice(obj: slice, encoder: _Encoder) -> None:
    encoder.out.append(b"z")
    encoder.encode(obj.start)
    encoder.encode(obj.stop)
    encoder.encode(obj.step)


def _h_datetime(obj: datetime.datetime, encoder: _Encoder) -> None:
    tz = "" if obj.tzinfo is None else str(obj.tzinfo)
    encoder.out.append(b"Tdt" + lp(obj.isoformat()) + lp(tz) + (b"f1" if obj.fold else b"f0"))


def _h_date(obj: datetime.date, encoder: _Encoder) -> None:
    encoder.out.append(b"Tda" + lp(obj.isoformat()))


def _h_time(obj: datetime.time, encoder: _Encoder) -> None:
    tz = "" if obj.tzinfo is None else str(obj.tzinfo)
    encoder.out.append(b"Tti" + lp(obj.isoformat()) + lp(tz))


def _h_timedelta(obj: datetime.timedelta, encoder: _Encoder) -> None:
    encoder.out.append(b"Ttd" + _enc_int(obj.days) + _enc_int(obj.seconds) + _enc_int(obj.microseconds))


def _h_decimal(obj: decimal.Decimal, encoder: _Encoder) -> None:
    encoder.out.append(b"Q" + lp(str(obj)))


def _h_fraction(obj: fractions.Fraction, encoder: _Encoder) -> None:
    encoder.out.append(b"q" + _enc_int(obj.numerator) + _enc_int(obj.denominator))


def _h_uuid(obj: uuid.UUID, encoder: _Encoder) -> None:
    encoder.out.append(b"u" + obj.bytes)


def _h_namespace(obj: types.SimpleNamespace, encoder: _Encoder) -> None:
    encoder.out.append(b"n")
    _h_dict(vars(obj), encoder)


def _h_type(obj: type, encoder: _Encoder) -> None:
    encoder.out.append(_enc_type(obj))


def _h_enum(obj: enum.Enum, encoder: _Encoder) -> None:
    encoder.out.append(b"E" + _enc_type(type(obj)) + lp(str(obj.name)))


_DATACLASS_FIELDS: dict[type, tuple[str, ...]] = {}


def _h_dataclass(obj: Any, encoder: _Encoder) -> None:
    cls = type(obj)
    names = _DATACLASS_FIELDS.get(cls)
    if names is None:
        # Fields with compare=False (caches, metadata) are not part of the value.
        names = tuple(f.name for f in dataclasses.fields(obj) if f.compare)
        _DATACLASS_FIELDS[cls] = names
    encoder.enter(obj)
    encoder.out.append(b"W" + _enc_type(cls) + b"%d;" % len(names))
    for field_name in names:
        encoder.out.append(lp(field_name))
        try:
            encoder.encode(getattr(obj, field_name))
        except _HashFailure as exc:
            exc.path.append(f".{field_name}")
            raise
    encoder.leave(obj)


def _h_pydantic(obj: Any, encoder: _Encoder) -> None:
    encoder.enter(obj)
    encoder.out.append(b"V" + _enc_type(type(obj)))
    try:
        encoder.encode(obj.model_dump(mode="python"))
    except _HashFailure as exc:
        exc.path.append(".model_dump()")
        raise
    encoder.leave(obj)


def _is_pydantic_model(cls: type) -> bool:
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    return isinstance(base, type) and issubclass(cls, base)


def register_hasher(cls: type, fn: Callable[[Any], Any]) -> None:
    """Teach :func:`hash_value` how to hash instances of ``cls``.

    Parameters
    ----------
    cls : type
        The class to support. Subclasses use the hasher of their nearest
        registered base (method resolution order), and are tagged with their
        own type name, so a subclass instance never collides with a base one.
    fn : callable
        ``fn(obj)`` returns a value that :func:`hash_value` can hash (numbers,
        strings, tuples, dicts, numpy arrays, ...) and that captures everything
        that makes ``obj`` what it is.

    Raises
    ------
    InvalidParameterError
        If ``cls`` is not a class, is a type scaleforge hashes natively (``int``,
        ``str``, ``dict``...), or ``fn`` is not callable.

    See Also
    --------
    unregister_hasher : Remove a registration.

    Notes
    -----
    Registrations are per process: register at import time of the module that
    defines ``cls`` so that workers compute the same keys.

    Examples
    --------
    >>> from scaleforge.hashing import hash_value, register_hasher
    >>> class Mesh:
    ...     def __init__(self, n):
    ...         self.n = n
    >>> register_hasher(Mesh, lambda mesh: mesh.n)
    >>> hash_value(Mesh(4)) == hash_value(Mesh(4)) != hash_value(Mesh(5))
    True
    """
    if not isinstance(cls, type):
        raise InvalidParameterError(
            f"The 'cls' parameter of register_hasher must be a class, e.g. register_hasher(MyType, "
            f"lambda obj: ...). Got {cls!r} (an instance of {_type_name(type(cls))}) instead."
        )
    if cls in _CORE_TYPES:
        raise InvalidParameterError(
            f"The 'cls' parameter of register_hasher cannot be {cls.__name__!r}: it is hashed natively "
            f"and its keys must mean the same in every process. Register a subclass instead."
        )
    if not callable(fn):
        raise InvalidParameterError(
            f"The 'fn' parameter of register_hasher must be a callable taking one {cls.__name__} and "
            f"returning a hashable value, e.g. lambda obj: (obj.a, obj.b). Got {fn!r} instead."
        )
    with _LOCK:
        _USER[cls] = fn
        _reset_dispatch()


def unregister_hasher(cls: type) -> None:
    """Remove the hasher registered for ``cls`` with :func:`register_hasher`.

    Parameters
    ----------
    cls : type
        A class passed to :func:`register_hasher` before.

    Raises
    ------
    InvalidParameterError
        If no hasher is registered for exactly ``cls``.
    """
    with _LOCK:
        if cls not in _USER:
            raise InvalidParameterError(
                f"The 'cls' parameter of unregister_hasher must be a class registered with "
                f"register_hasher. Got {cls!r}, which has no registered hasher."
            )
        del _USER[cls]
        _reset_dispatch()


# --------------------------------------------------------------------------- public API


def hash_value(obj: Any, *, name: str = "value") -> str:
    """Return the content digest of ``obj`` as 32 hexadecimal characters (xxh3-128).

    Equal content gives equal digests in every process and on every machine:
    numpy arrays are hashed by dtype, shape and C-order bytes (a view, a
    Fortran-ordered copy or an unpickled copy hash alike), dictionaries and
    sets ignore insertion order, and every value carries a type tag so
    ``True``, ``1`` and ``1.0`` (or ``(1, 2)`` and ``[1, 2]``) differ.

    Parameters
    ----------
    obj : object
        The value: ``None``, bool, int, float, complex, str, bytes, bytearray,
        memoryview, tuple, list, dict, set, frozenset, range, slice, enum
        members, dataclasses, pydantic models, ``datetime``/``Decimal``/
        ``Fraction``/``UUID`` values, numpy arrays and scalars, torch tensors,
        pandas Series/DataFrame/Index, ``pathlib`` paths (by path string),
        :class:`~scaleforge.hashing.ContentPath` (by file content), classes (by
        qualified name), functions (by :func:`~scaleforge.hashing.function_identity`),
        and any type given to :func:`register_hasher`, nested arbitrarily.
    name : str, default="value"
        The argument name used in error messages.

    Returns
    -------
    str
        32 lower-case hexadecimal characters.

    Raises
    ------
    InvalidParameterError
        If ``obj`` (or something inside it) has an unsupported type, contains
        itself, or a registered hasher fails. The message names ``name``, the
        location and type of the offending value, and how to register a hasher.

    See Also
    --------
    Hasher : Incremental hashing of several values.
    hash_array : The array fast path.
    make_key : Combine named digests into a cache key.

    Notes
    -----
    Floats: every NaN hashes alike; ``-0.0`` and ``0.0`` differ. Inside numpy
    arrays the raw bytes are hashed, so NaNs with different payloads differ.

    Examples
    --------
    >>> hash_value(3) == hash_value(3)
    True
    >>> hash_value(True) == hash_value(1)
    False
    >>> hash_value({"a": 1, "b": 2}) == hash_value({"b": 2, "a": 1})
    True
    >>> len(hash_value([1.5, "x", None]))
    32
    """
    cls = type(obj)
    fast = _SCALARS.get(cls)
    if fast is not None:
        return _xxh3_hex(fast(obj))
    if cls is tuple and len(obj) <= 16:
        # A short tuple of scalars (typical call arguments) is encoded without an _Encoder.
        parts = [b"t%d;" % len(obj)]
        for item in obj:
            fast = _SCALARS.get(type(item))
            if fast is None:
                break
            parts.append(fast(item))
        else:
            return _xxh3_hex(b"".join(parts))
    return _encode(obj, name).hexdigest()


def digest_value(obj: Any, *, name: str = "value") -> bytes:
    """Return the 16-byte raw digest whose hex form :func:`hash_value` returns (internal)."""
    fast = _SCALARS.get(type(obj))
    if fast is not None:
        return _xxh3_digest(fast(obj))
    return _encode(obj, name).digest()


class Hasher:
    """Incremental content hasher: ``Hasher().update(a).update(b).hexdigest()``.

    Each :meth:`update` feeds the canonical, type-tagged encoding of one value,
    so ``Hasher().update(x).hexdigest() == hash_value(x)``, and the sequence of
    values matters (``update(a).update(b)`` differs from ``update(b).update(a)``).

    Parameters
    ----------
    name : str, default="value"
        The argument name used in error messages.

    Examples
    --------
    >>> h = Hasher().update(1).update("two")
    >>> len(h.hexdigest())
    32
    >>> Hasher().update(3).hexdigest() == hash_value(3)
    True
    """

    __slots__ = ("_name", "_state")

    def __init__(self, *, name: str = "value") -> None:
        self._name = name
        self._state = xxhash.xxh3_128()

    def update(self, obj: Any) -> Hasher:
        """Feed the content of ``obj``; return ``self`` so calls chain.

        Parameters
        ----------
        obj : object
            Any value :func:`hash_value` supports.

        Returns
        -------
        Hasher
            This hasher.

        Raises
        ------
        InvalidParameterError
            As :func:`hash_value`; the hasher state is then unchanged.
        """
        fast = _SCALARS.get(type(obj))
        if fast is not None:
            self._state.update(fast(obj))
        else:
            _encode(obj, self._name).feed(self._state)
        return self

    def digest(self) -> bytes:
        """Return the 16-byte digest of everything fed so far (the hasher stays usable)."""
        return bytes(self._state.digest())

    def hexdigest(self) -> str:
        """Return the 32-hex-character digest of everything fed so far."""
        return str(self._state.hexdigest())

    def copy(self) -> Hasher:
        """Return an independent copy of this hasher's state."""
        other = Hasher(name=self._name)
        other._state = self._state.copy()
        return other


# --------------------------------------------------------------------------- built-in table

for _cls, _encode_scalar in _SCALARS.items():
    _BUILTIN[_cls] = _scalar_handler(_encode_scalar)
_TAG_SUBCLASSES.update({int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset})
_BUILTIN.update(
    {
        bytes: _h_bytes,
        bytearray: _h_bytearray,
        memoryview: _h_memoryview,
        tuple: _h_tuple,
        list: _h_list,
        dict: _h_dict,
        set: _set_handler(b"s"),
        frozenset: _set_handler(b"f"),
        range: _h_range,
        slice: _h_slice,
        type: _h_type,
        datetime.datetime: _h_datetime,
        datetime.date: _h_date,
        datetime.time: _h_time,
        datetime.timedelta: _h_timedelta,
        decimal.Decimal: _h_decimal,
        fractions.Fraction: _h_fraction,
        uuid.UUID: _h_uuid,
        types.SimpleNamespace: _h_namespace,
    }
)
_EXACT_FAST.update(_BUILTIN)
_register_predicate(lambda cls: issubclass(cls, enum.Enum), _h_enum)
_register_predicate(dataclasses.is_dataclass, _h_dataclass)
_register_predicate(_is_pydantic_model, _h_pydantic)
