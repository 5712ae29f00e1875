"""Content hashing: canonical digests of values, arrays, files and code.

The cache keys of :func:`scaleforge.cached` are built here: :func:`hash_value`
digests an argument by its content (xxh3-128 over a canonical, type-tagged
encoding; arrays straight from their buffer), :func:`function_identity`
digests a function by its normalised source and everything it calls, and
:func:`make_key` combines named digests into a key that starts with
:data:`ALGORITHM` and :data:`KEY_SCHEMA_VERSION`.

Examples
--------
>>> import numpy as np
>>> from scaleforge.hashing import hash_value, make_key
>>> a = np.arange(6.0).reshape(2, 3)
>>> hash_value(a) == hash_value(np.asfortranarray(a))
True
>>> make_key({"arg:a": hash_value(a)}).startswith("xxh3_128-v1-")
True
"""

from __future__ import annotations

from scaleforge.hashing.arrays import hash_array
from scaleforge.hashing.functions import FunctionIdentity, function_identity
from scaleforge.hashing.keys import ALGORITHM, KEY_SCHEMA_VERSION, make_key
from scaleforge.hashing.paths import ContentPath
from scaleforge.hashing.values import Hasher, hash_value, register_hasher, unregister_hasher

__all__ = [
    "ALGORITHM",
    "KEY_SCHEMA_VERSION",
    "ContentPath",
    "FunctionIdentity",
    "Hasher",
    "function_identity",
    "hash_array",
    "hash_value",
    "make_key",
    "register_hasher",
    "unregister_hasher",
]
