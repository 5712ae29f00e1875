"""Job results: stored next to each other in the result directory, referenced from the job row.

A worker writes each result to ``<result_dir>/<job id>/<claim token>.<ext>``
(temporary name, then rename) and records its ``file://`` URI:

- ``.json`` when the value is plain JSON (``None``, ``bool``, ``int``, finite
  ``float``, ``str``, lists/tuples and dicts with ``str`` keys of those): readable
  by anything;
- ``.sfc`` otherwise (numpy arrays, dicts of arrays, sets, any picklable
  object): one entry of the cache layer's :class:`~scaleforge.codec.FrameCodec`
  — raw array frames or pickle protocol 5 — **signed** with the cache key
  (:func:`scaleforge.codec.load_key`, ``Settings.cache.hmac_key``). The reader
  verifies the MAC before decoding, so a result file planted or altered by
  someone without the key is refused, never unpickled. Workers and the service
  must therefore share the key (set ``cache.hmac_key``, or share the key file).

Over HTTP, :func:`to_json` turns any stored result into JSON: a numpy array
becomes ``{"__ndarray__": true, "dtype": "float64", "shape": [2, 3], "data":
[[...], [...]]}`` (non-finite floats as the strings ``"nan"``, ``"inf"``,
``"-inf"``; complex arrays add ``"imag"``), numpy scalars become Python numbers,
tuples and sets become lists. :func:`from_json` reverses it (the Python
:class:`~scaleforge.jobs.client.Client` does so).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import orjson

from scaleforge.errors import CacheError, JobError, NotAcceptableError, SerializationError

if TYPE_CHECKING:
    from scaleforge.codec import Signer

__all__ = [
    "ARRAY_TAG",
    "default_signer",
    "from_json",
    "is_plain_json",
    "read_result",
    "to_json",
    "write_result",
]

logger = logging.getLogger(__name__)

#: Key marking an encoded numpy array in a JSON result.
ARRAY_TAG = "__ndarray__"
_JSON_KINDS = "biuf"  # dtype kinds whose items are JSON numbers or booleans
_MAX_DEPTH = 100


def default_signer() -> Signer:
    """The signer of result files: the cache key from settings.

    Returns
    -------
    scaleforge.codec.Signer

    Raises
    ------
    ConfigError
        If the key setting or key file is unusable.
    """
    from scaleforge.codec import Signer, load_key
    from scaleforge.settings import get_settings

    return Signer(load_key(get_settings().cache))


def is_plain_json(value: Any, _depth: int = 0) -> bool:
    """True if ``value`` survives a JSON round trip unchanged (up to tuples becoming lists).

    Parameters
    ----------
    value : object

    Returns
    -------
    bool

    Examples
    --------
    >>> is_plain_json({"a": [1, 2.5, None, "x"]}), is_plain_json({1: "a"}), is_plain_json(float("nan"))
    (True, False, False)
    """
    if _depth > _MAX_DEPTH:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) in (list, tuple):
        return all(is_plain_json(v, _depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain_json(v, _depth + 1) for k, v in value.items())
    return False


def write_result(
    value: Any, folder: str | os.PathLike[str], stem: str, *, signer: Signer | None = None
) -> Path:
    """Write one result atomically as JSON or as a signed frame (see the module notes).

    Parameters
    ----------
    value : object
        The job's return value.
    folder : path-like
        Created if missing.
    stem : str
        File name without extension (the claim token).
    signer : Signer, optional
        Signs frames; defaults to :func:`default_signer` (only built for non-JSON values).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    SerializationError
        If the value is neither JSON nor picklable.
    """
    folder = Path(folder)
    if is_plain_json(value):
        body: bytes = orjson.dumps(value)
        path = folder / f"{stem}.json"
    else:
        from scaleforge.codec import FrameCodec

        try:
            encoded = FrameCodec(signer or default_signer(), compression="auto").encode(value)
        except SerializationError:
            raise
        except Exception as exc:  # pickling can raise anything
            raise SerializationError(f"{type(exc).__name__}: {exc}") from exc
        body = b"".join(bytes(b) for b in encoded.buffers)
        path = folder / f"{stem}.sfc"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)
    return path


def _path_of(result_ref: str) -> Path:
    if not isinstance(result_ref, str) or not result_ref.startswith("file://"):
        raise JobError(f"Unsupported result reference {result_ref!r}; expected a file:// URI.")
    return Path(unquote(urlparse(result_ref).path))


def read_result(result_ref: str, *, signer: Signer | None = None) -> Any:
    """Load a result written by a worker.

    Parameters
    ----------
    result_ref : str
        A job's ``result_ref`` (``file:///....json`` or ``file:///....sfc``).
    signer : Signer, optional
        Verifies frames; defaults to :func:`default_signer`.

    Returns
    -------
    object
        The value the job returned (numpy arrays come back as arrays).

    Raises
    ------
    JobError
        If the reference is not a file URI, the file is missing, or a frame
        fails its MAC check (written with another key, or tampered with).
    """
    path = _path_of(result_ref)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise JobError(
            f"The result file {path} is missing: the result directory must be shared between workers and "
            "the service (Settings.jobs.result_dir on a shared volume)."
        ) from exc
    if path.suffix == ".json":
        return orjson.loads(data)
    if path.suffix != ".sfc":
        raise JobError(f"Unknown result file type {path.name!r}; expected .json or .sfc.")
    from scaleforge.codec import FrameCodec

    try:
        return FrameCodec(signer or default_signer()).decode(bytearray(data))
    except CacheError as exc:
        raise JobError(
            f"The result file {path} cannot be read: {exc}. Workers and the service must share the signing "
            "key (Settings.cache.hmac_key or the same cache.key_file)."
        ) from exc


def _array_to_json(arr: Any) -> dict[str, Any]:
    import numpy as np

    kind = arr.dtype.kind
    out: dict[str, Any] = {ARRAY_TAG: True, "dtype": arr.dtype.name, "shape": list(arr.shape)}
    if kind in _JSON_KINDS:
        if kind == "f" and not np.isfinite(arr).all():
            obj = arr.astype(object)
            bad = ~np.isfinite(arr)
            obj[bad] = [str(v) for v in arr[bad]]  # "nan", "inf", "-inf"
            out["data"] = obj.tolist()
        else:
            out["data"] = arr.tolist()
        return out
    if kind == "c":
        out["data"] = _array_to_json(arr.real)["data"]
        out["imag"] = _array_to_json(arr.imag)["data"]
        return out
    if kind in "US":
        out["dtype"] = arr.dtype.str
        out["data"] = arr.astype(str).tolist()
        return out
    raise NotAcceptableError(
        f"A numpy array of dtype {arr.dtype} has no JSON form. Return numeric, boolean or string arrays, or "
        "read the result file with scaleforge.jobs.read_result on a machine that shares the result directory."
    )


def to_json(value: Any, _depth: int = 0) -> Any:
    """Convert a result to JSON-ready data (arrays tagged with dtype and shape).

    Parameters
    ----------
    value : object

    Returns
    -------
    object
        Built from dicts, lists, strings, numbers, booleans and None.

    Raises
    ------
    NotAcceptableError
        If part of the value has no JSON form (an arbitrary object).

    Examples
    --------
    >>> import numpy as np
    >>> to_json({"u": np.array([[1.0, 2.0]])})
    {'u': {'__ndarray__': True, 'dtype': 'float64', 'shape': [1, 2], 'data': [[1.0, 2.0]]}}
    """
    import numpy as np

    if _depth > _MAX_DEPTH:
        raise NotAcceptableError("The result is nested more than 100 levels deep and has no JSON form.")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.ndarray):
        return _array_to_json(value)
    if isinstance(value, np.generic):
        return to_json(value.item(), _depth + 1)
    if isinstance(value, dict):
        return {str(k): to_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_json(v, _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    raise NotAcceptableError(
        f"The result contains a {type(value).__name__}, which has no JSON form. Return numbers, strings, "
        "lists, dicts or numpy arrays, or read the result file with scaleforge.jobs.read_result."
    )


def from_json(value: Any) -> Any:
    """Reverse :func:`to_json`: tagged arrays become numpy arrays again.

    Parameters
    ----------
    value : object
        Decoded JSON.

    Returns
    -------
    object

    Examples
    --------
    >>> from_json({"__ndarray__": True, "dtype": "int32", "shape": [2], "data": [1, 2]})
    array([1, 2], dtype=int32)
    """
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get(ARRAY_TAG) is True and {"dtype", "shape", "data"} <= value.keys():
        import numpy as np

        try:
            dtype = np.dtype(value["dtype"])
            if dtype.kind == "c":
                arr = np.asarray(value["data"], dtype=float) + 1j * np.asarray(value["imag"], dtype=float)
                arr = arr.astype(dtype)
            else:
                arr = np.asarray(value["data"], dtype=dtype)
            return arr.reshape(value["shape"])
        except (TypeError, ValueError, KeyError) as exc:
            raise JobError(f"A tagged array in the result is malformed: {exc}") from exc
    return {k: from_json(v) for k, v in value.items()}
