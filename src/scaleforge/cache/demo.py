"""A short, real demonstration of the cache (what ``make demo`` runs until the flagship pipeline exists).

A slow function — Jacobi iterations for the Poisson equation on a grid with a
random source — is decorated with :func:`~scaleforge.cache.decorators.cached`
over a memory + disk :class:`~scaleforge.cache.tiered.TieredCache` in a
private directory (never the user's cache), then called:

1. cold: a miss, computed and stored in both tiers;
2. again: a memory hit;
3. after emptying the memory tier (as a new process would see it): a disk hit;
4. with a Fortran-ordered copy of the input: still a hit (keys follow values);
5. ``explain`` with another iteration count: names the argument that differs.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from scaleforge.errors import InvalidParameterError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["jacobi_poisson", "run_cache_demo"]


def jacobi_poisson(source: NDArray[np.float64], iterations: int = 3000) -> NDArray[np.float64]:
    """Solve ``-Δu = source`` on the unit square (u = 0 on the boundary) by Jacobi iterations.

    Parameters
    ----------
    source : ndarray of shape (n, n)
        Right-hand side on the grid, including boundary points.
    iterations : int, default=3000
        Number of Jacobi sweeps (deliberately slow: this is the demo's expensive step).

    Returns
    -------
    ndarray of shape (n, n)
        The approximate solution.

    Raises
    ------
    InvalidParameterError
        If ``source`` is not a square 2-D array with n >= 3, or ``iterations`` < 1.

    Examples
    --------
    >>> u = jacobi_poisson(np.ones((9, 9)), iterations=500)
    >>> bool(u[4, 4] > 0)
    True
    """
    f = np.asarray(source, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != f.shape[1] or f.shape[0] < 3:
        raise InvalidParameterError(
            f"The 'source' parameter of jacobi_poisson must be a square 2-D array with n >= 3. "
            f"Got shape {f.shape} instead."
        )
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise InvalidParameterError(
            f"The 'iterations' parameter of jacobi_poisson must be an int >= 1. Got {iterations!r} instead."
        )
    h2 = (1.0 / (f.shape[0] - 1)) ** 2
    u = np.zeros_like(f)
    for _ in range(iterations):
        u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] + h2 * f[1:-1, 1:-1])
    return u


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _format_s(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def run_cache_demo(
    console: Console, *, workdir: Path | None = None, grid: int = 128, iterations: int = 3000
) -> dict[str, Any]:
    """Run the cache demonstration and print what happens.

    Parameters
    ----------
    console : rich.console.Console
        Where to print the tables.
    workdir : Path or None, default=None
        Directory for the demo's disk tier (``<workdir>/cache``, emptied
        first). None uses a temporary directory removed afterwards.
    grid : int, default=128
        Grid points per side of the demo problem.
    iterations : int, default=3000
        Jacobi sweeps: the cost of one cold call.

    Returns
    -------
    dict
        ``timings_s`` (per step), ``speedup_memory`` and ``speedup_disk`` (cold
        time / hit time), ``computations`` (1 if the cache worked),
        ``identical`` (all results equal), ``explain`` (the miss explanation),
        ``tiers`` (per-tier stats) and ``cache_dir``.

    Raises
    ------
    InvalidParameterError
        If ``grid`` < 3 or ``iterations`` < 1.
    """
    from rich.table import Table

    from scaleforge.cache.decorators import cached
    from scaleforge.cache.disk import DiskTier
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.tiered import TieredCache

    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 3:
        raise InvalidParameterError(
            f"The 'grid' parameter of run_cache_demo must be an int >= 3. Got {grid!r} instead."
        )
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise InvalidParameterError(
            f"The 'iterations' parameter of run_cache_demo must be an int >= 1. Got {iterations!r} instead."
        )
    temp: tempfile.TemporaryDirectory[str] | None = None
    if workdir is None:
        temp = tempfile.TemporaryDirectory(prefix="scaleforge-demo-")
        cache_dir = Path(temp.name) / "cache"
    else:
        cache_dir = Path(workdir) / "cache"
        shutil.rmtree(cache_dir, ignore_errors=True)
    try:
        memory = MemoryTier(max_bytes="256MB")
        # A throwaway signing key: the demo cache lives only for this run.
        disk = DiskTier(cache_dir, max_bytes="1GB", key=secrets.token_bytes(32))
        cache = TieredCache([memory, disk])
        solve = cached(cache=cache)(jacobi_poisson)

        rng = np.random.default_rng(0)
        source = rng.standard_normal((grid, grid))
        console.print(
            f"[bold]scaleforge cache demo[/bold]: Jacobi solve of a {grid}x{grid} Poisson problem, "
            f"{iterations} sweeps, cached in memory + disk at {cache_dir}"
        )
        steps: list[tuple[str, str, float]] = []
        u1, t_cold = _timed(solve, source, iterations=iterations)
        steps.append(("1. first call", "miss: computed and stored", t_cold))
        u2, t_mem = _timed(solve, source, iterations=iterations)
        steps.append(("2. same call again", "hit (memory)", t_mem))
        memory.clear()  # what a fresh process sees: an empty memory tier, a warm disk
        u3, t_disk = _timed(solve, source, iterations=iterations)
        steps.append(("3. memory emptied, as in a new process", "hit (disk)", t_disk))
        u4, t_fortran = _timed(solve, np.asfortranarray(source), iterations=iterations)
        steps.append(("4. Fortran-ordered copy of the input", "hit: keys follow values", t_fortran))
        explanation = solve.explain(source, iterations=iterations + 1)

        table = Table(title="Calls")
        table.add_column("step")
        table.add_column("result")
        table.add_column("time", justify="right")
        table.add_column("speed-up", justify="right")
        for label, result, seconds in steps:
            table.add_row(label, result, _format_s(seconds), f"{t_cold / max(seconds, 1e-9):,.0f}x")
        console.print(table)
        console.print(f"explain(source, iterations={iterations + 1}) -> [italic]{explanation}[/italic]")

        info = solve.cache_info()
        stats_table = Table(
            title="Tiers", caption="entries: the result, its manifest (for explain) and the function's index"
        )
        for column in ("tier", "entries", "bytes", "hits", "misses", "errors"):
            stats_table.add_column(column, justify="left" if column == "tier" else "right")
        for name, stats in info["tiers"].items():
            stats_table.add_row(
                name,
                str(stats.get("entries", "")),
                f"{stats.get('bytes', 0):,}",
                str(stats.get("hits", "")),
                str(stats.get("misses", "")),
                str(stats.get("errors", "")),
            )
        console.print(stats_table)
        identical = all(np.array_equal(u1, u) for u in (u2, u3, u4))
        console.print(
            f"computed {info['computations']} time(s); results identical: {identical}; "
            f"function hits {info['hits']}, misses {info['misses']}"
        )
        cache.close()
        return {
            "timings_s": {"cold": t_cold, "memory_hit": t_mem, "disk_hit": t_disk, "fortran_hit": t_fortran},
            "speedup_memory": t_cold / max(t_mem, 1e-9),
            "speedup_disk": t_cold / max(t_disk, 1e-9),
            "computations": info["computations"],
            "identical": identical,
            "explain": explanation,
            "tiers": info["tiers"],
            "cache_dir": str(cache_dir),
        }
    finally:
        if temp is not None:
            temp.cleanup()
