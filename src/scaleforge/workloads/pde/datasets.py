"""PDE data generators: Darcy flow 2D and viscous Burgers 1D, deterministic per ``(seed, index)``.

Sample ``i`` of a data set is drawn from ``numpy.random.default_rng([seed, i])``
and nothing else, so it is the same array whatever ``n``, ``start``, worker or
order produced it: ``generate(..., n=2000)`` shares its first 1,200 samples with
``generate(..., n=1200)`` bit for bit.

Work is split into blocks of :data:`BLOCK_SIZE` consecutive indices aligned to
multiples of the block size (the last block of a range may be partial). Each
block is one task of :func:`scaleforge.map` and one entry of the ``@cached``
block solver, so a re-run hits the cache for every block and an extension from
1,200 to 2,000 samples (both multiples of 16) computes only the new blocks.
Blocks rather than single samples are cached because one 32² Darcy solve costs
3–5 ms while caching it alone costs ~0.8 ms to store (memory + disk tiers) and
~0.12 ms to read back from disk (measured on the 2-core dev machine), and a
per-sample task would also pay the inter-process round trip; per block of 16
both overheads are amortised (``benchmarks/bench_pde.py`` measures the re-run
at ~1 % of the cold run). A range whose end is not a multiple of the block size
recomputes at most ``BLOCK_SIZE - 1`` samples when it is later extended.

The cache key of a block is its content (data set, seed, index range,
resolution, physics parameters) plus the code identity of the block solver and
a numerics version, never a caller-supplied id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_choice, check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor import metrics
from scaleforge.workloads.pde.burgers import burgers_grid, solve_burgers
from scaleforge.workloads.pde.darcy import darcy_fv_grid, solve_darcy_fv
from scaleforge.workloads.pde.grf import grf_1d, grf_2d

__all__ = [
    "BLOCK_SIZE",
    "DATASETS",
    "PDEDataset",
    "generate",
    "generate_to_zarr",
    "sample_burgers",
    "sample_darcy",
    "split_blocks",
]

logger = logging.getLogger(__name__)

#: Samples per task and per cache entry (multiples of it extend without recomputation).
BLOCK_SIZE = 16

#: Known data sets and their default generation parameters.
DATASETS: dict[str, dict[str, Any]] = {
    "darcy": {
        "resolution": 32,
        "kappa_high": 12.0,
        "kappa_low": 3.0,
        "alpha": 2.0,
        "tau": 3.0,
        "f": 1.0,
    },
    "burgers": {
        "resolution": 128,
        "nu": 0.02,
        "t_end": 0.5,
        "dt": 2e-3,
        "alpha": 2.0,
        "tau": 5.0,
        "sigma": 25.0,
    },
}

_VERSION = "1"  # bump when a generator's numerics change: it is part of every cache key


@dataclass(frozen=True, eq=False)
class PDEDataset:
    """A generated PDE data set: input functions, solutions, the grid and how they were made.

    Parameters
    ----------
    name : str
        ``"darcy"`` or ``"burgers"``.
    inputs : ndarray of shape (n, s, s) or (n, s)
        κ for Darcy, u₀ for Burgers.
    outputs : ndarray, same shape as ``inputs``
        u for Darcy, u(T) for Burgers.
    grid : ndarray of shape (s, s, 2) or (s,)
        Coordinates of the grid points. Darcy: ``grid[i, j] = (x_i, y_j)`` ("ij"
        indexing, interior points ``(i+1)/(s+1)``); Burgers: ``x_j = j/s`` on the
        periodic unit interval.
    params : dict
        Generation parameters, including ``seed``, ``start`` and ``n`` (saved with the data).
    stats : dict
        How this object was produced (not saved): ``blocks`` (tasks of
        :data:`BLOCK_SIZE` samples), ``cached_blocks`` (answered by the cache),
        ``computed_blocks``, ``computed_samples`` and ``seconds``.

    Examples
    --------
    >>> ds = generate("burgers", n=2, resolution=32, cache=False)
    >>> len(ds), ds.inputs.shape
    (2, (2, 32))
    """

    name: str
    inputs: NDArray[np.float64]
    outputs: NDArray[np.float64]
    grid: NDArray[np.float64]
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.inputs.shape != self.outputs.shape:
            raise InvalidParameterError(
                f"PDEDataset inputs and outputs must have the same shape. "
                f"Got {self.inputs.shape} and {self.outputs.shape} instead."
            )
        if self.inputs.ndim < 2:
            raise InvalidParameterError(
                f"PDEDataset inputs must have shape (n, s) or (n, s, s). Got {self.inputs.shape} instead."
            )

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __repr__(self) -> str:
        return f"PDEDataset(name={self.name!r}, n={len(self)}, shape={self.inputs.shape[1:]})"

    def save(self, path: str | Path) -> Path:
        """Write the data set to ``.npz`` (one file) or ``.zarr`` (a directory, for large sets).

        Parameters
        ----------
        path : str or Path
            Target; the suffix picks the format (``.zarr`` → zarr, anything else → ``.npz``).

        Returns
        -------
        Path
            The path written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"name": self.name, "params": self.params}, sort_keys=True)
        if target.suffix == ".zarr":
            import zarr

            group = zarr.open_group(str(target), mode="w")
            for key in ("inputs", "outputs", "grid"):
                value = getattr(self, key)
                chunks = (min(1024, value.shape[0]), *value.shape[1:]) if key != "grid" else value.shape
                group.create_array(key, shape=value.shape, dtype=value.dtype, chunks=chunks)[...] = value
            group.attrs["scaleforge_pde"] = meta
            return target
        if target.suffix != ".npz":
            target = (
                target.with_suffix(target.suffix + ".npz") if target.suffix else target.with_suffix(".npz")
            )
        np.savez(target, inputs=self.inputs, outputs=self.outputs, grid=self.grid, meta=np.array(meta))
        return target

    @classmethod
    def load(cls, path: str | Path) -> PDEDataset:
        """Read a data set written by :meth:`save` or :func:`generate_to_zarr`.

        Parameters
        ----------
        path : str or Path
            A ``.npz`` file or a ``.zarr`` directory.

        Returns
        -------
        PDEDataset

        Raises
        ------
        InvalidParameterError
            If the path does not exist or is not a scaleforge PDE data set.
        """
        source = Path(path)
        if not source.exists():
            raise InvalidParameterError(f"PDEDataset.load: {str(source)!r} does not exist. Check the path.")
        try:
            if source.is_dir():
                import zarr

                group = zarr.open_group(str(source), mode="r")
                meta = json.loads(str(group.attrs["scaleforge_pde"]))
                arrays = {k: np.asarray(cast(Any, group[k])[...]) for k in ("inputs", "outputs", "grid")}
            else:
                with np.load(source, allow_pickle=False) as data:
                    meta = json.loads(str(data["meta"]))
                    arrays = {k: np.array(data[k]) for k in ("inputs", "outputs", "grid")}
        except (KeyError, ValueError, OSError) as exc:
            raise InvalidParameterError(
                f"PDEDataset.load: {str(source)!r} is not a scaleforge PDE data set ({exc}). "
                "Write it with PDEDataset.save or `scaleforge pde generate`."
            ) from exc
        return cls(
            name=meta["name"],
            inputs=arrays["inputs"],
            outputs=arrays["outputs"],
            grid=arrays["grid"],
            params=meta["params"],
        )


def sample_darcy(
    seed: int, index: int, resolution: int = 32, **params: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Draw Darcy sample ``index`` of ``seed``: κ from a thresholded GRF, u from the FV solver.

    Parameters
    ----------
    seed, index : int
        The sample's identity; it uses ``numpy.random.default_rng([seed, index])``.
    resolution : int, default=32
        Grid points per side (>= 4).
    **params : float
        ``kappa_high`` (12), ``kappa_low`` (3), ``alpha`` (2), ``tau`` (3), ``f`` (1).

    Returns
    -------
    kappa, u : ndarray of shape (resolution, resolution)
    """
    p = {**DATASETS["darcy"], **params}
    rng = np.random.default_rng([seed, index])
    field_ = grf_2d(rng, resolution, alpha=p["alpha"], tau=p["tau"])
    kappa = np.where(field_ >= 0.0, p["kappa_high"], p["kappa_low"]).astype(np.float64)
    return kappa, solve_darcy_fv(kappa, p["f"])


def sample_burgers(
    seed: int, indices: range | list[int], resolution: int = 128, **params: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Draw Burgers samples ``indices`` of ``seed`` and solve them as one batch.

    Parameters
    ----------
    seed : int
        Data set seed; sample ``i`` draws u₀ from ``default_rng([seed, i])``.
    indices : range or list of int
        Sample indices.
    resolution : int, default=128
        Grid points (even, >= 4).
    **params : float
        ``nu`` (0.02), ``t_end`` (0.5), ``dt`` (2e-3), ``alpha`` (2), ``tau`` (5), ``sigma`` (25).

    Returns
    -------
    u0, u_t : ndarray of shape (len(indices), resolution)
    """
    p = {**DATASETS["burgers"], **params}
    u0 = np.empty((len(indices), resolution))
    for row, i in enumerate(indices):
        rng = np.random.default_rng([seed, i])
        u0[row] = grf_1d(rng, resolution, alpha=p["alpha"], tau=p["tau"], sigma=p["sigma"])
    # one sample per row: pocketfft transforms rows independently, so a sample's
    # result does not depend on which block (batch) it was solved in
    return u0, solve_burgers(u0, nu=p["nu"], t_end=p["t_end"], dt=p["dt"])


def solve_block(
    name: str,
    seed: int,
    lo: int,
    hi: int,
    resolution: int,
    params: Mapping[str, float],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Generate samples ``lo .. hi-1`` (one cacheable unit of work).

    Parameters
    ----------
    name : {"darcy", "burgers"}
        Data set.
    seed, lo, hi : int
        Seed and index range.
    resolution : int
        Grid size.
    params : mapping
        Physics parameters (without ``resolution``).

    Returns
    -------
    inputs, outputs : ndarray of shape (hi - lo, ...)
    """
    if name == "burgers":
        return sample_burgers(seed, range(lo, hi), resolution, **params)
    pairs = [sample_darcy(seed, i, resolution, **params) for i in range(lo, hi)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def split_blocks(start: int, stop: int, block: int = BLOCK_SIZE) -> list[tuple[int, int]]:
    """Split ``[start, stop)`` at multiples of ``block``.

    Parameters
    ----------
    start, stop : int
        Index range.
    block : int, default=BLOCK_SIZE
        Alignment.

    Returns
    -------
    list of (lo, hi)

    Examples
    --------
    >>> split_blocks(5, 40, 16)
    [(5, 16), (16, 32), (32, 40)]
    """
    out: list[tuple[int, int]] = []
    lo = start
    while lo < stop:
        hi = min(stop, (lo // block + 1) * block)
        out.append((lo, hi))
        lo = hi
    return out


def _plain_int(value: Any) -> Any:
    """numpy integers become ``int`` (so they validate and hash like ints); anything else is unchanged."""
    return int(value) if isinstance(value, np.integer) else value


def _check_params(
    name: str, resolution: int | None, params: Mapping[str, Any], owner: str
) -> tuple[int, dict[str, float]]:
    check_choice(name, "name", owner, sorted(DATASETS))
    defaults = DATASETS[name]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidParameterError(
            f"{owner} got unknown parameter(s) {', '.join(map(repr, unknown))} for the {name!r} data set. "
            f"Known: {', '.join(sorted(k for k in defaults if k != 'resolution'))}."
        )
    res = defaults["resolution"] if resolution is None else _plain_int(resolution)
    check_number(res, "resolution", owner, minimum=4, integer=True)
    if name == "burgers" and res % 2:
        raise InvalidParameterError(
            f"The 'resolution' parameter of {owner} must be even for the burgers data set (FFT grid). "
            f"Got {res} instead."
        )
    phys = {k: v for k, v in defaults.items() if k != "resolution"}
    for key, value in params.items():
        positive = key not in ("f",)
        check_number(value, key, owner, minimum=0 if positive else None, exclusive_minimum=positive)
        phys[key] = float(value)
    return int(res), phys


def _block(
    block: tuple[int, int], *, name: str, seed: int, resolution: int, params: dict[str, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One task of :func:`generate`: samples ``block[0] .. block[1]-1``."""
    return solve_block(name, seed, block[0], block[1], resolution, params)


def _cached_block() -> Any:
    """``_block`` behind ``@cached`` (content key: the block, the data set and the numerics version)."""
    global _CACHED_BLOCK
    if _CACHED_BLOCK is None:
        from scaleforge.cache.decorators import cached

        _CACHED_BLOCK = cached(version=_VERSION)(_block)
    return _CACHED_BLOCK


_CACHED_BLOCK: Any = None


def _solve_blocks(
    blocks: list[tuple[int, int]],
    task_kwargs: dict[str, Any],
    executor: Any,
    progress: Any,
    cache: bool,
    stats: dict[str, Any],
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Solve ``blocks`` in order: cache hits from the cache, misses through :func:`scaleforge.map`.

    With ``cache`` this process computes every block's key with the ``@cached``
    block solver (``key``), looks them up in one batch (``get_many``), sends only
    the misses to the workers (which never touch the cache) and stores each
    result here (``store``). Doing the cache I/O in the calling thread means
    ``config_context(cache=...)`` and the settings apply to the whole
    generation, and the statistics are exact per block.
    """
    if not blocks:
        return []
    from scaleforge.compute.map import map as sf_map

    results: list[Any] = [None] * len(blocks)
    todo = list(range(len(blocks)))
    keys: list[str] = []
    fn = _cached_block() if cache else None
    if fn is not None:
        keys = [fn.key(block, **task_kwargs) for block in blocks]
        found = fn.get_many(keys)
        todo = [i for i, key in enumerate(keys) if key not in found]
        for i, key in enumerate(keys):
            if key in found:
                results[i] = found[key]
    stats["cached_blocks"] += len(blocks) - len(todo)
    if todo:
        computed = sf_map(
            _block, [blocks[i] for i in todo], executor=executor, progress=progress, **task_kwargs
        )
        for i, value in zip(todo, computed, strict=True):
            results[i] = value
            if fn is not None:
                fn.store(keys[i], value)
    stats["computed_blocks"] += len(todo)
    computed_samples = sum(blocks[i][1] - blocks[i][0] for i in todo)
    stats["computed_samples"] += computed_samples
    _record_generation(task_kwargs["name"], blocks, len(todo), computed_samples, cache)
    return results


def _record_generation(
    name: str, blocks: list[tuple[int, int]], computed_blocks: int, computed_samples: int, cache: bool
) -> None:
    """Count generated samples (computed or from the cache) and the block cache's hits and misses."""
    samples = metrics.counter(
        "scaleforge_pde_samples_generated_total",
        "PDE samples generated, by data set and source (computed or cache)",
        ["dataset", "source"],
    )
    lookups = metrics.counter(
        "scaleforge_pde_generation_cache_total",
        "Cache lookups of PDE sample blocks, by data set and result (hit or miss)",
        ["dataset", "result"],
    )
    total = sum(hi - lo for lo, hi in blocks)
    if computed_samples:
        samples.labels(dataset=name, source="computed").inc(computed_samples)
    if total > computed_samples:
        samples.labels(dataset=name, source="cache").inc(total - computed_samples)
    if cache:
        hits = len(blocks) - computed_blocks
        if hits:
            lookups.labels(dataset=name, result="hit").inc(hits)
        if computed_blocks:
            lookups.labels(dataset=name, result="miss").inc(computed_blocks)


def generate(
    name: str,
    n: int,
    resolution: int | None = None,
    *,
    seed: int = 0,
    start: int = 0,
    executor: Any = None,
    progress: Any = None,
    cache: bool = True,
    **params: float,
) -> PDEDataset:
    """Generate ``n`` samples of a PDE data set in parallel, with cached blocks.

    Parameters
    ----------
    name : {"darcy", "burgers"}
        ``"darcy"``: κ = 12 where a GRF ``N(0, (-Δ+9I)^-2)`` is >= 0 else 3, f = 1, zero
        Dirichlet, cell-centred FV solve. ``"burgers"``: u₀ ~ GRF (coefficients
        ``25 (4π²k² + 25)^-1``, mean removed), ETDRK4 to ``t_end``.
    n : int
        Number of samples, >= 1.
    resolution : int or None, default=None
        Darcy grid side (default 32; 64, 128 also used) or Burgers grid size (default 128).
    seed : int, default=0
        Data set seed, >= 0.
    start : int, default=0
        First sample index: samples ``start .. start+n-1`` are generated.
    executor : str, Executor or None, default=None
        Passed to :func:`scaleforge.map` (``None``: settings / all local cores).
    progress : bool or None, default=None
        Passed to :func:`scaleforge.map`.
    cache : bool, default=True
        Cache each block with ``@cached`` so re-runs and extensions reuse it.
    **params : float
        Physics parameters, see :data:`DATASETS` (Darcy ``kappa_high``, ``kappa_low``, ``alpha``,
        ``tau``, ``f``; Burgers ``nu``, ``t_end``, ``dt``, ``alpha``, ``tau``, ``sigma``).

    Returns
    -------
    PDEDataset

    Raises
    ------
    InvalidParameterError
        For an unknown data set name or parameter, ``resolution < 4``, ``n < 1``, a negative seed or start.

    Examples
    --------
    >>> ds = generate("darcy", n=2, resolution=8, cache=False)
    >>> ds.inputs.shape, ds.grid.shape
    ((2, 8, 8), (8, 8, 2))
    """
    owner = "generate"
    res, phys = _check_params(name, resolution, params, owner)
    n, seed, start = _plain_int(n), _plain_int(seed), _plain_int(start)
    check_number(n, "n", owner, minimum=1, integer=True)
    check_number(seed, "seed", owner, minimum=0, integer=True)
    check_number(start, "start", owner, minimum=0, integer=True)
    blocks = split_blocks(start, start + n)
    kwargs = {"name": name, "seed": seed, "resolution": res, "params": phys}
    shape = (n, res, res) if name == "darcy" else (n, res)
    inputs = np.empty(shape)
    outputs = np.empty(shape)
    stats: dict[str, Any] = {
        "blocks": len(blocks),
        "cached_blocks": 0,
        "computed_blocks": 0,
        "computed_samples": 0,
    }
    t0 = time.perf_counter()
    values = _solve_blocks(blocks, kwargs, executor, progress, bool(cache), stats)
    for (lo, hi), (x, y) in zip(blocks, values, strict=True):
        inputs[lo - start : hi - start] = x
        outputs[lo - start : hi - start] = y
    stats["seconds"] = time.perf_counter() - t0
    logger.info(
        "generated %d %s samples: %d of %d blocks from the cache, %d computed",
        n,
        name,
        stats["cached_blocks"],
        len(blocks),
        stats["computed_blocks"],
    )
    grid = darcy_fv_grid(res) if name == "darcy" else burgers_grid(res)
    meta = {"seed": seed, "start": start, "n": n, "resolution": res, "version": _VERSION, **phys}
    return PDEDataset(name=name, inputs=inputs, outputs=outputs, grid=grid, params=meta, stats=dict(stats))


def generate_to_zarr(
    name: str,
    n: int,
    path: str | Path,
    resolution: int | None = None,
    *,
    seed: int = 0,
    chunk_samples: int = 1024,
    executor: Any = None,
    progress: Any = None,
    cache: bool = False,
    **params: float,
) -> Path:
    """Stream ``n`` samples into a zarr group chunk by chunk ("scale" mode, e.g. 10⁵ samples).

    At most one zarr chunk of ``chunk_samples`` samples (plus the blocks in flight)
    is held in memory. The result loads with :meth:`PDEDataset.load`.

    Parameters
    ----------
    name, n, resolution, seed, executor, progress, **params
        As in :func:`generate`.
    path : str or Path
        Target ``.zarr`` directory (overwritten).
    chunk_samples : int, default=1024
        Samples per zarr chunk (rounded up to a multiple of :data:`BLOCK_SIZE`).
    cache : bool, default=False
        Cache blocks too (off by default: a 10⁵-sample stream would fill the cache).

    Returns
    -------
    Path
    """
    import zarr

    owner = "generate_to_zarr"
    res, phys = _check_params(name, resolution, params, owner)
    n, seed = _plain_int(n), _plain_int(seed)
    check_number(n, "n", owner, minimum=1, integer=True)
    check_number(seed, "seed", owner, minimum=0, integer=True)
    check_number(chunk_samples, "chunk_samples", owner, minimum=1, integer=True)
    chunk = -(-chunk_samples // BLOCK_SIZE) * BLOCK_SIZE
    target = Path(path)
    shape = (n, res, res) if name == "darcy" else (n, res)
    group = zarr.open_group(str(target), mode="w")
    arrays = {
        key: group.create_array(key, shape=shape, dtype="float64", chunks=(min(chunk, n), *shape[1:]))
        for key in ("inputs", "outputs")
    }
    grid = darcy_fv_grid(res) if name == "darcy" else burgers_grid(res)
    group.create_array("grid", shape=grid.shape, dtype="float64")[...] = grid
    meta = {"seed": seed, "start": 0, "n": n, "resolution": res, "version": _VERSION, **phys}
    group.attrs["scaleforge_pde"] = json.dumps({"name": name, "params": meta}, sort_keys=True)
    kwargs = {"name": name, "seed": seed, "resolution": res, "params": phys}
    stats: dict[str, Any] = {"blocks": 0, "cached_blocks": 0, "computed_blocks": 0, "computed_samples": 0}
    buf_x = np.empty((min(chunk, n), *shape[1:]))
    buf_y = np.empty_like(buf_x)
    for base in range(0, n, chunk):
        # one zarr chunk per round: bounded memory, whole-chunk writes
        stop = min(n, base + chunk)
        blocks = split_blocks(base, stop)
        stats["blocks"] += len(blocks)
        values = _solve_blocks(blocks, kwargs, executor, progress, bool(cache), stats)
        for (lo, hi), (x, y) in zip(blocks, values, strict=True):
            buf_x[lo - base : hi - base] = x
            buf_y[lo - base : hi - base] = y
        arrays["inputs"][base:stop] = buf_x[: stop - base]
        arrays["outputs"][base:stop] = buf_y[: stop - base]
    logger.info("streamed %d %s samples to %s (%s)", n, name, target, stats)
    return target
