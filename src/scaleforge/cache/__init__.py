"""Content-addressed multi-tier cache: tiers, ``TieredCache`` and ``@cached``."""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scaleforge.cache' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
