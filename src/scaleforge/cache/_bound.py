"""A ``CachedFunction`` bound to an instance or class (what ``@cached`` methods return)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaleforge.cache.decorators import CachedFunction

__all__ = ["BoundCachedFunction"]


class BoundCachedFunction:
    """A :class:`CachedFunction` bound to an instance (or a class): passes it as first argument."""

    __slots__ = ("__self__", "__wrapped__", "_cf")

    def __init__(self, cf: CachedFunction[..., Any], obj: object) -> None:
        self._cf = cf
        self.__self__ = obj
        self.__wrapped__ = cf.__wrapped__  # type: ignore[attr-defined]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._cf(self.__self__, *args, **kwargs)

    def call_uncached(self, *args: Any, **kwargs: Any) -> Any:
        return self._cf.call_uncached(self.__self__, *args, **kwargs)

    def key(self, *args: Any, **kwargs: Any) -> str:
        return self._cf.key(self.__self__, *args, **kwargs)

    def lookup(self, *args: Any, **kwargs: Any) -> Any:
        return self._cf.lookup(self.__self__, *args, **kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        return self._cf.refresh(self.__self__, *args, **kwargs)

    def explain(self, *args: Any, **kwargs: Any) -> str:
        return self._cf.explain(self.__self__, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cf, name)

    def __repr__(self) -> str:
        return f"<bound {self._cf!r} of {self.__self__!r}>"
