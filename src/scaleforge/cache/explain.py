"""How ``@cached`` describes a call: argument binding, key tokens, manifests, explanations.

:class:`ArgumentPlan` binds a call's arguments to the signature (defaults
applied, without ``inspect.Signature.bind`` on the common paths) and
:func:`argument_token` turns each value into the token that goes into the key.

Every entry a :class:`~scaleforge.cache.decorators.CachedFunction` stores is
accompanied by a small *manifest*: the function's identity digests (its own
source, each helper and constant it depends on, its ``version``) and, per
argument, the token that went into the key plus a short human-readable repr.
:func:`describe_miss` compares the manifest of a call with the manifests of
earlier entries of the same function, picks the nearest one (fewest differing
parts, newest on ties) and says what differs::

    miss: argument 'steps' differs (100 -> 200)
    miss: code of helper 'mymod.grad' changed
    miss: version changed ('1' -> '2')

The function's *index* (its last :data:`INDEX_CAP` keys) stores with each key
a compact summary (:func:`index_summary`: 64-bit hashes of the code and of
each argument token), so :func:`single_argument_change` can tell at miss time,
from the index alone, which single argument a call changed.
"""

from __future__ import annotations

import inspect
import logging
import operator
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import xxhash

from scaleforge.errors import InvalidParameterError

__all__ = [
    "INDEX_CAP",
    "MANIFEST_SCHEMA",
    "ArgumentPlan",
    "add_to_index",
    "argument_token",
    "build_manifest",
    "changed_argument",
    "code_id",
    "describe_miss",
    "index_key",
    "index_summary",
    "manifest_key",
    "read_index",
    "short_repr",
    "single_argument_change",
    "tier_stats",
    "token_hashes",
]

logger = logging.getLogger(__name__)

#: Version of the manifest layout; manifests of another schema are ignored.
MANIFEST_SCHEMA = 1

# Types tokenised literally: exact types only (an IntEnum or np.int64 goes to hash_value).
_SCALAR_TYPES = frozenset({int, float, bool, complex, type(None)})
_LITERAL_MAX = 64
_NO_DEFAULT: Any = inspect.Parameter.empty


def argument_token(value: object, name: str, owner: str) -> str:
    """Return the key token of one argument value.

    Short scalars are tokenised literally (``"int:100"``, ``"str:'a'"``), classes
    by ``module.qualname``, everything else by ``"h:" + hash_value(value)``.

    Parameters
    ----------
    value : object
        The argument value.
    name : str
        The parameter name (used in error messages).
    owner : str
        ``module.qualname`` of the cached function (used in error messages).

    Returns
    -------
    str

    Raises
    ------
    InvalidParameterError
        If the value cannot be hashed; for ``self``/``cls`` the message
        suggests ``ignore=["self"]`` or ``register_hasher``.

    Examples
    --------
    >>> argument_token(100, "steps", "m.f")
    'int:100'
    """
    kind = type(value)
    if kind in _SCALAR_TYPES:
        text = repr(value)
        if len(text) <= _LITERAL_MAX:
            return f"{kind.__name__}:{text}"
    elif kind is str:
        if len(value) <= _LITERAL_MAX:  # type: ignore[arg-type]
            return "str:" + repr(value)
    elif isinstance(value, type):
        return f"type:{value.__module__}.{value.__qualname__}"
    from scaleforge.hashing import hash_value

    try:
        return "h:" + hash_value(value, name=name)
    except InvalidParameterError as exc:
        if name in ("self", "cls"):
            raise InvalidParameterError(
                f"{owner} is a cached method, and its {name!r} argument (a {kind.__name__}) cannot be hashed by "
                f"content: {exc} If the result does not depend on the instance, use "
                f"@cached(ignore=[{name!r}]); otherwise make the class a dataclass or register a hasher with "
                f"scaleforge.hashing.register_hasher({kind.__name__}, fn)."
            ) from exc
        raise


class ArgumentPlan:
    """How to turn a call's arguments into per-parameter values, computed once per function.

    Parameters
    ----------
    signature : inspect.Signature
        The function's signature.
    ignore : frozenset of str
        Parameters left out of the key (``keep`` lists the others' positions).
    """

    __slots__ = (
        "fast_defaults",
        "fast_ok",
        "ignore",
        "keep",
        "keyword_index",
        "min_args",
        "names",
        "npos",
        "signature",
    )

    def __init__(self, signature: inspect.Signature, ignore: frozenset[str]) -> None:
        self.signature = signature
        params = list(signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self.ignore = ignore
        self.keep = tuple(i for i, p in enumerate(params) if p.name not in ignore)
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        # Fast path: plain positional parameters only, so args + trailing defaults give every value.
        self.fast_ok = all(p.kind in positional for p in params)
        self.npos = len(params)
        self.fast_defaults = tuple(p.default for p in params)
        required = [i for i, p in enumerate(params) if p.default is _NO_DEFAULT]
        self.min_args = required[-1] + 1 if required else 0
        self.keyword_index = {
            p.name: i for i, p in enumerate(params) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        }
        if self.fast_ok and any(d is _NO_DEFAULT for d in self.fast_defaults[self.min_args :]):
            self.fast_ok = False  # cannot happen for valid signatures; be safe

    def values(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], owner: str) -> tuple[Any, ...]:
        """Return the value of every parameter, defaults applied, in signature order."""
        if self.fast_ok and len(args) <= self.npos:
            if not kwargs:
                if self.min_args <= len(args):
                    return args + self.fast_defaults[len(args) :]
            else:
                # Keyword binding by table lookup: inspect.Signature.bind costs ~8 us per call.
                values = list(args) + list(self.fast_defaults[len(args) :])
                for name, value in kwargs.items():
                    i = self.keyword_index.get(name, -1)
                    if i < len(args):  # unknown, positional-only or given twice: let bind() explain
                        break
                    values[i] = value
                else:
                    if len(args) >= self.min_args or not any(
                        v is _NO_DEFAULT for v in values[: self.min_args]
                    ):
                        return tuple(values)
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidParameterError(
                f"Arguments do not match the signature of {owner}{self.signature}: {exc}. "
                "Call it the way you would call the undecorated function."
            ) from exc
        bound.apply_defaults()
        arguments = bound.arguments
        return tuple(arguments[name] for name in self.names)


_REPR = reprlib.Repr()
_REPR.maxstring = 40
_REPR.maxother = 40
_REPR.maxlong = 40
_REPR.maxlist = 4
_REPR.maxtuple = 4
_REPR.maxdict = 4
_REPR.maxset = 4


def short_repr(value: object, token: str = "") -> str:
    """Return a short, human-readable description of an argument value.

    Scalars and short strings appear as their ``repr``; arrays as their shape
    and dtype; anything else as a truncated ``repr``. Values hashed by content
    get the first 8 hex digits of their digest appended, so two arrays of the
    same shape can still be told apart.

    Parameters
    ----------
    value : object
        The argument value.
    token : str, default=""
        The key token of the value (``"h:<digest>"`` for hashed values).

    Returns
    -------
    str

    Examples
    --------
    >>> short_repr(100)
    '100'
    >>> short_repr("a" * 100)[:10]
    "'aaaaaaaaa"
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None and not isinstance(value, type):
        text = f"{type(value).__name__}(shape={tuple(shape)}, dtype={dtype})"
    else:
        try:
            text = _REPR.repr(value)
        except Exception:  # a broken __repr__ must not break explain
            text = f"<{type(value).__name__}>"
    if token.startswith("h:"):
        digest = token[2:].split(":")[-1]
        text = f"{text} #{digest[:8]}"
    return text


def build_manifest(
    *,
    function: str,
    digest: str,
    source_digest: str,
    dependencies: Mapping[str, str],
    version: str | None,
    args: Mapping[str, tuple[str, str]],
    created: float,
) -> dict[str, Any]:
    """Return the manifest stored next to one cache entry.

    Parameters
    ----------
    function : str
        ``module.qualname`` of the cached function.
    digest, source_digest : str
        The function identity digest (what the key uses) and the digest of its
        own normalised source.
    dependencies : mapping of str to str
        Digest of each helper function or constant the function depends on.
    version : str or None
        The explicit ``version=`` of the decorator.
    args : mapping of str to (str, str)
        Per argument: (key token, short repr).
    created : float
        ``time.time()`` when the entry was stored.

    Returns
    -------
    dict
        Plain data (str, float, dict): encodable by every tier.
    """
    return {
        "schema": MANIFEST_SCHEMA,
        "function": function,
        "digest": digest,
        "source_digest": source_digest,
        "dependencies": dict(dependencies),
        "version": version,
        "args": {name: [token, text] for name, (token, text) in args.items()},
        "created": float(created),
    }


def _differences(current: Mapping[str, Any], earlier: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    function = current.get("function", "?")
    code_explained = False
    if current.get("source_digest") != earlier.get("source_digest"):
        out.append(f"code of {function!r} changed")
        code_explained = True
    deps_now: Mapping[str, str] = current.get("dependencies") or {}
    deps_then: Mapping[str, str] = earlier.get("dependencies") or {}
    for name in sorted(set(deps_now) | set(deps_then)):
        if name not in deps_then:
            out.append(f"new dependency {name!r}")
        elif name not in deps_now:
            out.append(f"dependency {name!r} no longer used")
        elif deps_now[name] != deps_then[name]:
            out.append(f"code of helper {name!r} changed")
        else:
            continue
        code_explained = True
    if current.get("version") != earlier.get("version"):
        out.append(f"version changed ({earlier.get('version')!r} -> {current.get('version')!r})")
        code_explained = True
    if current.get("digest") != earlier.get("digest") and not code_explained:
        out.append(f"code of {function!r} changed (its identity digest differs)")
    args_now: Mapping[str, list[str]] = current.get("args") or {}
    args_then: Mapping[str, list[str]] = earlier.get("args") or {}
    for name in list(args_now) + [n for n in args_then if n not in args_now]:
        if name not in args_then:
            out.append(f"argument {name!r} is new")
        elif name not in args_now:
            out.append(f"argument {name!r} was removed")
        elif args_now[name][0] != args_then[name][0]:
            out.append(f"argument {name!r} differs ({args_then[name][1]} -> {args_now[name][1]})")
    return out


def describe_miss(current: Mapping[str, Any], earlier: Iterable[Mapping[str, Any]]) -> str:
    """Say why the call described by ``current`` misses, against earlier entries.

    Parameters
    ----------
    current : mapping
        The manifest the call would store (see :func:`build_manifest`).
    earlier : iterable of mapping
        Manifests of the function's entries still in the cache.

    Returns
    -------
    str
        ``"miss: ..."`` naming what differs from the nearest earlier entry.

    Examples
    --------
    >>> old = build_manifest(function="m.f", digest="d", source_digest="s", dependencies={},
    ...                      version=None, args={"steps": ("int:100", "100")}, created=0.0)
    >>> new = build_manifest(function="m.f", digest="d", source_digest="s", dependencies={},
    ...                      version=None, args={"steps": ("int:200", "200")}, created=1.0)
    >>> describe_miss(new, [old])
    "miss: argument 'steps' differs (100 -> 200)"
    """
    function = current.get("function", "?")
    best: tuple[int, float] | None = None
    best_diffs: list[str] = []
    for manifest in earlier:
        if not isinstance(manifest, Mapping) or manifest.get("schema") != MANIFEST_SCHEMA:
            continue
        diffs = _differences(current, manifest)
        created = manifest.get("created", 0.0)
        rank = (len(diffs), -float(created) if isinstance(created, (int, float)) else 0.0)
        if best is None or rank < best:
            best, best_diffs = rank, diffs
    if best is None:
        return f"miss: no earlier entry of {function!r} in the cache"
    if not best_diffs:
        return "miss: an entry with the same arguments and code was stored, but it was evicted or expired"
    shown = best_diffs[:4]
    more = len(best_diffs) - len(shown)
    tail = f"; and {more} more difference(s)" if more > 0 else ""
    return "miss: " + "; ".join(shown) + tail


#: Keys remembered per function for ``clear()`` and ``explain()``.
INDEX_CAP = 1024


def _make_key(parts: Mapping[str, str]) -> str:
    from scaleforge.hashing import make_key

    return make_key(parts)


def index_key(function: str) -> str:
    """Return the cache key of the index of ``function`` (``module.qualname``).

    The index is a list of the last :data:`INDEX_CAP` keys stored through that
    function, by any process sharing the cache. It is keyed by name, not code,
    so ``explain`` can compare with entries made by earlier code.
    """
    return _make_key({"scaleforge.cached.index": function})


def manifest_key(key: str) -> str:
    """Return the cache key of the manifest of the entry ``key``.

    A key of its own shape (``[a-z0-9_-]``): safe for every tier's file names.
    """
    return _make_key({"scaleforge.cached.manifest": key})


def _entry_key(entry: object) -> str | None:
    """The cache key of one index entry: a str (schema 1) or ``(key, code_id, hashes)``."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[0], str):
        return entry[0]
    return None


def read_index(cache: Any, key_of_index: str) -> list[str]:
    """Return the keys recorded in a function's index (``[]`` when absent)."""
    index = cache.get(key_of_index, None)
    if not isinstance(index, list):
        return []
    return [k for k in map(_entry_key, index) if k is not None]


def index_summary(manifest: Mapping[str, Any]) -> tuple[int, tuple[int, ...]] | None:
    """Return the compact description of an entry kept in its function's index.

    ``(code_id, hashes)``: a 64-bit hash of the function digest and version,
    and one 64-bit hash per argument token, in signature order. That is enough
    to tell, at miss time and from the index alone, which single argument a
    call changed (:func:`single_argument_change`); the full manifests stay
    separate entries, read only by ``explain``.

    Parameters
    ----------
    manifest : mapping
        A manifest from :func:`build_manifest`.

    Returns
    -------
    tuple or None
        None if the manifest is malformed.
    """
    try:
        args: Mapping[str, Any] = manifest["args"]
        tokens = [str(pair[0]) for pair in args.values()]
        return code_id(str(manifest["digest"]), manifest.get("version")), token_hashes(tokens)
    except (KeyError, TypeError, IndexError, AttributeError):
        return None


def code_id(digest: str, version: str | None) -> int:
    """Return the 64-bit id of a function's code and ``version`` used in index summaries."""
    return xxhash.xxh3_64_intdigest(f"{digest}\0{version or ''}".encode())


def token_hashes(tokens: Iterable[str]) -> tuple[int, ...]:
    """Return one 64-bit hash per argument token (index summaries stay small)."""
    return tuple(xxhash.xxh3_64_intdigest(t.encode("utf-8", "surrogatepass")) for t in tokens)


def add_to_index(
    cache: Any, key_of_index: str, key: str, summary: tuple[int, tuple[int, ...]] | None = None
) -> None:
    """Append ``key`` to a function's index (read-modify-write, capped at :data:`INDEX_CAP`).

    Callers serialise this within a process; writers in other processes may
    drop each other's additions (``clear`` then misses those entries, which
    still expire or get evicted as usual).

    Parameters
    ----------
    cache : Tier
        The cache holding the index.
    key_of_index : str
        From :func:`index_key`.
    key : str
        The entry's key.
    summary : tuple, optional
        From :func:`index_summary`; stored with the key so misses can be
        diagnosed from the index alone. Without it only the key is recorded.
    """
    index = cache.get(key_of_index, None)
    entries = list(index) if isinstance(index, list) else []
    if any(_entry_key(e) == key for e in entries):
        return
    entries.append(key if summary is None else (key, summary[0], summary[1]))
    cache.set(key_of_index, entries[-INDEX_CAP:])


def single_argument_change(entries: Sequence[Any], code: int, hashes: tuple[int, ...]) -> int | None:
    """Return the position of the one argument in which a miss differs from its nearest entry.

    The nearest entry is the one with the fewest differing parts (the code
    and version count as one part), the newest on ties, as in
    :func:`describe_miss`. One pass over the index, no other reads.

    Parameters
    ----------
    entries : sequence
        A function's index as stored (oldest first); entries without a
        summary (schema 1) are skipped.
    code : int
        :func:`code_id` of the call.
    hashes : tuple of int
        :func:`token_hashes` of the call's argument tokens.

    Returns
    -------
    int or None
        The argument's position in ``hashes``; None when the nearest entry
        differs in something else (the code, several arguments), when an
        entry with the same code and arguments exists (it was evicted or
        expired), or when there is nothing to compare with.

    Examples
    --------
    >>> index = [("k1", 7, (1, 2, 3)), ("k2", 7, (1, 5, 3))]
    >>> single_argument_change(index, 7, (1, 5, 4))
    2
    >>> single_argument_change(index, 8, (1, 5, 4)) is None
    True
    """
    n = len(hashes)
    ne = operator.ne
    candidate: int | None = None
    for entry in reversed(entries):  # newest first: the first entry at distance 1 wins ties
        if type(entry) is not tuple or len(entry) != 3:
            continue
        theirs = entry[2]
        if type(theirs) is not tuple or len(theirs) != n:
            continue
        if entry[1] == code:
            differing = sum(map(ne, theirs, hashes))
            if differing == 0:
                return None  # the same call was stored before: evicted or expired
            if differing == 1 and candidate is None:
                candidate = next(i for i in range(n) if theirs[i] != hashes[i])
        elif candidate is None and theirs == hashes:
            candidate = -1  # nearest differs in its code only
    return candidate if candidate is not None and candidate >= 0 else None


def _memory_tier_of(cache: Any) -> Any:
    """The in-process ``MemoryTier`` of ``cache`` (itself, or a ``TieredCache``'s first tier), or None."""
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.tiered import TieredCache

    if isinstance(cache, TieredCache):
        cache = cache.tiers[0]
    return cache if isinstance(cache, MemoryTier) else None


def changed_argument(
    cache: Any, key_of_index: str, code: int, tokens: Mapping[str, str] | None
) -> str | None:
    """Name the one argument in which a missing call differs from its nearest entry, if any.

    Cheap by construction, so ``@cached`` can run it on every miss: the index
    is read only from the in-process memory tier (``cache`` itself or the
    first tier of a ``TieredCache``) with ``MemoryTier.peek`` — one dict
    lookup, no decode, no I/O, no stats — and compared in one pass over its
    at most :data:`INDEX_CAP` compact summaries (:func:`single_argument_change`).
    Disk- or Redis-only caches, and a process that has not stored anything
    yet, are not diagnosed: there, reading and decoding the index would cost
    a round trip per miss.

    Parameters
    ----------
    cache : Tier
        The cache in use.
    key_of_index : str
        From :func:`index_key`.
    code : int
        :func:`code_id` of the call.
    tokens : mapping of str to str or None
        The call's argument tokens in signature order. None only asks whether
        a diagnosis is possible at all.

    Returns
    -------
    str or None
        The argument name; None when nothing qualifies. With ``tokens=None``:
        ``""`` if an index is available (a diagnosis is possible), else None.
    """
    memory = _memory_tier_of(cache)
    if memory is None:
        return None
    entries = memory.peek(key_of_index)
    if not isinstance(entries, list) or not entries:
        return None
    if tokens is None:
        return ""
    position = single_argument_change(entries, code, token_hashes(tokens.values()))
    return None if position is None else list(tokens)[position]


def tier_stats(cache: Any) -> dict[str, dict[str, Any]]:
    """Return ``{tier name: TierStats.as_dict()}`` of a tier or of each tier of a ``TieredCache``.

    Parameters
    ----------
    cache : Tier

    Returns
    -------
    dict
        Empty if the stats cannot be read (logged).
    """
    try:
        per_tier = getattr(cache, "tier_stats", None)
        if callable(per_tier):
            raw = per_tier()
            if isinstance(raw, Mapping):
                return {str(name): _stats_dict(s) for name, s in raw.items()}
            return {s.name: _stats_dict(s) for s in raw}
        stats = cache.stats()
        return {stats.name: _stats_dict(stats)}
    except Exception as exc:
        logger.warning("could not read the stats of %r: %r", cache, exc)
        return {}


def _stats_dict(stats: Any) -> dict[str, Any]:
    as_dict = getattr(stats, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else dict(stats)
