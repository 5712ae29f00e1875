"""Wire formats of the model server: JSON (orjson), msgpack with raw buffers, and ``.npy``.

Request bodies, chosen by ``Content-Type``:

``application/json`` (default)
    ``{"inputs": [item, ...]}`` for several items or ``{"input": item}`` for one;
    an item is a number or nested lists of numbers.
``application/msgpack`` (also ``application/x-msgpack``, ``application/vnd.msgpack``)
    The same structure; an array may be sent as a raw buffer
    ``{"dtype": "<f4", "shape": [64], "data": <bin>}``.
``application/x-npy``
    One ``.npy`` array whose first axis enumerates the items (never unpickled).

Responses, chosen by ``Accept`` (JSON when absent or ``*/*``): ``{"outputs": [...]}``,
or for an ``input`` request the single output — spread at the top level when it
is a mapping (``{"mean": ..., "std": ...}``) and under ``"output"`` otherwise.
``application/x-npy`` answers hold the stacked outputs of array-valued models.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from scaleforge.errors import (
    InvalidParameterError,
    MalformedBodyError,
    NotAcceptableError,
    UnsupportedMediaTypeError,
)

__all__ = [
    "JSON",
    "MSGPACK",
    "NPY",
    "MalformedBodyError",
    "NotAcceptableError",
    "UnsupportedMediaTypeError",
    "choose_response_type",
    "decode_body",
    "encode_body",
    "pack_msgpack",
    "unpack_msgpack",
]

JSON = "application/json"
MSGPACK = "application/msgpack"
NPY = "application/x-npy"

_REQUEST_TYPES = {
    "application/json": JSON,
    "text/json": JSON,
    "application/msgpack": MSGPACK,
    "application/x-msgpack": MSGPACK,
    "application/vnd.msgpack": MSGPACK,
    "application/x-npy": NPY,
    "application/npy": NPY,
}
_ACCEPT_FAST = {"": JSON, "*/*": JSON, "application/json": JSON, "application/*": JSON}
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def choose_response_type(accept: str | None) -> str:
    """Pick the response format from an ``Accept`` header.

    Parameters
    ----------
    accept : str or None
        The header value; ``None`` or ``*/*`` mean JSON.

    Returns
    -------
    str
        One of :data:`JSON`, :data:`MSGPACK`, :data:`NPY`.

    Raises
    ------
    NotAcceptableError
        When no listed type is supported.

    Examples
    --------
    >>> choose_response_type("application/x-npy, application/json;q=0.5")
    'application/x-npy'
    """
    fast = _ACCEPT_FAST.get(accept or "")
    if fast is not None:
        return fast
    assert accept is not None  # the fast path handled None; not user input
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        media = _media(part)
        q = 1.0
        for param in part.split(";")[1:]:
            key, _, val = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, i, media))
    for _, _, media in sorted(ranked):
        if media in ("*/*", "application/*"):
            return JSON
        found = _REQUEST_TYPES.get(media)
        if found is not None:
            return found
    raise NotAcceptableError(
        f"No supported response format in Accept: {accept!r}. Accept one of {JSON}, {MSGPACK}, {NPY}."
    )


def _array_hook(obj: dict[Any, Any]) -> Any:
    if len(obj) == 3 and isinstance(obj.get("data"), bytes) and "dtype" in obj and "shape" in obj:
        try:
            dtype = np.dtype(obj["dtype"])
            if dtype.hasobject:
                raise TypeError("object arrays are not accepted")
            arr = np.frombuffer(obj["data"], dtype=dtype)
            return arr.reshape(tuple(obj["shape"]))
        except (TypeError, ValueError) as exc:
            raise MalformedBodyError(
                f"A msgpack array field is inconsistent ({exc}). Send {{'dtype': '<f4', 'shape': [...], "
                "'data': raw bytes}} with len(data) == prod(shape) * itemsize."
            ) from exc
    return obj


def unpack_msgpack(data: bytes) -> Any:
    """Decode msgpack, turning ``{"dtype", "shape", "data"}`` maps into arrays.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    object
    """
    import msgpack

    try:
        return msgpack.unpackb(data, object_hook=_array_hook, raw=False, strict_map_key=False)
    except MalformedBodyError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types
        raise MalformedBodyError(f"The request body is not valid msgpack ({exc}).") from exc


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def pack_msgpack(obj: Any) -> bytes:
    """Encode ``obj`` as msgpack; arrays become raw-buffer maps.

    Parameters
    ----------
    obj : object

    Returns
    -------
    bytes
    """
    import msgpack

    out: bytes = msgpack.packb(obj, default=_pack_default, use_bin_type=True)
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def decode_body(body: bytes, content_type: str | None) -> tuple[list[Any], bool]:
    """Parse a predict request body into its items.

    Parameters
    ----------
    body : bytes
    content_type : str or None
        The Content-Type header; ``None`` means JSON.

    Returns
    -------
    items : list
        The request's items, not yet decoded by the model.
    single : bool
        Whether the request used ``"input"`` (one item, answered unwrapped).

    Raises
    ------
    MalformedBodyError
        When the body does not parse (400).
    UnsupportedMediaTypeError
        For another Content-Type (415).
    InvalidParameterError
        When it parses but lacks ``inputs``/``input`` (422).
    """
    kind = JSON if not content_type else _REQUEST_TYPES.get(_media(content_type))
    if kind is None:
        raise UnsupportedMediaTypeError(
            f"Content-Type {content_type!r} is not supported. Send {JSON}, {MSGPACK} or {NPY}."
        )
    if kind == NPY:
        try:
            arr = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as exc:  # ValueError, EOFError, OSError...
            raise MalformedBodyError(f"The request body is not a valid .npy array ({exc}).") from exc
        if not isinstance(arr, np.ndarray) or arr.ndim == 0:
            raise InvalidParameterError(
                "An application/x-npy body must hold an array whose first axis enumerates the items."
            )
        return list(arr), False
    if kind == JSON:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBodyError(
                f"The request body is not valid JSON ({exc}). Note that NaN and Infinity are not JSON; "
                f"send {MSGPACK} or {NPY} for non-finite values."
            ) from exc
    else:
        doc = unpack_msgpack(body)
    if isinstance(doc, Mapping):
        if "inputs" in doc:
            inputs = doc["inputs"]
            if isinstance(inputs, np.ndarray) and inputs.ndim >= 1:
                return list(inputs), False
            if not isinstance(inputs, list):
                raise InvalidParameterError(
                    f"'inputs' must be a list of items. Got {type(inputs).__name__}; for one item send "
                    "{'input': item} or {'inputs': [item]}."
                )
            return inputs, False
        if "input" in doc:
            return [doc["input"]], True
    raise InvalidParameterError(
        "The request body must be an object with 'inputs' (a list of items) or 'input' (one item), "
        'e.g. {"inputs": [[0.1, 0.2, 0.3]]}.'
    )


def encode_body(outputs: list[Any], single: bool, media_type: str, extra: Mapping[str, Any]) -> bytes:
    """Serialise a predict response.

    Parameters
    ----------
    outputs : list
        Encoded model outputs, one per item.
    single : bool
        Answer one item unwrapped (see the module docstring).
    media_type : str
        From :func:`choose_response_type`.
    extra : mapping
        Extra top-level fields (``model``, ``version``) for JSON and msgpack.

    Returns
    -------
    bytes

    Raises
    ------
    NotAcceptableError
        When ``.npy`` is asked for outputs that are not arrays of one shape.
    """
    if media_type == NPY:
        try:
            arr = np.asarray(outputs[0]) if single else np.stack([np.asarray(o) for o in outputs])
        except ValueError as exc:
            raise NotAcceptableError(
                "These outputs cannot be written as one .npy array; accept application/json or msgpack."
            ) from exc
        if arr.dtype.hasobject:
            raise NotAcceptableError(
                "These outputs are not numeric arrays; accept application/json or application/msgpack."
            )
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()
    if single:
        out = outputs[0]
        doc = {**out, **extra} if isinstance(out, Mapping) else {"output": out, **extra}
    else:
        doc = {"outputs": outputs, **extra}
    if media_type == MSGPACK:
        return pack_msgpack(doc)
    return orjson.dumps(doc, default=_json_default, option=_JSON_OPTS)
