"""Memory-only ``@cached`` for element data and factorisations.

Element geometry (keyed by the mesh arrays) and prepared linear systems
(keyed by the matrix's CSR arrays) go through :func:`scaleforge.cached` with
content keys — never a caller-supplied mesh id — but into their own
:class:`~scaleforge.cache.memory.MemoryTier`, not the default memory + disk
(+ Redis) tiers:

* a SuperLU factorisation or a pyamg hierarchy cannot be serialised at all, and
  is only useful inside the process that built it;
* P1 element data (~300 bytes per element) is bigger than the mesh it is
  computed from and cheaper to recompute than to read back from disk.

The cached objects expose ``nbytes`` so the tier's byte budget (LRU) bounds
the memory they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

__all__ = ["memory_cached"]

P = ParamSpec("P")
R = TypeVar("R")


def memory_cached(
    fn: Callable[P, R], *, name: str, max_bytes: str, ignore: Iterable[str] | None = None
) -> Callable[P, R]:
    """Wrap ``fn`` with ``@cached`` on a private memory-only tier.

    Parameters
    ----------
    fn : callable
        A module-level function.
    name : str
        Name of the tier (shows in ``cache_info()``).
    max_bytes : str
        Byte budget of the tier, e.g. ``"512MB"``.
    ignore : iterable of str, optional
        Parameters left out of the key.

    Returns
    -------
    scaleforge.cache.decorators.CachedFunction
    """
    from scaleforge.cache.decorators import cached
    from scaleforge.cache.memory import MemoryTier

    wrapped: Any = cached(cache=MemoryTier(max_bytes, name=name), ignore=ignore)(fn)
    return wrapped  # type: ignore[no-any-return]
