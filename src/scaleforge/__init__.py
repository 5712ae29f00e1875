"""scaleforge: make scientific Python workloads fast and scalable.

The top level exposes entry points only, loaded lazily so that ``import
scaleforge`` stays cheap and imports no heavy optional dependency::

    import scaleforge as sf

    @sf.cached
    def simulate(kappa, steps=100): ...

    results = sf.map(simulate, kappas)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaleforge._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "CachedFunction": "scaleforge.cache.decorators",
    "DiskTier": "scaleforge.cache.disk",
    "Executor": "scaleforge.compute.base",
    "MapReport": "scaleforge.compute.map",
    "MemoryTier": "scaleforge.cache.memory",
    "NullTier": "scaleforge.cache.null",
    "RedisTier": "scaleforge.cache.redis",
    "ScaleforgeError": "scaleforge.errors",
    "Settings": "scaleforge.settings",
    "Tier": "scaleforge.cache.base",
    "TieredCache": "scaleforge.cache.tiered",
    "cached": "scaleforge.cache.decorators",
    "config_context": "scaleforge.settings",
    "executor": "scaleforge.compute.registry",
    "imap": "scaleforge.compute.map",
    "load_settings": "scaleforge.settings",
    "map": "scaleforge.compute.map",
    "map_chunks": "scaleforge.data.chunks",
    "profile": "scaleforge.monitor.profiling",
}

__all__ = [
    "CachedFunction",
    "DiskTier",
    "Executor",
    "MapReport",
    "MemoryTier",
    "NullTier",
    "RedisTier",
    "ScaleforgeError",
    "Settings",
    "Tier",
    "TieredCache",
    "__version__",
    "cached",
    "config_context",
    "executor",
    "imap",
    "load_settings",
    "map",
    "map_chunks",
    "profile",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:
    from scaleforge.cache.base import Tier
    from scaleforge.cache.decorators import CachedFunction, cached
    from scaleforge.cache.disk import DiskTier
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.null import NullTier
    from scaleforge.cache.redis import RedisTier
    from scaleforge.cache.tiered import TieredCache
    from scaleforge.compute.base import Executor
    from scaleforge.compute.map import MapReport, imap, map
    from scaleforge.compute.registry import executor
    from scaleforge.data.chunks import map_chunks
    from scaleforge.errors import ScaleforgeError
    from scaleforge.monitor.profiling import profile
    from scaleforge.settings import Settings, config_context, load_settings
