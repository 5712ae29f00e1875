"""Small argument checks shared by every layer.

Each helper raises :class:`~scaleforge.errors.InvalidParameterError` with the
message shape of STYLE.md section 7: the parameter, its owner, what it must be,
and what was received.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import TypeVar

from scaleforge.errors import InvalidParameterError

__all__ = ["check_choice", "check_number", "parse_bytes"]

T = TypeVar("T")

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: int | float | str, *, name: str = "max_bytes", owner: str = "") -> int:
    """Convert a byte size such as ``"2GB"``, ``"512MiB"`` or ``10_000`` into an int.

    Parameters
    ----------
    value : int, float or str
        A non-negative number of bytes, or a number followed by a unit
        (``B``, ``KB``, ``MB``, ``GB``, ``TB``, or the binary ``KiB`` ... ``TiB``).
    name : str, default="max_bytes"
        Parameter name used in the error message.
    owner : str, default=""
        Class or function name used in the error message.

    Returns
    -------
    int
        The size in bytes.

    Raises
    ------
    InvalidParameterError
        If the value is negative, not finite, or has an unknown unit.

    Examples
    --------
    >>> parse_bytes("2GB")
    2000000000
    >>> parse_bytes("1KiB")
    1024
    """
    where = f" of {owner}" if owner else ""
    if isinstance(value, bool):
        raise InvalidParameterError(
            f"The {name!r} parameter{where} must be a byte size like 1000 or '2GB'. Got {value!r} instead."
        )
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise InvalidParameterError(
                f"The {name!r} parameter{where} must be a finite size >= 0. Got {value!r} instead."
            )
        return int(value)
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is not None and match.group(2).lower() in _UNITS:
            return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise InvalidParameterError(
        f"The {name!r} parameter{where} must be a byte size like 1000, '512MB' or '2GiB'. "
        f"Got {value!r} instead."
    )


def check_number(
    value: object,
    name: str,
    owner: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    allow_none: bool = False,
    exclusive_minimum: bool = False,
) -> None:
    """Raise InvalidParameterError unless ``value`` is a number in range.

    Parameters
    ----------
    value : object
        The value to check.
    name, owner : str
        Parameter and owner names for the message.
    minimum, maximum : float or None
        Inclusive bounds (``minimum`` exclusive when ``exclusive_minimum``).
    integer : bool, default=False
        Require an ``int``.
    allow_none : bool, default=False
        Accept ``None``.

    Raises
    ------
    InvalidParameterError
        When the value is of the wrong type or out of range.
    """
    if value is None and allow_none:
        return
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {kind}"
            f"{' or None' if allow_none else ''}. Got {value!r} instead."
        )
    assert isinstance(value, (int, float))  # narrowed above; not user-facing
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    bad = not math.isfinite(value)
    if minimum is not None:
        bad = bad or (value <= minimum if exclusive_minimum else value < minimum)
    if maximum is not None:
        bad = bad or value > maximum
    if bad:
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be {kind} {' and '.join(bounds) or 'that is finite'}. "
            f"Got {value!r} instead."
        )


def check_choice(value: T, name: str, owner: str, choices: Collection[T]) -> T:
    """Return ``value`` if it is one of ``choices``, else raise InvalidParameterError.

    Parameters
    ----------
    value : object
        The value to check.
    name, owner : str
        Parameter and owner names for the message.
    choices : collection
        The allowed values.

    Returns
    -------
    object
        ``value`` unchanged.

    Raises
    ------
    InvalidParameterError
        When ``value`` is not among ``choices``.
    """
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(
            f"The {name!r} parameter of {owner} must be one of {listed}. Got {value!r} instead."
        )
    return value
