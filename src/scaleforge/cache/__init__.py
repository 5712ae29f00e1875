"""Content-addressed multi-tier cache: tiers, ``TieredCache`` and ``@cached``."""

from __future__ import annotations

from scaleforge._lazy import lazy_exports

_EXPORTS = {
    "MISSING": "scaleforge.cache.base",
    "Tier": "scaleforge.cache.base",
    "TierStats": "scaleforge.cache.base",
    "MemoryTier": "scaleforge.cache.memory",
    "DiskTier": "scaleforge.cache.disk",
    "RedisTier": "scaleforge.cache.redis",
    "NullTier": "scaleforge.cache.null",
    "TieredCache": "scaleforge.cache.tiered",
    "CachedFunction": "scaleforge.cache.decorators",
    "cached": "scaleforge.cache.decorators",
    "default_cache": "scaleforge.cache.registry",
    "register_tier": "scaleforge.cache.registry",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
