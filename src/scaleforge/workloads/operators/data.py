"""Training and test splits from the PDE workload, cached as whole splits.

The PDE generators already cache each block of samples; this module adds a
cache entry per split so a second run can tell (and say) that it reused the
data without generating anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_choice, check_number

__all__ = ["DATASET_NAMES", "TEST_START", "Split", "load_split"]

logger = logging.getLogger(__name__)

DATASET_NAMES = ("burgers", "darcy")
#: Index of the first test sample: test fields never overlap any training size we use.
TEST_START = 100_000


@dataclass(frozen=True)
class Split:
    """Input and output fields of one data split.

    Attributes
    ----------
    name : str
    x, y : ndarray of shape (n, *grid)
    cached : bool
        True when the whole split came from the cache.
    seconds : float
        Time to obtain it.
    """

    name: str
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    cached: bool
    seconds: float


def _generate(
    name: str,
    n: int,
    resolution: int,
    seed: int,
    start: int,
    executor: Any = None,
    progress: Any = None,
    cache: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    from scaleforge.workloads import pde

    ds = pde.generate(
        name, n, resolution, seed=seed, start=start, executor=executor, progress=progress, cache=cache
    )
    return ds.inputs, ds.outputs


_CACHED: Any = None


def _cached() -> Any:
    global _CACHED
    if _CACHED is None:
        try:
            from scaleforge.cache.decorators import cached
        except ImportError:  # pragma: no cover - cache layer absent
            return None
        _CACHED = cached(ignore=["executor", "progress", "cache"])(_generate)
    return _CACHED


def load_split(
    name: str,
    n: int,
    resolution: int | None = None,
    *,
    seed: int = 0,
    start: int = 0,
    executor: Any = None,
    progress: Any = None,
    cache: bool = True,
) -> Split:
    """Generate (or reuse) samples ``start .. start+n-1`` of a PDE data set.

    Parameters
    ----------
    name : {"burgers", "darcy"}
    n : int
        Number of samples.
    resolution : int, optional
        Grid size (default: 128 for Burgers, 32 for Darcy).
    seed : int, default=0
    start : int, default=0
        First sample index (test splits use :data:`TEST_START`).
    executor, progress
        Passed to :func:`scaleforge.map` through ``pde.generate``.
    cache : bool, default=True
        Look the whole split up in the cache first and store it afterwards.

    Returns
    -------
    Split
    """
    import time

    check_choice(name, "name", "load_split", DATASET_NAMES)
    check_number(n, "n", "load_split", minimum=1, integer=True)
    res = resolution if resolution is not None else (128 if name == "burgers" else 32)
    check_number(res, "resolution", "load_split", minimum=4, integer=True)
    t0 = time.perf_counter()
    fn = _cached() if cache else None
    if fn is not None:
        try:
            x, y = fn.lookup(name, n, res, seed, start)
        except KeyError:
            pass
        except Exception:  # a failing cache is a miss, never a failure
            logger.debug("split cache lookup failed", exc_info=True)
        else:
            return Split(name, x, y, True, time.perf_counter() - t0)
    x, y = _generate(name, n, res, seed, start, executor, progress, cache)
    if fn is not None:
        try:
            fn.store(fn.key(name, n, res, seed, start), (x, y))
        except Exception:
            logger.debug("split cache store failed", exc_info=True)
    return Split(name, x, y, False, time.perf_counter() - t0)
