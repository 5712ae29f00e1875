"""Tier backends by name, and the default cache built from settings."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from scaleforge.cache.base import Tier
from scaleforge.errors import InvalidParameterError

if TYPE_CHECKING:
    from scaleforge.settings import Settings

__all__ = ["available_tiers", "default_cache", "get_tier_class", "register_tier"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_lock = threading.Lock()
_TIERS: dict[str, type[Tier]] = {}


def register_tier(name: str, cls: type[Tier]) -> None:
    """Register a :class:`~scaleforge.cache.base.Tier` subclass under ``name``.

    Registering an existing name replaces it (settings then build the new class).

    Parameters
    ----------
    name : str
        Lower-case identifier, e.g. ``"memory"`` or ``"s3"``.
    cls : type
        A subclass of :class:`~scaleforge.cache.base.Tier` (the class, not an instance).

    Raises
    ------
    InvalidParameterError
        If the name is not a lower-case identifier or ``cls`` is not a Tier subclass.

    Examples
    --------
    >>> from scaleforge.cache.null import NullTier
    >>> class QuietTier(NullTier): ...
    >>> register_tier("quiet", QuietTier)
    >>> get_tier_class("quiet") is QuietTier
    True
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidParameterError(
            f"The 'name' parameter of register_tier must be a lower-case identifier such as 'memory'. "
            f"Got {name!r} instead."
        )
    if not isinstance(cls, type) or not issubclass(cls, Tier):
        raise InvalidParameterError(
            f"The 'cls' parameter of register_tier must be a subclass of scaleforge.Tier (the class itself). "
            f"Got {cls!r} instead. Subclass Tier and implement get, set, delete, clear and stats."
        )
    with _lock:
        _TIERS[name] = cls


def get_tier_class(name: str) -> type[Tier]:
    """Return the class registered under ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    type

    Raises
    ------
    InvalidParameterError
        If nothing is registered under ``name``.
    """
    cls = _TIERS.get(name)
    if cls is None:
        raise InvalidParameterError(
            f"No cache tier is registered as {name!r}. Known tiers: {', '.join(sorted(_TIERS))}; "
            "add one with scaleforge.cache.register_tier(name, cls)."
        )
    return cls


def available_tiers() -> list[str]:
    """Return the registered tier names, sorted."""
    return sorted(_TIERS)


def default_cache(settings: Settings | None = None) -> Tier:
    """Build the cache described by ``settings``.

    Memory then disk, plus Redis when ``cache.redis.enabled``, each when its
    section is enabled, in a :class:`~scaleforge.cache.tiered.TieredCache` with
    ``cache.write_policy``. A :class:`~scaleforge.cache.null.NullTier` when
    ``cache.enabled`` is False or no tier is enabled. Tiers are built from the
    classes registered as ``"memory"``, ``"disk"``, ``"redis"`` and ``"null"``.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :func:`scaleforge.settings.get_settings`.

    Returns
    -------
    Tier
        A new cache on each call (callers share one instance if they want a
        shared memory tier).

    Raises
    ------
    ConfigError
        If the signing key cannot be loaded or lies inside the disk cache directory.
    """
    from scaleforge.cache.tiered import TieredCache
    from scaleforge.settings import get_settings

    if settings is None:
        settings = get_settings()
    cs = settings.cache
    if not cs.enabled:
        return get_tier_class("null")()
    tiers: list[Tier] = []
    if cs.memory.enabled:
        tiers.append(get_tier_class("memory")(max_bytes=cs.memory.max_bytes))  # type: ignore[call-arg]
    key: bytes | None = None
    if cs.disk.enabled or cs.redis.enabled:
        from scaleforge.codec.signing import load_key

        if cs.disk.enabled and cs.hmac_key is None:
            from pathlib import Path

            from scaleforge.errors import ConfigError

            key_file = Path(cs.key_file).expanduser().absolute()
            if key_file.is_relative_to(Path(cs.disk.path).expanduser().absolute()):
                raise ConfigError(
                    f"cache.key_file {str(key_file)!r} lies inside cache.disk.path; anyone who can write "
                    "the cache could forge entries. Move the key file outside the cache directory."
                )
        key = load_key(cs)
    if cs.disk.enabled:
        tiers.append(
            get_tier_class("disk")(  # type: ignore[call-arg]
                cs.disk.path,
                max_bytes=cs.disk.max_bytes,
                fsync=cs.disk.fsync,
                compression=cs.compression,
                key=key,
            )
        )
    if cs.redis.enabled:
        r = cs.redis
        tiers.append(
            get_tier_class("redis")(  # type: ignore[call-arg]
                r.url,
                prefix=r.prefix,
                ttl_s=r.ttl_s,
                max_bytes=r.max_bytes,
                socket_timeout_s=r.socket_timeout_s,
                breaker_cooldown_s=r.breaker_cooldown_s,
                compression=cs.compression,
                key=key,
            )
        )
    if not tiers:
        return get_tier_class("null")()
    return TieredCache(tiers, write_policy=cs.write_policy)


def _register_builtins() -> None:
    from scaleforge.cache.disk import DiskTier
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.null import NullTier
    from scaleforge.cache.redis import RedisTier

    for name, cls in (("memory", MemoryTier), ("disk", DiskTier), ("redis", RedisTier), ("null", NullTier)):
        register_tier(name, cls)


_register_builtins()
