"""Internal machinery of content hashing: the canonical encoder and type dispatch.

A value is turned into a canonical, self-delimiting byte encoding that is fed
to xxh3-128. Every value starts with a type tag, so values of different types
whose raw bytes agree still get different digests. Dispatch goes through a
dictionary from the exact type to its handler first; the first time a new
type is seen its handler is resolved once (user registry along the MRO,
predicates such as "is a dataclass", lazily installed torch/pandas/numpy.ma
support, built-in handlers along the MRO) and cached.

The public API is in :mod:`scaleforge.hashing.values`; handlers for arrays,
paths and functions register themselves from their own modules.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterable
from typing import Any

import xxhash

from scaleforge.errors import InvalidParameterError

__all__: list[str] = []

#: A handler appends the canonical encoding of ``obj`` to ``encoder``.
Handler = Callable[[Any, "_Encoder"], None]

_xxh3_hex = xxhash.xxh3_128_hexdigest
_xxh3_digest = xxhash.xxh3_128_digest
_pack_d = struct.Struct("<d").pack
_pack_dd = struct.Struct("<dd").pack
_NAN = float("nan")
_I64 = 2**63
# Buffers larger than this are fed to the hash as they are instead of being
# joined with their neighbours (joining would copy them).
_BIG = 1 << 16
# Resolved handlers for new types are cached; the cache is reset past this size
# so that classes created in a loop cannot grow it without bound.
_DISPATCH_MAX = 8192


# --------------------------------------------------------------------------- failures


class _HashFailure(Exception):
    """Internal: raised by handlers, turned into InvalidParameterError at the top.

    ``path`` collects the location inside the value (innermost first) as the
    exception travels up through the container handlers.
    """

    def __init__(self, kind: str, cls: type, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.cls = cls
        self.detail = detail
        self.path: list[str] = []


def _type_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?")
    if module in (None, "builtins"):
        return str(qualname)
    return f"{module}.{qualname}"


def _to_error(exc: _HashFailure, name: object) -> InvalidParameterError:
    label = name if isinstance(name, str) else "value"
    where = f" (at {label}{''.join(reversed(exc.path))})" if exc.path else ""
    tname = _type_name(exc.cls)
    if exc.kind == "unsupported":
        return InvalidParameterError(
            f"Cannot hash the {label!r} argument{where}: values of type {tname!r} are not supported "
            f"for content hashing. Register a hasher once, at import time: "
            f"scaleforge.hashing.register_hasher({tname}, lambda obj: ...), where the function "
            f"returns a value made of supported types (numbers, str, bytes, tuples, lists, dicts, "
            f"numpy arrays, dataclasses), e.g. lambda obj: (obj.a, obj.b)."
        )
    if exc.kind == "cycle":
        return InvalidParameterError(
            f"Cannot hash the {label!r} argument{where}: the {tname!r} object contains itself "
            f"(a self-referencing container), so it has no finite content. Break the cycle, or "
            f"register a hasher for the type with scaleforge.hashing.register_hasher."
        )
    if exc.kind == "hasher":
        return InvalidParameterError(
            f"Cannot hash the {label!r} argument{where}: the hasher registered for {tname!r} "
            f"failed: {exc.detail}. Fix the function passed to scaleforge.hashing.register_hasher."
        )
    # "invalid": a handler found a value it cannot read (an unreadable ContentPath, ...)
    return InvalidParameterError(f"Cannot hash the {label!r} argument{where}: {exc.detail}")


# --------------------------------------------------------------------------- encoder


class _Stream:
    __slots__ = ("blocks",)

    def __init__(self, blocks: Callable[[], Iterable[Any]]) -> None:
        self.blocks = blocks


class _Encoder:
    """Collects the canonical encoding of one value as a list of byte chunks."""

    __slots__ = ("active", "big", "out")

    def __init__(self, active: set[int] | None = None) -> None:
        self.out: list[Any] = []
        self.active: set[int] = set() if active is None else active
        self.big = False

    def encode(self, obj: Any) -> None:
        handler = _DISPATCH.get(type(obj))
        if handler is None:
            handler = _resolve(type(obj))
        handler(obj, self)

    def blob(self, header: bytes, data: Any) -> None:
        """Append a header and a (possibly large) bytes-like payload without copying it."""
        if len(data) > _BIG:
            self.out.append(header)
            self.out.append(data)
            self.big = True
        else:
            self.out.append(header + bytes(data))

    def buffer(self, data: Any) -> None:
        """Append a large bytes-like payload (a numpy uint8 view, a memoryview)."""
        self.out.append(data)
        self.big = True

    def sub_digest(self, obj: Any) -> bytes:
        """Digest of ``obj`` alone (sharing the recursion guard), for order-free containers."""
        fast = _SCALARS.get(type(obj))
        if fast is not None:
            return _xxh3_digest(fast(obj))
        sub = _Encoder(self.active)
        sub.encode(obj)
        return sub.digest()

    def enter(self, obj: object) -> None:
        key = id(obj)
        if key in self.active:
            raise _HashFailure("cycle", type(obj))
        self.active.add(key)

    def leave(self, obj: object) -> None:
        self.active.discard(id(obj))

    def stream(self, blocks: Callable[[], Iterable[Any]]) -> None:
        """Append a payload produced block by block when the digest is computed.

        Each block is hashed right after it is produced, while it is still in
        the CPU cache, and then dropped, so memory stays bounded.
        """
        self.out.append(_Stream(blocks))
        self.big = True

    def feed(self, state: Any) -> None:
        if not self.big:
            state.update(b"".join(self.out))
            return
        for chunk in self.out:
            if type(chunk) is _Stream:
                for block in chunk.blocks():
                    state.update(block)
            else:
                state.update(chunk)

    def digest(self) -> bytes:
        if not self.big:
            return _xxh3_digest(b"".join(self.out))
        state = xxhash.xxh3_128()
        self.feed(state)
        return state.digest()

    def hexdigest(self) -> str:
        if not self.big:
            return _xxh3_hex(b"".join(self.out))
        state = xxhash.xxh3_128()
        self.feed(state)
        return state.hexdigest()


def _encode(obj: Any, name: object) -> _Encoder:
    encoder = _Encoder()
    try:
        encoder.encode(obj)
    except _HashFailure as exc:
        raise _to_error(exc, name) from exc.__cause__
    except RecursionError as exc:
        label = name if isinstance(name, str) else "value"
        raise InvalidParameterError(
            f"Cannot hash the {label!r} argument: it is nested too deeply (or a registered hasher "
            f"returns a value of its own type, recursing forever). Flatten the value or register a "
            f"hasher that returns a simpler value."
        ) from exc
    return encoder


# --------------------------------------------------------------------------- scalar encodings


def lp(text: str) -> bytes:
    """Length-prefixed UTF-8 bytes of ``text`` (internal building block)."""
    data = text.encode("utf-8", "surrogatepass")
    return b"%d:" % len(data) + data


def _enc_none(obj: None) -> bytes:
    return b"N"


def _enc_bool(obj: bool) -> bytes:
    return b"B1" if obj else b"B0"


def _enc_int(obj: int) -> bytes:
    if -_I64 <= obj < _I64:
        return b"I%d;" % obj
    size = obj.bit_length() // 8 + 1
    return b"J%d:" % size + int(obj).to_bytes(size, "little", signed=True)


def _enc_float(obj: float) -> bytes:
    # All NaNs are one value; -0.0 and 0.0 differ (their bytes do).
    return b"D" + _pack_d(obj if obj == obj else _NAN)


def _enc_complex(obj: complex) -> bytes:
    real, imag = obj.real, obj.imag
    return b"C" + _pack_dd(real if real == real else _NAN, imag if imag == imag else _NAN)


def _enc_str(obj: str) -> bytes:
    data = obj.encode("utf-8", "surrogatepass")
    return b"S%d:" % len(data) + data


def _enc_ellipsis(obj: object) -> bytes:
    return b"..."


def _enc_type(obj: type) -> bytes:
    return b"K" + lp(getattr(obj, "__module__", None) or "") + lp(getattr(obj, "__qualname__", obj.__name__))


#: Exact type -> encoder returning bytes. ``hash_value`` uses it as its fast path.
_SCALARS: dict[type, Callable[[Any], bytes]] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: _enc_str,
    type(...): _enc_ellipsis,
    type(NotImplemented): lambda obj: b"NI",
}


def _scalar_handler(encode: Callable[[Any], bytes]) -> Handler:
    def handler(obj: Any, encoder: _Encoder) -> None:
        encoder.out.append(encode(obj))

    return handler


def _subclass_handler(handler: Handler, cls: type) -> Handler:
    """Tag a subclass of a built-in (a namedtuple, an OrderedDict) with its own type."""
    tag = b"X" + _enc_type(cls)

    def tagged(obj: Any, encoder: _Encoder) -> None:
        encoder.out.append(tag)
        handler(obj, encoder)

    return tagged


def _registered_handler(fn: Callable[[Any], Any], cls: type) -> Handler:
    tag = b"R" + _enc_type(cls)

    def handler(obj: Any, encoder: _Encoder) -> None:
        encoder.enter(obj)
        try:
            value = fn(obj)
        except _HashFailure:
            raise
        except Exception as exc:
            raise _HashFailure("hasher", type(obj), f"{type(exc).__name__}: {exc}") from exc
        if value is obj:
            raise _HashFailure(
                "hasher", type(obj), "it returned the object itself; return a value made of supported types"
            )
        encoder.out.append(tag)
        try:
            encoder.encode(value)
        except _HashFailure as exc:
            exc.path.append(f"<hasher of {_type_name(type(obj))}>")
            raise
        encoder.leave(obj)

    return handler


# --------------------------------------------------------------------------- registry and dispatch

# Types hashed natively whose hashing users may not replace (keys must mean the same in every process).
_CORE_TYPES: frozenset[type] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        bytearray,
        memoryview,
        tuple,
        list,
        dict,
        set,
        frozenset,
        range,
        slice,
        type,
    }
)

#: Built-in handlers by class; resolved along the MRO.
_BUILTIN: dict[type, Handler] = {}
#: Built-in classes whose subclasses are tagged with their own type name.
_TAG_SUBCLASSES: set[type] = set()
#: Handlers registered with :func:`register_hasher`.
_USER: dict[type, Callable[[Any], Any]] = {}
#: Exact type -> handler cache (the fast path).
_DISPATCH: dict[type, Handler] = {}
#: Modules whose types get handlers on first sight: module prefix -> installer.
_LAZY: dict[str, Callable[[], None]] = {}
#: Handlers chosen by a test on the class (enums, dataclasses), after the user registry.
_PREDICATES: list[tuple[Callable[[type], bool], Handler]] = []
#: Built-in classes put back into the fast dispatch table whenever it is reset.
_EXACT_FAST: set[type] = set()
_LOCK = threading.RLock()


def _register_builtin(cls: type, handler: Handler, *, tag_subclasses: bool = False) -> None:
    """Install a built-in handler (used by scaleforge's own hashing modules)."""
    with _LOCK:
        _BUILTIN[cls] = handler
        if tag_subclasses:
            _TAG_SUBCLASSES.add(cls)
        _reset_dispatch()


def _register_predicate(predicate: Callable[[type], bool], handler: Handler) -> None:
    """Use ``handler`` for classes where ``predicate(cls)`` is true (before the MRO walk)."""
    with _LOCK:
        _PREDICATES.append((predicate, handler))
        _reset_dispatch()


def _register_lazy(module_prefix: str, installer: Callable[[], None]) -> None:
    """Run ``installer`` the first time a type from ``module_prefix`` is hashed."""
    with _LOCK:
        _LAZY[module_prefix] = installer


def _reset_dispatch() -> None:
    _DISPATCH.clear()
    for cls, handler in _BUILTIN.items():
        if cls in _CORE_TYPES or (cls in _EXACT_FAST and not any(base in _USER for base in cls.__mro__)):
            _DISPATCH[cls] = handler


def _install_lazy(cls: type) -> None:
    for base in cls.__mro__:
        module = getattr(base, "__module__", None) or ""
        for prefix in list(_LAZY):
            if module == prefix or module.startswith(prefix + "."):
                installer = _LAZY.pop(prefix)
                installer()


def _resolve(cls: type) -> Handler:
    """Find (and cache) the handler for instances of ``cls``; raise if there is none."""
    with _LOCK:
        handler = _DISPATCH.get(cls)
        if handler is not None:
            return handler
        if _LAZY:
            _install_lazy(cls)
        handler = _find_handler(cls)
        if handler is None:
            raise _HashFailure("unsupported", cls)
        if len(_DISPATCH) > _DISPATCH_MAX:
            _reset_dispatch()
        _DISPATCH[cls] = handler
        return handler


def _find_handler(cls: type) -> Handler | None:
    for base in cls.__mro__:
        fn = _USER.get(base)
        if fn is not None:
            return _registered_handler(fn, cls)
    for predicate, chosen in _PREDICATES:
        if predicate(cls):
            return chosen
    for base in cls.__mro__:
        handler = _BUILTIN.get(base)
        if handler is not None:
            if base is not cls and base in _TAG_SUBCLASSES:
                return _subclass_handler(handler, cls)
            return handler
    return None
