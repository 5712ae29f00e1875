"""Lazy re-exports for package ``__init__`` modules.

A package lists ``{public name: defining module}`` and gets a module-level
``__getattr__`` that imports the defining module on first access (then caches
the value in the package), so importing the package stays cheap and never
pulls in heavy optional dependencies::

    _EXPORTS = {"DiskTier": "scaleforge.cache.disk", ...}
    __all__ = [...]
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], public: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build the ``__getattr__`` and ``__dir__`` of a package with lazy exports.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str to str
        Public name -> module that defines it.
    public : sequence of str
        The package's ``__all__`` (what ``dir()`` lists).

    Returns
    -------
    (__getattr__, __dir__)
        Assign them at module level.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        vars(sys.modules[package])[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return list(public)

    return __getattr__, __dir__
