"""Cache keys: the algorithm, the key-schema version and :func:`make_key`."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

import xxhash

from scaleforge.errors import InvalidParameterError

__all__ = ["ALGORITHM", "KEY_SCHEMA_VERSION", "make_key"]

#: The digest algorithm of every scaleforge hash; keys start with it.
ALGORITHM = "xxh3_128"
#: Bumped whenever the canonical encoding changes, so old entries can never be hit by new keys.
KEY_SCHEMA_VERSION = 1

_PREFIX = f"{ALGORITHM}-v{KEY_SCHEMA_VERSION}-"
_SEP = "\x1f"  # ASCII unit separator: never found in names or hex digests
_chain = chain.from_iterable


def make_key(parts: Mapping[str, str]) -> str:
    """Combine named digests into one cache key string.

    Parameters
    ----------
    parts : Mapping of str to str
        Named components, e.g. ``{"function": ..., "version": ..., "arg:x": ...}``.
        The order of the mapping does not matter; names and values do.

    Returns
    -------
    str
        ``f"{ALGORITHM}-v{KEY_SCHEMA_VERSION}-{32 hex}"``, e.g.
        ``"xxh3_128-v1-0f3a..."``: only ``[a-z0-9_-]``, so it is safe as a file
        name and as a Redis key.

    Raises
    ------
    InvalidParameterError
        If ``parts`` is not a mapping of str to str.

    See Also
    --------
    hash_value : Produces the digests to combine.

    Examples
    --------
    >>> key = make_key({"function": "ab12", "arg:x": "cd34"})
    >>> key.startswith("xxh3_128-v1-"), len(key)
    (True, 44)
    >>> key == make_key({"arg:x": "cd34", "function": "ab12"})
    True
    """
    if not isinstance(parts, Mapping):
        raise InvalidParameterError(
            f"The 'parts' parameter of make_key must be a mapping of names to digests, e.g. "
            f"{{'function': hash_value(fn), 'arg:x': hash_value(x)}}. Got {type(parts).__name__} instead."
        )
    try:
        items = sorted(parts.items())
        text = _SEP.join(_chain(items))
    except TypeError as exc:
        _raise_invalid(parts)
        raise InvalidParameterError(
            f"The 'parts' parameter of make_key must map str names to str digests. Got {parts!r}."
        ) from exc
    if text.count(_SEP) == max(2 * len(items) - 1, 0):
        data = b"S" + text.encode("utf-8", "surrogatepass")
    else:  # a name or a digest holds the separator itself: length-prefix every piece instead
        data = b"L" + "".join(f"{len(k)}:{k}{len(v)}:{v};" for k, v in items).encode("utf-8", "surrogatepass")
    return _PREFIX + xxhash.xxh3_128_hexdigest(data)


def _raise_invalid(parts: Mapping[Any, Any]) -> None:
    for name, digest in parts.items():
        if not isinstance(name, str) or not isinstance(digest, str):
            raise InvalidParameterError(
                f"The 'parts' parameter of make_key must map str names to str digests. Got "
                f"{name!r}: {digest!r} ({type(name).__name__}: {type(digest).__name__}) instead; "
                f"hash values first with scaleforge.hashing.hash_value."
            )
